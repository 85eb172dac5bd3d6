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


def _default_model() -> ModelConfig:
    from lseg_nb.models.lseg import MODEL_CONFIGS

    return MODEL_CONFIGS["lseg_small_cpu"]


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, split and augmentation.

    ``dataset``: manifest name in ``data_manifests/`` (``msrc_v2``, ``synthetic_textures``) or a path to a YAML
    manifest. ``data_root``: dataset folder (else ``$LSEG_NB_DATA`` or ``../shared/datasets/<name>``).
    ``fold``: zero-shot fold whose unseen classes are never training targets (their pixels are ignored).
    ``max_images``: cap per split, for smoke runs.
    """

    dataset: str = "synthetic_textures"
    data_root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    fold: int | None = 0
    crop_size: int = 96
    scale_range: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    max_images: int | None = None
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Defaults: the small CPU model on the offline synthetic dataset, fold 0.

    Paper recipe (ViT-L, ADE20K/PASCAL): ``optimizer='sgd', lr=0.004, decoder_lr_mult=10, weight_decay=1e-4,
    schedule='poly'`` (power 0.9), batch 6 per GPU, 480 crops, ``amp='fp16'``.
    """

    model: ModelConfig = field(default_factory=_default_model)
    data: DataConfig = field(default_factory=DataConfig)
    run_dir: str = "runs/train"
    steps: int = 300
    batch_size: int = 8
    grad_accum: int = 1
    optimizer: Literal["sgd", "adamw"] = "adamw"
    schedule: Literal["poly", "cosine"] = "cosine"
    lr: float = 2e-3
    decoder_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    momentum: float = 0.9
    poly_power: float = 0.9
    warmup_steps: int = 0
    loss: Literal["ce", "binary"] = "ce"
    ignore_index: int = 255
    amp: Literal["none", "bf16", "fp16"] = "none"
    compile: bool = False
    sync_bn: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    eval_every: int = 0
    eval_max_images: int | None = None
    resume: bool = True
    progress: bool = True
