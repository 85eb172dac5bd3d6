"""Label lists typed by people: one cleaning rule used by the CLI, the widget and the Python API."""

from __future__ import annotations

from collections.abc import Sequence


def clean_labels(labels: str | Sequence[str], what: str = "labels") -> list[str]:
    """Strip each label; refuse blank and duplicate labels with one error naming them.

    ``labels`` is a list of strings, or one comma-separated string (``"grass, sky, cow"``). Scores and figures
    are reported per label, so a silently dropped or merged label would shift every number after it.

    >>> clean_labels(" red, stripes ,grass")
    ['red', 'stripes', 'grass']
    """
    parts = labels.split(",") if isinstance(labels, str) else list(labels)
    if isinstance(labels, str) and parts and not parts[-1].strip() and len(parts) > 1:
        parts = parts[:-1]  # a trailing comma while typing is not a blank label
    out: list[str] = []
    for i, part in enumerate(parts):
        if not isinstance(part, str):
            raise ValueError(f"{what}[{i}] is {part!r}, not a string")
        label = part.strip()
        if not label:
            raise ValueError(f"{what}[{i}] is blank ({part!r}); give non-empty labels, e.g. grass, sky, cow")
        if label in out:
            raise ValueError(f"label {label!r} is given twice in {what}; each label may appear once")
        out.append(label)
    if not out:
        raise ValueError(f"no {what} given; give at least one, e.g. grass, sky, cow")
    return out
