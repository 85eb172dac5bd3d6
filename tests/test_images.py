"""Reading images and label maps: missing/empty/truncated files named, 16-bit images scaled, huge ones refused,
EXIF orientation applied (files and uploads alike), decompression bombs refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
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


def _exif_png(path, array: np.ndarray, orientation: int):
    """A PNG whose EXIF orientation tag says how a viewer turns the stored pixels."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes())
    return path


# stored pixels -> what a viewer shows, per EXIF orientation (6: turn 90 degrees clockwise, 3: 180, 8: 270)
VIEWER = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(VIEWER))
def test_images_are_read_as_a_viewer_shows_them(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (2, 4, 3), dtype=np.uint8)
    path = _exif_png(tmp_path / "photo.png", stored, orientation)
    shown = VIEWER[orientation](stored)
    np.testing.assert_array_equal(read_rgb(path), shown)
    np.testing.assert_array_equal(read_rgb(path.read_bytes(), "upload"), shown)  # the same reader for bytes
    np.testing.assert_array_equal(read_rgb(path, orient=False), stored)  # the benchmarks' stored order


def test_dataset_images_and_labels_align_in_the_viewer_orientation(tmp_path):
    """A phone photo stored on its side, labelled as the viewer shows it (2 wide, 4 high)."""
    from lseg_nb.data.datasets import SegmentationDataset
    from lseg_nb.data.manifests import load_manifest

    root = tmp_path / "data"
    for d in ("images", "labels", "splits"):
        (root / d).mkdir(parents=True)
    stored = np.zeros((2, 4, 3), np.uint8)
    stored[:, :2] = 255  # left half of the stored pixels white: the TOP half once turned clockwise
    _exif_png(root / "images" / "a.png", stored, 6)
    label = np.zeros((4, 2), np.uint8)
    label[:2] = 1
    Image.fromarray(label).save(root / "labels" / "a.png")
    (root / "splits" / "train.txt").write_text("a\n")
    (tmp_path / "toy.yaml").write_text(
        "name: toy\nsource_url: x\nlicence: x\nclasses: [dark, white]\n"
        "splits: {train: {file: splits/train.txt}}\nlayout: {images_dir: images, labels_dir: labels}\n"
    )
    image, target = SegmentationDataset(root, load_manifest(tmp_path / "toy.yaml"), "train")[0]
    assert image.shape == (3, 4, 2)
    assert torch.equal((image[0] > 0.5).long(), target)  # white pixels are exactly the "white" class


def test_decompression_bombs_are_refused_in_one_line(tmp_path):
    """A 300 Mpx PNG header with almost no data: refused from the header, file or upload, before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    for source in (tmp_path / "bomb.png", png):
        with pytest.raises(ValueError, match="too large|Mpx") as e:
            read_rgb(source, "upload bomb.png")
        assert "\n" not in str(e.value)
