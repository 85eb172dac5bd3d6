"""What moves the numbers besides the model: the prompt templates and the class names.

Open-vocabulary scores move with the prompt templates and the names given to the classes (FLOSS, arXiv
2504.10487; RENOVATE, NeurIPS 2024). Two analyses, both on one :class:`~lseg_nb.engine.dense.EvalData` with one
protocol, so only the texts differ between rows:

* :func:`template_analysis`: each template alone against all of them averaged (the text encoder averages the
  unit prompt embeddings of a label and re-normalises, as CLIP's prompt ensembling does): mIoU and per-class
  IoU per row.
* :func:`renaming_analysis`: one class at a time renamed to each of its alternative names, everything else
  fixed: the class's IoU and the mIoU per name, and the spread (max - min) per class.

* :func:`floss_rankings` / :func:`floss_analysis`: FLOSS's training-free per-class template selection (Benigmim et
  al., arXiv 2504.10487; code github.com/yasserben/FLOSS), as its code does it. Ranking
  (``mmseg/evaluation/metrics/entropy_metric.py`` lines 136-176, 245-299): each template alone classifies every
  pixel of *unlabelled* images (softmax over the classes); a template's score for class ``c`` is the mean entropy
  of the class distributions of the pixels it predicts as ``c``; templates are sorted by it, lowest first.
  Selection (``mmseg/models/segmentors/clip_dinoiser/dinoclip_inferencer.py`` lines 106-123): per class the first
  ``top_n`` (4) templates that predicted it at all; a class no template predicts keeps all templates. Experts
  (``mmseg/models/segmentors/naclip/naclip.py`` lines 268-328): class ``c``'s expert classifies *all* classes with
  ``c``'s templates (unit prompt embeddings averaged and re-normalised, this text encoder's own averaging), beside
  the default classifier with all templates. Fusion (``naclip.py`` lines 181-263, :func:`fuse_experts`): a pixel
  takes the probabilities of the expert that predicts its own class there; of several, the one most confident in
  its class (the first on a tie); of none, the default's.

  Differences from the reference, all of them lseg_nb's one inference path: the probabilities are the softmax of
  the class logits the protocol produces at the label map's size (the reference resizes probabilities), at the
  model's logit scale unless ``protocol.logit_scale`` is set, and a class with several names scores its best
  name before the softmax.

Every evaluation runs the model once over the data, so keep ``max_images`` small on a CPU (a FLOSS pass runs every
template's or expert's classifier on the same image features).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.inference import predict_logits_multi, refine_logits
from lseg_nb.engine.metrics import compute_metrics
from lseg_nb.engine.postprocess import encode_labels, max_over_names, model_logit_scale
from lseg_nb.engine.scoring import ConfusionAccumulator
from lseg_nb.utils.device import model_device
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

__all__ = [
    "PromptRow",
    "TemplateRanking",
    "entropy_counts",
    "floss_analysis",
    "floss_rankings",
    "fuse_experts",
    "rank_templates",
    "renaming_analysis",
    "template_analysis",
]

#: FLOSS's default number of templates per class (``top_n=4`` in its inferencers).
FLOSS_TOP_N = 4


@dataclass(frozen=True)
class PromptRow:
    """One variant's scores (fractions): what changed (``variant``), mIoU over all labels, per-class IoU by the
    class's first original name."""

    variant: str
    miou: float
    per_class_iou: dict[str, float]


def _score(
    model: nn.Module, data: EvalData, protocol: EvalConfig, variant: str, names: Sequence[str]
) -> PromptRow:
    m = run_dense(model, data, protocol, 0, False).all_labels
    return PromptRow(variant, m.miou, dict(zip(names, m.per_class_iou, strict=True)))


def _quiet(protocol: EvalConfig | None) -> EvalConfig:
    return dataclasses.replace(protocol or EvalConfig(), bootstrap=0, calibrate_seen=False)


