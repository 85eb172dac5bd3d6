"""Joint 2-D UMAP of pixel and text embeddings (do unseen pixels cluster around their own label text?).

Pixels are first reduced by the stratified sampler (:mod:`lseg_nb.diagnostics.sampling`), so any number of
input pixels costs at most ``max_pixels * (D + 2)`` numbers of sample state plus one batch, and UMAP itself
only ever sees ``max_pixels + K`` points. UMAP is run with ``random_state=seed`` (single-threaded), so the same
inputs and seed give the same coordinates. The first UMAP call in a process compiles numba code (tens of
seconds); later calls are fast.

**The modality gap.** Image and text embeddings of a contrastive model occupy two separate narrow cones of the
sphere: every pixel is nearer to every other pixel than to any text, so a joint UMAP of the raw embeddings puts
all label texts on one point far from every pixel cluster and says nothing about which text a cluster is near.
:func:`centre_modalities` (``centre=True``, the default) removes the gap before the projection: it subtracts
each modality's own mean (the pixel mean over the stratified sample, the text mean over the ``K`` class texts)
and renormalises. That is a translation of each cone to the origin, so it keeps every within-modality
geometry, and the 2-D map then shows how the *differences between classes* line up across the two modalities.

**The numeric companion.** UMAP distorts global distances, so the figure's question is also answered by a
number computed in the embedding space, not in 2-D: for each class, the rank of its own text among all ``K``
class texts by cosine similarity to the class's pixel centroid (1 = its own text is the nearest,
:func:`centroid_text_ranks`). ``rank`` uses the raw embeddings (the scores the classifier compares, for the
class's mean pixel); ``rank_centred`` uses the centred embeddings the map is drawn from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lseg_nb.diagnostics.neighbours import check_groups, check_text
from lseg_nb.diagnostics.sampling import ArrayLike, PixelSampler, as_tensor, feed
from lseg_nb.utils.optional import import_optional


@dataclass
class ClassTextRank:
    """Where one class's pixel centroid sits among the ``K`` class texts (see the module docstring)."""

    index: int
    name: str
    unseen: bool
    n_pixels: int  # sampled pixels of the class (0: no pixels, ranks NaN)
    rank: float  # rank of the own text by cosine to the raw pixel centroid (1 = nearest)
    nearest: str | None  # the text nearest to the raw pixel centroid
    rank_centred: float  # the same rank in the modality-centred space the map is drawn from


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
    centred: bool = False  # each modality was centred before the projection (the modality gap removed)
    ranks: list[ClassTextRank] = field(default_factory=list)  # one per class, in class order

    @property
    def pixel_coords(self) -> np.ndarray:
        return self.coords[~self.is_text]

    @property
    def text_coords(self) -> np.ndarray:
        return self.coords[self.is_text]

    def pixel_centroids(self) -> np.ndarray:
        """``(K, 2)`` mean 2-D position of each class's pixels (NaN rows for classes without pixels)."""
        k = len(self.class_names)
        lab = self.labels[~self.is_text]
        sums = np.zeros((k, 2))
        np.add.at(sums, lab, self.pixel_coords)
        counts = np.bincount(lab, minlength=k)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan)

    def rank1_counts(self, unseen: bool) -> tuple[int, int]:
        """``(classes whose own text is the nearest to their pixel centroid, classes with pixels)`` of a group."""
        rows = [r for r in self.ranks if r.unseen == unseen and r.n_pixels > 0]
        return sum(r.rank == 1 for r in rows), len(rows)

    def rank_rows(self) -> list[dict]:
        """One flat dict per class (the :class:`ClassTextRank` fields, the name first), ready for a table."""
        return [{"name": r.name, **vars(r)} for r in self.ranks]

    def rank_dataframe(self):
        """:meth:`rank_rows` as a ``pandas.DataFrame`` indexed by class name."""
        pd = import_optional("pandas", "notebooks", "UmapResult.rank_dataframe")
        return pd.DataFrame(self.rank_rows()).set_index("name")


def centre_modalities(pixel_emb: ArrayLike, text_emb: ArrayLike) -> tuple[Tensor, Tensor]:
    """Subtract each modality's own mean from its unit-normalised rows, then renormalise the rows.

    Args:
        pixel_emb: ``(P, D)`` pixel embeddings; their mean is taken over these rows.
        text_emb: ``(K, D)`` text embeddings; their mean is taken over these rows.
    """
    pix = F.normalize(as_tensor(pixel_emb, "pixel_emb", torch.float32), dim=-1)
    text = F.normalize(as_tensor(text_emb, "text_emb", torch.float32), dim=-1)
    if pix.ndim != 2 or text.ndim != 2 or pix.shape[1] != text.shape[1]:
        raise ValueError(
            f"expected (P, D) and (K, D) embeddings, got {tuple(pix.shape)} and {tuple(text.shape)}"
        )
    if len(text) < 2:
        raise ValueError("centring the texts needs at least 2 class texts (one text minus its mean is zero)")
    return F.normalize(pix - pix.mean(0), dim=-1), F.normalize(text - text.mean(0), dim=-1)


