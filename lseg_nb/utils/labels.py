"""Labels as people type them and as evaluation uses them: one syntax, one validator, one void value.

Syntax (CLI, widget, manifests, Python): classes are separated by commas (or given as a list), and one class may
have several names separated by ``|`` -- ``"sky, sofa|couch, person|man|woman"`` is three classes. Every name is
embedded (with the templates) and a class scores the maximum over its names, as the training-free reference
segmentors do with their ``cls_*.txt`` files (SCLIP ``clip_segmentor.py`` ``postprocess_result``). Reports name a
class by its first name.

:class:`LabelSplit` carries the classes (each a tuple of names), the zero-shot seen/unseen partition, the void
value of the label maps and an optional background class: everything a metric or a lookup table needs to know
about the labels travels in this one object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lseg_nb.utils.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

#: Label-map value of unlabelled ("void") pixels, never scored and never a training target.
VOID = 255
#: Separates the names of one class: ``"sofa|couch"``.
NAME_SEPARATOR = "|"
#: Longest accepted label text (characters): text encoders truncate long inputs (CLIP: 77 tokens) silently.
MAX_LABEL_CHARS = 200


def _split_classes(labels: str | Sequence[str], what: str) -> list[str]:
    parts = labels.split(",") if isinstance(labels, str) else list(labels)
    if isinstance(labels, str) and len(parts) > 1 and not parts[-1].strip():
        parts = parts[:-1]  # a trailing comma while typing
    for i, part in enumerate(parts):
        if not isinstance(part, str):
            raise InputError(f"{what}[{i}] is {part!r}, not a string")
    return parts


def parse_label(text: str, what: str = "label") -> tuple[str, ...]:
    """One class as typed -> its names: ``"sofa | couch"`` -> ``("sofa", "couch")`` (stripped, non-blank)."""
    names = tuple(n.strip() for n in text.split(NAME_SEPARATOR))
    if not all(names):
        raise InputError(
            f"{what} {text!r} has a blank name: separate the names of one class with '{NAME_SEPARATOR}' "
            "(e.g. 'sofa|couch'), with a name on each side"
        )
    for name in names:
        if len(name) > MAX_LABEL_CHARS:
            raise InputError(
                f"{what} {name[:40]!r}... has {len(name)} characters; labels are limited to {MAX_LABEL_CHARS} "
                "(text encoders truncate longer texts)"
            )
    return names


def clean_labels(labels: str | Sequence[str], what: str = "labels") -> list[str]:
    """Strip each class entry; refuse empty entries and repeated names with one error naming them.

    ``labels`` is a list of class entries, or one comma-separated string (``"grass, sky, cow"``; a trailing comma
    is allowed while typing). An entry may hold several names of one class (``"sofa|couch"``); it is returned as
    typed (stripped, names re-joined with ``|``). Scores and figures are reported per class, so a silently dropped
    or merged label would shift every number after it: nothing is dropped or merged. ``what`` names the input in
    errors (``--labels``).

    >>> clean_labels(" red, stripes ,grass|lawn")
    ['red', 'stripes', 'grass|lawn']
    """
    parts = _split_classes(labels, what)
    stripped = [p.strip() for p in parts]
    if not any(stripped):
        raise InputError(f"no {what} given in {labels!r}: type comma-separated words, e.g. 'grass, sky, cow'")
    if "" in stripped:
        i = stripped.index("")
        raise InputError(
            f"{what}[{i}] is blank ({parts[i]!r}): entry {i + 1} of {labels!r} is empty; remove the extra comma "
            "or give a label there"
        )
    classes = [parse_label(p, f"{what}[{i}]") for i, p in enumerate(stripped)]
    _check_distinct(classes, what)
    return [NAME_SEPARATOR.join(names) for names in classes]


def _check_distinct(classes: Sequence[tuple[str, ...]], what: str) -> None:
    owner: dict[str, int] = {}
    for c, names in enumerate(classes):
        for name in names:
            if name in owner:
                where = "one class" if owner[name] == c else f"classes {owner[name]} and {c}"
                raise InputError(f"label {name!r} is given twice in {what} ({where}): give each name once")
            owner[name] = c


def _as_names(entry: str | Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(entry, str):
        return parse_label(entry.strip(), what)
    names = tuple(str(n).strip() for n in entry)
    if not names or not all(names):
        raise InputError(f"{what} {tuple(entry)!r} needs at least one non-blank name")
    return names


@dataclass(frozen=True)
class LabelSplit:
    """Classes (each one or more names), the seen/unseen partition of one zero-shot fold, void and background.

    ``names[c]``: the names of class ``c`` (the first names it in reports). Entries may be given as strings in the
    label syntax (``"sofa|couch"``) or tuples of names; they are stored as tuples. ``seen``/``unseen``: class
    indices partitioning ``range(C)`` (no fold: every class seen, ``unseen=()``; a background class may be in
    neither, e.g. the "others" label of the episodic settings). ``void``: the label-map value of
    unscored pixels (default :data:`VOID`, or ``C`` when there are more than 255 classes). ``background``: index of a background class (FB-IoU, the ``prob_thd``/``area_thd`` rules),
    or ``None``. ``shared_names``: allow one name in several classes -- only to reproduce a reference label list
    that repeats a name (LSeg's ADE20K-150 texts name classes 59 and 131 "screen"; tied classes resolve to the
    lower index, as the reference argmax does). Validated on creation: at least one class, distinct non-blank
    names (unless ``shared_names``), a true partition.
    """

    names: tuple[tuple[str, ...], ...]
    seen: tuple[int, ...] = ()
    unseen: tuple[int, ...] = ()
    void: int | None = None
    background: int | None = None
    shared_names: bool = False

    def __post_init__(self) -> None:
        names = tuple(_as_names(e, f"class {i}") for i, e in enumerate(self.names))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "seen", tuple(int(c) for c in self.seen))
        object.__setattr__(self, "unseen", tuple(int(c) for c in self.unseen))
        k = len(names)
        if k < 1:
            raise InputError("a label set needs at least one class")
        if not self.shared_names:
            _check_distinct(names, "the label set")
        if not self.seen and not self.unseen:
            object.__setattr__(self, "seen", tuple(range(k)))
        both = [*self.seen, *self.unseen]
        bad = [c for c in both if not 0 <= c < k]
        if bad:
            raise InputError(
                f"class indices {bad} outside [0, {k}) in seen {self.seen} / unseen {self.unseen}"
            )
        if len(set(both)) != len(both):
            dup = sorted({c for c in both if both.count(c) > 1})
            raise InputError(f"classes {dup} are listed twice in seen {self.seen} / unseen {self.unseen}")
        if self.background is not None and not 0 <= self.background < k:
            raise InputError(f"background class {self.background} outside [0, {k})")
        missing = sorted(set(range(k)) - set(both) - {self.background})
        if missing:
            raise InputError(
                f"classes {missing} are neither seen nor unseen: seen and unseen must cover all {k} classes "
                "(only the background class may be neither)"
            )
        if self.void is None:  # 255, or C when the classes reach 255 (FSS-1000's 1001 labels)
            object.__setattr__(self, "void", VOID if k <= VOID else k)
        if self.void < k:
            raise InputError(f"void value {self.void} collides with a class index (0..{k - 1})")

    @classmethod
    def from_labels(
        cls,
        labels: str | Sequence[str | Sequence[str]],
        unseen: Iterable[int | str] = (),
        void: int | None = None,
        background: int | str | None = None,
    ) -> LabelSplit:
        """From typed labels (``"sky, sofa|couch"`` or a list) and unseen classes by index or first name."""
        entries = clean_labels(labels) if isinstance(labels, str) else list(labels)
        names = tuple(_as_names(e, f"class {i}") for i, e in enumerate(entries))
        first = [n[0] for n in names]

        def index(c: int | str) -> int:
            if isinstance(c, str):
                if c not in first:
                    raise InputError(f"unseen class {c!r} is not one of the classes {first}")
                return first.index(c)
            return int(c)

        u = tuple(index(c) for c in unseen)
        seen = tuple(c for c in range(len(names)) if c not in u)
        bg = index(background) if background is not None else None
        return cls(names, seen, u, void, bg)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The first name of every class (what reports print)."""
        return tuple(n[0] for n in self.names)

    @property
    def seen_names(self) -> list[str]:
        return [self.names[i][0] for i in self.seen]

    @property
    def unseen_names(self) -> list[str]:
        return [self.names[i][0] for i in self.unseen]

    @property
    def is_zero_shot(self) -> bool:
        """Whether there are unseen classes (a zero-shot fold)."""
        return bool(self.unseen)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every name of every class, class by class (what the text encoder embeds)."""
        return tuple(name for names in self.names for name in names)

    @property
    def owner(self) -> tuple[int, ...]:
        """Class index of each entry of :attr:`texts`."""
        return tuple(c for c, names in enumerate(self.names) for _ in names)

    @property
    def multi_name(self) -> bool:
        """Whether some class has more than one name."""
        return any(len(n) > 1 for n in self.names)

    def subset(self, classes: Sequence[int]) -> LabelSplit:
        """The label set restricted to ``classes`` (in that order; all seen, e.g. the unseen-only setting)."""
        idx = [int(c) for c in classes]
        bg = idx.index(self.background) if self.background in idx else None
        names = tuple(self.names[c] for c in idx)
        return LabelSplit(names, tuple(range(len(idx))), (), self.void, bg, self.shared_names)

    def lut_size(self) -> int:
        """Entries of :meth:`train_lut`: every class index plus the void value (``max(256, C + 1)``, so class
        indices above 255 keep their own entry, as FSS-1000's 1001 labels need)."""
        return max(256, self.num_classes + 1, self.void + 1)

    def target_lut(self, classes: Sequence[int], ignore_index: int | None = None) -> Tensor:
        """Lookup table class index -> position in ``classes``; every other value (other classes, void) ->
        ``ignore_index`` (default :attr:`void`). ``lut[label_map]`` maps a label map to those positions."""
        import torch  # here, not at the top: the command line parses labels without paying torch's import

        ignore = self.void if ignore_index is None else ignore_index
        lut = torch.full((self.lut_size(),), ignore, dtype=torch.long)
        for pos, cls in enumerate(classes):
            lut[int(cls)] = pos
        return lut

    def train_lut(self, ignore_index: int | None = None) -> Tensor:
        """Lookup table full class index -> position in the seen label list; unseen and void -> ``ignore_index``
        (default :attr:`void`)."""
        return self.target_lut(self.seen, ignore_index)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (:meth:`from_dict` reads it back)."""
        return {
            "names": [list(n) for n in self.names],
            "seen": list(self.seen),
            "unseen": list(self.unseen),
            "void": self.void,
            "background": self.background,
            "shared_names": self.shared_names,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelSplit:
        return cls(
            tuple(tuple(n) for n in d["names"]),
            tuple(d.get("seen", ())),
            tuple(d.get("unseen", ())),
            d.get("void"),
            d.get("background"),
            bool(d.get("shared_names", False)),
        )


def read_labels_file(path: str | Path) -> list[str]:
    """Class entries of a labels file: one class per line (several names of one class joined by ``|``); blank
    and repeated lines are refused naming the line, since dropping one would shift every later class."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(
            f"labels file {path} is not UTF-8 text: save it as UTF-8, one label per line"
        ) from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise InputError(f"{path}:{i} is blank: every line names one class (remove the empty line)")
    entries = [line.strip() for line in lines]
    if not entries:
        raise InputError(f"labels file {path} is empty: write one label per line")
    return clean_labels(entries, str(path))


