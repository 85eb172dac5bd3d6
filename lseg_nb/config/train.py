"""Run configs: data and training (the evaluation protocol is :mod:`lseg_nb.config.eval`). Defaults are the offline demo (small CPU model,
synthetic data, zero-shot fold 0); named recipes in :mod:`lseg_nb.config.recipes` set everything a paper
setting needs.

Every config validates itself on creation (:func:`~lseg_nb.config.serialize.check_fields` plus range checks),
so tyro flags, JSON/YAML files and Python code are checked by the same rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from lseg_nb.config.eval import EPISODIC_BENCHMARKS, EvalConfig
from lseg_nb.config.model import ModelConfig
from lseg_nb.config.named import MODEL_CONFIGS
from lseg_nb.config.serialize import check_fields, require


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, split and training augmentation.

    ``dataset``: manifest name in ``data_manifests/`` (``msrc_v2``, ``synthetic_textures``), a path to a YAML
    manifest, or a paper benchmark (``pascal5i``, ``coco20i``, ``fss1000``, ``ade20k150``; see
    :mod:`lseg_nb.data.benchmarks.training`). ``data_root``: dataset folder (else ``$LSEG_NB_DATA`` or
    ``../shared/datasets/<name>``; benchmarks: the folder ``lseg-nb prepare`` checked).
    ``splits``: benchmarks only, HSNet's ``data/splits`` folder (PASCAL-5i lists, COCO-20i fold pickles); default
    ``<data_root>/splits``, then ``$LSEG_NB_SHARED/reference/splits``.
    ``fold``: zero-shot fold whose unseen classes are never training targets: its index in the manifest's
    ``zero_shot_folds`` or its name there (``--data.fold neighbours``); an unknown name is refused when the data
    is opened, listing the manifest's folds (the config layer cannot read manifests).
    Augmentation: with ``square_resize`` every image is first resized to ``crop_size x crop_size`` (aspect not
    kept; the official zero-shot loaders' 480x480). Then a random scale by a factor from ``scale_range`` — of the
    image itself (``base_size=None``) or, with ``base_size`` set, so that the LONG side becomes
    ``base_size * factor`` (official: 520, 0.5-2.0) — then a random crop of ``model.crop_size`` (padded with
    void), then a horizontal flip when ``flip``.
    ``num_workers``: DataLoader worker processes; ``None`` = 0 on CPU, ``min(8, CPUs)`` on CUDA.
    ``max_images``: cap per split, for smoke runs.
    """

    dataset: str = "synthetic_textures"
    data_root: str | None = None
    splits: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    fold: int | str | None = 0
    scale_range: tuple[float, float] = (0.75, 1.5)
    base_size: int | None = None
    flip: bool = True
    square_resize: bool = False
    max_images: int | None = None
    num_workers: int | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        lo, hi = self.scale_range
        require(0 < lo <= hi, "data.scale_range", f"needs 0 < min <= max, got {self.scale_range}")
        require(self.base_size is None or self.base_size >= 1, "data.base_size", "must be >= 1 or None")
        if isinstance(self.fold, str):
            require(
                bool(self.fold.strip()),
                "data.fold",
                "a fold name must not be empty (or give the fold's index)",
            )
        else:
            require(
                self.fold is None or self.fold >= 0, "data.fold", f"must be >= 0 or None, got {self.fold}"
            )
        require(
            self.max_images is None or self.max_images >= 1,
            "data.max_images",
            f"must be >= 1 or None (no cap), got {self.max_images}",
        )
        require(
            self.num_workers is None or self.num_workers >= 0,
            "data.num_workers",
            f"must be >= 0 (0 = load in the main process) or None (automatic), got {self.num_workers}",
        )
        require(bool(self.dataset.strip()), "data.dataset", "must name a manifest or a manifest file")


def _demo_model() -> ModelConfig:
    # The synthetic images are 96 px: crop (and evaluation window) 96.
    return dataclasses.replace(MODEL_CONFIGS["lseg_small_cpu"], crop_size=96)


