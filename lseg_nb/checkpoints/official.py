"""Official LSeg checkpoints -> lseg_nb models: config detection, strict loading, safetensors conversion.

The official PyTorch-Lightning files store ``state_dict`` under ``net.*`` (``net.pretrained`` = backbone and DPT
readout/reassemble, ``net.scratch`` = decoder and head, ``net.clip_pretrained`` = OpenAI CLIP ViT-B/32). A few
tensors never influence the official forward and have no counterpart in our model; they are dropped *by name*
with a reason (``UNUSED``), never silently. Name mapping: :mod:`.official_names`; safe reading:
:mod:`.official_reader`; the lseg_nb weights format: :mod:`.weights`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lseg_nb.checkpoints.official_names import (
    LAYOUT_CONFIGS,
    ConversionReport,
    clip_vitb32_text_shapes,
    clip_vitb32_visual_placeholders,
    clip_vitb32_visual_shapes,
    detect_layout,
    official_name,
    official_to_lseg_nb,
    strip_net,
)
from lseg_nb.checkpoints.official_reader import first_line, preview, read_checkpoint, split_checkpoint
from lseg_nb.checkpoints.weights import load_into, save_lseg_nb
from lseg_nb.config import ConfigError, ModelConfig, get_config
from lseg_nb.models.lseg import LSeg, build_lseg
from lseg_nb.models.text_encoder import OpenCLIPTextEncoder, TextEncoder
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import check_finite, same_file, user_path

_ARCH_OPTIONS = {1: "bottleneck", 2: "depthwise"}


def _head_fields(sd: dict[str, Tensor], hparams: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    if "scratch.head_block.depthwise.depthwise.weight" not in sd or "head_block" in overrides:
        return {}
    option = hparams.get("arch_option")
    if option not in _ARCH_OPTIONS:
        raise InputError(
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


class _Named(dict):
    """A stripped official state dict whose missing names raise a ValueError naming the official tensor."""

    def __missing__(self, key: str) -> Tensor:
        raise InputError(
            f"the checkpoint has no tensor net.{key}, which every official LSeg model has: is it complete?"
        )


def official_config(
    state_dict: dict[str, Tensor], hparams: dict[str, Any] | None = None, **overrides
) -> ModelConfig:
    """The lseg_nb config of an official checkpoint: its layout's named config, widths read from the tensors.

    ``hparams``: the Lightning ``hyper_parameters`` (only ``arch_option``/``block_depth``/``activation`` are read).
    ``overrides``: ModelConfig fields, e.g. ``mean``/``std`` or ``head_block``.
    """
    layout = detect_layout(state_dict)
    sd = _Named(strip_net(state_dict))
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
        raise InputError(f"head1 outputs {out_c} channels but the CLIP text embedding has {proj.shape[1]}")
    try:
        return get_config(LAYOUT_CONFIGS[layout], **(fields | overrides))
    except TypeError as e:
        raise ConfigError(f"invalid ModelConfig override: {e}") from None


def build_from_official(
    state_dict: dict[str, Tensor],
    hparams: dict[str, Any] | None = None,
    text_encoder: TextEncoder | None = None,
    **overrides,
) -> tuple[LSeg, ConversionReport]:
    """An eval-mode :class:`LSeg` with the official weights (CLIP text tower from the checkpoint unless given).
    Non-finite weights are refused naming the official tensor, before any model is built."""
    check_finite(state_dict, "the checkpoint")
    converted, report = official_to_lseg_nb(state_dict)
    cfg = official_config(state_dict, hparams, **overrides)
    if text_encoder is None:
        clip = _clip_state_dict(strip_net(state_dict))
        try:
            text_encoder = OpenCLIPTextEncoder.from_openai_state_dict(clip, cfg.text.templates)
        except (KeyError, RuntimeError) as e:  # names and shapes were checked: only odd values get here
            raise InputError(
                f"the CLIP text tower (net.clip_pretrained.*) does not load: {first_line(e)}"
            ) from None
    model = build_lseg(cfg, text_encoder)
    load_into(model, converted, "the converted checkpoint", lambda k: official_name(k, report.layout))
    return model.eval(), report


_CLIP_BUFFERS = ("input_resolution", "context_length", "vocab_size")  # ints in some OpenAI dumps, never used


def _clip_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """OpenAI-format CLIP state dict for open_clip: the checkpoint's text tower, checked name by name against
    CLIP ViT-B/32 (errors use the official ``net.clip_pretrained.*`` names), plus neutral placeholders for the
    image tower. That tower never influences LSeg, so it may be missing; tensors under it that CLIP ViT-B/32
    does not have mean another model and are refused."""
    prefix = "clip_pretrained."
    clip = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if not clip:
        raise InputError("the checkpoint has no CLIP text tower (net.clip_pretrained.*): pass text_encoder=")
    proj = clip.get("text_projection")
    embed_dim = proj.shape[1] if proj is not None and proj.ndim == 2 else 512
    visual = {k: v for k, v in clip.items() if k.startswith("visual.")}
    text = {k: v for k, v in clip.items() if k not in visual and k not in _CLIP_BUFFERS}

    def net(names: list[str]) -> list[str]:
        return [f"net.{prefix}{k}" for k in names]

    def problems(have: dict[str, Tensor], want: dict[str, tuple[int, ...]], with_missing: bool) -> list[str]:
        found = [
            ("unexpected", net([k for k in have if k not in want])),
            ("missing", net([k for k in want if k not in have]) if with_missing else []),
            (
                "shape mismatch",
                [
                    f"net.{prefix}{k} {tuple(v.shape)} vs {want[k]}"
                    for k, v in have.items()
                    if k in want and tuple(v.shape) != want[k]
                ],
            ),
        ]
        return [f"{what}: {preview(names)}" for what, names in found if names]

    bad_visual = problems(visual, clip_vitb32_visual_shapes(embed_dim), with_missing=False)
    if bad_visual:
        raise InputError(
            f"net.{prefix}visual.* is not OpenAI CLIP ViT-B/32's image tower ({'; '.join(bad_visual)}). LSeg never "
            f"uses that tower: delete the net.{prefix}visual.* tensors from the state_dict and convert again"
        )
    bad_text = problems(text, clip_vitb32_text_shapes(embed_dim), with_missing=True)
    if bad_text:
        raise InputError(
            f"the CLIP text tower net.{prefix}* is not OpenAI CLIP ViT-B/32's ({'; '.join(bad_text)}); "
            "official LSeg checkpoints hold the complete ViT-B/32 text tower: is the file complete?"
        )
    dtype = proj.dtype if proj is not None else torch.float32
    return text | clip_vitb32_visual_placeholders(embed_dim, dtype)


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
        raise InputError(f"{path}: {e}") from None
    return model.to(map_location)


def convert_official(src: str | Path, dst: str | Path, **overrides) -> ConversionReport:
    """Official ``.ckpt`` -> lseg_nb ``.safetensors`` (verified by a strict load before writing).

    ``dst`` may not be ``src`` however spelled (``./``, relative/absolute, symbolic or hard links): the official
    file would be replaced and the tensors the conversion drops would be gone.
    """
    src, dst = user_path(src), user_path(dst)
    if dst.suffix != ".safetensors":
        raise InputError(f"output {dst} must end in .safetensors")
    if same_file(src, dst):
        raise InputError(
            f"output {dst} is the input {src}: converting in place would replace the original checkpoint; "
            "write the converted weights to another file"
        )
    state_dict, hparams = split_checkpoint(read_checkpoint(src), str(src))
    try:
        model, report = build_from_official(state_dict, hparams, None, **overrides)
    except ValueError as e:
        raise InputError(f"{src}: {e}") from None
    del state_dict
    save_lseg_nb(model, dst, {"source": Path(src).name, "source_layout": report.layout})
    return report


def convert_main(src: str, dst: str) -> None:
    """CLI hook of ``lseg-nb convert OFFICIAL.ckpt OUT.safetensors``: convert and print a short summary."""
    report = convert_official(src, dst)
    print(f"converted {src} -> {dst}")
    print(report.summary())
    print(f"load with: lseg_nb.checkpoints.load_lseg_nb({str(dst)!r})")
