"""Publication export: every saved figure is a PNG at >= 200 dpi plus a PDF and an SVG (atomic_save_figure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from PIL import Image

from lseg_nb.utils.io import FIGURE_DPI, atomic_save_figure
from lseg_nb.viz.mpl import figure


def _fig():
    fig = figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_a_png_figure_is_written_with_pdf_and_svg_copies_at_print_resolution(tmp_path):
    paths = atomic_save_figure(_fig(), tmp_path / "curve.png")
    assert [p.name for p in paths] == ["curve.png", "curve.pdf", "curve.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "curve.pdf",
        "curve.png",
        "curve.svg",
    ]  # no temp files
    with Image.open(tmp_path / "curve.png") as im:
        assert im.format == "PNG" and min(im.info["dpi"]) >= 200  # the old default wrote 110 dpi
        assert im.size[0] >= 2 * 200  # a 3-inch figure, cropped tight, is still ~ 3 x dpi pixels wide
    assert (tmp_path / "curve.pdf").read_bytes()[:5] == b"%PDF-"
    assert ET.parse(tmp_path / "curve.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert FIGURE_DPI >= 200


def test_vector_copies_carry_no_date_so_the_same_figure_gives_the_same_bytes(tmp_path):
    atomic_save_figure(_fig(), tmp_path / "a.png")
    atomic_save_figure(_fig(), tmp_path / "b.png")
    for ext in ("pdf", "svg"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()


def test_another_suffix_writes_that_format_only(tmp_path):
    assert atomic_save_figure(_fig(), tmp_path / "fig.svg") == [tmp_path / "fig.svg"]
    assert [p.name for p in tmp_path.iterdir()] == ["fig.svg"]
