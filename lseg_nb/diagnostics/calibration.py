"""Streaming calibration metrics (ECE, MCE, NLL, Brier), seen/unseen groups and temperature scaling.

:class:`CalibrationAccumulator` keeps only per-bin totals (count, summed confidence, summed correctness) plus
NLL/Brier sums, so memory does not grow with the number of pixels. Equal-width bins are exact. Equal-mass bins
need confidence quantiles, which a stream cannot keep exactly: we keep a fine equal-width histogram
(``n_fine_bins``, default 2000) and, at :meth:`~CalibrationAccumulator.compute`, give each fine bin wholly to
the equal-mass bin holding the middle of its mass. Equal-mass bin edges are therefore snapped to a
``1 / n_fine_bins`` grid and bin masses can differ from ``N / n_bins`` by up to one fine bin's mass (a lot when
many pixels share one confidence, e.g. saturated at 1.0).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lseg_nb.diagnostics.sampling import ArrayLike, as_tensor
from lseg_nb.utils.optional import import_optional


@dataclass
class CalibrationReport:
    """Calibration of one pixel group. Per-bin arrays are NaN for empty bins."""

    name: str
    count: int
    ece: float
    ece_equal_mass: float
    mce: float
    nll: float
    brier: float
    accuracy: float
    mean_confidence: float
    bin_edges: np.ndarray  # (n_bins + 1,)
    bin_count: np.ndarray
    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    mass_bin_edges: np.ndarray  # (n_bins + 1,), snapped to the fine grid
    mass_bin_count: np.ndarray
    mass_bin_confidence: np.ndarray
    mass_bin_accuracy: np.ndarray

    def summary(self) -> dict[str, float]:
        """The scalar metrics as a dict (for tables)."""
        keys = ("count", "ece", "ece_equal_mass", "mce", "nll", "brier", "accuracy", "mean_confidence")
        return {"group": self.name, **{k: getattr(self, k) for k in keys}}


def _flatten(
    scores: ArrayLike, target: ArrayLike, mask: ArrayLike | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(B, K, H, W)`` / ``(N, K)`` scores and ``(B, H, W)`` / ``(N,)`` targets -> ``(N, K)``, ``(N,)``."""
    p = as_tensor(scores, "probs", torch.float32)
    t = as_tensor(target, "target", torch.long)
    if p.ndim == 4:
        if t.shape != (p.shape[0], *p.shape[2:]):
            raise ValueError(f"target must be (B, H, W) = {(p.shape[0], *p.shape[2:])}, got {tuple(t.shape)}")
        p = p.permute(0, 2, 3, 1).reshape(-1, p.shape[1])
    elif p.ndim != 2 or t.shape != p.shape[:1]:
        raise ValueError(
            f"expected probs (B, K, H, W) or (N, K) with matching target, got {tuple(p.shape)}, {tuple(t.shape)}"
        )
    m = None
    if mask is not None:
        m = as_tensor(mask, "mask", torch.bool)
        if m.shape != t.shape:
            raise ValueError(f"mask must have the target's shape {tuple(t.shape)}, got {tuple(m.shape)}")
        m = m.reshape(-1)
    return p, t.reshape(-1), m


def _valid(t: Tensor, k: int, ignore_index: int, mask: Tensor | None) -> Tensor:
    valid = t != ignore_index
    bad = t[valid & ((t < 0) | (t >= k))].unique().tolist()
    if bad:
        raise ValueError(f"target labels {bad} are neither in 0..{k - 1} nor ignore_index={ignore_index}")
    return valid if mask is None else valid & mask


