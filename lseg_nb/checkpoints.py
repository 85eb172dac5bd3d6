"""Official LSeg checkpoints <-> lseg_nb: name mapping, layout detection, safe loading, safetensors conversion.

The official PyTorch-Lightning files store ``state_dict`` under ``net.*`` (``net.pretrained`` = backbone and DPT
readout/reassemble, ``net.scratch`` = decoder and head, ``net.clip_pretrained`` = OpenAI CLIP ViT-B/32). A few
tensors never influence the official forward and have no counterpart in our model; they are dropped *by name*
with a reason (``UNUSED``), never silently, and regenerated as neutral placeholders when writing the official
layout (or restored exactly from ``ConversionReport.unused``). Everything else maps one-to-one, bit-exact.

Name mapping lives in :mod:`lseg_nb.checkpoint_names`, reading the Lightning files safely in
:mod:`lseg_nb.checkpoint_reader`; :func:`read_checkpoint` and
:func:`split_checkpoint` are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lseg_nb.checkpoint_names import (  # noqa: F401 - re-exported public API
    LAYOUT_CONFIGS,
    UNUSED,
    ConversionReport,
    Layout,
    _clip_vitb32_visual,
    _strip_net,
    detect_layout,
    lseg_nb_to_official,
    official_to_lseg_nb,
    unused_placeholders,
)
from lseg_nb.checkpoint_reader import _first_line, _preview, read_checkpoint, split_checkpoint  # noqa: F401
from lseg_nb.config import ConfigError, ModelConfig, from_dict, to_dict
from lseg_nb.io import atomic_save_safetensors, load_tensors
from lseg_nb.models.lseg import LSeg, build_lseg, get_config
from lseg_nb.models.text_encoder import OpenCLIPTextEncoder, TextEncoder

_ARCH_OPTIONS = {1: "bottleneck", 2: "depthwise"}


def _head_fields(sd: dict[str, Tensor], hparams: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    if "scratch.head_block.depthwise.depthwise.weight" not in sd or "head_block" in overrides:
        return {}
    option = hparams.get("arch_option")
    if option not in _ARCH_OPTIONS:
        raise ValueError(
            "the checkpoint has a head_block (official arch_option 1 or 2) but no hyper_parameters saying which: "
            "pass head_block='bottleneck' (arch_option 1) or 'depthwise' (2) and block_depth=max(official, 1)"
        )
    # Official: block_depth-1 activated blocks plus one without activation, i.e. max(depth, 1) applications.
    depth = max(int(hparams.get("block_depth", 0)), 1)
    return {
        "head_block": _ARCH_OPTIONS[option],
        "block_depth": depth,
        "activation": hparams.get("activation", "relu"),
    }


def official_config(
    state_dict: dict[str, Tensor], hparams: dict[str, Any] | None = None, **overrides
) -> ModelConfig:
    """The lseg_nb config of an official checkpoint: its layout's named config, widths read from the tensors.

    ``hparams``: the Lightning ``hyper_parameters`` (only ``arch_option``/``block_depth``/``activation`` are read).
    ``overrides``: ModelConfig fields, e.g. ``mean``/``std`` or ``head_block``.
    """
    layout = detect_layout(state_dict)
    sd = _strip_net(state_dict)
    fields: dict[str, Any] = {
        "backbone_pretrained": False,
        "features": sd["scratch.layer1_rn.weight"].shape[0],
        "use_bn": "scratch.refinenet1.resConfUnit2.bn1.weight" in sd,
    }
    if layout != "rn101":
        fields["reassemble_channels"] = tuple(
            sd[f"pretrained.act_postprocess{i}.3.weight"].shape[0] for i in range(1, 5)
        )
        fields["readout"] = "project" if "pretrained.act_postprocess1.0.project.0.weight" in sd else "ignore"
    fields |= _head_fields(sd, hparams or {}, overrides)
    proj, out_c = sd.get("clip_pretrained.text_projection"), sd["scratch.head1.weight"].shape[0]
    if proj is not None and proj.shape[1] != out_c:
        raise ValueError(f"head1 outputs {out_c} channels but the CLIP text embedding has {proj.shape[1]}")
    try:
        return get_config(LAYOUT_CONFIGS[layout], **(fields | overrides))
    except TypeError as e:
        raise ConfigError(f"invalid ModelConfig override: {e}") from None


def load_into(model: LSeg, tensors: dict[str, Tensor], source: str) -> None:
    """Strict ``load_state_dict`` with a readable error (missing / unexpected / mis-shaped names)."""
    expected = model.state_dict()
    if not any(k.startswith("text_encoder.") for k in expected):  # a parameter-free text encoder was supplied
        tensors = {k: v for k, v in tensors.items() if not k.startswith("text_encoder.")}
    if not any(k.startswith("text_encoder.") for k in tensors):  # frozen text encoder rebuilt from its config
        expected = {k: v for k, v in expected.items() if not k.startswith("text_encoder.")}
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [
        f"{k} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    problems = [
        f"{what}: {_preview(names)}"
        for what, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
        if names
    ]
    if problems:
        raise ValueError(f"{source} does not fit the {model.config.backbone} model: " + "; ".join(problems))
    # names were checked against `expected` above; only config-built text-encoder weights may be absent
    model.load_state_dict(tensors, strict=len(expected) == len(model.state_dict()))


def build_from_official(
    state_dict: dict[str, Tensor],
    hparams: dict[str, Any] | None = None,
    text_encoder: TextEncoder | None = None,
    **overrides,
) -> tuple[LSeg, ConversionReport]:
    """An eval-mode :class:`LSeg` with the official weights (CLIP text tower from the checkpoint unless given)."""
    converted, report = official_to_lseg_nb(state_dict)
    cfg = official_config(state_dict, hparams, **overrides)
    if text_encoder is None:
        clip = {
            k[len("clip_pretrained.") :]: v
            for k, v in _strip_net(state_dict).items()
            if k.startswith("clip_pretrained.")
        }
        if not clip:
            raise ValueError(
                "the checkpoint has no CLIP text tower (net.clip_pretrained.*): pass text_encoder="
            )
        text_encoder = OpenCLIPTextEncoder.from_openai_state_dict(clip, cfg.text.templates)
    model = build_lseg(cfg, text_encoder)
    load_into(model, converted, "the converted checkpoint")
    return model.eval(), report


def load_official(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    text_encoder: TextEncoder | None = None,
    **overrides,
) -> LSeg:
    """Official LSeg ``.ckpt`` -> eval-mode :class:`LSeg` on ``map_location`` (read safely, loaded strictly).

    ``overrides`` are ModelConfig fields (e.g. ``mean``/``std`` to change the input normalisation).
    """
    state_dict, hparams = split_checkpoint(read_checkpoint(path), str(path))
    try:
        model, _ = build_from_official(state_dict, hparams, text_encoder, **overrides)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model.to(map_location)


def _openai_text(tensors: dict[str, Tensor]) -> bool:
    return {"text_encoder.model.token_embedding.weight", "text_encoder.model.text_projection"} <= set(tensors)


def save_lseg_nb(model: LSeg, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write all weights (CLIP text tower included) + the config JSON as safetensors, atomically."""
    tensors = model.state_dict()
    meta = {"format": "lseg_nb", "format_version": "1", "model_config": json.dumps(to_dict(model.config))}
    te = model.text_encoder
    if isinstance(te, OpenCLIPTextEncoder) and _openai_text(tensors):
        meta |= {"text_encoder": "openai_clip_state_dict", "text_quick_gelu": str(te.quick_gelu).lower()}
    else:
        meta["text_encoder"] = "config"
        tensors = {k: v for k, v in tensors.items() if not k.startswith("text_encoder.")}
    atomic_save_safetensors(tensors, path, meta | (metadata or {}))


