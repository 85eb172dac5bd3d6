"""Label lists typed by people: blank and duplicate labels refused with one clear error (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lseg_nb.utils.labels import clean_labels


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
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=","), max_size=12),
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