class CalibrationAccumulator:
    """Streaming calibration totals for ``"all"`` valid pixels and for ground-truth class groups.

    ``class_groups`` maps a group name to class indices, e.g. ``{"seen": seen, "unseen": unseen}``; a pixel is
    in a group when its ground-truth class is.
    """

    def __init__(
        self,
        n_bins: int = 15,
        n_fine_bins: int = 2000,
        class_groups: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if n_bins < 1 or n_fine_bins < n_bins:
            raise ValueError(
                f"need 1 <= n_bins <= n_fine_bins, got n_bins={n_bins}, n_fine_bins={n_fine_bins}"
            )
        self.n_bins, self.n_fine = n_bins, n_fine_bins
        self.class_groups = {k: [int(i) for i in v] for k, v in (class_groups or {}).items()}
        if "all" in self.class_groups:
            raise ValueError('"all" is reserved for the group of every valid pixel')
        names = ["all", *self.class_groups]
        self.coarse = {g: np.zeros((3, n_bins)) for g in names}  # rows: count, sum confidence, sum correct
        self.fine = {g: np.zeros((3, n_fine_bins)) for g in names}
        self.scalars = {g: np.zeros(2) for g in names}  # NLL sum, Brier sum

    def update(
        self, probs: ArrayLike, target: ArrayLike, ignore_index: int = 255, mask: ArrayLike | None = None
    ) -> None:
        """Add probabilities ``(B, K, H, W)`` or ``(N, K)`` with targets ``(B, H, W)`` or ``(N,)``.

        Pixels with ``target == ignore_index`` or (optional boolean ``mask``) False are skipped.
        """
        p, t, m = _flatten(probs, target, mask)
        if p.numel() and (p.min() < -1e-4 or p.max() > 1 + 1e-4 or (p.sum(1) - 1).abs().max() > 1e-3):
            raise ValueError(
                "probs must be probabilities summing to 1 over K; for logits use update_logits()"
            )
        valid = _valid(t, p.shape[1], ignore_index, m)
        if not bool(valid.all()):
            p, t = p[valid], t[valid]
        # Per-pixel reductions first, then float64: memory stays ~ one (N, K) float32 chunk.
        conf, pred = p.max(1)
        conf = conf.double()
        p_true = p.gather(1, t[:, None])[:, 0].double()
        nll = -p_true.clamp_min(1e-12).log()
        brier = torch.einsum("nk,nk->n", p, p).double() - 2 * p_true + 1  # sum_k (p_k - onehot_k)^2
        stats = torch.stack([torch.ones_like(conf), conf, (pred == t).double(), nll, brier]).numpy()
        t_np = t.numpy()
        for g in self.coarse:
            sel = slice(None) if g == "all" else np.isin(t_np, self.class_groups[g])
            self._add(g, stats[:, sel])

    def _add(self, g: str, s: np.ndarray) -> None:
        conf = s[1]
        for hist, n in ((self.coarse[g], self.n_bins), (self.fine[g], self.n_fine)):
            idx = np.minimum((conf * n).astype(np.int64), n - 1)
            for row in range(3):
                hist[row] += np.bincount(idx, weights=s[row], minlength=n)
        self.scalars[g] += s[3:].sum(1)

    def update_logits(
        self,
        logits: ArrayLike,
        target: ArrayLike,
        temperature: float = 1.0,
        ignore_index: int = 255,
        mask: ArrayLike | None = None,
    ) -> None:
        """:meth:`update` with ``softmax(logits / temperature)`` over the class dimension."""
        lg = as_tensor(logits, "logits", torch.float32)
        self.update(torch.softmax(lg / temperature, dim=1), target, ignore_index, mask)

    def compute(self, group: str = "all") -> CalibrationReport:
        """Metrics for one group (``"all"`` or a ``class_groups`` name); NaN metrics when it has no pixels."""
        if group not in self.coarse:
            raise KeyError(f"unknown group {group!r}; known: {list(self.coarse)}")
        count, conf, corr = self.coarse[group]
        n = count.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            bconf, bacc = conf / count, corr / count
            gap = np.abs(bacc - bconf)
            m_count, m_conf, m_acc, m_edges = self._mass_bins(group)
            return CalibrationReport(
                name=group,
                count=int(n),
                ece=float(np.nansum(gap * count) / n),
                ece_equal_mass=float(np.nansum(np.abs(m_acc - m_conf) * m_count) / n),
                mce=float(np.nanmax(gap)) if n else float("nan"),
                nll=float(self.scalars[group][0] / n),
                brier=float(self.scalars[group][1] / n),
                accuracy=float(corr.sum() / n),
                mean_confidence=float(conf.sum() / n),
                bin_edges=np.linspace(0, 1, self.n_bins + 1),
                bin_count=count.copy(),
                bin_confidence=bconf,
                bin_accuracy=bacc,
                mass_bin_edges=m_edges,
                mass_bin_count=m_count,
                mass_bin_confidence=m_conf,
                mass_bin_accuracy=m_acc,
            )

    def _mass_bins(self, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        count, conf, corr = self.fine[group]
        n, nb = count.sum(), self.n_bins
        mid = np.cumsum(count) - count / 2  # a fine bin goes to the mass bin holding the middle of its mass
        assign = np.clip((mid / max(n, 1) * nb).astype(np.int64), 0, nb - 1)
        m_count = np.bincount(assign, weights=count, minlength=nb)
        m_conf = np.bincount(assign, weights=conf, minlength=nb) / m_count
        m_acc = np.bincount(assign, weights=corr, minlength=nb) / m_count
        lower = np.linspace(0, 1, self.n_fine + 1)[:-1]
        occupied = count > 0
        edges = np.ones(nb + 1)
        edges[0] = 0.0
        for b in range(1, nb):
            later = occupied & (assign >= b)
            edges[b] = lower[later].min() if later.any() else 1.0
        return m_count, m_conf, m_acc, edges

    def reports(self) -> dict[str, CalibrationReport]:
        """Reports for ``"all"`` and every class group."""
        return {g: self.compute(g) for g in self.coarse}


def _flat_logits(logits: ArrayLike, target: ArrayLike, ignore_index: int) -> tuple[Tensor, Tensor]:
    lg, t, _ = _flatten(logits, target, None)
    valid = _valid(t, lg.shape[1], ignore_index, None)
    if not valid.any():
        raise ValueError("no labelled pixels (all targets are ignore_index)")
    return lg[valid], t[valid]


def fit_temperature(
    logits: ArrayLike, target: ArrayLike, ignore_index: int = 255, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on held-out pixels.

    ``logits`` ``(N, K)`` or ``(B, K, H, W)``, ``target`` ``(N,)`` or ``(B, H, W)`` (``ignore_index`` skipped).
    The NLL is convex in ``1/T``, hence unimodal in ``log T``: a bounded Brent search on ``log T`` within
    ``bounds`` finds the optimum. Fit on a validation split, never on the pixels you report.
    """
    lg, t = _flat_logits(logits, target, ignore_index)
    lg = lg.double()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(lg / np.exp(log_t), t))

    # scipy is in the 'diagnostics' extra: imported on use, so `import lseg_nb.diagnostics` works without it
    minimize_scalar = import_optional("scipy.optimize", "diagnostics", "fit_temperature").minimize_scalar
    res = minimize_scalar(
        nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded", options={"xatol": 1e-6}
    )
    temp = float(np.exp(res.x))
    if not bounds[0] * 1.01 < temp < bounds[1] / 1.01:
        # an optimum on the boundary means the search range, not the data, decided T
        warnings.warn(
            f"fitted temperature {temp:.3g} is at the search bound {bounds}; widen `bounds` "
            "(a model near chance prefers T -> infinity)",
            stacklevel=2,
        )
    return temp


def calibration_reports(
    logits: ArrayLike,
    target: ArrayLike,
    temperature: float = 1.0,
    class_groups: Mapping[str, Sequence[int]] | None = None,
    n_bins: int = 15,
    ignore_index: int = 255,
) -> dict[str, CalibrationReport]:
    """One-shot :class:`CalibrationAccumulator` over in-memory logits scaled by ``1 / temperature``."""
    acc = CalibrationAccumulator(n_bins=n_bins, class_groups=class_groups)
    acc.update_logits(logits, target, temperature, ignore_index)
    return acc.reports()


@dataclass
class TemperatureScaling:
    """A fitted temperature and the calibration reports before (``T = 1``) and after scaling."""

    temperature: float
    before: dict[str, CalibrationReport]
    after: dict[str, CalibrationReport]

    def to_rows(self) -> list[dict]:
        """Before/after summary rows per group."""
        return [
            {"stage": stage, "temperature": temp, **rep.summary()}
            for stage, temp, reps in (("before", 1.0, self.before), ("after", self.temperature, self.after))
            for rep in reps.values()
        ]


def temperature_scaling(
    val_logits: ArrayLike,
    val_target: ArrayLike,
    test_logits: ArrayLike | None = None,
    test_target: ArrayLike | None = None,
    class_groups: Mapping[str, Sequence[int]] | None = None,
    n_bins: int = 15,
    ignore_index: int = 255,
) -> TemperatureScaling:
    """Fit ``T`` on the validation pixels, then report calibration on the test pixels before and after.

    Without test data the validation pixels are reported (optimistic: say so when you quote it).
    """
    if (test_logits is None) != (test_target is None):
        raise ValueError("give both test_logits and test_target, or neither")
    temp = fit_temperature(val_logits, val_target, ignore_index)
    lg, tg = (val_logits, val_target) if test_logits is None else (test_logits, test_target)
    return TemperatureScaling(
        temp,
        calibration_reports(lg, tg, 1.0, class_groups, n_bins, ignore_index),
        calibration_reports(lg, tg, temp, class_groups, n_bins, ignore_index),
    )


def confidence_map(logits: ArrayLike, temperature: float = 1.0) -> Tensor:
    """Max softmax probability per pixel: logits ``(B, K, H, W)`` or ``(K, H, W)`` -> ``(B, H, W)`` / ``(H, W)``."""
    lg = as_tensor(logits, "logits", torch.float32)
    if lg.ndim not in (3, 4):
        raise ValueError(f"logits must be (B, K, H, W) or (K, H, W), got {tuple(lg.shape)}")
    dim = lg.ndim - 3
    return torch.softmax(lg / temperature, dim=dim).amax(dim=dim)