def load_lseg_nb(
    path: str | Path, map_location: str | torch.device = "cpu", text_encoder: TextEncoder | None = None
) -> LSeg:
    """Rebuild an eval-mode :class:`LSeg` from a file written by :func:`save_lseg_nb` / :func:`convert_official`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable safetensors file ({_first_line(e)})") from None
    if meta.get("format") != "lseg_nb" or "model_config" not in meta:
        raise ValueError(
            f"{path} has no lseg_nb metadata; for an official .ckpt use load_official()/convert_official()"
        )
    try:
        cfg = dataclasses.replace(
            from_dict(ModelConfig, json.loads(meta["model_config"])), backbone_pretrained=False
        )
    except (ConfigError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: invalid model_config metadata: {e}") from None
    tensors = load_tensors(path)
    if text_encoder is None and meta.get("text_encoder") == "openai_clip_state_dict":
        prefix = "text_encoder.model."
        clip = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        clip |= _clip_vitb32_visual(clip["text_projection"].shape[1], clip["text_projection"].dtype)
        quick = meta.get("text_quick_gelu", "true") == "true"
        text_encoder = OpenCLIPTextEncoder.from_openai_state_dict(clip, cfg.text.templates, quick_gelu=quick)
    model = build_lseg(cfg, text_encoder)
    load_into(model, tensors, str(path))
    return model.eval().to(map_location)


def convert_official(src: str | Path, dst: str | Path, **overrides) -> ConversionReport:
    """Official ``.ckpt`` -> lseg_nb ``.safetensors`` (verified by a strict load before writing)."""
    if Path(dst).suffix != ".safetensors":
        raise ValueError(f"output {dst} must end in .safetensors")
    state_dict, hparams = split_checkpoint(read_checkpoint(src), str(src))
    try:
        model, report = build_from_official(state_dict, hparams, None, **overrides)
    except ValueError as e:
        raise ValueError(f"{src}: {e}") from None
    del state_dict
    save_lseg_nb(model, dst, {"source": Path(src).name, "source_layout": report.layout})
    return report


def convert_main(src: str, dst: str) -> None:
    """CLI hook of ``lseg-nb convert OFFICIAL.ckpt OUT.safetensors``: convert and print a short summary."""
    report = convert_official(src, dst)
    print(f"converted {src} -> {dst}")
    print(report.summary())
    print(f"load with: lseg_nb.checkpoints.load_lseg_nb({str(dst)!r})")
