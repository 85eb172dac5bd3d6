"""DPT decoder: reassemble four encoder maps to strides 4/8/16/32, then fuse them coarse-to-fine to stride 2.

Numerically identical to the official LSeg/DPT ``scratch`` (``layerN_rn`` 3x3 convs, ``FeatureFusionBlock_custom``
with batch-normalised residual conv units, bilinear x2 with ``align_corners=True``); the deepest fusion block has no
skip input, so it carries no unused residual unit (the official one does; the converter drops it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

TARGET_REDUCTIONS = (4, 8, 16, 32)


def _resample(channels: int, factor: float) -> nn.Module:
    if factor == 1:
        return nn.Identity()
    if factor > 1 and factor == int(factor):
        f = int(factor)
        return nn.ConvTranspose2d(channels, channels, kernel_size=f, stride=f)
    if factor == 0.5:
        return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
    raise ValueError(
        f"DPT reassemble cannot resample by {factor}: encoder strides must be 4x, 2x, 1x or 0.5x the targets"
    )


class Reassemble(nn.Module):
    """1x1 conv to ``out_ch`` then resample (ConvTranspose up, strided conv down) - DPT 'reassemble'."""

    def __init__(self, in_ch: int, out_ch: int, factor: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, kernel_size=1)
        self.resample = _resample(out_ch, factor)

    def forward(self, x: Tensor) -> Tensor:
        return self.resample(self.proj(x))


class ResidualConvUnit(nn.Module):
    """act -> conv3x3 -> (bn) -> act -> conv3x3 -> (bn), plus the input."""

    def __init__(self, features: int, use_bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        self.bn1 = nn.BatchNorm2d(features) if use_bn else nn.Identity()
        self.bn2 = nn.BatchNorm2d(features) if use_bn else nn.Identity()
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(self.act(x)))
        out = self.bn2(self.conv2(self.act(out)))
        return out + x


class FusionBlock(nn.Module):
    """DPT feature fusion: (+ RCU(skip)) -> RCU -> bilinear upsample -> 1x1 conv."""

    def __init__(self, features: int, use_bn: bool, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(features, use_bn) if has_skip else None
        self.unit = ResidualConvUnit(features, use_bn)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        # size= equals scale_factor=2 when shapes double exactly, and stays valid for odd sizes.
        size = size or (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTDecoder(nn.Module):
    """Reassemble + four fusion blocks at width ``features``; output ``(B, features, H/2, W/2)``."""

    def __init__(
        self,
        in_channels: Sequence[int],
        reductions: Sequence[int],
        features: int,
        reassemble_channels: Sequence[int] | None = None,
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        if reassemble_channels is not None:
            self.reassemble = nn.ModuleList(
                Reassemble(c, rc, r / t)
                for c, rc, r, t in zip(in_channels, reassemble_channels, reductions, TARGET_REDUCTIONS)
            )
            level_ch = list(reassemble_channels)
        else:
            if tuple(reductions) != TARGET_REDUCTIONS:
                raise ValueError(f"CNN stages must have strides {TARGET_REDUCTIONS}, got {tuple(reductions)}")
            self.reassemble = None
            level_ch = list(in_channels)
        self.layer_rn = nn.ModuleList(nn.Conv2d(c, features, 3, padding=1, bias=False) for c in level_ch)
        self.fusion = nn.ModuleList(FusionBlock(features, use_bn, has_skip=i < 3) for i in range(4))
        self.out_channels = features

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        if self.reassemble is not None:
            feats = [m(f) for m, f in zip(self.reassemble, feats)]
        l1, l2, l3, l4 = (conv(f) for conv, f in zip(self.layer_rn, feats))
        p = self.fusion[3](l4, size=l3.shape[-2:])
        p = self.fusion[2](p, l3, size=l2.shape[-2:])
        p = self.fusion[1](p, l2, size=l1.shape[-2:])
        return self.fusion[0](p, l1)