def labels_from_args(values: Sequence[str], labels_file: str | Path | None = None) -> list[str]:
    """The classes of ``--labels A B "C, D" "E|F"`` (commas split classes, as in the widget; a comma ending a
    shell word, as in ``--labels sky, road, car``, only separates) or of ``--labels-file FILE``. A lone value
    naming an existing file is refused (it would silently become one label), as is giving both or neither.

    Args:
        values: the ``--labels`` words as the shell split them.
        labels_file: the ``--labels-file`` path, or ``None``.
    """
    if labels_file is not None:
        if values:
            raise InputError("give --labels or --labels-file, not both")
        return read_labels_file(labels_file)
    if not values:
        raise InputError("no labels given: pass --labels sky grass cow (or --labels-file FILE)")
    if len(values) == 1 and Path(values[0]).is_file():
        raise InputError(
            f"--labels {values[0]!r} names a file: pass --labels-file {values[0]} to read one label per line, "
            "or type the labels themselves"
        )
    entries: list[str] = []
    for word in values:
        parts = word.split(",")
        if len(parts) > 1 and not any(p.strip() for p in parts):
            continue  # a lone comma between words: `--labels sky , road`
        # a comma at either end of a shell word only separates it from the next (`--labels sky, road, car`);
        # an empty entry inside one word ("sky,,car") or a blank word is refused by clean_labels
        if len(parts) > 1 and not parts[-1].strip():
            parts = parts[:-1]
        if len(parts) > 1 and not parts[0].strip():
            parts = parts[1:]
        entries += parts
    if not entries:
        raise InputError(f"no labels in --labels {' '.join(values)!r}: type them, e.g. --labels sky road car")
    return clean_labels(entries, "--labels")
