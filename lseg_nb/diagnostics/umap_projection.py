"""Joint 2-D UMAP of pixel and text embeddings (do unseen pixels cluster around their own label text?).

Pixels are first reduced by the stratified sampler (:mod:`lseg_nb.diagnostics.sampling`), so any number of
input pixels costs at most ``max_pixels * (D + 2)`` numbers of sample state plus one batch, and UMAP itself
only ever sees ``max_pixels + K`` points. UMAP is run with ``random_state=seed`` (single-threaded), so the same
inputs and seed give the same coordinates. The first UMAP call in a process compiles numba code (tens of
seconds); later calls are fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from lseg_nb.diagnostics.neighbours import check_groups, check_text
from lseg_nb.diagnostics.sampling import ArrayLike, PixelSampler, feed
from lseg_nb.utils.optional import import_optional


@dataclass
class UmapResult:
    """2-D coordinates of the sampled pixels followed by the ``K`` class texts."""

    coords: np.ndarray  # (P + K, 2) float32: pixels first, then texts in class order
    labels: np.ndarray  # (P + K,) class index of each point
    is_text: np.ndarray  # (P + K,) bool
    is_unseen: np.ndarray  # (P + K,) bool: the point's class is in ``unseen``
    class_names: list[str]
    n_input_pixels: int  # valid (non-ignored) pixels offered
    n_sampled_pixels: int  # P <= max_pixels

    @property
    def pixel_coords(self) -> np.ndarray:
        return self.coords[~self.is_text]

    @property
    def text_coords(self) -> np.ndarray:
        return self.coords[self.is_text]


def joint_umap(
    pixel_emb: ArrayLike | Iterable[tuple[ArrayLike, ArrayLike]],
    pixel_labels: ArrayLike | None,
    text_emb: ArrayLike,
    class_names: Sequence[str],
    seen: Sequence[int],
    unseen: Sequence[int],
    max_pixels: int = 20000,
    per_class: int | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    metric: str = "cosine",
    n_epochs: int | None = None,
    ignore_index: int = 255,
) -> UmapResult:
    """Fit one UMAP on a stratified pixel sample plus the class text embeddings.

    ``pixel_emb`` is ``(N, D)`` with ``pixel_labels`` ``(N,)``, a map ``(B, D, h, w)`` with ``(B, H, W)`` labels,
    or an iterable of ``(emb, labels)`` batches (``pixel_labels=None``). At most ``per_class`` (default
    ``max_pixels``, i.e. balanced water-filling) pixels per class and ``max_pixels`` in total are embedded.
    ``seen`` is recorded only through ``is_unseen`` (classes not in ``unseen`` count as seen).
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    check_groups(len(class_names), seen, unseen)
    sampler = PixelSampler(per_class or max_pixels, max_pixels, seed, ignore_index)
    feed(sampler, pixel_emb, pixel_labels)
    # umap-learn is in the 'diagnostics' extra, and importing it (numba, sklearn) costs seconds that every
    # `import lseg_nb.viz` / `lseg_nb.diagnostics` would otherwise pay
    umap = import_optional("umap", "diagnostics", "joint_umap (UMAP projection)")

    pix, lab = sampler.result()
    text = check_text(text_emb, class_names, pix.shape[1])
    points = np.concatenate([pix.numpy(), text.numpy()]).astype(np.float32)
    n_points = len(points)
    if n_points < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {n_points} (sampled pixels + texts)")
    reducer = umap.UMAP(
        n_neighbors=min(n_neighbors, n_points - 1),
        min_dist=min_dist,
        metric=metric,
        n_epochs=n_epochs,
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
    )
    coords = reducer.fit_transform(points).astype(np.float32)
    labels = np.concatenate([lab.numpy(), np.arange(len(class_names))])
    is_text = np.arange(n_points) >= len(pix)
    return UmapResult(
        coords=coords,
        labels=labels,
        is_text=is_text,
        is_unseen=np.isin(labels, np.asarray(unseen, dtype=int)),
        class_names=list(class_names),
        n_input_pixels=sampler.n_valid,
        n_sampled_pixels=len(pix),
    )
