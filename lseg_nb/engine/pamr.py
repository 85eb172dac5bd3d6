"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels",
CVPR 2020), the optional last step of the training-free dense-CLIP protocols.

Each step replaces a pixel's scores by a convex combination of its neighbours' scores, weighted by how similar
their colours are. For an image ``I`` (``C`` channels) and dilations ``D``, the neighbours of pixel ``i`` are the
8 pixels at offsets ``d * (dy, dx)``, ``dy, dx in {-1, 0, 1}``, ``(dy, dx) != (0, 0)``, for every ``d`` in ``D``
(``P = 8 |D|`` of them; coordinates outside the image are clamped to the border, i.e. replicate padding). Then

* ``sigma_c(i)``: the unbiased standard deviation of channel ``c`` over the ``9 |D|`` values made of, for each
  dilation, the centre ``I_c(i)`` and its 8 neighbours (so the centre counts once per dilation);
* ``kappa(i, j) = mean_c -|I_c(i) - I_c(j)| / (1e-8 + 0.1 * sigma_c(i))`` for each neighbour ``j``;
* ``alpha(i, .) = softmax_j kappa(i, j)`` over the ``P`` neighbours (the centre itself is not among them);
* ``m_{t+1}(i) = sum_j alpha(i, j) m_t(j)``, ``steps`` times, for every score channel of ``m`` independently.

This is the reference implementation's computation (visinf/1-stage-wseg@d905fca ``models/mods/pamr.py``:
``LocalAffinity`` shift kernels with replicate padding l.10-55, ``LocalStDev`` = ``std`` over the 9 shifts of each
dilation concatenated l.77-103, ``PAMR.forward`` l.124-143); SCLIP (wangf3014/SCLIP@b56bd30 ``pamr.py``) and NACLIP
(sinahmr/NACLIP@0cac3a6 ``pamr.py``) ship the same code. The reference also resizes the scores to the image size
(bilinear, ``align_corners=True``) first; both callers pass scores already at the image size, so this module asks
for equal sizes instead.

Parameters of the protocols: NACLIP ``pamr_steps=10, pamr_stride=(8, 16)`` (``naclip.py:21``, on by default);
SCLIP has the same dilations but ``pamr_steps=0`` (``clip_segmentor.py:20``, off in every config); the original
paper's defaults are 10 steps with dilations ``[1, 2, 4, 8, 12, 24]`` (1-stage-wseg ``core/config.py:89-90``).

Two properties the protocols rely on (both tested): the refinement is linear in the scores, so refining raw cosine
logits (what SCLIP and NACLIP do) and then multiplying by the logit scale equals refining the scaled logits (but not
refining probabilities); and ``kappa`` is invariant to a positive per-channel affine change of the image (up to the
``1e-8``), so a mean/std-normalised image gives the same weights as the raw one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: NACLIP's defaults (sinahmr/NACLIP@0cac3a6 ``naclip.py:21``).
PAMR_STEPS = 10
PAMR_DILATIONS = (8, 16)
_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def _check_dilations(dilations: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(d) for d in dilations)
    if not out or any(d < 1 for d in out) or any(d != float(e) for d, e in zip(out, dilations)):
        raise ValueError(
            f"PAMR dilations must be a non-empty sequence of integers >= 1, got {tuple(dilations)}"
        )
    return out


def _neighbours(x: Tensor, d: int) -> list[Tensor]:
    """The 8 views of ``x`` ``(N, C, H, W)`` shifted by ``d * (dy, dx)``, borders replicated (clamped)."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (d, d, d, d), mode="replicate")
    return [xp[..., d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w] for dy, dx in _OFFSETS]


def pamr_affinity(image: Tensor, dilations: Sequence[int] = PAMR_DILATIONS) -> Tensor:
    """Neighbour weights ``alpha`` of every pixel: image ``(B, C, H, W)`` -> ``(B, 8 * len(dilations), H, W)``.

    Float32; each pixel's weights are non-negative and sum to 1 (see the module docstring for the formula). The
    neighbour order is dilation-major, offsets row-major without the centre, as :func:`pamr` consumes them.
    """
    if image.ndim != 4:
        raise ValueError(f"PAMR image must be (B, C, H, W), got {tuple(image.shape)}")
    dil = _check_dilations(dilations)
    x = image.float()
    shifted = torch.stack([n for d in dil for n in _neighbours(x, d)], dim=2)  # (B, C, P, H, W)
    centre = x.unsqueeze(2)
    sigma = torch.cat([shifted, centre.expand(-1, -1, len(dil), -1, -1)], dim=2).std(dim=2, keepdim=True)
    kappa = -(centre - shifted).abs() / (1e-8 + 0.1 * sigma)
    return kappa.mean(dim=1).softmax(dim=1)


def pamr(
    image: Tensor,
    scores: Tensor,
    steps: int = PAMR_STEPS,
    dilations: Sequence[int] = PAMR_DILATIONS,
) -> Tensor:
    """Refine per-pixel scores with PAMR: ``(B, K, H, W)`` -> float32 ``(B, K, H, W)``.

    Args:
        image: the image the scores belong to, ``(B, C, H, W)`` at the scores' size (raw or normalised: the weights
            are invariant to per-channel affine changes).
        scores: logits (or any scores) ``(B, K, H, W)``; each of the ``K`` channels is refined independently.
        steps: number of refinement steps; 0 returns the scores unchanged (as float32).
        dilations: neighbourhood dilations in pixels (reference protocols: ``(8, 16)``).
    """
    if scores.ndim != 4 or image.ndim != 4:
        raise ValueError(
            f"PAMR needs image (B, C, H, W) and scores (B, K, H, W), got {tuple(image.shape)} and "
            f"{tuple(scores.shape)}"
        )
    if image.shape[0] != scores.shape[0] or image.shape[-2:] != scores.shape[-2:]:
        raise ValueError(
            f"PAMR image {tuple(image.shape)} and scores {tuple(scores.shape)} differ in batch or size: resize the "
            "scores to the image (the reference protocols refine at the label-map size)"
        )
    if int(steps) != steps or steps < 0:
        raise ValueError(f"PAMR steps must be an integer >= 0, got {steps}")
    dil = _check_dilations(dilations)
    m = scores.float()
    if steps == 0:
        return m
    alpha = pamr_affinity(image.to(m.device), dil)
    for _ in range(int(steps)):
        # one dilation's 8 shifted views at a time: memory stays O(K H W) instead of O(P K H W)
        out = torch.zeros_like(m)
        p = 0
        for d in dil:
            for view in _neighbours(m, d):
                out += alpha[:, p : p + 1] * view
                p += 1
        m = out
    return m
