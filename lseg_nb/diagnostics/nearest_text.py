"""Per-pixel nearest vocabulary text: what would each pixel be called given an open (larger) vocabulary?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lseg_nb.diagnostics.neighbours import check_text
from lseg_nb.diagnostics.sampling import ArrayLike, as_tensor


def nearest_text_map(
    pixel_emb: ArrayLike,
    text_emb: ArrayLike,
    vocabulary: Sequence[str],
    out_size: tuple[int, int] | None = None,
    chunk_size: int = 256,
    align_corners: bool = True,
) -> tuple[Tensor, Tensor]:
    """Index and cosine similarity of the nearest vocabulary text for every pixel.

    ``pixel_emb`` ``(B, D, h, w)`` or ``(D, h, w)``; ``text_emb`` ``(V, D)`` for ``vocabulary`` (may be much
    larger than the dataset's labels). Returns ``(indices (B, H, W) long, sims (B, H, W) float32)`` without the
    batch dimension for a 3-D input. With ``out_size`` the similarity maps are bilinearly upsampled before the
    argmax with the model's resize rule (``align_corners``: ``model.align_corners``, True for LSeg as its head
    does for logits, False for the dense-CLIP baselines); to bound memory this runs per image over
    ``chunk_size`` texts at a time, keeping a running maximum.
    """
    emb = as_tensor(pixel_emb, "pixel_emb", torch.float32)
    single = emb.ndim == 3
    if single:
        emb = emb[None]
    if emb.ndim != 4:
        raise ValueError(f"pixel_emb must be (B, D, h, w) or (D, h, w), got {tuple(emb.shape)}")
    emb = F.normalize(emb, dim=1)
    text = check_text(text_emb, vocabulary, emb.shape[1], "text_emb")
    size = tuple(out_size) if out_size is not None else tuple(emb.shape[-2:])
    indices, sims = [], []
    for img in emb:
        best = torch.full(size, -float("inf"))
        arg = torch.zeros(size, dtype=torch.long)
        for start in range(0, text.shape[0], chunk_size):
            s = torch.einsum("dhw,vd->vhw", img, text[start : start + chunk_size])
            if size != tuple(s.shape[-2:]):
                s = F.interpolate(s[None], size=size, mode="bilinear", align_corners=align_corners)[0]
            val, idx = s.max(0)
            better = val > best  # strict: ties keep the earlier vocabulary entry, as argmax does
            best = torch.where(better, val, best)
            arg = torch.where(better, idx + start, arg)
        indices.append(arg)
        sims.append(best)
    idx_t, sim_t = torch.stack(indices), torch.stack(sims)
    return (idx_t[0], sim_t[0]) if single else (idx_t, sim_t)


def vocabulary_shares(
    indices: ArrayLike, vocabulary: Sequence[str], top: int | None = None
) -> list[tuple[str, float]]:
    """Share of pixels assigned to each vocabulary entry, most frequent first (only entries that occur)."""
    idx = as_tensor(indices, "indices", torch.long).reshape(-1).numpy()
    counts = np.bincount(idx, minlength=len(vocabulary))
    if len(counts) > len(vocabulary):
        raise ValueError(f"indices go up to {idx.max()} but the vocabulary has {len(vocabulary)} entries")
    order = [i for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:top]
    return [(vocabulary[i], float(counts[i] / idx.size)) for i in order]
