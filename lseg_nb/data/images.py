"""Reading image and label files with clear errors (missing, empty, truncated, unreadable) and no silent
precision loss: 16-bit greyscale images are scaled to 8 bits instead of being clipped to white."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's default pixel limit (~179 Mpx) only warns; an 8000x8000 image already needs GBs through the model.
MAX_PIXELS = 40_000_000


def _open(path: Path, what: str, max_pixels: int | None = None) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path} is empty (0 bytes): re-copy or re-export the file")
    try:
        im = Image.open(path)
        # the size is in the header: refuse a huge image before decoding it
        if max_pixels is not None and im.width * im.height > max_pixels:
            im.close()
            raise ValueError(
                f"{what} {path} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} Mpx), more than "
                f"{max_pixels / 1e6:.0f} Mpx: downscale it first, or use --mode sliding (windows of the model's "
                "crop size) on a machine with enough memory"
            )
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(
            f"{what} {path} is not a readable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "it may be truncated or in an unsupported format: re-copy or re-export it"
        ) from None
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


def read_rgb(path: str | Path, what: str = "image", max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of an image file; errors name the file and what to do."""
    path = Path(path)
    with _open(path, what, max_pixels) as im:
        return np.array(_to_uint8(im).convert("RGB"))


def read_label(path: str | Path, what: str = "label") -> np.ndarray:
    """Class-index map ``int64 (H, W)`` of a single-channel PNG (mode L/P/I/I;16); colour images are refused."""
    path = Path(path)
    with _open(path, what) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(
                f"{what} {path} has mode {im.mode}; expected a single-channel class-index PNG (mode L/P), "
                "not a colour-coded image"
            )
        return np.array(im, dtype=np.int64)
