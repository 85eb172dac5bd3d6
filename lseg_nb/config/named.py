"""Named model configs (data, like open_clip's model configs): the paper's models and a small CPU model."""

from __future__ import annotations

import dataclasses

from lseg_nb.config.model import ModelConfig, TextEncoderConfig
from lseg_nb.config.serialize import ConfigError
from lseg_nb.utils.errors import UnknownNameError

CLIP_B32 = TextEncoderConfig(kind="open_clip", name="ViT-B-32", pretrained="openai", dim=512)
MINILM = TextEncoderConfig(kind="sentence_transformers", name="all-MiniLM-L6-v2", dim=384)
HALF = (0.5, 0.5, 0.5)

MODEL_CONFIGS: dict[str, ModelConfig] = {
    # The paper's model (official demo_e200.ckpt / fss_l16.ckpt layout); official crop 480 (base size 520).
    "lseg_vitl16_384": ModelConfig(
        backbone="vit_large_patch16_384",
        backbone_pretrained=True,
        hooks=(5, 11, 17, 23),
        readout="project",
        reassemble_channels=(256, 512, 1024, 1024),
        features=256,
        mean=HALF,
        std=HALF,
        crop_size=480,
        text=CLIP_B32,
    ),
    "lseg_vitb16_384": ModelConfig(
        backbone="vit_base_patch16_384",
        backbone_pretrained=True,
        hooks=(2, 5, 8, 11),
        readout="project",
        reassemble_channels=(96, 192, 384, 768),
        features=256,
        mean=HALF,
        std=HALF,
        crop_size=480,
        text=CLIP_B32,
    ),
    # Official zero-shot ResNet-101 model (pascal_fold*.ckpt / coco_fold*.ckpt layout).
    "lseg_rn101": ModelConfig(
        backbone="resnet101",
        backbone_pretrained=True,
        out_indices=(1, 2, 3, 4),
        features=256,
        crop_size=480,
        text=CLIP_B32,
    ),
    # Trains on MSRC-v2 or the synthetic demo set in minutes on 2 CPU cores; works fully offline.
    "lseg_small_cpu": ModelConfig(
        backbone="resnet18",
        backbone_pretrained=False,
        out_indices=(1, 2, 3, 4),
        features=64,
        crop_size=128,
        text=MINILM,
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`get_config` and ``lseg_nb.models.create_model``."""
    return sorted(MODEL_CONFIGS)


def get_config(name: str, **overrides) -> ModelConfig:
    """Named config with field overrides, e.g. ``get_config("lseg_small_cpu", features=32)``."""
    if name not in MODEL_CONFIGS:
        raise UnknownNameError(f"unknown model {name!r}; available: {list_models()}")
    try:
        return dataclasses.replace(MODEL_CONFIGS[name], **overrides)
    except TypeError as e:
        raise ConfigError(f"invalid ModelConfig override for {name!r}: {e}") from None
