"""The one lseg_nb weights format: safetensors with the model config (and text-encoder kind) in the metadata.

Run folders (``model.safetensors``) and converted official checkpoints are both written by :func:`save_lseg_nb`
and read by :func:`load_lseg_nb`; loading is strict and names every missing, unexpected or mis-shaped tensor.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from lseg_nb.checkpoints.official_names import clip_vitb32_visual_placeholders
from lseg_nb.checkpoints.official_reader import preview
from lseg_nb.config import ConfigError, ModelConfig, from_dict, to_dict
from lseg_nb.models.lseg import LSeg, build_lseg
from lseg_nb.models.text_encoder import OpenCLIPTextEncoder, TextEncoder
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import (
    atomic_save_safetensors,
    check_finite,
    load_tensors,
    safetensors_metadata,
    user_path,
)


def load_into(
    model: LSeg,
    tensors: dict[str, Tensor],
    source: str,
    source_name: Callable[[str], str | None] | None = None,
) -> None:
    """Strict ``load_state_dict`` with a readable error (missing / unexpected / mis-shaped names).

    ``source_name`` maps an lseg_nb name to the name the tensor has in the source file (e.g. the official
    ``net.*`` name), shown next to missing and mis-shaped tensors so the user can look for them in that file.
    Weights holding NaN or infinite values are refused naming the tensor (:func:`~lseg_nb.utils.io.check_finite`).
    """

    def named(k: str) -> str:
        other = source_name(k) if source_name else None
        return f"{k} ({other} in the source)" if other and other != k else k

    check_finite(tensors, source, named)

    expected = model.state_dict()
    if not any(k.startswith("text_encoder.") for k in expected):  # a parameter-free text encoder was supplied
        tensors = {k: v for k, v in tensors.items() if not k.startswith("text_encoder.")}
    if not any(k.startswith("text_encoder.") for k in tensors):  # frozen text encoder rebuilt from its config
        expected = {k: v for k, v in expected.items() if not k.startswith("text_encoder.")}
    missing = [named(k) for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [
        f"{named(k)} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    problems = [
        f"{what}: {preview(names)}"
        for what, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
        if names
    ]
    if problems:
        raise InputError(f"{source} does not fit the {model.config.backbone} model: " + "; ".join(problems))
    # names were checked against `expected` above; only config-built text-encoder weights may be absent
    model.load_state_dict(tensors, strict=len(expected) == len(model.state_dict()))


def _openai_text(tensors: dict[str, Tensor]) -> bool:
    return {"text_encoder.model.token_embedding.weight", "text_encoder.model.text_projection"} <= set(tensors)


def save_lseg_nb(model: LSeg, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write all weights (CLIP text tower included) + the config JSON as safetensors, atomically."""
    tensors = model.state_dict()
    meta = {"format": "lseg_nb", "format_version": "1", "model_config": json.dumps(to_dict(model.config))}
    te = model.text_encoder
    if isinstance(te, OpenCLIPTextEncoder) and _openai_text(tensors):
        meta |= {"text_encoder": "openai_clip_state_dict", "text_quick_gelu": str(te.quick_gelu).lower()}
    elif te.trainable:  # the closed-set baseline's learned label table is part of the trained weights
        meta["text_encoder"] = "learned"
    else:
        meta["text_encoder"] = "config"
        tensors = {k: v for k, v in tensors.items() if not k.startswith("text_encoder.")}
    atomic_save_safetensors(tensors, path, meta | (metadata or {}))


def load_lseg_nb(
    path: str | Path, map_location: str | torch.device = "cpu", text_encoder: TextEncoder | None = None
) -> LSeg:
    """Rebuild an eval-mode :class:`LSeg` from a file written by :func:`save_lseg_nb` / :func:`convert_official`."""
    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    meta = safetensors_metadata(path)
    if meta.get("format") != "lseg_nb" or "model_config" not in meta:
        raise InputError(
            f"{path} has no lseg_nb metadata; for an official .ckpt use load_official()/convert_official()"
        )
    try:
        cfg = dataclasses.replace(
            from_dict(ModelConfig, json.loads(meta["model_config"])),
            backbone_pretrained=False,
            backbone_weights=None,  # the file holds the trained backbone; the original weights file is not needed
        )
    except (ConfigError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: invalid model_config metadata: {e}") from None
    tensors = load_tensors(path)
    if text_encoder is None and meta.get("text_encoder") == "openai_clip_state_dict":
        prefix = "text_encoder.model."
        clip = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        clip |= clip_vitb32_visual_placeholders(
            clip["text_projection"].shape[1], clip["text_projection"].dtype
        )
        quick = meta.get("text_quick_gelu", "true") == "true"
        text_encoder = OpenCLIPTextEncoder.from_openai_state_dict(clip, cfg.text.templates, quick_gelu=quick)
    model = build_lseg(cfg, text_encoder)
    load_into(model, tensors, str(path))
    return model.eval().to(map_location)
