"""Label lists typed by people: one cleaning rule used by the CLI, the widget and the Python API."""

from __future__ import annotations

from collections.abc import Sequence


def clean_labels(labels: str | Sequence[str], what: str = "labels") -> list[str]:
    """Strip each label; refuse empty entries and repeated labels with one error naming them.

    ``labels`` is a list of strings, or one comma-separated string (``"grass, sky, cow"``; a trailing comma is
    allowed while typing). Scores and figures are reported per label, so a silently dropped or merged label would
    shift every number after it: nothing is dropped or merged. ``what`` names the input in errors (``--labels``).

    >>> clean_labels(" red, stripes ,grass")
    ['red', 'stripes', 'grass']
    """
    parts = labels.split(",") if isinstance(labels, str) else list(labels)
    if isinstance(labels, str) and len(parts) > 1 and not parts[-1].strip():
        parts = parts[:-1]
    for i, part in enumerate(parts):
        if not isinstance(part, str):
            raise ValueError(f"{what}[{i}] is {part!r}, not a string")
    stripped = [p.strip() for p in parts]
    if not any(stripped):
        raise ValueError(f"no {what} given in {labels!r}: type comma-separated words, e.g. 'grass, sky, cow'")
    if "" in stripped:
        i = stripped.index("")
        raise ValueError(
            f"{what}[{i}] is blank ({parts[i]!r}): entry {i + 1} of {labels!r} is empty; remove the extra comma "
            "or give a label there"
        )
    for label in stripped:
        n = stripped.count(label)
        if n > 1:
            times = "twice" if n == 2 else f"{n} times"
            raise ValueError(f"label {label!r} is given {times} in {what} ({labels!r}): give each label once")
    return stripped
