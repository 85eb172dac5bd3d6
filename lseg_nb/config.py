"""Frozen configuration dataclasses shared by notebooks and the CLI, with JSON round-trip.

Every config is a frozen dataclass; ``to_dict``/``from_dict`` convert to and from plain JSON data and
``from_dict`` names the offending field when the input is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

TextEncoderKind = Literal["open_clip", "sentence_transformers", "random", "one_hot"]
Readout = Literal["ignore", "add", "project"]
HeadBlock = Literal["none", "bottleneck", "depthwise"]
Activation = Literal["relu", "lrelu", "tanh"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which frozen text encoder embeds label strings.

    ``name``: open_clip model name (``ViT-B-32``) or sentence-transformers name/path (``all-MiniLM-L6-v2``).
    ``pretrained``: open_clip pretrained tag (``openai``) or a local checkpoint path; ``None`` = random weights.
    ``dim``: embedding size for the ``random`` encoder (others report their own).
    ``vocabulary``: label set of the ``one_hot`` encoder (labels outside it cannot be embedded).
    ``templates``: prompt templates with ``{}``; embeddings of all templates are averaged.
    """

    kind: TextEncoderKind = "sentence_transformers"
    name: str = "all-MiniLM-L6-v2"
    pretrained: str | None = None
    dim: int = 512
    seed: int = 0
    vocabulary: tuple[str, ...] = ()
    templates: tuple[str, ...] = ("{}",)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an LSeg model: backbone, DPT decoder, head and text encoder.

    ``hooks``: ViT block indices tapped for the four decoder levels (ignored by CNN backbones, which use
    ``out_indices``). ``reassemble_channels``: DPT reassemble widths per level (ViT only; ``None`` for CNNs).
    ``head_block``/``block_depth``/``activation``: the optional spatial-regularisation blocks applied to the
    logit maps (official ``arch_option`` 1 = bottleneck, 2 = depthwise). ``logit_scale``: multiplier of the
    cosine similarities (1/0.07, fixed unless ``learnable_scale``).
    """

    backbone: str = "resnet18"
    backbone_pretrained: bool = False
    hooks: tuple[int, ...] = (5, 11, 17, 23)
    out_indices: tuple[int, ...] = (1, 2, 3, 4)
    readout: Readout = "project"
    reassemble_channels: tuple[int, ...] | None = None
    features: int = 64
    use_bn: bool = True
    head_block: HeadBlock = "none"
    block_depth: int = 0
    activation: Activation = "lrelu"
    logit_scale: float = 1 / 0.07
    learnable_scale: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_size: int = 480
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to JSON-compatible data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, _where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Path:
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], _where: str | None = None) -> T:
    """Build config ``cls`` from plain data; unknown or mistyped fields raise :class:`ConfigError`."""
    where = _where or cls.__name__
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a config as pretty JSON (atomically)."""
    from lseg_nb.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2) + "\n")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config of type ``cls`` from a JSON or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
