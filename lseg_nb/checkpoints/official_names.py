"""Official LSeg tensor names <-> lseg_nb names: layout detection, renaming rules, the known-unused tensors.

Pure functions on state dicts (no model building, no file IO); :mod:`lseg_nb.checkpoints.official` builds on them.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from lseg_nb.checkpoints.official_reader import preview
from lseg_nb.utils.errors import InputError

Layout = Literal["vitl16_384", "vitb16_384", "rn101"]
LAYOUT_CONFIGS: dict[str, str] = {
    "vitl16_384": "lseg_vitl16_384",
    "vitb16_384": "lseg_vitb16_384",
    "rn101": "lseg_rn101",
}
_VIT_LAYOUTS = {(1024, 24, 16): "vitl16_384", (768, 12, 16): "vitb16_384"}

# Official name prefixes (without ``net.``) that the official forward never reads.
UNUSED: dict[str, str] = {
    "pretrained.model.norm.": "ViT final LayerNorm (the decoder taps blocks before it)",
    "pretrained.model.head.": "ViT ImageNet classifier (never called)",
    "scratch.refinenet4.resConfUnit1.": "skip unit of the deepest fusion block (it has no skip input)",
    "clip_pretrained.visual.": "CLIP image tower (LSeg only uses CLIP's text tower)",
}

# (official prefix, lseg_nb prefix): {i} = 1-based official index <-> {j} = 0-based ours; {k} = same on both sides.
_COMMON = [
    ("scratch.layer{i}_rn.", "decoder.layer_rn.{j}."),
    ("scratch.refinenet{i}.resConfUnit1.", "decoder.fusion.{j}.skip_unit."),
    ("scratch.refinenet{i}.resConfUnit2.", "decoder.fusion.{j}.unit."),
    ("scratch.refinenet{i}.out_conv.", "decoder.fusion.{j}.out_conv."),
    ("scratch.head1.", "head.proj."),
    ("scratch.head_block.depthwise.depthwise.", "head.block.depthwise.conv."),
    ("clip_pretrained.", "text_encoder.model."),
]
_VIT = [
    ("pretrained.model.", "image_encoder.model."),
    ("pretrained.act_postprocess{i}.0.project.", "image_encoder.readout.{j}.project."),
    ("pretrained.act_postprocess{i}.3.", "decoder.reassemble.{j}.proj."),
    ("pretrained.act_postprocess{i}.4.", "decoder.reassemble.{j}.resample."),
]
# Official ResNet: layer1 = Sequential(conv1, bn1, relu, maxpool, layer1); timm features_only keeps resnet names.
_RESNET = [
    ("pretrained.layer1.0.", "image_encoder.model.conv1."),
    ("pretrained.layer1.1.", "image_encoder.model.bn1."),
    ("pretrained.layer1.4.", "image_encoder.model.layer1."),
    ("pretrained.layer{k}.", "image_encoder.model.layer{k}."),
]
_GROUPS = {"{i}": "(?P<i>[1-4])", "{j}": "(?P<j>[0-3])", "{k}": "(?P<k>[2-4])"}


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    rx = re.escape(pattern)
    for ph, group in _GROUPS.items():
        rx = rx.replace(re.escape(ph), group)
    return re.compile(rx)


def _fill(pattern: str, groups: dict[str, str]) -> str:
    if "i" in groups:
        groups = {**groups, "j": str(int(groups["i"]) - 1)}
    if "j" in groups and "i" not in groups:
        groups = {**groups, "i": str(int(groups["j"]) + 1)}
    return pattern.format(**groups)


def _rules(layout: str) -> list[tuple[str, str]]:
    if layout not in LAYOUT_CONFIGS:
        raise InputError(f"unknown official layout {layout!r}; known: {sorted(LAYOUT_CONFIGS)}")
    return (_RESNET if layout == "rn101" else _VIT) + _COMMON


def _rename(key: str, rules: list[tuple[str, str]], to_official: bool) -> str | None:
    for off, ours in rules:
        src, dst = (ours, off) if to_official else (off, ours)
        m = _regex(src).match(key)
        if m:
            return _fill(dst, m.groupdict()) + key[m.end() :]
    return None


def strip_net(state_dict: dict[str, Any]) -> dict[str, Tensor]:
    if not isinstance(state_dict, dict) or not state_dict:
        raise InputError("expected a non-empty state_dict (a dict of tensors)")
    bad = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if bad:
        raise InputError(f"state_dict entries that are not tensors: {preview(bad)}")
    if any(k.startswith("net.") for k in state_dict):
        return {k[4:] if k.startswith("net.") else f"<outside net.>{k}": v for k, v in state_dict.items()}
    return dict(state_dict)


def _block_count(keys: dict[str, Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in keys if k.startswith(prefix)})


def detect_layout(state_dict: dict[str, Tensor]) -> Layout:
    """Which official LSeg architecture a state dict holds (``net.`` prefix optional); ValueError otherwise.

    The matching lseg_nb model config is ``LAYOUT_CONFIGS[layout]``.
    """
    sd = strip_net(state_dict)
    if "pretrained.model.pos_embed" in sd and "pretrained.model.cls_token" in sd:
        key = (
            sd["pretrained.model.cls_token"].shape[-1],
            _block_count(sd, "pretrained.model.blocks."),
            sd["pretrained.model.patch_embed.proj.weight"].shape[-1],
        )
        if key in _VIT_LAYOUTS and "scratch.head1.weight" in sd:
            return _VIT_LAYOUTS[key]  # type: ignore[return-value]
        raise InputError(f"official ViT checkpoint with (width, depth, patch) = {key} is not supported")
    if "pretrained.layer1.0.weight" in sd and "scratch.head1.weight" in sd:
        blocks = tuple(
            _block_count(sd, p)
            for p in ("pretrained.layer1.4.", *(f"pretrained.layer{i}." for i in (2, 3, 4)))
        )
        if blocks == (3, 4, 23, 3) and "pretrained.layer1.4.0.conv3.weight" in sd:
            return "rn101"
        raise InputError(
            f"official ResNet checkpoint with blocks {blocks} is not ResNet-101 and not supported"
        )
    hint = ""
    if {"conv1.weight", "fc.weight"} <= set(sd) or "layer1.0.conv1.weight" in sd:
        hint = " It looks like a plain torchvision/timm ResNet state dict, not an LSeg checkpoint."
    raise InputError(
        "not an official LSeg checkpoint: expected names like net.pretrained.model.pos_embed (ViT) or "
        f"net.pretrained.layer1.0.weight (ResNet-101) plus net.scratch.head1.weight.{hint} "
        f"Found {len(sd)} tensors, e.g. {preview(list(sd), 5)}"
    )


@dataclass
class ConversionReport:
    """What :func:`official_to_lseg_nb` did. ``dropped``: official name -> reason; ``unused``: those tensors
    (only with ``keep_unused=True``), to restore the official file exactly with :func:`lseg_nb_to_official`."""

    layout: str
    config_name: str
    mapped: int
    dropped: dict[str, str]
    unused: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """A few lines for humans: layout, mapped count, dropped counts per reason."""
        counts = Counter(self.dropped.values())
        lines = [f"layout: {self.layout} (model config {self.config_name})", f"tensors mapped: {self.mapped}"]
        lines.append(f"dropped as known-unused: {len(self.dropped)}")
        lines += [f"  {n:4d}  {reason}" for reason, n in counts.items()]
        return "\n".join(lines)


def official_to_lseg_nb(
    state_dict: dict[str, Tensor], layout: Layout | None = None, keep_unused: bool = False
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Official ``state_dict`` (``net.*``) -> lseg_nb names. Tensors are shared, not copied.

    Unknown names raise ``ValueError`` listing them; known-unused ones are dropped and listed in the report.
    ``layout`` skips detection (e.g. for small test models with the official naming).
    """
    layout = layout or detect_layout(state_dict)
    rules, sd = _rules(layout), strip_net(state_dict)
    converted: dict[str, Tensor] = {}
    dropped: dict[str, str] = {}
    unused: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in sd.items():
        reason = next((r for prefix, r in UNUSED.items() if key.startswith(prefix)), None)
        if reason is not None:
            dropped[f"net.{key}"] = reason
            if keep_unused:
                unused[f"net.{key}"] = value
            continue
        new = _rename(key, rules, to_official=False)
        if new is None:
            unmapped.append(key.replace("<outside net.>", ""))
        else:
            converted[new] = value
    if unmapped:
        raise InputError(
            f"{len(unmapped)} checkpoint tensors have no lseg_nb counterpart: {preview(unmapped)}"
        )
    report = ConversionReport(layout, LAYOUT_CONFIGS[layout], len(converted), dropped, unused)
    return converted, report