def _own_text_rank(centroids: Tensor, text: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per class: 1 + number of texts strictly more similar to its centroid than its own; and the nearest text."""
    sims = F.normalize(centroids, dim=-1) @ F.normalize(text, dim=-1).T
    own = sims.diagonal()[:, None]
    return (1 + (sims > own).sum(1)).numpy(), sims.argmax(1).numpy()


def centroid_text_ranks(
    pixel_emb: ArrayLike,
    pixel_labels: ArrayLike,
    text_emb: ArrayLike,
    class_names: Sequence[str],
    unseen: Sequence[int],
) -> list[ClassTextRank]:
    """Rank of each class's own text among all class texts by cosine to the class's pixel centroid.

    Ties count in the class's favour. Classes without pixels get NaN ranks and ``nearest=None``.

    Args:
        pixel_emb: ``(P, D)`` pixel embeddings (each row is unit-normalised before averaging).
        pixel_labels: ``(P,)`` class index of each pixel, in ``0..K-1``.
        text_emb: ``(K, D)`` class text embeddings in class order.
        class_names: the ``K`` class names.
        unseen: indices of the unseen classes (flagged in the rows).
    """
    pix = F.normalize(as_tensor(pixel_emb, "pixel_emb", torch.float32), dim=-1)
    lab = as_tensor(pixel_labels, "pixel_labels", torch.long)
    text = check_text(text_emb, class_names, pix.shape[1])
    k = len(class_names)
    if lab.shape != pix.shape[:1] or (len(lab) and not 0 <= int(lab.min()) <= int(lab.max()) < k):
        raise ValueError(f"pixel_labels must be ({len(pix)},) class indices in 0..{k - 1}")
    counts = torch.bincount(lab, minlength=k)
    sums = torch.zeros(k, pix.shape[1]).index_add_(0, lab, pix)
    centroids = sums / counts.clamp(min=1)[:, None]
    rank, nearest = _own_text_rank(centroids, text)
    pix_c, text_c = centre_modalities(pix, text)
    rank_c, _ = _own_text_rank(torch.zeros(k, pix.shape[1]).index_add_(0, lab, pix_c), text_c)
    unseen_set = set(map(int, unseen))
    return [
        ClassTextRank(
            index=i,
            name=str(class_names[i]),
            unseen=i in unseen_set,
            n_pixels=int(counts[i]),
            rank=float(rank[i]) if counts[i] else float("nan"),
            nearest=str(class_names[nearest[i]]) if counts[i] else None,
            rank_centred=float(rank_c[i]) if counts[i] else float("nan"),
        )
        for i in range(k)
    ]


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
    centre: bool = True,
) -> UmapResult:
    """Fit one UMAP on a stratified pixel sample plus the class text embeddings.

    ``seen`` is recorded only through ``is_unseen`` (classes not in ``unseen`` count as seen).

    Args:
        pixel_emb: ``(N, D)``, a map ``(B, D, h, w)``, or an iterable of ``(emb, labels)`` batches.
        pixel_labels: ``(N,)`` or ``(B, H, W)`` labels; ``None`` when ``pixel_emb`` is an iterable of batches.
        text_emb: ``(K, D)`` class text embeddings in class order.
        class_names: the ``K`` class names.
        seen: indices of the seen classes.
        unseen: indices of the unseen classes.
        max_pixels: most pixels embedded in total.
        per_class: most pixels per class (default ``max_pixels``: balanced water-filling).
        n_neighbors: UMAP's neighbourhood size (capped at the number of points minus one).
        min_dist: UMAP's minimum distance between embedded points.
        seed: seeds the pixel sample and UMAP.
        metric: UMAP's input metric.
        n_epochs: UMAP's optimisation epochs (``None``: its default).
        ignore_index: label of pixels that are skipped.
        centre: centre each modality before the projection (removes the modality gap; module docstring).
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
    ranks = centroid_text_ranks(pix, lab, text, class_names, unseen)
    if centre:
        pix, text = centre_modalities(pix, text)
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
        centred=centre,
        ranks=ranks,
    )
