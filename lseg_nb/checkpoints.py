"""Official LSeg checkpoints <-> lseg_nb: name mapping, layout detection, safe loading, safetensors conversion.

The official PyTorch-Lightning files store ``state_dict`` under ``net.*`` (``net.pretrained`` = backbone and DPT
readout/reassemble, ``net.scratch`` = decoder and head, ``net.clip_pretrained`` = OpenAI CLIP ViT-B/32). A few
tensors never influence the official forward and have no counterpart in our model; they are dropped *by name*
with a reason (``UNUSED``), never silently, and regenerated as neutral placeholders when writing the official
layout (or restored exactly from ``ConversionReport.unused``). Everything else maps one-to-one, bit-exact.

Reading the Lightning files safely lives in :mod:`lseg_nb.checkpoint_reader`; :func:`read_checkpoint` and
:func:`split_checkpoint` are re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from lseg_nb.checkpoint_reader import _first_line, _preview, read_checkpoint, split_checkpoint
from lseg_nb.config import ConfigError, ModelConfig, from_dict, to_dict
from lseg_nb.io import atomic_save_safetensors, load_tensors
from lseg_nb.models.lseg import LSeg, build_lseg, get_config
from lseg_nb.models.text_encoder import OpenCLIPTextEncoder, TextEncoder

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
        raise ValueError(f"unknown official layout {layout!r}; known: {sorted(LAYOUT_CONFIGS)}")
    return (_RESNET if layout == "rn101" else _VIT) + _COMMON


def _rename(key: str, rules: list[tuple[str, str]], to_official: bool) -> str | None:
    for off, ours in rules:
        src, dst = (ours, off) if to_official else (off, ours)
        m = _regex(src).match(key)
        if m:
            return _fill(dst, m.groupdict()) + key[m.end() :]
    return None


def _strip_net(state_dict: dict[str, Any]) -> dict[str, Tensor]:
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError("expected a non-empty state_dict (a dict of tensors)")
    bad = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"state_dict entries that are not tensors: {_preview(bad)}")
    if any(k.startswith("net.") for k in state_dict):
        return {k[4:] if k.startswith("net.") else f"<outside net.>{k}": v for k, v in state_dict.items()}
    return dict(state_dict)


def _block_count(keys: dict[str, Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in keys if k.startswith(prefix)})


def detect_layout(state_dict: dict[str, Tensor]) -> Layout:
    """Which official LSeg architecture a state dict holds (``net.`` prefix optional); ValueError otherwise.

    The matching lseg_nb model config is ``LAYOUT_CONFIGS[layout]``.
    """
    sd = _strip_net(state_dict)
    if "pretrained.model.pos_embed" in sd and "pretrained.model.cls_token" in sd:
        key = (
            sd["pretrained.model.cls_token"].shape[-1],
            _block_count(sd, "pretrained.model.blocks."),
            sd["pretrained.model.patch_embed.proj.weight"].shape[-1],
        )
        if key in _VIT_LAYOUTS and "scratch.head1.weight" in sd:
            return _VIT_LAYOUTS[key]  # type: ignore[return-value]
        raise ValueError(f"official ViT checkpoint with (width, depth, patch) = {key} is not supported")
    if "pretrained.layer1.0.weight" in sd and "scratch.head1.weight" in sd:
        blocks = tuple(
            _block_count(sd, p)
            for p in ("pretrained.layer1.4.", *(f"pretrained.layer{i}." for i in (2, 3, 4)))
        )
        if blocks == (3, 4, 23, 3) and "pretrained.layer1.4.0.conv3.weight" in sd:
            return "rn101"
        raise ValueError(
            f"official ResNet checkpoint with blocks {blocks} is not ResNet-101 and not supported"
        )
    hint = ""
    if {"conv1.weight", "fc.weight"} <= set(sd) or "layer1.0.conv1.weight" in sd:
        hint = " It looks like a plain torchvision/timm ResNet state dict, not an LSeg checkpoint."
    raise ValueError(
        "not an official LSeg checkpoint: expected names like net.pretrained.model.pos_embed (ViT) or "
        f"net.pretrained.layer1.0.weight (ResNet-101) plus net.scratch.head1.weight.{hint} "
        f"Found {len(sd)} tensors, e.g. {_preview(list(sd), 5)}"
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
    rules, sd = _rules(layout), _strip_net(state_dict)
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
        raise ValueError(
            f"{len(unmapped)} checkpoint tensors have no lseg_nb counterpart: {_preview(unmapped)}"
        )
    report = ConversionReport(layout, LAYOUT_CONFIGS[layout], len(converted), dropped, unused)
    return converted, report


def _neutral(name: str, like: Tensor) -> Tensor:
    if name.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.long)
    one = name.endswith("running_var") or (".bn" in name and name.endswith(".weight"))
    return torch.full(like.shape, 1.0 if one else 0.0, dtype=like.dtype)


def _clip_vitb32_visual(embed_dim: int, dtype: torch.dtype) -> dict[str, Tensor]:
    """Zero/one placeholders shaped like OpenAI CLIP ViT-B/32's image tower (stride-0 views: no memory)."""
    w = 768
    shapes = {"class_embedding": (w,), "positional_embedding": (50, w), "proj": (w, embed_dim)}
    shapes |= {"conv1.weight": (w, 3, 32, 32), "ln_pre.weight": (w,), "ln_pre.bias": (w,)}
    shapes |= {"ln_post.weight": (w,), "ln_post.bias": (w,)}
    block = {"attn.in_proj_weight": (3 * w, w), "attn.in_proj_bias": (3 * w,), "attn.out_proj.weight": (w, w)}
    block |= {"attn.out_proj.bias": (w,), "ln_1.weight": (w,), "ln_1.bias": (w,), "ln_2.weight": (w,)}
    block |= {"ln_2.bias": (w,), "mlp.c_fc.weight": (4 * w, w), "mlp.c_fc.bias": (4 * w,)}
    block |= {"mlp.c_proj.weight": (w, 4 * w), "mlp.c_proj.bias": (w,)}
    for i in range(12):
        shapes |= {f"transformer.resblocks.{i}.{k}": s for k, s in block.items()}
    out = {}
    for k, s in shapes.items():
        parts = k.split(".")
        value = 1.0 if len(parts) > 1 and parts[-2].startswith("ln_") and parts[-1] == "weight" else 0.0
        out[f"visual.{k}"] = torch.full((), value, dtype=dtype).expand(s)
    return out


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
        visual = _clip_vitb32_visual(proj.shape[1], proj.dtype)
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
        raise ValueError(
            f"{len(unmapped)} lseg_nb tensors have no official counterpart: {_preview(unmapped)}"
        )
    return out | (unused if unused is not None else unused_placeholders(out, layout))


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
    model.load_state_dict(tensors, strict=True)


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
