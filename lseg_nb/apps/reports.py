"""Readable summaries of results for people: tables of evaluation settings (CLI, notebooks, reports).

Every row names its setting (which labels compete, which pixels are scored) and the header names the data and the
inference protocol; chance baselines sit right below the score they qualify.
"""

from __future__ import annotations

import math
from typing import Any

from lseg_nb.config import PUBLISHED_MIOU, RECIPES
from lseg_nb.config.suites import PUBLISHED_RESULTS
from lseg_nb.engine.metrics import Baseline
from lseg_nb.engine.results import EpisodicResult, EvalResult, SettingResult
from lseg_nb.engine.suite import SuiteResult


def percent(v: float | None) -> float | None:
    """A fraction as a percentage rounded to 0.1; ``None`` for missing or NaN values."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * v, 1)


def _labels(n: int) -> str:
    return f"{n} label" if n == 1 else f"{n} labels"


def _chance_rows(b: Baseline | None) -> list[dict[str, Any]]:
    if b is None:
        return []
    return [
        {
            "setting": f"  chance: every pixel = majority class ({b.majority_class})",
            "mIoU": percent(b.majority_miou),
            "pixel acc": percent(b.majority_pixel_acc),
        },
        {
            "setting": f"  chance: uniform guess over {_labels(b.num_labels)}",
            "mIoU": percent(b.uniform_miou),
            "pixel acc": percent(b.uniform_pixel_acc),
        },
    ]


def _cell(value: float | None, interval: Any = None) -> float | str | None:
    """A fraction as a percentage rounded to 0.1, with its interval as ``18.1 [12.3, 24.0]`` when given."""
    v = percent(value)
    if v is None or not interval:
        return v
    lo, hi = (percent(x) for x in interval)
    return v if lo is None or hi is None else f"{v} [{lo}, {hi}]"


def _row(label: str, s: SettingResult) -> dict[str, Any]:
    m, ci = s.metrics, s.intervals or {}
    return {
        "setting": label,
        "mIoU": _cell(m.miou, ci.get("miou")),
        "Open mIoU": percent(m.open_miou),  # no interval: per-image counts lack the error cells it weighs
        "pixel acc": _cell(m.pixel_acc, ci.get("pixel_acc")),
        "seen mIoU": _cell(m.seen_miou, ci.get("seen_miou")),
        "unseen mIoU": _cell(m.unseen_miou, ci.get("unseen_miou")),
        "harmonic": _cell(m.harmonic_iou, ci.get("harmonic_iou")),
    }


def metrics_rows(result: EvalResult) -> list[dict[str, Any]]:
    """One row (values in %, with bootstrap intervals when computed) per setting, each followed by its chance
    baselines (majority class, uniform guess).

    With a zero-shot fold: all labels (generalised zero-shot: mIoU, pixel accuracy, seen / unseen / harmonic
    mIoU; then the same after seen-bias calibration when the result has it), then unseen labels only
    (ZS3Net/SPNet-style). Without a fold: all labels (a fixed label set) only, and the seen / unseen / harmonic
    columns are left out. ``Open mIoU`` (soft credit for errors between similar classes, with the protocol's
    ``open_similarity``) sits beside mIoU unless the protocol turned it off.
    """
    general = result.settings["all_labels"]
    k = general.labels.num_classes
    zero_shot = result.labels.is_zero_shot
    what = "generalised zero-shot" if zero_shot else "fixed set"
    rows = [_row(f"all {k} labels ({what})", general)]
    cal = result.settings.get("calibrated")
    if cal is not None:
        rows.append(_row(f"all {k} labels, seen-bias calibrated (offset {cal.offset:.2f} from val)", cal))
    rows += _chance_rows(general.baseline)
    u = result.settings.get("unseen_only")
    if u is not None:
        row = _row(f"unseen {_labels(u.labels.num_classes)} only (ZS3Net/SPNet-style)", u)
        rows.append({**row, "seen mIoU": None, "unseen mIoU": None, "harmonic": None})
        rows += _chance_rows(u.baseline)
    split_cols = ("seen mIoU", "unseen mIoU", "harmonic")
    open_col = ("Open mIoU",) if general.metrics.open_miou is not None else ()
    keys = ["setting", "mIoU", *open_col, "pixel acc", *(split_cols if zero_shot else ())]
    return [{key: row.get(key) for key in keys} for row in rows]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as a fixed-width text table (``-`` for missing values)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[("-" if r[k] is None else str(r[k])) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return "\n".join([line(keys), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as a Markdown table (empty cells for missing values)."""
    if not rows:
        return ""
    keys = list(rows[0])
    body = [[("" if r[k] is None else str(r[k]).strip()) for k in keys] for r in rows]
    return "\n".join("| " + " | ".join(c) + " |" for c in [keys, ["---"] * len(keys), *body])


def inference_name(result: EvalResult) -> str:
    """The protocol of ``result`` in words, e.g. ``single (one pass over the whole image)``."""
    name = result.protocol_name
    return name + " (one pass over the whole image)" if name == "single" else name


def data_line(result: EvalResult) -> str:
    """One line naming what was scored: dataset, split, fold with its unseen classes, number of images."""
    parts = [p for p in (result.dataset, f"{result.split} split" if result.split else None) if p]
    if result.unseen:
        fold = f"fold {result.fold}" if result.fold is not None else "zero-shot"
        parts.append(f"{fold} (unseen: {', '.join(result.labels.unseen_names)})")
    else:
        parts.append("no zero-shot fold")
    parts.append(f"{result.num_images} images")
    return ", ".join(parts)


