"""Reading images and label maps: missing/empty/truncated files named, 16-bit images scaled, huge ones refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lseg_nb.data.images import read_label, read_rgb


def _png(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("reader", [read_rgb, read_label], ids=["image", "label"])
def test_missing_empty_and_truncated_files_are_named(tmp_path, reader):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing.png'} does not exist"):
        reader(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty.png'} is empty \\(0 bytes\\)"):
        reader(tmp_path / "empty.png")
    rng = np.random.default_rng(0)
    data = _png(tmp_path / "full.png", rng.integers(0, 255, (64, 64), dtype=np.uint8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{tmp_path / 'cut.png'} is not a readable image .*truncated"):
        reader(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=f"{tmp_path / 'notes.png'} is not a readable image"):
        reader(tmp_path / "notes.png")


def test_16_bit_greyscale_is_scaled_not_clipped_to_white(tmp_path):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    path = _png(tmp_path / "deep.png", ramp)
    assert Image.open(path).mode.startswith("I")  # really stored as 16 bits
    rgb = read_rgb(path)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    expected = np.round(ramp / 65535 * 255).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb)) > 200  # not all white


def test_huge_image_is_refused_before_decoding_with_a_hint(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (8000, 8000)).save(path)  # 64 Mpx, a few kB on disk
    with pytest.raises(
        ValueError, match=r"huge\.png is 8000x8000 \(64 Mpx\), more than 40 Mpx: .*--mode sliding"
    ):
        read_rgb(path)
    assert read_rgb(path, max_pixels=None).shape == (
        8000,
        8000,
        3,
    )  # the limit is a guard, not a format limit


def test_colour_label_maps_are_refused(tmp_path):
    path = _png(tmp_path / "colour.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="has mode RGB; expected a single-channel class-index PNG"):
        read_label(path)