def _neutral(name: str, like: Tensor) -> Tensor:
    if name.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.long)
    one = name.endswith("running_var") or (".bn" in name and name.endswith(".weight"))
    return torch.full(like.shape, 1.0 if one else 0.0, dtype=like.dtype)


def _clip_blocks(width: int, layers: int, prefix: str) -> dict[str, tuple[int, ...]]:
    w = width
    block = {"attn.in_proj_weight": (3 * w, w), "attn.in_proj_bias": (3 * w,), "attn.out_proj.weight": (w, w)}
    block |= {"attn.out_proj.bias": (w,), "ln_1.weight": (w,), "ln_1.bias": (w,), "ln_2.weight": (w,)}
    block |= {"ln_2.bias": (w,), "mlp.c_fc.weight": (4 * w, w), "mlp.c_fc.bias": (4 * w,)}
    block |= {"mlp.c_proj.weight": (w, 4 * w), "mlp.c_proj.bias": (w,)}
    return {f"{prefix}transformer.resblocks.{i}.{k}": s for i in range(layers) for k, s in block.items()}


def clip_vitb32_visual_shapes(embed_dim: int) -> dict[str, tuple[int, ...]]:
    """Names (``visual.*``) and shapes of OpenAI CLIP ViT-B/32's image tower, which LSeg never uses."""
    w = 768
    shapes = {
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (50, w),
        "visual.proj": (w, embed_dim),
    }
    shapes |= {
        "visual.conv1.weight": (w, 3, 32, 32),
        "visual.ln_pre.weight": (w,),
        "visual.ln_pre.bias": (w,),
    }
    shapes |= {"visual.ln_post.weight": (w,), "visual.ln_post.bias": (w,)}
    return shapes | _clip_blocks(w, 12, "visual.")