def evaluation_table(result: EvalResult) -> str:
    """The CLI's summary of an evaluation: what was scored, the protocol, notes, then the settings table
    (values in %). No confusion matrices (they are in the JSON file)."""
    head = f"protocol: {inference_name(result)}; values in %"
    if result.all_labels.open_miou is not None:
        source = result.protocol.open_similarity
        head += f"; Open mIoU similarity: {'text encoder' if source == 'text_encoder' else source}"
    lines = [data_line(result), head]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join([*lines, format_table(metrics_rows(result))])


def _r1(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 1)


def is_paper_protocol(result: EpisodicResult) -> bool:
    """Whether an episodic result was scored exactly as the paper: its label texts, the official split list
    (where the adapter can tell), every served episode, COCO's official seed and 480x480 episodes."""
    info = result.info
    return (
        info.get("labels_match_paper") is True
        and info.get("split_list_is_official", True) is True
        and result.num_episodes == info.get("served_episodes", result.num_episodes)
        and info.get("seed", 0) == 0
        and result.image_size == 480
    )


def episodic_rows(result: EpisodicResult) -> list[dict[str, Any]]:
    """Rows (values in %) of an episodic result: the paper's protocol (marked so only when it is exactly the
    paper's, :func:`is_paper_protocol`), then the generalised settings (not reported in the paper)."""
    name = "episodic ['others', class]" + (" (paper protocol)" if is_paper_protocol(result) else "")
    ci = result.intervals or {}

    def pct(v: float, key: str) -> float | str | None:
        lo_hi = ci.get(key)
        return _r1(v) if not lo_hi else f"{_r1(v)} [{_r1(lo_hi[0])}, {_r1(lo_hi[1])}]"

    rows = [
        {
            "setting": name,
            "mIoU": pct(result.miou, "miou"),
            "FB-IoU": pct(result.fb_iou, "fb_iou"),
            "seen mIoU": None,
            "harmonic": None,
            "pixel acc": None,
        }
    ]
    for scope, g in result.generalised.items():
        what = "others + fold classes" if scope == "fold" else "others + every class"
        m = g.all_labels
        rows.append(
            {
                "setting": f"generalised, {what} (not in the paper)",
                "mIoU": percent(m.unseen_miou),
                "FB-IoU": None,
                "seen mIoU": percent(m.seen_miou),
                "harmonic": percent(m.harmonic_iou),
                "pixel acc": percent(m.pixel_acc),
            }
        )
    return rows


def published_miou(benchmark: str, fold: int) -> dict[str, float]:
    """Published mIoU of the recipes that train ``benchmark`` fold ``fold`` (official README model zoo)."""
    return {
        name: v
        for name, v in PUBLISHED_MIOU.items()
        if RECIPES[name].data.dataset == benchmark and RECIPES[name].data.fold == fold
    }


def episodic_table(result: EpisodicResult, max_classes: int = 20) -> str:
    """The CLI's summary of an episodic result: what was scored, the settings table (mIoU of the unseen
    classes; values in %), per-class IoU (up to ``max_classes`` classes) and the published numbers (only beside
    a result scored exactly as the paper)."""
    size = result.image_size
    head = (
        f"{result.benchmark} fold {result.fold}: {result.num_episodes} episodes "
        f"({result.distinct_episodes} distinct), {size}x{size}, paper label texts: "
        f"{result.info.get('labels_match_paper')} (values in %)"
    )
    lines = [head, format_table(episodic_rows(result))]
    per_class = result.per_class_iou
    if len(per_class) <= max_classes:
        episodes = result.episodes_per_class
        rows = [{"class": n, "IoU": _r1(v), "episodes": episodes[n]} for n, v in per_class.items()]
        lines += ["", format_table(rows)]
    else:
        lines.append(f"per-class IoU of the {len(per_class)} classes: see the JSON")
    published = published_miou(result.benchmark, result.fold)
    if published and is_paper_protocol(result):
        lines.append(
            "published mIoU, same protocol (official README model zoo): "
            + ", ".join(f"{k} {v}" for k, v in published.items())
        )
    elif published:
        lines.append(
            "published numbers not shown: this result was not scored with the paper's exact protocol (its label "
            "texts, the official split list, every episode, 480x480)"
        )
    return "\n".join(lines)


def suite_rows(result: SuiteResult, published: bool = True) -> list[dict[str, Any]]:
    """One row per model in the column order of the suite's papers (mIoU %, one decimal) plus ``Avg`` (the
    mean over every dataset of the suite; empty when some did not run). ``published``: add the published rows
    of the suite (marked as published, not reproduced here)."""
    suite = result.suite
    columns = [b.column for b in suite.benchmarks]

    def row(name: str, miou: dict[str, float], avg: float | None, source: str) -> dict[str, Any]:
        cells = {"model": name}
        for b, col in zip(suite.benchmarks, columns, strict=True):
            cells[col] = _r1(miou[b.name]) if b.name in miou else None
        cells["Avg"] = _r1(avg)
        cells["numbers"] = source
        return cells

    ours = {k: 100 * v for k, v in result.miou.items()}
    avg = None if result.average is None else 100 * result.average
    rows = [row(result.model or "model", ours, avg, "measured here")]
    if published:
        for p in PUBLISHED_RESULTS:
            if p.suite == suite.name:
                rows.append(row(f"{p.method} {p.backbone}", dict(p.miou), p.average, p.status))
    return rows


def suite_table(result: SuiteResult, published: bool = True) -> str:
    """:func:`suite_rows` as a text table, then each dataset's protocol line and notes (every setting that
    changes a number is printed)."""
    lines = [format_table(suite_rows(result, published)), ""]
    for r in result.rows:
        extra = "; ".join(r.notes)
        lines.append(
            f"{r.benchmark.column}: {r.result.protocol_name}, {r.result.num_images} images"
            + (f" ({extra})" if extra else "")
        )
    return "\n".join(lines)
