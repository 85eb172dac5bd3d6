"""Label lists typed by people: blank and duplicate labels refused with one clear error (property-based)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lseg_nb.utils.labels import LabelSplit, clean_labels, labels_from_args


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["grass", "  ", "flower"], r"--labels\[1\] is blank \('  '\)"),
        (["flower", "grass", "flower", "sky"], "label 'flower' is given twice in --labels"),
        (["cat", " cat "], "label 'cat' is given twice"),
        ([], "no --labels given"),
        (["cat", 3], r"--labels\[1\] is 3, not a string"),
    ],
)
def test_blank_duplicate_and_missing_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        clean_labels(labels, "--labels")


def test_comma_separated_text():
    assert clean_labels(" red, stripes ,grass,") == ["red", "stripes", "grass"]  # a trailing comma is typing
    with pytest.raises(ValueError, match=r"labels\[1\] is blank"):
        clean_labels("red,,grass")


# Labels as people type them: words with inner spaces, padded with spaces/tabs, sometimes blank.
label = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=",|"), max_size=12),
    st.sampled_from(["", " ", "\t", "cat", " cat", "dog ", "red stripes"]),
)


@settings(derandomize=True)  # the same examples on every run: a failure is reproducible
@given(st.lists(label, max_size=8))
def test_cleaning_is_stripping_and_nothing_else(labels):
    """Either every label survives, stripped, in order and without repeats, or one ValueError says why:
    no label is ever silently dropped, merged or reordered (each score is reported per label)."""
    stripped = [s.strip() for s in labels]
    problem = not stripped or any(not s for s in stripped) or len(set(stripped)) < len(stripped)
    if problem:
        with pytest.raises(ValueError):
            clean_labels(labels)
    else:
        assert clean_labels(labels) == stripped
        assert clean_labels(", ".join(labels)) == stripped  # the comma-separated form agrees


@settings(derandomize=True)
@given(st.lists(label, min_size=1, max_size=8))
def test_cleaning_is_idempotent(labels):
    try:
        once = clean_labels(labels)
    except ValueError:
        return
    assert clean_labels(once) == once


# --- LabelSplit: classes with several names, the partition, void and background -------------------------------


def test_label_split_parses_several_names_per_class() -> None:
    s = LabelSplit.from_labels("sky, sofa|couch, person | man", unseen=["sofa"])
    assert s.names == (("sky",), ("sofa", "couch"), ("person", "man"))
    assert s.class_names == ("sky", "sofa", "person")
    assert s.texts == ("sky", "sofa", "couch", "person", "man")
    assert s.owner == (0, 1, 1, 2, 2)
    assert (s.seen, s.unseen, s.unseen_names) == ((0, 2), (1,), ["sofa"])
    assert s.multi_name and s.is_zero_shot
    assert LabelSplit.from_dict(s.to_dict()) == s


def test_label_split_refuses_a_name_in_two_classes_and_a_bad_partition() -> None:
    with pytest.raises(ValueError, match=r"'couch' is given twice in the label set \(classes 1 and 2\)"):
        LabelSplit(("sky", "sofa|couch", "couch"))
    with pytest.raises(ValueError, match=r"classes \[2\] are neither seen nor unseen"):
        LabelSplit(("a", "b", "c"), (0,), (1,))
    with pytest.raises(ValueError, match=r"classes \[1\] are listed twice"):
        LabelSplit(("a", "b"), (0, 1), (1,))
    with pytest.raises(ValueError, match="blank name"):
        LabelSplit(("a", "b|"))


def test_label_split_void_defaults_past_the_classes() -> None:
    assert LabelSplit(("a", "b")).void == 255
    many = LabelSplit(tuple(f"c{i}" for i in range(300)))
    assert many.void == 300 and many.lut_size() == 301
    with pytest.raises(ValueError, match="collides with a class index"):
        LabelSplit(("a", "b"), void=1)


def test_label_split_lookup_tables_map_other_values_to_void() -> None:
    s = LabelSplit(("a", "b", "c"), (0, 2), (1,))
    label = torch.tensor([0, 1, 2, 255])
    assert s.train_lut()[label].tolist() == [0, 255, 1, 255]
    assert s.target_lut(s.unseen)[label].tolist() == [255, 0, 255, 255]
    sub = s.subset(s.unseen)
    assert sub.names == (("b",),) and sub.seen == (0,) and sub.unseen == ()


@pytest.mark.parametrize(
    ("words", "classes"),
    [
        (["sky,", "road,", "car"], ["sky", "road", "car"]),  # `--labels sky, road, car`: commas end the words
        (["sky", ",", "road"], ["sky", "road"]),  # `--labels sky , road`
        (["sky, road, car"], ["sky", "road", "car"]),  # one quoted argument, as typed in the label explorer
        (["sky,", "sofa|couch", "grass"], ["sky", "sofa|couch", "grass"]),
    ],
)
def test_cli_words_and_commas_name_the_same_classes(words, classes):
    assert labels_from_args(words) == classes == clean_labels(", ".join(classes))


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["sky,,car"], r"--labels\[1\] is blank"),  # an empty entry inside a word is not dropped
        (["sky", "  ", "car"], r"--labels\[1\] is blank"),
        ([","], "no labels in --labels ','"),
        (["sky,", "sky"], "label 'sky' is given twice in --labels"),
    ],
)
def test_cli_label_words_refuse_what_would_shift_the_classes(words, message):
    with pytest.raises(ValueError, match=message):
        labels_from_args(words)