@dataclass(frozen=True)
class TrainConfig:
    """A training run (defaults: the offline synthetic demo). Named whole recipes: :mod:`lseg_nb.config.recipes`.

    Optimiser: ``lr`` is the base learning rate; ``lr_rule='official'`` rescales it as the official LSeg code
    does (``lr / 16 * batch_size``, batch size per process). ``param_groups='lseg_nb'``: image encoder at ``lr``,
    decoder (reassemble + fusion) and head at ``lr * decoder_lr_mult``; ``'official'``: the official ``pretrained``
    part (backbone + ViT readout + DPT reassemble) at ``lr`` and only ``scratch`` (``layer_rn``, fusion blocks,
    head) at ``lr * decoder_lr_mult``. ``no_decay_norm_bias``: biases, norm weights and a learnable logit scale
    get no weight decay (the official code decays everything).
    ``schedule_steps``: the horizon of the poly/cosine decay (``None``: ``steps``); the official zero-shot code
    decays over 200 epochs but stops after 4, which ``steps < schedule_steps`` reproduces.
    Zero-shot targets: with a fold, unseen classes are never targets. ``unseen_pixels='ignore'`` (lseg_nb default)
    gives their pixels no gradient; ``'others'`` (official zero-shot training, needs ``loss='binary'``) makes
    every pixel that is not the episode's class — other seen classes, unseen classes, void — an "others" target.
    """

    model: ModelConfig = field(default_factory=_demo_model)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run_dir: str = "runs/train"
    steps: int = 300
    schedule_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    optimizer: Literal["sgd", "adamw"] = "adamw"
    schedule: Literal["poly", "cosine"] = "cosine"
    lr: float = 2e-3
    lr_rule: Literal["as_given", "official"] = "as_given"
    param_groups: Literal["lseg_nb", "official"] = "lseg_nb"
    decoder_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    no_decay_norm_bias: bool = True
    momentum: float = 0.9
    poly_power: float = 0.9
    warmup_steps: int = 0
    loss: Literal["ce", "binary"] = "ce"
    unseen_pixels: Literal["ignore", "others"] = "ignore"
    ignore_index: int = 255
    amp: Literal["none", "bf16", "fp16"] = "none"
    compile: bool = False
    sync_bn: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    eval_every: int = 0
    eval_max_images: int | None = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "eval_every", "warmup_steps", "seed"):
            require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        require(
            self.schedule_steps is None or self.schedule_steps >= self.steps,
            "schedule_steps",
            f"must be >= steps ({self.steps}) or None (= steps), got {self.schedule_steps}",
        )
        if self.eval.protocol == "episodic":
            require(
                self.data.dataset in EPISODIC_BENCHMARKS and self.data.fold is not None,
                "eval.protocol",
                f"'episodic' scores a fold of {list(EPISODIC_BENCHMARKS)}, got data.dataset="
                f"{self.data.dataset!r}, data.fold={self.data.fold}; use protocol='dense' for other datasets",
            )
            require(
                self.eval_every == 0,
                "eval_every",
                "episodic runs have no dense evaluation split to score during training; use eval_every=0 and "
                "score the run afterwards with `lseg-nb evaluate --run RUN`",
            )
        require(self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")
        require(self.decoder_lr_mult > 0, "decoder_lr_mult", f"must be > 0, got {self.decoder_lr_mult}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0 <= self.momentum < 1, "momentum", f"needs 0 <= momentum < 1, got {self.momentum}")
        require(self.poly_power > 0, "poly_power", f"must be > 0, got {self.poly_power}")
        require(self.ignore_index >= 0, "ignore_index", f"must be >= 0, got {self.ignore_index}")
        require(
            self.eval_max_images is None or self.eval_max_images >= 1,
            "eval_max_images",
            f"must be >= 1 or None, got {self.eval_max_images}",
        )
        require(
            self.unseen_pixels == "ignore" or self.loss == "binary",
            "unseen_pixels",
            "'others' is the official zero-shot episode treatment and needs loss='binary'",
        )
        require(bool(self.run_dir.strip()), "run_dir", "must be a folder path")

    @property
    def effective_lr(self) -> float:
        """The base learning rate actually used (after ``lr_rule``)."""
        return self.lr / 16 * self.batch_size if self.lr_rule == "official" else self.lr
