"""Local backbone weights (``ModelConfig.backbone_weights``): a downloaded timm or torchvision checkpoint loaded
into the image encoder, so pretrained training works without internet.

Accepted files: ``.safetensors`` (timm's ``model.safetensors`` on the Hugging Face hub), or a PyTorch pickle
(``.pth``/``.pt``/``.bin``, e.g. torchvision's ``resnet50-*.pth``) read with ``torch.load(weights_only=True)``:
tensors and plain containers only, never code, so a file from the internet cannot run anything. The state dict
may sit at the top level or nested under ``"state_dict"``, ``"model"`` or ``"module"`` (training checkpoints);
a ``module.`` prefix (DistributedDataParallel) is dropped.

Key names are timm's. torchvision ResNets use the same names as timm's, so their checkpoints fit
(``resnet50-0676ba61.pth`` into ``resnet50``); torchvision ViTs do not (``encoder.layers...``): use timm's ViT
weights. A CNN built with ``features_only`` names its top-level stages ``stages_0`` where the checkpoint has
``stages.0``; both spellings are matched.

Loading is strict about shapes and open about names: a tensor whose shape does not fit refuses the whole file
naming the first such key (a ResNet-50 file for a ResNet-18, a 224-px ViT's position grid for a 384-px one), a
file of which no key fits is refused, and otherwise one line reports what was loaded, what the file has that the
encoder does not use (the classifier, blocks after the last hook) and what the encoder wanted that the file lacks
(those weights keep their random initialisation; the line starts with ``warning:`` then).
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import user_path

NESTED = ("state_dict", "model", "module")
SAFETENSORS = (".safetensors",)


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_backbone_weights` loaded: counts and the first names of the unused and missing keys."""

    path: Path
    loaded: int
    unused: tuple[str, ...]
    missing: tuple[str, ...]

    def line(self) -> str:
        """One line for the console: loaded tensors, unused and missing keys (the first few of each)."""
        text = f"backbone weights {self.path}: loaded {self.loaded} tensors"
        if self.unused:
            text += f"; {len(self.unused)} unused by this encoder ({_first(self.unused)})"
        if self.missing:
            text += f"; {len(self.missing)} missing, left at random init ({_first(self.missing)})"
            return "warning: " + text
        return text


def _first(keys: tuple[str, ...], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` or PyTorch checkpoint file, unwrapped from ``state_dict``/``model``.

    Args:
        path: the weights file.
    """
    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist (model.backbone_weights)")
    formats = "a .safetensors file or a PyTorch state dict (.pth/.pt/.bin) of a timm or torchvision model"
    try:
        if path.suffix in SAFETENSORS:
            data: object = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a paragraph about the weights_only default; the reason follows "WeightsUnpickler error:"
        said = " ".join(
            str(e).split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].split()
        )
        raise InputError(
            f"{path} is not a plain PyTorch state dict (weights_only loading refused it: {said[:200]}); save the "
            f"weights alone (torch.save(model.state_dict(), FILE)) or use {formats}"
        ) from None
    except (SafetensorError, RuntimeError, ValueError, EOFError) as e:  # a truncated or foreign file
        said = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise InputError(
            f"{path} could not be read as weights ({type(e).__name__}: {said}); expected {formats}"
        ) from None
    return _unwrap(data, path, formats)


def _unwrap(data: object, path: Path, formats: str) -> dict[str, Tensor]:
    for _ in range(3):  # {"model": {"state_dict": ...}} at most a few levels deep
        if isinstance(data, dict) and not any(isinstance(v, Tensor) for v in data.values()):
            inner = next((data[k] for k in NESTED if isinstance(data.get(k), dict)), None)
            if inner is None:
                break
            data = inner
    if not isinstance(data, dict) or not data or not all(isinstance(v, Tensor) for v in data.values()):
        keys = list(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f"{path} holds no state dict of tensors (top level: {keys}); expected {formats}, with the tensors "
            f"at the top level or under one of {list(NESTED)}"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in data.items()}


def _flat(key: str) -> str:
    """timm ``features_only`` spelling of a key: the first two name parts joined (``stages.0.x`` -> ``stages_0.x``)."""
    parts = key.split(".", 2)
    return "_".join(parts[:2]) + ("." + parts[2] if len(parts) > 2 else "") if len(parts) > 1 else key


def load_backbone_weights(module: nn.Module, path: str | Path, backbone: str) -> WeightsReport:
    """Load a local checkpoint into a timm backbone ``module``; refuses shape mismatches naming the first key.

    Args:
        module: the timm model inside the image encoder (``encoder.model``).
        path: the weights file (formats in the module docstring).
        backbone: the timm model name, for messages.
    """
    source = read_state_dict(path)
    path = user_path(path)
    flat = {_flat(k): k for k in source}
    target = module.state_dict()
    chosen: dict[str, Tensor] = {}
    for key, want in target.items():
        name = key if key in source else flat.get(key)
        if name is None:
            continue
        have = source[name]
        if tuple(have.shape) != tuple(want.shape):
            raise InputError(
                f"{path}: {name} has shape {tuple(have.shape)} but {backbone} needs {tuple(want.shape)}; these "
                f"are weights of another model (or another input size): use a checkpoint of {backbone} or set "
                "model.backbone to the model the file belongs to"
            )
        chosen[key] = have.to(want.dtype)
    if not chosen:
        raise InputError(
            f"{path}: none of its {len(source)} tensors matches {backbone} (the file has {_first(tuple(source))}; "
            f"{backbone} has {_first(tuple(target))}); expected a timm or torchvision checkpoint of {backbone}"
        )
    module.load_state_dict(chosen, strict=False)
    used = {flat.get(k, k) if k not in source else k for k in chosen}
    # BatchNorm's step counter is not a weight; torchvision files leave it out
    missing = tuple(k for k in target if k not in chosen and not k.endswith("num_batches_tracked"))
    report = WeightsReport(path, len(chosen), tuple(k for k in source if k not in used), missing)
    print(report.line(), file=sys.stderr)
    return report
