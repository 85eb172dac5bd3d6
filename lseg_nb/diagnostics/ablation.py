"""Text-encoder ablation (issue 4): is zero-shot transfer carried by the pixel-text alignment or by the text encoder?

Two experiments, both scored in the generalised zero-shot setting (all labels compete: seen / unseen mIoU and
their harmonic mean) and in the paper's setting (unseen labels only, unseen pixels only):

* :func:`run_text_encoder_ablation` trains the *same* image encoder / decoder / head recipe once per text encoder
  under one protocol: same seed, data, fold, steps and optimiser; only ``model.text`` differs. Because the text
  encoder is built before the seeded model, the image encoder and decoder also start from identical weights.
* :func:`swap_text_encoder` (the referee's variant) freezes a trained image encoder + decoder and swaps only the
  text encoder. The head's 1x1 projection ``head.proj`` maps decoder features into the text space, so for a new
  space it alone is re-fitted on the seen classes (everything else frozen, BatchNorm statistics included); when
  the dimension matches, the swap without any retraining is reported too. The image features are then *exactly*
  the same for every text encoder, so if unseen mIoU collapses with random or one-hot text, the zero-shot
  transfer is carried by the geometry of the text embeddings (which unseen labels lie near which seen ones), not
  by the image features alone. One-hot texts are the control: every unseen text is orthogonal to every seen one,
  so nothing learned on seen classes can say which unseen label a pixel belongs to.

Results are :class:`AblationReport` dataclasses (JSON round-trip); plots live in :mod:`lseg_nb.viz.ablation`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from lseg_nb.config import ConfigError, TextEncoderConfig, TrainConfig, load_config, to_dict
from lseg_nb.evaluate import EvalResult
from lseg_nb.experiment import Experiment, SeededDataset, make_experiment
from lseg_nb.io import atomic_write_text, load_tensors
from lseg_nb.loss import pixel_cross_entropy
from lseg_nb.models.lseg import LSeg, build_lseg
from lseg_nb.models.text_encoder import TextEncoder, create_text_encoder

Variant = Literal["retrained", "original", "swap_zero_retrain", "swap_head_refit"]
PROJ = "head.proj."
MINILM = TextEncoderConfig(kind="sentence_transformers", name="all-MiniLM-L6-v2")


@dataclass(frozen=True)
class SkippedEncoder:
    """An encoder of the ablation that cannot run here; it gets a row with ``status='skipped'`` and ``reason``."""

    reason: str
    text: TextEncoderConfig | None = None


@dataclass
class AblationRow:
    """Scores of one text encoder (IoUs are fractions; ``None`` when undefined or skipped).

    ``seen_miou``/``unseen_miou``/``harmonic_iou``/``miou``/``pixel_acc``: generalised setting (all labels).
    ``unseen_only_*``: the paper's setting. ``steps``: training steps (``retrained``) or head re-fit steps.
    """

    name: str
    variant: Variant
    text: dict[str, Any] | None
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = None
    text_dim: int | None = None
    run_dir: str | None = None
    steps: int | None = None
    seconds: float | None = None
    reused: bool = False
    seen_miou: float | None = None
    unseen_miou: float | None = None
    harmonic_iou: float | None = None
    miou: float | None = None
    pixel_acc: float | None = None
    unseen_only_miou: float | None = None
    unseen_only_pixel_acc: float | None = None
    per_class_iou: dict[str, float | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short label for tables and plots."""
        suffix = {
            "swap_zero_retrain": " (swap, no retrain)",
            "swap_head_refit": " (swap, proj re-fit)",
            "original": " (trained)",
        }
        return self.name + suffix.get(self.variant, "")