def _template_encoder(model: nn.Module, templates: Sequence[str], what: str) -> nn.Module:
    encoder = getattr(model, "text_encoder", None)
    if encoder is None or not hasattr(encoder, "templates"):
        raise InputError(f"{what} needs a model whose text_encoder has prompt templates")
    if not templates:
        raise InputError("give at least one template")
    return encoder


def template_analysis(
    model: nn.Module, data: EvalData, templates: Sequence[str], protocol: EvalConfig | None = None
) -> list[PromptRow]:
    """Scores with each template alone, then with all averaged (last row ``"average of all"``).

    Args:
        model: a model whose text encoder takes templates (LSeg; dense-CLIP models' ``text_encoder``).
        data: images and labels to score.
        templates: prompt templates with a ``{}`` for the label, e.g. ``"a photo of a {}."``.
        protocol: inference and decision settings (bootstrap and calibration are switched off here).
    """
    encoder = _template_encoder(model, templates, "template_analysis")
    protocol, names = _quiet(protocol), data.labels.class_names
    own = encoder.templates
    rows = []
    try:
        for t in [*[(t,) for t in templates], tuple(templates)]:
            encoder.templates = t  # the encoder's cache is keyed by the templates: no stale embeddings
            rows.append(_score(model, data, protocol, t[0] if len(t) == 1 else "average of all", names))
    finally:
        encoder.templates = own
    return rows


def renaming_analysis(
    model: nn.Module,
    data: EvalData,
    alternatives: Mapping[str, Sequence[str]],
    protocol: EvalConfig | None = None,
) -> tuple[list[PromptRow], dict[str, float]]:
    """Rows for the original names and for each ``(class, alternative name)``, and per class the spread of its
    IoU over its names (original included).

    Args:
        model: any lseg_nb model.
        data: images and labels to score.
        alternatives: class (its first name) -> other names to try, one at a time.
        protocol: inference and decision settings (bootstrap and calibration are switched off here).
    """
    labels, protocol = data.labels, _quiet(protocol)
    names = labels.class_names
    unknown = sorted(set(alternatives) - set(names))
    if unknown:
        raise InputError(f"classes {unknown} are not in the label set {list(names)}")
    rows = [_score(model, data, protocol, "original names", names)]
    spread = {}
    for cls, others in alternatives.items():
        c = names.index(cls)
        ious = [rows[0].per_class_iou[cls]]
        for other in others:
            renamed = [list(n) for n in labels.names]
            renamed[c] = [other]
            split = LabelSplit(renamed, labels.seen, labels.unseen, labels.void, labels.background)
            row = _score(model, dataclasses.replace(data, labels=split), protocol, f"{cls} -> {other}", names)
            rows.append(row)
            ious.append(row.per_class_iou[cls])
        valid = [v for v in ious if v == v]  # NaN: the class is absent and never predicted
        spread[cls] = max(valid) - min(valid) if valid else float("nan")
    return rows, spread


@dataclass(frozen=True, eq=False)
class TemplateRanking:
    """FLOSS's unsupervised statistics of each template alone: ``entropy[c, t]`` the mean entropy (nats) of the
    class distributions of the pixels template ``t`` predicts as class ``c`` (NaN where it never predicts ``c``),
    ``pixel_fraction[c, t]`` the fraction of all pixels it predicts as ``c``."""

    templates: tuple[str, ...]
    class_names: tuple[str, ...]
    entropy: np.ndarray
    pixel_fraction: np.ndarray
    num_images: int

    def selection(self, top_n: int = FLOSS_TOP_N) -> list[tuple[str, ...] | None]:
        """Per class its ``top_n`` lowest-entropy templates (``None``: no template predicts it, keep all).

        Args:
            top_n: templates per class (FLOSS: 4).
        """
        return [
            None if not ids else tuple(self.templates[t] for t in ids)
            for ids in rank_templates(self.entropy, self.pixel_fraction, top_n)
        ]


