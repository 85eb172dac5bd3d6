"""Shared fixtures: a tiny random LSeg model, a deterministic random text encoder and synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lseg_nb.models import RandomTextEncoder, create_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LSEG_NB_SHARED", REPO.parent / "shared"))
MSRC = SHARED / "datasets" / "msrc_v2"
# The CPU speed hints depend on what else the machine runs; outputs under test must not (also in subprocesses).
# tests/test_train_messages.py turns them back on where they are the subject.
os.environ["LSEG_NB_CPU_HINTS"] = "0"


def tiny_config_overrides() -> dict:
    """A ResNet-18-shaped CNN is cheap enough on CPU at 64x64 with an 8-wide decoder."""
    return dict(backbone="resnet18", backbone_pretrained=False, features=8)


@pytest.fixture
def text_encoder() -> RandomTextEncoder:
    return RandomTextEncoder(dim=16, seed=0)


@pytest.fixture
def tiny_model(text_encoder):
    torch.manual_seed(0)
    return create_model("lseg_small_cpu", text_encoder=text_encoder, **tiny_config_overrides())


@pytest.fixture
def block_model(text_encoder):
    """The tiny model with two bottleneck regularisation blocks: logits are non-linear in the pixel embeddings."""
    torch.manual_seed(0)
    return create_model(
        "lseg_small_cpu",
        text_encoder=text_encoder,
        head_block="bottleneck",
        block_depth=2,
        **tiny_config_overrides(),
    )


@pytest.fixture
def tiny_vit(text_encoder):
    torch.manual_seed(0)
    return create_model(
        "lseg_vitb16_384",
        text_encoder=text_encoder,
        pretrained=False,
        backbone="vit_tiny_patch16_224",
        hooks=(0, 1, 2, 3),
        reassemble_channels=(8, 8, 16, 16),
        features=8,
    )


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 64, 64, generator=g)


@pytest.fixture
def labels() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (2, 64, 64), generator=g)
    y[:, :4] = 255
    return y


@pytest.fixture
def msrc_root() -> Path:
    """The shared MSRC-v2 folder; required when CI=true, skipped with a reason otherwise."""
    if not MSRC.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared MSRC-v2 dataset is missing at {MSRC}")
        pytest.skip(f"shared MSRC-v2 dataset not found at {MSRC} (set LSEG_NB_SHARED)")
    return MSRC


@pytest.fixture
def reference_root() -> Path:
    """The shared reference files (split lists, label files); required when CI=true, skipped otherwise."""
    ref = SHARED / "reference"
    if not ref.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared reference files are missing at {ref}")
        pytest.skip(f"shared reference files not found at {ref} (set LSEG_NB_SHARED)")
    return ref


def with_crop(model, crop: int):
    """``model`` whose window (``config.crop_size``, the one source of the evaluation window) is ``crop``."""
    import dataclasses

    model.config = dataclasses.replace(model.config, crop_size=crop)
    return model
