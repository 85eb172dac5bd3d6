"""The one reader of image and label files (datasets, ``predict``, the label explorer's uploads): clear errors
(missing, empty, truncated, unreadable, too large), no silent precision loss (16-bit greyscale images are scaled to
8 bits instead of being clipped to white), and the orientation a viewer shows: a photo's EXIF orientation tag is
applied (``ImageOps.exif_transpose``), so a phone picture is not segmented lying on its side.

Paper benchmarks read their images with ``orient=False``: the official loaders (HSNet ``data/pascal.py``
``read_img``: ``Image.open(...).convert('RGB')``) use the stored pixel order, and their masks follow it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lseg_nb.utils.errors import InputError, printable
from lseg_nb.utils.io import user_path

# Pillow's default pixel limit (~179 Mpx) only warns; an 8000x8000 image already needs GBs through the model.
MAX_PIXELS = 40_000_000

#: a file path, or the bytes of an image file (an upload)
ImageSource = str | Path | bytes


def _name(source: ImageSource, what: str) -> str:
    return what if isinstance(source, bytes) else printable(f"{what} {user_path(source)}")


def _open(source: ImageSource, what: str, max_pixels: int | None = None) -> Image.Image:
    name = _name(source, what)
    if isinstance(source, bytes):
        fp = io.BytesIO(source)
        if not source:
            raise InputError(f"{name} is empty (0 bytes): upload an image file such as a PNG or JPEG")
    else:
        path = fp = user_path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name} does not exist")
        if path.stat().st_size == 0:
            raise InputError(f"{name} is empty (0 bytes): re-copy or re-export the file")
    try:
        im = Image.open(fp)
        # the size is in the header: refuse a huge image before decoding it
        if max_pixels is not None and im.width * im.height > max_pixels:
            im.close()
            raise InputError(
                f"{name} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} Mpx), more than "
                f"{max_pixels / 1e6:.0f} Mpx: downscale it first, or use --mode sliding (windows of the model's "
                "crop size) on a machine with enough memory"
            )
        im.load()
    except Image.DecompressionBombError as e:
        raise InputError(f"{name} is too large to decode safely ({e}): downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, InputError):
            raise
        said = "an unknown format" if isinstance(e, UnidentifiedImageError) else str(e).split("\n")[0][:200]
        fix = "upload a PNG or JPEG file" if isinstance(source, bytes) else "re-copy or re-export it"
        raise InputError(
            f"{name} is not a readable image ({type(e).__name__}: {said}); it may be truncated or in an "
            f"unsupported format: {fix}"
        ) from None
    return im


def _oriented(im: Image.Image, orient: bool) -> Image.Image:
    """``im`` turned as its EXIF orientation tag says (a viewer's orientation); a broken tag is ignored."""
    if not orient:
        return im
    try:
        return ImageOps.exif_transpose(im)
    except (ValueError, OSError, SyntaxError, KeyError, TypeError):  # malformed EXIF: keep the stored pixels
        return im


def _to_uint8(im: Image.Image) -> Image.Image:
    """16/32-bit greyscale -> 8-bit by the type's range (PIL's convert('RGB') would clip values > 255 to white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) <= 65535 else float(arr.max())
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max(initial=0) <= 1.0 else float(arr.max())
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return im


def read_rgb(
    source: ImageSource, what: str = "image", max_pixels: int | None = MAX_PIXELS, orient: bool = True
) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of an image file or its bytes, in the orientation a viewer shows (``orient``);
    errors name the file and what to do."""
    with _open(source, what, max_pixels) as im:
        return np.array(_to_uint8(_oriented(im, orient)).convert("RGB"))


def read_label(source: ImageSource, what: str = "label", orient: bool = True) -> np.ndarray:
    """Class-index map ``int64 (H, W)`` of a single-channel PNG (mode L/P/I/I;16), turned like its image
    (``orient``, see :func:`read_rgb`); colour images are refused."""
    with _open(source, what) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise InputError(
                f"{_name(source, what)} has mode {im.mode}; expected a single-channel class-index PNG (mode L/P), "
                "not a colour-coded image"
            )
        return np.array(_oriented(im, orient), dtype=np.int64)