def rank_templates(
    entropy: np.ndarray, pixel_fraction: np.ndarray, top_n: int = FLOSS_TOP_N
) -> list[list[int]]:
    """Per class the indices of its ``top_n`` templates by ascending entropy, among those that predicted it (a
    stable sort: equal entropies keep the template order, as Python's ``sorted`` in the reference).

    Args:
        entropy: ``(C, T)`` mean entropies (:class:`TemplateRanking`).
        pixel_fraction: ``(C, T)`` fractions of pixels predicted; 0 excludes the template for that class.
        top_n: how many to keep.
    """
    if top_n < 1:
        raise InputError(f"top_n must be >= 1, got {top_n}")
    out = []
    for ent, frac in zip(np.asarray(entropy), np.asarray(pixel_fraction), strict=True):
        valid = [t for t in np.argsort(ent, kind="stable") if frac[t] > 0]
        out.append([int(t) for t in valid[:top_n]])
    return out


def fuse_experts(expert_probs: Tensor, default_probs: Tensor) -> Tensor:
    """FLOSS's fusion of per-class experts (module docstring): ``(E=C, B, C, H, W)`` expert probabilities (expert
    ``e`` specialises in class ``e``) and the default's ``(B, C, H, W)`` -> fused ``(B, C, H, W)``.

    Args:
        expert_probs: class probabilities of each class's expert classifier.
        default_probs: class probabilities of the classifier with every template.
    """
    e, b, c, h, w = expert_probs.shape
    if e != c or default_probs.shape != (b, c, h, w):
        raise ValueError(
            f"need one expert per class ({c}) and default probabilities {(b, c, h, w)}, got "
            f"{tuple(expert_probs.shape)} and {tuple(default_probs.shape)}"
        )
    ids = torch.arange(c, device=expert_probs.device)
    claims = expert_probs.argmax(2) == ids.view(c, 1, 1, 1)  # expert e predicts its own class
    confidence = torch.where(claims, expert_probs[ids, :, ids], -1.0)  # (E, B, H, W); probabilities are >= 0
    best = confidence.argmax(0)  # the first of equal maxima, as the reference's strict ">"
    chosen = expert_probs.permute(1, 0, 2, 3, 4).gather(1, best[:, None, None].expand(b, 1, c, h, w))[:, 0]
    return torch.where(claims.any(0)[:, None], chosen, default_probs)


