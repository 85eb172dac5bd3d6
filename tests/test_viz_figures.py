"""Figures a paper can use: one key per figure, no duplicated panels, unseen classes marked in every key, an error
overlay on the confidence maps, and panels shaped like the images (no large gaps for landscape images)."""

from __future__ import annotations

import numpy as np
import pytest

from lseg_nb.viz.diagnostics import ERROR_COLOUR, plot_confidence_map, plot_nearest_text_row
from lseg_nb.viz.explorer import plot_label_query
from lseg_nb.viz.segmentation import panel_inches, plot_examples


def _legends(fig) -> list:
    return list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend() is not None]


def _texts(fig) -> list[str]:
    return [t.get_text() for lg in _legends(fig) for t in lg.get_texts()]


def _rows(n: int, h: int = 6, w: int = 9):
    img = np.zeros((h, w, 3), np.uint8)
    out = []
    for r in range(n):
        pred = np.full((h, w), r % 3)
        target = pred.copy()
        target[0] = 255
        out.append((img, pred, target))
    return out


def test_example_grid_has_one_key_listing_each_class_once_with_unseen_marked():
    fig = plot_examples(_rows(3), ["road", "sky", "cow"], unseen=[2])
    assert len(_legends(fig)) == 1  # the old grid drew one key per row
    assert _texts(fig) == ["road", "sky", "cow (unseen)", "void (not scored)"]
    assert len(fig.axes) == 9


def test_confidence_maps_of_one_image_show_the_image_once_with_the_errors_outlined():
    conf = np.random.default_rng(0).random((2, 8, 12))
    wrong = np.zeros((8, 12), bool)
    wrong[2:5, 3:7] = True
    fig = plot_confidence_map(conf, np.zeros((8, 12, 3)), ["T = 1", "T = 2"], errors=wrong)
    images = [a for a in fig.axes if a.get_images()]
    assert len(images) == 3  # image, T = 1, T = 2 (06 drew the image twice, in two rows)
    assert [a.get_title().split("\n")[0] for a in images] == ["image", "T = 1", "T = 2"]
    assert "wrong 12%" in images[1].get_title()  # 12 of 96 pixels
    outlined = [a for a in images[1:] if any(np.allclose(c.get_edgecolor()[0][:3], _rgb(ERROR_COLOUR))
                                             for c in a.collections)]  # fmt: skip
    assert len(outlined) == 2 and _texts(fig) == ["wrong prediction (outline)"]
    none = plot_confidence_map(conf[0], errors=np.zeros((8, 12), bool))
    assert not none.axes[0].collections and none.axes[0].get_title().endswith("no wrong pixel")
    with pytest.raises(ValueError, match="errors"):
        plot_confidence_map(conf, errors=np.zeros((3, 8, 12), bool))


def _rgb(hex_: str) -> np.ndarray:
    return np.array([int(hex_[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def test_nearest_text_key_marks_unseen_classes():
    pred = np.zeros((8, 8), int)
    pred[4:] = 1
    near = np.full((8, 8), 2)
    fig = plot_nearest_text_row(np.zeros((8, 8, 3)), pred, pred, near, ["cow", "sky", "tree", "lamb"],
                                ["cow", "sky", "tree"], unseen=[1, 2])  # fmt: skip
    # "sky" occurs in the prediction, "tree" only as the nearest text: both unseen, both marked
    assert _texts(fig) == ["cow", "sky (unseen)", "tree (unseen)"] and len(_legends(fig)) == 1


def _panel_share(fig) -> float:
    """Share of the figure's area covered by image panels (the rest: titles, key, gaps)."""
    fig.draw_without_rendering()  # runs the constrained layout and the images' aspect
    area = sum(a.get_window_extent().width * a.get_window_extent().height for a in fig.axes if a.get_images())
    return area / (fig.bbox.width * fig.bbox.height)


@pytest.mark.parametrize("shape", [(213, 320), (10, 30), (30, 10)])
def test_figure_size_follows_the_image_aspect_ratio(shape):
    h, w = shape
    assert panel_inches((h, w))[0] / panel_inches((h, w))[1] == pytest.approx(w / h)
    # the old grid was 10 x 3.2 inches per row whatever the images: a 1:3 panorama filled 27% of it, a 3:1
    # portrait 24%; now the panels fill at least half of each figure
    assert _panel_share(plot_examples(_rows(2, h, w), ["road", "sky", "cow"])) >= 0.5
    query = plot_label_query(np.zeros((h, w, 3), np.uint8), np.zeros((h, w), int), ["a"])
    assert _panel_share(query) >= 0.45
    landscape, portrait = (
        plot_examples(_rows(1, *s), ["a"]).get_size_inches()[0] for s in ((6, 12), (12, 6))
    )
    assert landscape > 1.5 * portrait


def test_void_is_not_drawn_like_a_black_class():
    # VOC's background is black, as void was in every label map: void then takes VOC's own void colour
    from lseg_nb.viz.dataset_palettes import VOC21

    voc = [n.split("|")[0] for n, _ in VOC21.entries]
    target = np.zeros((6, 9), int)
    target[0] = 255
    fig = plot_examples([(np.zeros((6, 9, 3), np.uint8), target, target)], voc)
    drawn = fig.axes[2].get_images()[0].get_array()
    assert tuple(drawn[0, 0]) == (224, 224, 192) and tuple(drawn[1, 0]) == (0, 0, 0)  # void, background
    swatches = {t.get_text(): tuple(h.get_facecolor()[:3]) for t, h in zip(fig.legends[0].get_texts(),
                                                                          fig.legends[0].legend_handles)}  # fmt: skip
    assert swatches["background"] == (0, 0, 0)
    assert np.allclose(swatches["void (not scored)"], np.array([224, 224, 192]) / 255)
    other = plot_examples([(np.zeros((6, 9, 3), np.uint8), target, target)], ["road", "sky"])
    assert tuple(other.axes[2].get_images()[0].get_array()[0, 0]) == (0, 0, 0)  # no black class: void black