@dataclass
class AblationReport:
    """All rows of one ablation plus the shared protocol (``TrainConfig`` without ``run_dir``/``model.text``)."""

    kind: Literal["retrain", "swap"]
    dataset: str
    fold: int
    eval_split: str
    seen_classes: list[str]
    unseen_classes: list[str]
    protocol: dict[str, Any]
    rows: list[AblationRow]
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> ``None``)."""
        return _json_safe(dataclasses.asdict(self))

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationReport:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "rows": [AblationRow(**r) for r in data["rows"]]})

    def row(self, name: str, variant: str | None = None) -> AblationRow:
        """The row called ``name`` (and of ``variant`` when given)."""
        for r in self.rows:
            if r.name == name and variant in (None, r.variant):
                return r
        raise KeyError(
            f"no row {name!r} (variant {variant}); rows: {[(r.name, r.variant) for r in self.rows]}"
        )


@dataclass(eq=False)
class SwapResult:
    """Rows of one text-encoder swap, the swapped model (``head.proj`` re-fitted) and the re-fit loss curve."""

    rows: list[AblationRow]
    model: LSeg
    head_losses: list[float]


def load_ablation_report(path: str | Path) -> AblationReport:
    """Read a report written by :meth:`AblationReport.save_json`."""
    return AblationReport.from_dict(json.loads(Path(path).read_text()))


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def default_ablation_encoders(
    class_names: Sequence[str],
    clip_pretrained: str | None = None,
    clip_name: str = "ViT-B-32",
    random_dim: int = 384,
) -> dict[str, TextEncoderConfig | SkippedEncoder]:
    """MiniLM (offline), random (``random_dim``, MiniLM's 384 by default), one-hot over all ``class_names``
    (unseen included, else unseen labels could not be embedded) and open_clip ``clip_name``.

    open_clip runs only with ``clip_pretrained`` (a tag such as ``openai`` when its weights are cached or
    downloadable, or a local file); without it, or with a missing file, it is a :class:`SkippedEncoder`.
    """
    encoders: dict[str, TextEncoderConfig | SkippedEncoder] = {
        "minilm": MINILM,
        "random": TextEncoderConfig(kind="random", dim=random_dim, seed=0),
        "one_hot": TextEncoderConfig(kind="one_hot", vocabulary=tuple(class_names)),
    }
    clip = TextEncoderConfig(kind="open_clip", name=clip_name, pretrained=clip_pretrained)
    if clip_pretrained is None:
        encoders["clip"] = SkippedEncoder(
            "no open_clip weights given (clip_pretrained=None; no internet here)", clip
        )
    elif ("/" in clip_pretrained or clip_pretrained.endswith((".bin", ".pt", ".safetensors"))) and not Path(
        clip_pretrained
    ).is_file():
        encoders["clip"] = SkippedEncoder(f"open_clip weights file {clip_pretrained} does not exist", clip)
    else:
        encoders["clip"] = clip
    return encoders


def _complete_text(text: TextEncoderConfig, class_names: Sequence[str]) -> TextEncoderConfig:
    """One-hot encoders get the full class vocabulary (unseen included); a given one must cover every class."""
    if text.kind != "one_hot":
        return text
    if not text.vocabulary:
        return dataclasses.replace(text, vocabulary=tuple(class_names))
    missing = [c for c in class_names if c not in text.vocabulary]
    if missing:
        raise ConfigError(
            f"one_hot vocabulary lacks dataset classes {missing}: leave vocabulary empty to use all"
        )
    return text


def _protocol(cfg: TrainConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run_dir")
    d.pop("progress")
    d["model"].pop("text")
    return d


def _metrics(result: EvalResult) -> dict[str, Any]:
    a, u = result.all_labels, result.unseen_only
    return {
        "seen_miou": a.seen_miou,
        "unseen_miou": a.unseen_miou,
        "harmonic_iou": a.harmonic_iou,
        "miou": a.miou,
        "pixel_acc": a.pixel_acc,
        "unseen_only_miou": u.miou if u else None,
        "unseen_only_pixel_acc": u.pixel_acc if u else None,
        "per_class_iou": dict(zip(a.class_names, a.per_class_iou, strict=True)),
    }


def _evaluate(
    model: LSeg, exp: Experiment, cfg: TrainConfig, split: str, max_images: int | None, progress: bool
):
    from lseg_nb.pipeline import evaluate_split

    return _metrics(evaluate_split(model, exp, split, cfg, max_images=max_images, progress=progress))


def _report(
    kind: str, exp: Experiment, cfg: TrainConfig, split: str, rows: list[AblationRow], **extra
) -> AblationReport:
    return AblationReport(
        kind=kind,
        dataset=exp.manifest.name,
        fold=int(cfg.data.fold),
        eval_split=split,
        seen_classes=exp.labels.seen_names,
        unseen_classes=exp.labels.unseen_names,
        protocol={**_protocol(cfg), **extra},
        rows=rows,
    )


def _check_ablation_args(base: TrainConfig, encoders: Mapping[str, Any]) -> None:
    if base.data.fold is None:
        raise ConfigError("the text-encoder ablation needs a zero-shot fold: set TrainConfig.data.fold")
    if not encoders:
        raise ValueError("encoders is empty: pass e.g. default_ablation_encoders(class_names)")
    bad = [n for n in encoders if not n or "/" in n or n.startswith(".") or n != n.strip()]
    if bad:
        raise ValueError(f"encoder names {bad} cannot be run folder names: use plain names such as 'minilm'")


def run_text_encoder_ablation(
    base: TrainConfig,
    encoders: Mapping[str, TextEncoderConfig | SkippedEncoder],
    out_dir: str | Path,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    progress: bool = True,
) -> AblationReport:
    """Train ``base`` once per text encoder into ``out_dir/<name>`` and evaluate seen/unseen on ``eval_split``.

    Only ``model.text`` (and ``run_dir``) differ between runs; a one-hot encoder gets every class name (unseen
    included) as vocabulary. Finished runs with the same config are reused; a folder holding a different run
    raises :class:`ConfigError`. Encoders that cannot be built (e.g. open_clip weights unavailable offline)
    become ``skipped`` rows with the reason. The report is written to ``out_dir/ablation.json`` after every row.
    """
    _check_ablation_args(base, encoders)
    exp, out_dir, rows = make_experiment(base.data), Path(out_dir), []
    report = _report("retrain", exp, base, eval_split, rows)
    for name, spec in encoders.items():
        if isinstance(spec, SkippedEncoder):
            rows.append(_skipped(name, "retrained", spec.text, spec.reason))
        else:
            text = _complete_text(spec, exp.labels.class_names)
            cfg = dataclasses.replace(
                base,
                model=dataclasses.replace(base.model, text=text),
                run_dir=str(out_dir / name),
                progress=progress,
            )
            rows.append(_train_and_evaluate(name, cfg, exp, eval_split, max_eval_images, progress))
        report.save_json(out_dir / "ablation.json")
    return report


def _skipped(name: str, variant: Variant, text: TextEncoderConfig | None, reason: str) -> AblationRow:
    return AblationRow(name, variant, to_dict(text) if text else None, status="skipped", reason=reason)


def _build_text(text: TextEncoderConfig) -> TextEncoder | str:
    """The encoder, or the reason it cannot be built here (missing weights, no internet)."""
    try:
        return create_text_encoder(text)
    except (RuntimeError, OSError) as e:  # weights unavailable; config mistakes still raise
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _train_and_evaluate(
    name: str, cfg: TrainConfig, exp: Experiment, split: str, max_images: int | None, progress: bool
) -> AblationRow:
    from lseg_nb.runs import load_model
    from lseg_nb.train import resolve_device, train

    encoder = _build_text(cfg.model.text)
    if isinstance(encoder, str):
        return _skipped(name, "retrained", cfg.model.text, encoder)
    run_dir = Path(cfg.run_dir)
    reused = (run_dir / "model.safetensors").is_file()
    if reused:
        saved = load_config(TrainConfig, run_dir / "config.json")
        if _protocol(saved) != _protocol(cfg) or saved.model.text != cfg.model.text:
            raise ConfigError(
                f"{run_dir} holds a finished run with another config: delete it or use a new out_dir"
            )
    t0 = time.perf_counter()
    if not reused:
        train(cfg, text_encoder=encoder)
    seconds = None if reused else round(time.perf_counter() - t0, 1)
    model = load_model(run_dir, text_encoder=encoder, map_location=str(resolve_device(cfg.device)))
    return AblationRow(
        name,
        "retrained",
        to_dict(cfg.model.text),
        text_dim=encoder.dim,
        run_dir=str(run_dir),
        steps=cfg.steps,
        seconds=seconds,
        reused=reused,
        **_evaluate(model, exp, cfg, split, max_images, progress),
    )


def _swapped_model(
    cfg: TrainConfig, text: TextEncoderConfig, encoder: TextEncoder, state: dict, keep_proj: bool
) -> LSeg:
    """The run's architecture with ``encoder``; every trained weight loaded except (optionally) ``head.proj``."""
    # backbone_pretrained=False: all image weights come from the run, no download needed
    model_cfg = dataclasses.replace(cfg.model, text=text, backbone_pretrained=False)
    model = build_lseg(model_cfg, encoder)
    keep = {k: v for k, v in state.items() if keep_proj or not k.startswith(PROJ)}
    missing, unexpected = model.load_state_dict(keep, strict=False)
    missing = [
        k for k in missing if not k.startswith("text_encoder.") and (keep_proj or not k.startswith(PROJ))
    ]
    if missing or unexpected:
        raise ValueError(
            f"{cfg.run_dir}: weights do not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def _endless_batches(
    data: SeededDataset, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled full batches forever; epoch ``e`` uses permutation seed ``seed + e`` (deterministic)."""
    if len(data) < batch_size:
        raise ValueError(f"the training split has {len(data)} images, fewer than one batch ({batch_size})")
    epoch = 0
    while True:
        data.set_epoch(epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for i in range(0, len(order) - batch_size + 1, batch_size):
            images, target = zip(*[data[j] for j in order[i : i + batch_size]])
            yield torch.stack(images), torch.stack(target)
        epoch += 1


def refit_head_projection(
    model: LSeg,
    exp: Experiment,
    cfg: TrainConfig,
    steps: int,
    lr: float = 1e-2,
    batch_size: int | None = None,
    progress: bool = True,
) -> list[float]:
    """Fit only ``model.head.proj`` (re-initialised with ``cfg.seed``) on the seen classes of the training split.

    Everything else is frozen and stays in eval mode (BatchNorm statistics unchanged); the loss is
    :func:`~lseg_nb.loss.pixel_cross_entropy` over the seen labels with unseen pixels ignored, the augmentation
    that of ``cfg.data``; AdamW with cosine decay. Returns the loss of every step.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    data = SeededDataset(
        exp.dataset(cfg.data.train_split, cfg.model, cfg.data, train=True),
        cfg.seed,
        exp.labels.train_lut(cfg.ignore_index),
    )
    text_emb = model.encode_text(exp.labels.seen_names).to(device)
    torch.manual_seed(cfg.seed)
    model.head.proj.reset_parameters()
    params = list(model.head.proj.parameters())
    model.requires_grad_(False).eval()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    batches, losses = _endless_batches(data, batch_size or cfg.batch_size, cfg.seed), []
    for _ in tqdm(range(steps), desc="re-fit head.proj", disable=not progress):
        images, target = (t.to(device) for t in next(batches))
        with torch.no_grad():
            feats = model.decoder(model.image_encoder(images))
        logits = model.head.logits(model.head.embed(feats), text_emb, images.shape[-2:])
        loss = pixel_cross_entropy(logits, target, cfg.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.requires_grad_(False)
    return losses


def _load_run(run_dir: Path) -> tuple[TrainConfig, dict[str, torch.Tensor]]:
    weights = run_dir / "model.safetensors"
    if not weights.is_file() or not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a finished run folder (needs config.json and model.safetensors)"
        )
    return load_config(TrainConfig, run_dir / "config.json"), load_tensors(weights)


def swap_text_encoder(
    run_dir: str | Path,
    new_text: TextEncoderConfig,
    *,
    name: str | None = None,
    head_steps: int = 100,
    head_lr: float = 1e-2,
    head_batch_size: int | None = None,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    text_encoder: TextEncoder | None = None,
    progress: bool = True,
) -> SwapResult:
    """Freeze the trained image encoder + decoder of ``run_dir`` and swap its text encoder for ``new_text``.

    The head projects decoder features into the text space, so only ``head.proj`` is re-fitted (re-initialised,
    ``head_steps`` steps on the seen classes, see :func:`refit_head_projection`); every other weight and buffer
    stays bit-identical to the run's. When the new text dimension equals the run's, the swap with no retraining
    at all (the run's own ``head.proj``) is evaluated first. ``head_steps=0`` skips the re-fit. With the image
    features identical across encoders, a collapse of unseen mIoU under random/one-hot text means zero-shot
    transfer is carried by the text-embedding geometry, not by the image features alone.
    """
    from lseg_nb.train import resolve_device

    run_dir = Path(run_dir)
    cfg, state = _load_run(run_dir)
    if cfg.data.fold is None:
        raise ConfigError(
            f"{run_dir} was trained without a zero-shot fold: there are no unseen classes to test"
        )
    exp = make_experiment(cfg.data)
    text = _complete_text(new_text, exp.labels.class_names)
    encoder = text_encoder or create_text_encoder(text)
    device = resolve_device(cfg.device)
    name = name or text.kind
    rows, losses = [], []
    base_row = dict(text=to_dict(text), text_dim=encoder.dim, run_dir=str(run_dir))
    same_dim = encoder.dim == state[PROJ + "weight"].shape[0]
    if not same_dim and head_steps < 1:
        raise ValueError(
            f"{name} embeds in {encoder.dim} dimensions, the run's head in {state[PROJ + 'weight'].shape[0]}: "
            "head.proj must be re-fitted, set head_steps >= 1"
        )
    model = _swapped_model(cfg, text, encoder, state, keep_proj=same_dim).to(device).eval()
    if same_dim:
        metrics = _evaluate(model, exp, cfg, eval_split, max_eval_images, progress)
        rows.append(AblationRow(name, "swap_zero_retrain", steps=0, **base_row, **metrics))
    if head_steps > 0:
        t0 = time.perf_counter()
        losses = refit_head_projection(model, exp, cfg, head_steps, head_lr, head_batch_size, progress)
        seconds = round(time.perf_counter() - t0, 1)
        metrics = _evaluate(model, exp, cfg, eval_split, max_eval_images, progress)
        rows.append(
            AblationRow(name, "swap_head_refit", steps=head_steps, seconds=seconds, **base_row, **metrics)
        )
    return SwapResult(rows, model, losses)


def run_swap_ablation(
    run_dir: str | Path,
    encoders: Mapping[str, TextEncoderConfig | SkippedEncoder],
    out_path: str | Path | None = None,
    *,
    reference_name: str | None = None,
    head_steps: int = 100,
    head_lr: float = 1e-2,
    head_batch_size: int | None = None,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    progress: bool = True,
) -> AblationReport:
    """:func:`swap_text_encoder` for each encoder, next to the run's own model (variant ``original``).

    Encoders that cannot be built become ``skipped`` rows. Saved atomically to ``out_path`` when given.
    """
    from lseg_nb.runs import load_model
    from lseg_nb.train import resolve_device

    run_dir = Path(run_dir)
    cfg, _ = _load_run(run_dir)
    _check_ablation_args(cfg, encoders)
    exp = make_experiment(cfg.data)
    own = load_model(run_dir, map_location=str(resolve_device(cfg.device)))
    rows = [
        AblationRow(
            reference_name or run_dir.name,
            "original",
            to_dict(cfg.model.text),
            text_dim=own.text_encoder.dim,
            run_dir=str(run_dir),
            steps=cfg.steps,
            **_evaluate(own, exp, cfg, eval_split, max_eval_images, progress),
        )
    ]
    del own
    refit = {
        "head_steps": head_steps,
        "head_lr": head_lr,
        "head_batch_size": head_batch_size or cfg.batch_size,
    }
    report = _report(
        "swap", exp, cfg, eval_split, rows, head_refit=refit, trained_text=to_dict(cfg.model.text)
    )
    for name, spec in encoders.items():
        if isinstance(spec, SkippedEncoder):
            rows.append(_skipped(name, "swap_head_refit", spec.text, spec.reason))
        else:
            text = _complete_text(spec, exp.labels.class_names)
            encoder = _build_text(text)
            if isinstance(encoder, str):
                rows.append(_skipped(name, "swap_head_refit", text, encoder))
                continue
            rows += swap_text_encoder(
                run_dir,
                text,
                name=name,
                head_steps=head_steps,
                head_lr=head_lr,
                head_batch_size=head_batch_size,
                eval_split=eval_split,
                max_eval_images=max_eval_images,
                text_encoder=encoder,
                progress=progress,
            ).rows
        if out_path is not None:
            report.save_json(out_path)
    return report
