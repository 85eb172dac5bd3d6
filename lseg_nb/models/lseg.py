"""The LSeg model: image encoder -> DPT decoder -> head, scored against frozen text embeddings.

One forward path for everything: zero-shot is just a different ``text_emb``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import Tensor, nn

from lseg_nb.config import MODEL_CONFIGS, ModelConfig, get_config, list_models
from lseg_nb.models.decoder import DPTDecoder
from lseg_nb.models.head import LSegHead
from lseg_nb.models.image_encoder import create_image_encoder
from lseg_nb.models.text_encoder import TextEncoder, check_text_embeddings, create_text_encoder


class LSeg(nn.Module):
    """Composes ``image_encoder``, ``decoder``, ``head`` and a frozen ``text_encoder``."""

    #: the resize rule of score maps (logits, similarities): bilinear, as the official ``output_conv``
    align_corners = True

    def __init__(
        self,
        config: ModelConfig,
        image_encoder: nn.Module,
        decoder: DPTDecoder,
        head: LSegHead,
        text_encoder: TextEncoder,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.decoder = decoder
        self.head = head
        self.text_encoder = text_encoder

    @property
    def text_dim(self) -> int:
        """Dimension of the joint pixel/text embedding space."""
        return int(self.head.proj.out_channels)

    @property
    def logit_scale(self) -> float:
        """The factor between logits and cosine similarities (``1/0.07`` by default; before any head block)."""
        return float(self.head.scale)

    @property
    def size_multiple(self) -> int:
        """Input sides the backbone handles exactly: its coarsest stride (32 for CNNs, the patch for ViTs)."""
        return int(max(self.image_encoder.reductions))

    def encode_text(self, labels: Sequence[str]) -> Tensor:
        """Label strings -> unit embeddings ``(K, D)`` (cached, no gradient)."""
        return self.text_encoder.encode(labels)

    def encode_image(self, images: Tensor) -> Tensor:
        """Normalised images ``(B, 3, H, W)`` -> unit pixel embeddings ``(B, D, H/2, W/2)``."""
        return self.head.embed(self.decoder(self.image_encoder(images)))

    def logits_from_embeddings(self, pixel_emb: Tensor, text_emb: Tensor, size: tuple[int, int]) -> Tensor:
        """Cached pixel embeddings + text embeddings -> logits ``(B, K, *size)``."""
        return self.head.logits(pixel_emb, text_emb, size)

    def upsample_logits(self, logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Resize logit maps ``(B, K, h, w)`` exactly as :meth:`logits_from_embeddings` does (so inference can
        combine maps at the embedding resolution and upsample once)."""
        return self.head.upsample(logits, size)

    def forward(self, images: Tensor, text_emb: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` and text embeddings ``(K, D)`` or ``(B, K, D)`` -> logits ``(B, K, H, W)``."""
        check_text_embeddings(
            text_emb, self.text_dim, images.shape[0], "use the same text encoder the model was built with"
        )
        return self.head.logits(self.encode_image(images), text_emb, images.shape[-2:])

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Everything but a frozen text encoder (rebuilt from ``config.text``); a trainable label table (the
        closed-set baseline) is kept."""
        keep_text = self.text_encoder.trainable
        return {k: v for k, v in self.state_dict().items() if keep_text or not k.startswith("text_encoder.")}


def build_lseg(cfg: ModelConfig, text_encoder: TextEncoder | None = None) -> LSeg:
    """Assemble an :class:`LSeg` from a config (text encoder built from ``cfg.text`` unless given)."""
    text_encoder = text_encoder or create_text_encoder(cfg.text)
    image_encoder = create_image_encoder(cfg)
    decoder = DPTDecoder(
        image_encoder.channels, image_encoder.reductions, cfg.features, cfg.reassemble_channels, cfg.use_bn
    )
    head = LSegHead(
        cfg.features,
        text_encoder.dim,
        cfg.logit_scale,
        cfg.learnable_scale,
        cfg.head_block,
        cfg.block_depth,
        cfg.activation,
    )
    return LSeg(cfg, image_encoder, decoder, head, text_encoder)


def create_model(
    name: str | ModelConfig,
    text_encoder: TextEncoder | None = None,
    pretrained: bool | None = None,
    **overrides,
) -> LSeg:
    """Build a named (or given) config. ``pretrained`` overrides ``backbone_pretrained``."""
    cfg = name if isinstance(name, ModelConfig) else get_config(name)
    if pretrained is not None:
        overrides["backbone_pretrained"] = pretrained
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    return build_lseg(cfg, text_encoder)


__all__ = ["MODEL_CONFIGS", "LSeg", "build_lseg", "create_model", "get_config", "list_models"]
