"""Tables for notebooks: one formatter, so every notebook table reads the same way.

A raw ``pandas.DataFrame`` shows ``NaN`` for missing values, fractions next to percentages, integers as
``3.0`` once a column holds a missing value, a bare ``0, 1, 2`` index, long texts cut to 50 characters and
chance rows flush with the score they qualify. :func:`notebook_table` turns rows (dicts, or a DataFrame) into a
:class:`Table` of strings that fixes all of that:

* missing values (``None``, NaN) are ``-``;
* one unit: columns named in ``fractions`` hold fractions and are shown x100, columns in ``percents`` are
  already in %; both get one decimal and ``(%)`` in their header;
* integers (and float columns that hold only whole numbers) are shown without decimals, other floats with
  ``decimals`` places;
* no index column and no truncation: every column and the whole text of every cell are shown;
* a row whose label (the ``setting`` column, else the first) starts with spaces, as the chance baselines of
  :func:`~lseg_nb.apps.reports.metrics_rows` do, is drawn indented and muted, under the row it qualifies;
* ``group``: a column whose repeated values are shown only where they change (e.g. the model of each block).

A :class:`Table` renders as HTML in Jupyter and as the fixed-width text of
:func:`~lseg_nb.apps.reports.format_table` elsewhere (``print``, papermill's text output).
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lseg_nb.apps.reports import format_table, metrics_rows
from lseg_nb.diagnostics.ablation_report import AblationReport
from lseg_nb.diagnostics.calibration import TemperatureScaling
from lseg_nb.diagnostics.neighbours import NeighbourReport
from lseg_nb.engine.results import EvalResult

MISSING = "-"
# the value columns of metrics_rows: already percentages
METRIC_COLUMNS = ("mIoU", "Open mIoU", "pixel acc", "seen mIoU", "unseen mIoU", "harmonic")
_CELL = "padding:2px 10px;white-space:nowrap;text-align:{align}"


@dataclass(frozen=True)
class Table:
    """A formatted table: headers and cells as strings, rows flagged ``indented`` (shown under the row above)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    indented: tuple[bool, ...]
    caption: str | None = None
    label: int = 0  # the column whose text is indented

    def to_frame(self) -> Any:
        """The cells as a ``pandas.DataFrame`` of strings (for export; it shows a default index)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    def text(self) -> str:
        """Fixed-width text: the label column left-aligned, the others right-aligned, chance rows indented."""
        rows = [
            {
                c: ("  " + v if i == self.label and ind else v)
                for i, (c, v) in enumerate(zip(self.columns, row))
            }
            for row, ind in zip(self.rows, self.indented)
        ]
        body = format_table(rows) if rows else "  ".join(self.columns)
        return f"{self.caption}\n{body}" if self.caption else body

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        head = "".join(
            f'<th style="{_CELL.format(align=_align(i))}">{html.escape(c)}</th>'
            for i, c in enumerate(self.columns)
        )
        body = []
        for row, ind in zip(self.rows, self.indented):
            style = ' style="color:#666;font-style:italic"' if ind else ""
            cells = []
            for i, v in enumerate(row):
                pad = ";padding-left:2.5em" if ind and i == self.label else ""
                cells.append(f'<td style="{_CELL.format(align=_align(i))}{pad}">{html.escape(v)}</td>')
            body.append(f"<tr{style}>{''.join(cells)}</tr>")
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (
            f'<table class="lseg-table">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )


def _align(i: int) -> str:
    return "left" if i == 0 else "right"


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(isinstance(v, numbers.Real) and math.isnan(v)) or type(v).__name__ == "NAType"
    except TypeError:
        return False


def _whole(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer()


def _cell(v: Any, scale: float | None, places: int, whole: bool) -> str:
    if _missing(v):
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, numbers.Integral) and scale is None:
        return str(int(v))
    if isinstance(v, numbers.Real):
        if scale is not None:
            return f"{float(v) * scale:.1f}"
        return str(int(v)) if whole else f"{float(v):.{places}f}"
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v)
    return str(v)


def _records(rows: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names (first-seen order) and rows as dicts; a DataFrame's index becomes a column unless it is the
    default ``0..n-1``."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        import pandas as pd

        frame = rows
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
            frame = frame.reset_index()
        records = frame.astype(object).to_dict("records")
        return [str(c) for c in frame.columns], [{str(k): v for k, v in r.items()} for r in records]
    records = [dict(r) for r in rows]
    columns: list[str] = []
    for r in records:
        columns += [str(k) for k in r if str(k) not in columns]
    return columns, [{str(k): v for k, v in r.items()} for r in records]


def notebook_table(
    rows: Iterable[Mapping[str, Any]] | Any,
    fractions: Sequence[str] = (),
    percents: Sequence[str] = (),
    decimals: int | Mapping[str, int] = 2,
    group: str | None = None,
    rename: Mapping[str, str] | None = None,
    caption: str | None = None,
) -> Table:
    """Format rows for a notebook by the rules of the module docstring.

    Args:
        rows: dicts of column -> value (missing keys are missing values) or a ``pandas.DataFrame``.
        fractions: columns holding fractions (0..1), shown as percentages.
        percents: columns already in percent.
        decimals: places of the other float columns (one number, or per column; default 2).
        group: a column shown only where its value changes (the first row of each block).
        rename: header texts for some columns (``{"top1": "top-1"}``), applied before the ``(%)`` unit.
        caption: a line shown above the table.
    """
    columns, records = _records(rows)
    for name in (*fractions, *percents, *([group] if group else [])):
        if name not in columns:
            raise KeyError(f"notebook_table: no column {name!r}; the columns are {columns}")
    places = {c: decimals.get(c, 2) if isinstance(decimals, Mapping) else decimals for c in columns}
    scale = {**{c: 100.0 for c in fractions}, **{c: 1.0 for c in percents}}
    whole = {}
    for c in columns:
        values = [r.get(c) for r in records if not _missing(r.get(c)) and not isinstance(r.get(c), str)]
        whole[c] = bool(values) and all(_whole(v) for v in values)
    label = "setting" if "setting" in columns else columns[0] if columns else None
    cells, indented, last = [], [], object()
    for r in records:
        row = [_cell(r.get(c), scale.get(c), places[c], whole[c]) for c in columns]
        if group is not None:
            g = columns.index(group)
            row[g], last = ("" if r.get(group) == last else row[g]), r.get(group)
        text = r.get(label) if label else None
        ind = isinstance(text, str) and text[:1].isspace()
        if ind:
            row[columns.index(label)] = text.strip()
        cells.append(tuple(row))
        indented.append(ind)
    names = dict(rename or {})
    headers = []
    for c in columns:
        h = names.get(c, c)
        headers.append(f"{h} (%)" if c in scale and "%" not in h else h)
    return Table(tuple(headers), tuple(cells), tuple(indented), caption, columns.index(label) if label else 0)


def metrics_table(result: EvalResult | Mapping[str, EvalResult], **kwargs: Any) -> Table:
    """:func:`~lseg_nb.apps.reports.metrics_rows` as a notebook table (values in %, chance rows indented).

    Args:
        result: an evaluation result, or several by name (a ``model`` column names each block of rows).
        kwargs: further :func:`notebook_table` arguments (e.g. ``caption``).
    """
    if isinstance(result, Mapping):
        rows = [{"model": name, **row} for name, r in result.items() for row in metrics_rows(r)]
        kwargs = {"group": "model", **kwargs}
    else:
        rows = metrics_rows(result)
    present = [c for c in METRIC_COLUMNS if any(c in r for r in rows)]
    return notebook_table(rows, percents=present, **kwargs)


def neighbour_table(report: NeighbourReport) -> Table:
    """Per-class nearest-text statistics of :func:`~lseg_nb.diagnostics.neighbour_analysis` as a notebook table.

    The statistics use two vocabularies, and the headers say which: top-1, ranks and the nearest texts are
    among *all* texts (class names + distractors); mistaken and the confused seen class among the class names
    only (see :mod:`lseg_nb.diagnostics.neighbours`).

    Args:
        report: the report of ``neighbour_analysis``.
    """
    v, k = len(report.vocabulary), len(report.text_similarity)
    every, names = f"all {v} texts", f"{k} class names"
    rows = [
        {
            "class": c.name,
            "group": c.group,
            "pixels": c.n_pixels,
            f"top-1 among {every}": c.top1,
            f"mean rank among {every}": c.mean_rank,
            f"median rank among {every}": c.median_rank,
            f"nearest of {every} (% of pixels)": ", ".join(f"{n} ({100 * s:.0f})" for n, s in c.neighbours),
            f"mistaken among {names}": c.mistaken,
            "most confused seen name": c.confused_with_seen,
            "its share of the mistakes": c.confused_share,
        }
        for c in report.classes
    ]
    fractions = (f"top-1 among {every}", f"mistaken among {names}", "its share of the mistakes")
    caption = f"{every} = {k} class names + {v - k} distractors"
    return notebook_table(rows, fractions=fractions, decimals=1, caption=caption)


CALIBRATION_COLUMNS = {
    "ece": "ECE",
    "ece_equal_mass": "ECE, equal-mass bins",
    "mce": "MCE",
    "nll": "NLL",
    "brier": "Brier",
    "mean_confidence": "mean confidence",
}


def calibration_table(scaling: TemperatureScaling) -> Table:
    """Calibration before (``T = 1``) and after temperature scaling, per pixel group, as a notebook table
    (ECE, MCE, accuracy and mean confidence in %; NLL and Brier as they are).

    Args:
        scaling: the result of ``temperature_scaling``.
    """
    fractions = ("ece", "ece_equal_mass", "mce", "accuracy", "mean_confidence")
    decimals = {"temperature": 2, "nll": 3, "brier": 3}
    return notebook_table(scaling.to_rows(), fractions, decimals=decimals, rename=CALIBRATION_COLUMNS)


ABLATION_COLUMNS = {
    "label": "text encoder",
    "text_dim": "text dim",
    "seen_miou": "seen mIoU",
    "unseen_miou": "unseen mIoU",
    "harmonic_iou": "harmonic",
    "unseen_only_miou": "unseen-only mIoU",
}


def ablation_table(report: AblationReport) -> Table:
    """One row per text encoder of a text-encoder ablation (mIoUs in %, ``-`` where undefined or skipped).

    Args:
        report: the result of ``run_swap_ablation`` or ``run_text_encoder_ablation``.
    """
    scores = ("seen_miou", "unseen_miou", "harmonic_iou", "unseen_only_miou")
    cols = ("label", "status", "text_dim", "steps", *scores, "reason")
    rows = [{c: getattr(r, c) for c in cols} for r in report.rows]
    return notebook_table(rows, fractions=scores, rename=ABLATION_COLUMNS)
