"""The evaluation protocol: one frozen object that travels from the CLI (``--eval.mode sliding``) and the notebooks
to the innermost window loop, and whose :meth:`EvalConfig.describe` is printed beside every number.

Everything that changes a number is a field here: how the image is resized and windowed, how logits become a
prediction (logit scale, background thresholds, PAMR refinement), seen-bias calibration, and the precision. The
window size is the model's ``config.crop_size`` (the single source of the training crop and the evaluation
window). Fields that only change speed (``window_batch``, ``compile``) or add uncertainty estimates
(``bootstrap``) never change a point estimate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from lseg_nb.config.serialize import check_fields, require

InferenceMode = Literal["single", "sliding", "multiscale"]
EvalProtocol = Literal["dense", "episodic"]
Precision = Literal["none", "bf16", "fp16"]
WindowWeight = Literal["uniform", "smooth"]
InputFit = Literal["pad", "crop"]
#: The official multi-scale protocol's scales (PyTorch-Encoding ``MultiEvalModule``).
OFFICIAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
#: Benchmarks scored with the paper's episodic zero-shot protocol (``EvalConfig.protocol='episodic'``).
EPISODIC_BENCHMARKS = ("pascal5i", "coco20i", "fss1000")


@dataclass(frozen=True)
class EvalConfig:
    """How a model is scored. Defaults: one pass over the whole image, argmax of the model's logits.

    Which pixels and labels: ``protocol='dense'`` scores every labelled pixel of a split against the data's label
    set; ``'episodic'`` is the LSeg paper's zero-shot protocol of an episodic benchmark (each episode a query
    image resized to ``episode_size`` squared and one unseen class, labels ``["others", class]``;
    :mod:`lseg_nb.engine.episodic`), where the dense fields below are not used; ``generalised`` adds the
    generalised episodic settings (several labels at once; not in the paper).

    Resizing and windows: ``short_side`` resizes the image first so that its short side is ``short_side`` unless
    the long side would exceed ``long_cap`` (mmseg ``Resize(scale=(long_cap, short_side), keep_ratio=True)``, the
    training-free harnesses' test resize); logits are resized back to the label map. ``mode='single'``: one pass
    over the whole (resized) image. ``'sliding'``: ``crop_size`` windows at stride ``crop_size * stride_ratio``,
    overlapping logits averaged (``window_weight='uniform'``, the default: the plain average of the official and
    reference protocols, so their numbers stay as published; ``'smooth'`` weights each window by a raised cosine
    that is highest at its centre, which hides the window seams of small-crop models). ``'multiscale'``: for
    each of ``scales`` the image is resized -- relative to its own size, or with ``base_size`` so that its long
    side is ``ceil(base_size * scale)`` (the official LSeg protocol: base 520, scales 0.5-1.75, flip, stride
    2/3) -- run with sliding windows and, with ``flip``, mirrored; logits are averaged at the input size. ``input_fit``: a
    side that is not a multiple of the backbone's stride is zero-padded and the logits cropped back (``pad``,
    lseg_nb), or the last ``H mod stride`` rows/columns are dropped and the coarse logits stretched over the whole
    input (``crop``: what the training-free references' CLIP ViT does, see ``docs/protocols-trainingfree.md``).

    From logits to a prediction: a class scores the maximum over its names. ``logit_scale=None`` takes the model's
    logits as they are (LSeg: ``cosine / 0.07``); a number re-scales the cosines (training-free harnesses: 40,
    SCLIP's VOC21 65). ``prob_thd``: a pixel whose top class probability (softmax over all names, then max per
    class, as SCLIP/NACLIP) is below it becomes class 0 (the background). ``area_thd``: classes predicted on less
    than that fraction of the image become background (SCLIP). ``pamr_steps`` > 0 refines the logits with PAMR
    (Araslanov & Roth, CVPR 2020) at ``pamr_dilations``. ``calibrate_seen``: with a zero-shot fold, also score the
    generalised setting after seen-bias calibration (one offset subtracted from the seen labels' logits, fitted on
    the validation split).

    Execution: ``amp`` runs the network under bf16/fp16 autocast (fp16 needs CUDA; logits accumulate in float32);
    it changes numbers slightly, so it is part of :meth:`describe`. ``window_batch``: windows per forward pass
    (memory bound). ``compile``: ``torch.compile`` the image encoder. ``bootstrap``: image-level bootstrap
    resamples for the confidence intervals of every metric (0: none), drawn with ``bootstrap_seed``.

    Open mIoU beside mIoU (dense protocol): ``open_similarity`` names the class similarities that credit an error
    (``"text_encoder"``: the model's class-name embeddings; a CSV path: the user's matrix; ``"none"``: not
    reported); see :mod:`lseg_nb.engine.open_miou`. It never changes mIoU.
    """

    protocol: EvalProtocol = "dense"
    mode: InferenceMode = "single"
    stride_ratio: float = 2 / 3
    base_size: int | None = None
    scales: tuple[float, ...] = OFFICIAL_SCALES
    flip: bool = True
    window_weight: WindowWeight = "uniform"
    input_fit: InputFit = "pad"
    short_side: int | None = None
    long_cap: int = 2048
    logit_scale: float | None = None
    prob_thd: float = 0.0
    area_thd: float | None = None
    pamr_steps: int = 0
    pamr_dilations: tuple[int, ...] = (8, 16)
    calibrate_seen: bool = False
    episode_size: int = 480
    generalised: bool = False
    amp: Precision = "none"
    window_batch: int = 16
    compile: bool = False
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    open_similarity: str = "text_encoder"

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            0 < self.stride_ratio <= 1, "eval.stride_ratio", f"needs 0 < ratio <= 1, got {self.stride_ratio}"
        )
        require(self.base_size is None or self.base_size >= 1, "eval.base_size", "must be >= 1 or None")
        require(
            bool(self.scales) and min(self.scales) > 0 and max(self.scales) <= 16,
            "eval.scales",
            f"must be a non-empty list of numbers in (0, 16], got {self.scales}",
        )
        require(self.short_side is None or self.short_side >= 1, "eval.short_side", "must be >= 1 or None")
        require(self.long_cap >= 1, "eval.long_cap", f"must be >= 1, got {self.long_cap}")
        require(self.logit_scale is None or self.logit_scale > 0, "eval.logit_scale", "must be > 0 or None")
        require(0 <= self.prob_thd < 1, "eval.prob_thd", f"needs 0 <= prob_thd < 1, got {self.prob_thd}")
        require(
            self.area_thd is None or 0 <= self.area_thd < 1,
            "eval.area_thd",
            f"needs 0 <= area_thd < 1 or None, got {self.area_thd}",
        )
        require(self.pamr_steps >= 0, "eval.pamr_steps", f"must be >= 0, got {self.pamr_steps}")
        require(
            bool(self.pamr_dilations) and min(self.pamr_dilations) >= 1,
            "eval.pamr_dilations",
            f"must be a non-empty list of integers >= 1, got {self.pamr_dilations}",
        )
        require(self.episode_size >= 1, "eval.episode_size", f"must be >= 1, got {self.episode_size}")
        require(self.window_batch >= 1, "eval.window_batch", f"must be >= 1, got {self.window_batch}")
        require(
            self.bootstrap >= 0, "eval.bootstrap", f"must be >= 0 (0: no intervals), got {self.bootstrap}"
        )
        require(
            bool(self.open_similarity.strip()),
            "eval.open_similarity",
            "give 'text_encoder', 'none' or the path of a CSV similarity matrix",
        )

    @property
    def uses_probabilities(self) -> bool:
        """Whether the prediction needs class probabilities (a threshold), not only the argmax."""
        return self.prob_thd > 0

    @property
    def scores_probabilities(self) -> bool:
        """Whether class scores are the reference probabilities (a logit scale, ``prob_thd`` or ``area_thd``
        set) rather than the model's class logits."""
        return self.logit_scale is not None or self.uses_probabilities or self.area_thd is not None

    @property
    def name(self) -> str:
        """:meth:`describe` without the window size."""
        return self.describe()

    def describe(self, window: int | None = None) -> str:
        """Every setting that changes a number, e.g. ``sliding(stride 0.50, window 224), short side 336, logit
        scale 40, prob_thd 0.1, PAMR 10 steps (8, 16)``; ``window`` is the model's crop size."""
        if self.protocol == "episodic":
            return f"episodic(['others', class], {self.episode_size}x{self.episode_size})"
        win = f", window {window}" if window else ""
        smooth = ", smooth windows" if self.window_weight == "smooth" else ""
        if self.mode == "single":
            parts = ["single"]
        elif self.mode == "sliding":
            parts = [f"sliding(stride {self.stride_ratio:.2f}{win}{smooth})"]
        else:
            base = f"base {self.base_size}" if self.base_size else "relative"
            flip = ", flip" if self.flip else ""
            parts = [f"multiscale({base}, {len(self.scales)} scales{flip}{win}{smooth})"]
        if self.input_fit == "crop":
            parts.append("inputs cropped to the patch multiple")
        if self.short_side is not None:
            parts.append(f"short side {self.short_side} (long <= {self.long_cap})")
        if self.logit_scale is not None:
            parts.append(f"logit scale {self.logit_scale:g}")
        if self.prob_thd > 0:
            parts.append(f"prob_thd {self.prob_thd:g}")
        if self.area_thd is not None:
            parts.append(f"area_thd {self.area_thd:g}")
        if self.pamr_steps:
            parts.append(f"PAMR {self.pamr_steps} steps {tuple(self.pamr_dilations)}")
        if self.amp != "none":
            parts.append(f"{self.amp} autocast")
        return ", ".join(parts)

    @property
    def key(self) -> str:
        """Short file-name-safe name of the settings that change numbers, e.g. ``single`` or
        ``sliding-3f2a1c``: the mode, plus a hash of every number-changing field when any differs from the
        mode's defaults (``window_batch``, ``compile`` and ``bootstrap`` never enter it)."""
        fields = asdict(self)
        for speed_only in ("window_batch", "compile", "bootstrap", "bootstrap_seed"):
            fields.pop(speed_only)
        plain = asdict(EvalConfig(protocol=self.protocol, mode=self.mode))
        for speed_only in ("window_batch", "compile", "bootstrap", "bootstrap_seed"):
            plain.pop(speed_only)
        head = self.protocol if self.protocol == "episodic" else self.mode
        if fields == plain:
            return head
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:6]
        return f"{head}-{digest}"
