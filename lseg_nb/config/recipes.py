"""Named recipes: whole training + evaluation settings (model, data and augmentation, optimiser and schedule,
evaluation protocol), as data. ``lseg-nb train --preset NAME --dry-run`` prints one fully resolved.

Every hyper-parameter of a paper recipe names its source in :data:`RECIPE_NOTES`; what still differs from the
official code is listed there too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lseg_nb.config.named import MODEL_CONFIGS
from lseg_nb.config.serialize import ConfigError, from_dict, to_dict
from lseg_nb.config.train import OFFICIAL_SCALES, DataConfig, EvalConfig, TrainConfig

#: The official evaluation protocol (PyTorch-Encoding MultiEvalModule as used by the official test_lseg.py):
#: long side ceil(520 * s) for s in 0.5..1.75, horizontal flip, 480 windows (model.crop_size) at stride 2/3.
OFFICIAL_EVAL = EvalConfig(
    mode="multiscale", stride_ratio=2 / 3, base_size=520, scales=OFFICIAL_SCALES, flip=True
)

_DEMO = TrainConfig(
    run_dir="runs/demo",
    steps=250,
    batch_size=8,
    lr=2e-3,
    schedule="cosine",
    warmup_steps=10,
    log_every=5,
    checkpoint_every=50,
)

RECIPES: dict[str, TrainConfig] = {
    # The offline demo (`make demo`): small CPU model, synthetic 96 px images, fold 0.
    "demo_synthetic": _DEMO,
    # The real-data demo on MSRC-v2 (`lseg-nb demo --dataset msrc_v2`).
    "demo_msrc_v2": dataclasses.replace(
        _DEMO,
        model=MODEL_CONFIGS["lseg_small_cpu"],
        data=DataConfig(dataset="msrc_v2", fold=0, scale_range=(0.5, 1.5)),
        steps=400,
    ),
    # The paper's fixed-label ADE20K-150 training (official train.sh / lsegmentation_module.py).
    "lseg_vitl16_ade20k": TrainConfig(
        model=MODEL_CONFIGS["lseg_vitl16_384"],
        data=DataConfig(dataset="ade20k150", fold=None, scale_range=(0.5, 2.0), base_size=520, flip=True),
        eval=OFFICIAL_EVAL,
        run_dir="runs/lseg_vitl16_ade20k",
        steps=303_150,
        batch_size=1,
        grad_accum=2,
        optimizer="sgd",
        schedule="poly",
        lr=0.004,
        lr_rule="official",
        param_groups="official",
        decoder_lr_mult=10.0,
        weight_decay=1e-4,
        no_decay_norm_bias=False,
        momentum=0.9,
        poly_power=0.9,
        amp="none",
        sync_bn=True,
        log_every=50,
        checkpoint_every=2000,
    ),
}

RECIPE_NOTES: dict[str, str] = {
    "demo_synthetic": "lseg_nb's offline demo; no paper counterpart.",
    "demo_msrc_v2": "lseg_nb's real-data demo on MSRC-v2 (small CPU model, 128 px crops); no paper counterpart.",
    "lseg_vitl16_ade20k": (
        "Official train.sh (active line): --backbone clip_vitl16_384 --batch_size 1 --accumulate_grad_batches 2 "
        "--base_lr 0.004 --weight_decay 1e-4 --max_epochs 240 --widehead --no-scaleinv; lsegmentation_module.py: "
        "lr = base_lr / 16 * batch_size (lr_rule='official' -> 0.00025), SGD momentum 0.9 on all parameters "
        "(no no-decay group), net.pretrained at 1x and net.scratch at 10x (param_groups='official'), poly 0.9, "
        "AMP disabled (self.enabled = False), sync BN under DDP; lseg_module.py: base size 520, crop 480, "
        "mean = std = 0.5. Augmentation (PyTorch-Encoding _sync_transform): flip, long side random in "
        "0.5-2.0 x 520, pad + random crop 480. Evaluation: official multi-scale (base 520, scales 0.5-1.75, "
        "flip, stride 2/3). Remaining differences: steps = 240 epochs x 20210 images / (8 processes x 1 x 2) "
        "= 303150 assumes 8 processes (set --steps for another world size); the poly decay is applied per "
        "optimiser step (official: per epoch); PyTorch-Encoding's random Gaussian blur is not applied; the "
        "official ignore label is -1 after shifting ADE's 0 ('other'), lseg_nb uses 255."
    ),
}


def list_recipes() -> list[str]:
    """Names accepted by :func:`get_recipe` and ``lseg-nb train --preset``."""
    return sorted(RECIPES)


def get_recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe with top-level field overrides (nested ones: pass a whole sub-config)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown preset {name!r}; named recipes: {list_recipes()}")
    try:
        return dataclasses.replace(RECIPES[name], **overrides)
    except TypeError as e:
        raise ConfigError(f"invalid override for recipe {name!r}: {e}") from None


def recipe_roundtrip(cfg: TrainConfig) -> TrainConfig:
    """``from_dict(to_dict(cfg))`` (what a run folder's config.json stores and reads back)."""
    return from_dict(TrainConfig, to_dict(cfg))
