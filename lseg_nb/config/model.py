"""Model configs: the text encoder and the LSeg architecture (plain frozen dataclasses, validated on creation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lseg_nb.config.serialize import check_fields, require

TextEncoderKind = Literal["open_clip", "sentence_transformers", "random", "one_hot", "learned"]
Readout = Literal["ignore", "add", "project"]
HeadBlock = Literal["none", "bottleneck", "depthwise"]
Activation = Literal["relu", "lrelu", "tanh"]


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which frozen text encoder embeds label strings.

    ``name``: open_clip model name (``ViT-B-32``) or sentence-transformers name/path (``all-MiniLM-L6-v2``).
    ``pretrained``: open_clip pretrained tag (``openai``) or a local checkpoint path; ``None`` = random weights.
    ``dim``: embedding size for the ``random`` encoder (others report their own).
    ``vocabulary``: label set of the ``one_hot`` and ``learned`` encoders (labels outside it cannot be embedded).
    ``learned``: NOT a text encoder - the closed-set baseline. Each vocabulary label gets a trainable ``dim``-d
    vector (seeded random init) learned with the rest of the model: a cosine linear classifier over a fixed label
    set, with everything else (image encoder, decoder, head, loss, temperature) identical to LSeg.
    ``templates``: prompt templates with ``{}``; each template's embedding is L2-normalised, the templates are
    averaged and the mean is normalised again.
    """

    kind: TextEncoderKind = "sentence_transformers"
    name: str = "all-MiniLM-L6-v2"
    pretrained: str | None = None
    dim: int = 512
    seed: int = 0
    vocabulary: tuple[str, ...] = ()
    templates: tuple[str, ...] = ("{}",)

    def __post_init__(self) -> None:
        check_fields(self)
        require(self.dim >= 1, "text.dim", f"must be >= 1, got {self.dim}")
        require(
            self.kind != "learned" or bool(self.vocabulary),
            "text.vocabulary",
            "the learned label table (closed-set baseline) needs its label set, e.g. the training labels",
        )
        require(bool(self.templates), "text.templates", "needs at least one template such as '{}'")
        for t in self.templates:
            require("{}" in t, "text.templates", f"template {t!r} has no '{{}}' placeholder for the label")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an LSeg model: backbone, DPT decoder, head and text encoder.

    ``hooks``: ViT block indices tapped for the four decoder levels (ignored by CNN backbones, which use
    ``out_indices``). ``reassemble_channels``: DPT reassemble widths per level (ViT only; ``None`` for CNNs).
    ``head_block``/``block_depth``/``activation``: the optional spatial-regularisation blocks applied to the
    logit maps (official ``arch_option`` 1 = bottleneck, 2 = depthwise). ``logit_scale``: multiplier of the
    cosine similarities (1/0.07, fixed unless ``learnable_scale``).
    ``backbone_weights``: a local timm/torchvision checkpoint file (``.safetensors``, or ``.pth``/``.pt``/``.bin``
    read with ``weights_only=True``) loaded into the backbone instead of downloading the pretrained weights: set,
    it replaces ``backbone_pretrained`` (nothing is fetched). Formats and checks: :mod:`lseg_nb.models.backbone_weights`.
    ``crop_size``: the model's input window — THE one place that sets both the training crop and the
    evaluation window (sliding and multi-scale inference); nothing else may disagree with it.
    """

    backbone: str = "resnet18"
    backbone_pretrained: bool = False
    backbone_weights: str | None = None
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

    def __post_init__(self) -> None:
        check_fields(self)
        require(self.features >= 1, "model.features", f"must be >= 1, got {self.features}")
        require(self.crop_size >= 1, "model.crop_size", f"must be >= 1, got {self.crop_size}")
        require(len(self.hooks) == 4 and min(self.hooks) >= 0, "model.hooks", "needs 4 block indices >= 0")
        require(
            len(self.out_indices) == 4 and min(self.out_indices) >= 0,
            "model.out_indices",
            "needs 4 stage indices >= 0",
        )
        require(
            self.reassemble_channels is None
            or (len(self.reassemble_channels) == 4 and min(self.reassemble_channels) >= 1),
            "model.reassemble_channels",
            "needs 4 positive widths (or None for CNN backbones)",
        )
        require(self.block_depth >= 0, "model.block_depth", f"must be >= 0, got {self.block_depth}")
        require(self.logit_scale > 0, "model.logit_scale", f"must be > 0, got {self.logit_scale}")
        require(min(self.std) > 0, "model.std", f"must be positive, got {self.std}")
        require(bool(self.backbone.strip()), "model.backbone", "must name a timm model")
        require(
            self.backbone_weights is None or bool(self.backbone_weights.strip()),
            "model.backbone_weights",
            "must be a weights file path (or None to use backbone_pretrained)",
        )
