"""LSeg head: 1x1 conv to the text dimension, unit-norm pixel embeddings, scaled cosine logits.

Optional spatial-regularisation blocks act on the logit maps with one 3x3 kernel shared by all labels (so any
number of labels works), as the official ``arch_option`` 1 (bottleneck, adds the per-pixel max logit) and 2
(depthwise); the same block is applied ``block_depth`` times, the last without activation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import Activation, HeadBlock

_ACTS = {"relu": nn.ReLU, "lrelu": nn.LeakyReLU, "tanh": nn.Tanh}


class SharedDepthwise(nn.Module):
    """The same 1->1 channel 3x3 conv applied to every label's logit map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        b, k, h, w = x.shape
        return self.conv(x.reshape(b * k, 1, h, w)).reshape(b, k, h, w)


class RegularisationBlock(nn.Module):
    """``bottleneck``: conv(x) + max_k(x); ``depthwise``: conv(x); followed by the activation when ``act``."""

    def __init__(self, kind: HeadBlock, activation: Activation) -> None:
        super().__init__()
        self.kind = kind
        self.depthwise = SharedDepthwise()
        self.act = _ACTS[activation]()

    def forward(self, x: Tensor, act: bool = True) -> Tensor:
        out = self.depthwise(x)
        if self.kind == "bottleneck":
            out = out + x.max(dim=1, keepdim=True).values
        return self.act(out) if act else out


class LSegHead(nn.Module):
    """Pixel features -> unit embeddings ``(B, D, h, w)``; embeddings x text ``(K, D)`` -> logits ``(B, K, H, W)``."""

    def __init__(
        self,
        in_channels: int,
        text_dim: int,
        logit_scale: float = 1 / 0.07,
        learnable_scale: bool = False,
        block: HeadBlock = "none",
        block_depth: int = 0,
        activation: Activation = "lrelu",
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, text_dim, kernel_size=1)
        log_scale = torch.tensor(math.log(logit_scale))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)
        if block != "none" and block_depth < 1:
            raise ValueError(f"head_block={block!r} needs block_depth >= 1")
        self.block = RegularisationBlock(block, activation) if block != "none" else None
        self.block_depth = block_depth if block != "none" else 0

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def embed(self, features: Tensor) -> Tensor:
        """Decoder features ``(B, C, h, w)`` -> L2-normalised pixel embeddings ``(B, D, h, w)``."""
        return F.normalize(self.proj(features), dim=1)

    def logits(self, pixel_emb: Tensor, text_emb: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Scaled cosine logits ``(B, K, H, W)``, regularised and bilinearly upsampled to ``size``.

        ``text_emb`` is ``(K, D)`` (one label set) or ``(B, K, D)`` (a label set per image, e.g. episodes).
        """
        text_emb = F.normalize(text_emb.to(device=pixel_emb.device, dtype=pixel_emb.dtype), dim=-1)
        pattern = "bdhw,kd->bkhw" if text_emb.ndim == 2 else "bdhw,bkd->bkhw"
        out = torch.einsum(pattern, pixel_emb, text_emb) * self.scale.to(pixel_emb.dtype)
        for i in range(self.block_depth):
            out = self.block(out, act=i < self.block_depth - 1)
        return self.upsample(out, size)

    @staticmethod
    def upsample(logits: Tensor, size: tuple[int, int] | None) -> Tensor:
        """Logit maps ``(B, K, h, w)`` resized to ``size`` (bilinear, ``align_corners=True`` as the official
        ``output_conv``); unchanged when ``size`` is ``None`` or already the map size."""
        if size is None or tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)