def entropy_counts(probs: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per predicted class the summed entropy (nats) of the pixels' class distributions and their number.

    Args:
        probs: ``(B, C, H, W)`` class probabilities of one classifier.
    """
    k = probs.shape[1]
    pred = probs.argmax(1).flatten()
    h = -(probs * torch.log(probs + 1e-10)).sum(1).flatten()  # the reference's epsilon
    ent = torch.bincount(pred, weights=h.double(), minlength=k)
    return ent.cpu().numpy(), torch.bincount(pred, minlength=k).cpu().numpy()


def _images(data: EvalData) -> Iterator[Tensor]:
    n = len(data.dataset) if data.max_images is None else min(len(data.dataset), data.max_images)
    for i in range(n):
        yield data.dataset[i][0][None]


def _class_probs(model: nn.Module, images: Tensor, texts: list[Tensor], owner: Tensor, protocol: EvalConfig):
    """Per text set the softmax over classes of the protocol's class logits (best name per class)."""
    logits = refine_logits(images, predict_logits_multi(model, images, texts, protocol), protocol)
    factor = 1.0 if protocol.logit_scale is None else protocol.logit_scale / model_logit_scale(model)
    return [torch.softmax(max_over_names(x.float(), owner.to(x.device)) * factor, dim=1) for x in logits]


def _texts(model: nn.Module, encoder: nn.Module, labels: LabelSplit, sets: Sequence[Sequence[str]]):
    own = encoder.templates
    try:
        out = []
        for templates in sets:
            encoder.templates = tuple(templates)
            out.append(encode_labels(model, labels)[0])
        return out, torch.tensor(labels.owner, dtype=torch.long)
    finally:
        encoder.templates = own


@torch.no_grad()
def floss_rankings(
    model: nn.Module, data: EvalData, templates: Sequence[str], protocol: EvalConfig | None = None
) -> TemplateRanking:
    """FLOSS's entropy statistics of each template alone on the images of ``data`` (labels are not read).

    Args:
        model: a model whose text encoder takes templates.
        data: the unlabelled images to rank on (their label maps are ignored; the label set gives the classes).
        templates: the candidate templates (``{}`` for the class name).
        protocol: inference settings.
    """
    encoder = _template_encoder(model, templates, "floss_rankings")
    protocol, labels = _quiet(protocol), data.labels
    k, n_t = labels.num_classes, len(templates)
    texts, owner = _texts(model, encoder, labels, [(t,) for t in templates])
    ent_sum, count, total, images_seen = np.zeros((n_t, k)), np.zeros((n_t, k)), 0, 0
    device = model_device(model)
    for image in _images(data):
        for t, p in enumerate(_class_probs(model, image.to(device), texts, owner, protocol)):
            s, c = entropy_counts(p)
            ent_sum[t] += s
            count[t] += c
        total += p[:, 0].numel()
        images_seen += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        entropy = np.where(count > 0, ent_sum / np.maximum(count, 1), np.nan)
    fraction = count / total if total else count
    return TemplateRanking(tuple(templates), labels.class_names, entropy.T, fraction.T, images_seen)


@torch.no_grad()
def floss_analysis(
    model: nn.Module,
    data: EvalData,
    templates: Sequence[str],
    protocol: EvalConfig | None = None,
    top_n: int = FLOSS_TOP_N,
    ranking: TemplateRanking | None = None,
) -> tuple[TemplateRanking, list[PromptRow]]:
    """Rank the templates on ``data``'s images (or use ``ranking``, e.g. from other unlabelled images), then score
    ``data`` with all templates averaged and with FLOSS's experts fused: rows ``"average of all"`` and
    ``"FLOSS top-<n>"``.

    Args:
        model: a model whose text encoder takes templates.
        data: images and labels to score.
        templates: the candidate templates.
        protocol: inference and decision settings (bootstrap and calibration are switched off here).
        top_n: templates per class (FLOSS: 4).
        ranking: a ranking computed before (:func:`floss_rankings`) over these ``templates``.
    """
    encoder = _template_encoder(model, templates, "floss_analysis")
    protocol, labels = _quiet(protocol), data.labels
    if protocol.prob_thd > 0 or protocol.area_thd is not None:
        raise InputError(
            "floss_analysis decides by the argmax, as FLOSS does: set eval.prob_thd to 0 and eval.area_thd to None"
        )
    ranking = ranking or floss_rankings(model, data, templates, protocol)
    if ranking.templates != tuple(templates) or ranking.class_names != labels.class_names:
        raise InputError("the ranking was computed for other templates or classes: rank these ones")
    chosen = ranking.selection(top_n)
    sets = [c if c is not None else tuple(templates) for c in chosen] + [tuple(templates)]
    texts, owner = _texts(model, encoder, labels, sets)
    k, device = labels.num_classes, model_device(model)
    acc = {
        "average of all": ConfusionAccumulator(k, device, False),
        f"FLOSS top-{top_n}": ConfusionAccumulator(k, device, False),
    }
    lut = labels.target_lut(range(k), ignore_index=-1).to(device)
    n = len(data.dataset) if data.max_images is None else min(len(data.dataset), data.max_images)
    for i in range(n):
        image, target = data.dataset[i]
        probs = _class_probs(model, image[None].to(device), texts, owner, protocol)
        target = lut[torch.as_tensor(target, device=device)[None]]
        default = probs[-1]
        acc["average of all"].add(default.argmax(1), target)
        acc[f"FLOSS top-{top_n}"].add(fuse_experts(torch.stack(probs[:-1]), default).argmax(1), target)
    rows = []
    for variant, a in acc.items():
        m = compute_metrics(a.result()[0], labels.class_names)
        rows.append(PromptRow(variant, m.miou, dict(zip(labels.class_names, m.per_class_iou, strict=True))))
    return ranking, rows