def clip_vitb32_text_shapes(embed_dim: int = 512) -> dict[str, tuple[int, ...]]:
    """Names and shapes of OpenAI CLIP ViT-B/32's text tower (the one LSeg uses), in OpenAI's naming."""
    w = 512
    shapes = {"positional_embedding": (77, w), "text_projection": (w, embed_dim), "logit_scale": ()}
    shapes |= {"token_embedding.weight": (49408, w), "ln_final.weight": (w,), "ln_final.bias": (w,)}
    return shapes | _clip_blocks(w, 12, "")


def clip_vitb32_visual_placeholders(embed_dim: int, dtype: torch.dtype) -> dict[str, Tensor]:
    """Zero/one placeholders shaped like OpenAI CLIP ViT-B/32's image tower (stride-0 views: no memory)."""
    out = {}
    for k, s in clip_vitb32_visual_shapes(embed_dim).items():
        parts = k.split(".")
        value = 1.0 if parts[-2].startswith("ln_") and parts[-1] == "weight" else 0.0
        out[k] = torch.full((), value, dtype=dtype).expand(s)
    return out


def official_name(key: str, layout: Layout) -> str | None:
    """The official (``net.*``) name of lseg_nb tensor ``key`` in ``layout``, or ``None`` when it has none."""
    new = _rename(key, _rules(layout), to_official=True)
    return None if new is None else f"net.{new}"


def unused_placeholders(official: dict[str, Tensor], layout: Layout) -> dict[str, Tensor]:
    """Neutral stand-ins for the known-unused official tensors (identity-like norms, zero weights).

    They make an exported file loadable by the official code with ``strict=True``; their values never matter.
    """
    out: dict[str, Tensor] = {}
    if layout != "rn101" and "net.pretrained.model.cls_token" in official:
        d = official["net.pretrained.model.cls_token"]
        out["net.pretrained.model.norm.weight"] = torch.ones(d.shape[-1], dtype=d.dtype)
        out["net.pretrained.model.norm.bias"] = torch.zeros(d.shape[-1], dtype=d.dtype)
        out["net.pretrained.model.head.weight"] = torch.zeros(1000, d.shape[-1], dtype=d.dtype)
        out["net.pretrained.model.head.bias"] = torch.zeros(1000, dtype=d.dtype)
    unit2 = "net.scratch.refinenet4.resConfUnit2."
    for k, v in official.items():
        if k.startswith(unit2):
            name = "net.scratch.refinenet4.resConfUnit1." + k[len(unit2) :]
            out[name] = _neutral(name, v)
    proj = official.get("net.clip_pretrained.text_projection")
    if proj is not None:
        visual = clip_vitb32_visual_placeholders(proj.shape[1], proj.dtype)
        out |= {f"net.clip_pretrained.{k}": v for k, v in visual.items()}
    return out


def lseg_nb_to_official(
    state_dict: dict[str, Tensor], layout: Layout, unused: dict[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """lseg_nb ``state_dict`` -> official ``net.*`` names (tensors shared, not copied).

    The known-unused official tensors come from ``unused`` (``ConversionReport.unused``: exact round trip) or,
    when it is ``None``, from :func:`unused_placeholders`. Unknown names raise ``ValueError``.
    """
    rules = _rules(layout)
    out: dict[str, Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        new = _rename(key, rules, to_official=True)
        if new is None or any(new.startswith(p) for p in UNUSED):
            unmapped.append(key)
        else:
            out[f"net.{new}"] = value
    if unmapped:
        raise InputError(f"{len(unmapped)} lseg_nb tensors have no official counterpart: {preview(unmapped)}")
    return out | (unused if unused is not None else unused_placeholders(out, layout))
