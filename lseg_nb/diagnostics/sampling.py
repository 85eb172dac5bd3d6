"""Stratified, capped, streaming pixel sampling shared by the embedding diagnostics.

Every valid pixel gets an independent uniform random key; per class we keep the pixels with the smallest keys
(a bottom-k sample, i.e. uniform without replacement). The per-class quota is the largest integer
``q <= per_class`` with ``sum_c min(n_c, q) <= max_total`` ("water filling", so rare classes keep all their
pixels and frequent ones are cut evenly). Because the counts ``n_c`` only grow, ``q`` only shrinks while
streaming, so truncating a class to its ``q`` smallest keys never throws away a pixel that the one-shot sample
would keep: chunked and one-shot sampling give the same result for the same seed and pixel order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ArrayLike = Tensor | np.ndarray


def as_tensor(x: ArrayLike, name: str, dtype: torch.dtype | None = None) -> Tensor:
    """``x`` as a CPU tensor (numpy arrays are accepted everywhere in the diagnostics)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    x = x.detach().cpu()
    return x.to(dtype) if dtype is not None else x


def flatten_pixels(pixel_emb: ArrayLike, labels: ArrayLike) -> tuple[Tensor, Tensor]:
    """``(N, D)`` + ``(N,)`` or a map ``(B, D, h, w)`` + labels ``(B, H, W)`` -> ``(N, D)``, ``(N,)``.

    Label maps at a different resolution from the embedding map are resized with nearest neighbour onto the
    embedding grid (the embeddings are what is being diagnosed; labels are not interpolated).
    """
    emb = as_tensor(pixel_emb, "pixel_emb", torch.float32)
    lab = as_tensor(labels, "labels", torch.long)
    if emb.ndim == 2:
        if lab.shape != emb.shape[:1]:
            raise ValueError(
                f"labels must be (N,) = ({emb.shape[0]},) for pixel_emb (N, D), got {tuple(lab.shape)}"
            )
        return emb, lab
    if emb.ndim == 3:
        emb = emb[None]
    if lab.ndim == 2:
        lab = lab[None]
    if emb.ndim != 4 or lab.ndim != 3 or lab.shape[0] != emb.shape[0]:
        raise ValueError(
            f"expected pixel_emb (B, D, h, w) with labels (B, H, W), got {tuple(emb.shape)} and {tuple(lab.shape)}"
        )
    b, d, h, w = emb.shape
    if tuple(lab.shape[-2:]) != (h, w):
        lab = F.interpolate(lab[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    return emb.permute(0, 2, 3, 1).reshape(-1, d), lab.reshape(-1)


def water_level(counts: dict[int, int], per_class: int, max_total: int) -> int:
    """Largest ``q <= per_class`` with ``sum_c min(counts[c], q) <= max_total``."""
    lo, hi = 0, per_class
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in counts.values()) <= max_total:
            lo = mid
        else:
            hi = mid - 1
    return lo


class PixelSampler:
    """Streaming stratified sampler; call :meth:`update` per batch, then :meth:`result`.

    Memory bound: the kept state is at most ``max_total`` pixels, i.e. ``max_total * (D + 2)`` numbers
    (embedding + key + label), whatever the dataset size; the only transient memory is the current batch.
    """

    def __init__(self, per_class: int, max_total: int, seed: int = 0, ignore_index: int = 255) -> None:
        if per_class < 1 or max_total < 1:
            raise ValueError(f"per_class and max_total must be >= 1, got {per_class} and {max_total}")
        self.per_class, self.max_total, self.ignore_index = per_class, max_total, ignore_index
        self.rng = np.random.default_rng(seed)
        self.seen: dict[int, int] = {}  # pixels seen per class (capped at per_class: that is all q can use)
        self.keys: dict[int, np.ndarray] = {}
        self.emb: dict[int, np.ndarray] = {}
        self.dim: int | None = None
        self.n_valid = 0  # all non-ignored pixels offered so far

    def update(self, pixel_emb: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch: ``(B, D, h, w)`` + ``(B, H, W)`` or ``(N, D)`` + ``(N,)``."""
        emb, lab = flatten_pixels(pixel_emb, labels)
        if self.dim is not None and emb.shape[1] != self.dim:
            raise ValueError(f"embedding dim changed between batches: {self.dim} then {emb.shape[1]}")
        self.dim = emb.shape[1]
        # Keys are drawn for every pixel (ignored ones too) so the key stream depends only on pixel order.
        keys = self.rng.random(lab.shape[0])
        valid = lab != self.ignore_index
        emb, lab, keys = emb[valid].numpy(), lab[valid].numpy(), keys[valid.numpy()]
        self.n_valid += len(lab)
        for c in np.unique(lab).tolist():
            self.seen[c] = min(self.seen.get(c, 0) + int((lab == c).sum()), self.per_class)
        q = water_level(self.seen, self.per_class, self.max_total)
        for c in np.unique(lab).tolist():
            sel = lab == c
            self._merge(c, keys[sel], emb[sel], q)
        for c in list(self.keys):
            self._truncate(c, q)

    @property
    def n_kept(self) -> int:
        """Pixels currently held (never more than ``max_total`` between updates)."""
        return sum(len(k) for k in self.keys.values())

    def _merge(self, c: int, keys: np.ndarray, emb: np.ndarray, q: int) -> None:
        if len(keys) > q:  # pre-select inside the batch so the merge never holds more than 2q rows
            part = np.argpartition(keys, q - 1)[:q] if q > 0 else np.zeros(0, dtype=np.int64)
            keys, emb = keys[part], emb[part]
        if c in self.keys:
            keys = np.concatenate([self.keys[c], keys])
            emb = np.concatenate([self.emb[c], emb])
        self.keys[c], self.emb[c] = keys, emb

    def _truncate(self, c: int, q: int) -> None:
        order = np.argsort(self.keys[c], kind="stable")[:q]
        self.keys[c], self.emb[c] = self.keys[c][order], self.emb[c][order]

    def result(self) -> tuple[Tensor, Tensor]:
        """Sampled ``(N, D)`` float32 embeddings and ``(N,)`` int64 labels, grouped by class then key."""
        classes = sorted(c for c in self.keys if len(self.keys[c]))
        if not classes:
            raise ValueError(
                "no pixels were sampled: every label was ignore_index, no batch was given, or max_total is "
                "smaller than the number of classes"
            )
        emb = np.concatenate([self.emb[c] for c in classes]).astype(np.float32)
        lab = np.concatenate([np.full(len(self.keys[c]), c, dtype=np.int64) for c in classes])
        return torch.from_numpy(emb), torch.from_numpy(lab)


def sample_pixels(
    pixel_emb: ArrayLike | Iterable[tuple[ArrayLike, ArrayLike]],
    labels: ArrayLike | None = None,
    per_class: int = 2000,
    max_total: int = 20000,
    seed: int = 0,
    ignore_index: int = 255,
) -> tuple[Tensor, Tensor]:
    """Stratified, capped, deterministic pixel sample -> ``(emb (N, D) float32, labels (N,) int64)``.

    ``pixel_emb`` is a map ``(B, D, h, w)`` with ``labels`` ``(B, H, W)`` (nearest-resized to ``h x w``), a flat
    ``(N, D)`` with ``labels (N,)``, or an iterable of such ``(emb, labels)`` batches (``labels=None``).
    At most ``per_class`` pixels per class and ``max_total`` overall; pixels labelled ``ignore_index`` are
    skipped. Memory stays below ``max_total * (D + 2)`` numbers plus one batch, whatever the dataset size.
    """
    sampler = PixelSampler(per_class, max_total, seed, ignore_index)
    feed(sampler, pixel_emb, labels)
    return sampler.result()


def feed(
    sampler: PixelSampler,
    pixel_emb: ArrayLike | Iterable[tuple[ArrayLike, ArrayLike]],
    labels: ArrayLike | None = None,
) -> None:
    """Update ``sampler`` with one tensor (and its ``labels``) or every ``(emb, labels)`` batch of an iterable."""
    if isinstance(pixel_emb, Tensor | np.ndarray):
        if labels is None:
            raise ValueError("labels are required when pixel_emb is a single tensor")
        sampler.update(pixel_emb, labels)
        return
    if labels is not None:
        raise ValueError("pass labels inside the (emb, labels) batches when pixel_emb is an iterable")
    for batch in pixel_emb:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError("each batch must be an (emb, labels) pair")
        sampler.update(*batch)
