"""Interactive label explorer: pick or upload an image, type any comma-separated labels, inspect the result.

The logic lives in :class:`LabelExplorer` (image + label text -> :class:`LabelQuery`), which needs no browser;
:class:`LabelExplorerWidget` wires it to ipywidgets: an image picker and an upload button, a label text box, the
segmentation overlay with its key, per-label similarity heatmaps, a temperature slider and the top-5 labels of a
clicked pixel (clicks arrive through ``ipyevents``). Pixel embeddings of the current image are cached by a
:class:`~lseg_nb.engine.inference.Predictor`, so a new label set costs only the text encoder and the head.

Any model with ``encode_text``, ``encode_image``, ``logits_from_embeddings`` and ``config.mean``/``config.std``
works (a trained run, a converted official checkpoint, a training-free baseline). All drawing is in
:mod:`lseg_nb.viz.explorer`; this module only encodes its results for the browser.
"""

from __future__ import annotations

import html
import io
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lseg_nb.data.images import read_rgb
from lseg_nb.data.transforms import denormalize
from lseg_nb.engine.predictor import Predictor, to_input
from lseg_nb.engine.scoring import image_ids
from lseg_nb.models import LSeg
from lseg_nb.utils.errors import InputError, UserError, printable
from lseg_nb.utils.labels import clean_labels
from lseg_nb.utils.optional import import_optional
from lseg_nb.viz.colours import label_palette
from lseg_nb.viz.explorer import (
    enlarge,
    legend_html,
    mark_pixel,
    plot_label_query,
    plot_similarity_maps,
    top_labels_html,
)
from lseg_nb.viz.segmentation import overlay

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# the widgets are in the 'notebooks' extra: without them this module names the extra instead of failing bare
W = import_optional("ipywidgets", "notebooks", "the label explorer (lseg_nb.apps.widgets)")
Event = import_optional("ipyevents", "notebooks", "the label explorer (lseg_nb.apps.widgets)").Event

PIXEL_HINT = "Click the segmentation to see the top labels of a pixel."


@dataclass(frozen=True, eq=False)
class LabelQuery:
    """One image segmented with one label set.

    ``logits`` ``(K, H, W)`` are the model's scaled scores (their argmax is ``mask``, int64 ``(H, W)`` indexing
    ``labels``); ``similarity`` ``(K, H, W)`` is the raw cosine similarity of each label's text embedding with the
    pixel embeddings; ``shares[i]`` is the fraction of pixels whose label is ``labels[i]``.
    """

    index: int
    labels: list[str]
    logits: np.ndarray
    similarity: np.ndarray
    mask: np.ndarray = field(init=False)
    shares: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        mask = self.logits.argmax(0)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "shares", np.bincount(mask.ravel(), minlength=len(self.labels)) / mask.size)

    def probabilities(self, y: int, x: int, temperature: float = 1.0) -> np.ndarray:
        """Label probabilities ``(K,)`` of pixel ``(y, x)``: ``softmax(logits[:, y, x] / temperature)``.

        ``temperature`` 1 gives the model's own probabilities (its logits are cosine similarity times the logit
        scale, e.g. 1/0.07); above 1 flattens them, below 1 sharpens them; the argmax never changes.
        """
        if not (np.isfinite(temperature) and temperature > 0):
            raise InputError(f"temperature must be a positive number, got {temperature}")
        h, w = self.mask.shape
        if not (0 <= y < h and 0 <= x < w):
            raise IndexError(f"pixel (y={y}, x={x}) is outside the {h}x{w} image")
        z = self.logits[:, y, x].astype(np.float64) / temperature
        e = np.exp(z - z.max())
        return e / e.sum()

    def top_labels(self, y: int, x: int, k: int = 5, temperature: float = 1.0) -> list[tuple[str, float]]:
        """The ``k`` most probable labels of pixel ``(y, x)`` with their probabilities, most probable first."""
        p = self.probabilities(y, x, temperature)
        order = np.argsort(-p, kind="stable")[:k]
        return [(self.labels[i], float(p[i])) for i in order]


def decode_image(data: bytes, name: str = "upload") -> np.ndarray:
    """Image file bytes (PNG, JPEG, ...) -> RGB uint8 ``(H, W, 3)`` with the reader of ``predict`` and the datasets
    (:func:`~lseg_nb.data.images.read_rgb`: EXIF orientation, 16-bit scaling, the pixel limit, decompression-bomb
    refusal), with a clear one-line error for anything else."""
    return read_rgb(bytes(data), f"upload {printable(name)}")


def _image_names(images: Sequence) -> list[str]:
    """The dataset's image ids (its ``ids``) where it has them, else ``image <index>``."""
    return [f"image {i}" if s == str(i) else s for i, s in enumerate(image_ids(images, len(images)))]


class LabelExplorer:
    """Segment images with arbitrary label lists.

    ``images``: a dataset of ``(image, label)`` items or a sequence of ``(3, H, W)`` tensors, normalised with
    ``model.config.mean/std``; ``names`` label them in the picker and the figures (default: the dataset's own
    image ids, as in its split file, or ``image 0``, ``image 1``, ... for a plain sequence). Uploaded RGB images
    (:meth:`add_image`, :meth:`add_upload`) are appended after them, shrunk to ``max_side`` pixels on the long
    side (to keep the CPU cost of a query small) and normalised with the model's mean/std.
    """

    def __init__(
        self, model: LSeg, images: Sequence, names: Sequence[str] | None = None, max_side: int = 640
    ) -> None:
        if len(images) < 1:
            raise InputError("the label explorer needs at least one image")
        if names is not None and len(names) != len(images):
            raise InputError(f"got {len(names)} names for {len(images)} images")
        self.model, self.images, self.max_side = model, images, max_side
        self.names = list(names) if names is not None else _image_names(images)
        self.predictor = Predictor(model)
        self._uploads: list[Tensor] = []
        self._index: int | None = None

    def __len__(self) -> int:
        return len(self.images) + len(self._uploads)

    def image_tensor(self, index: int) -> Tensor:
        """Normalised ``(3, H, W)`` image ``index`` (uploads follow the given images)."""
        if not 0 <= index < len(self):
            raise IndexError(f"image index {index} is out of range 0..{len(self) - 1}")
        if index >= len(self.images):
            return self._uploads[index - len(self.images)]
        item = self.images[index]
        return torch.as_tensor(item[0] if isinstance(item, tuple | list) else item)

    def display_image(self, index: int) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)`` of image ``index``."""
        return denormalize(self.image_tensor(index), self.model.config.mean, self.model.config.std)

    def add_image(self, rgb: np.ndarray, name: str) -> int:
        """Append an RGB uint8 ``(H, W, 3)`` image (shrunk to ``max_side``, normalised); returns its index."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"{name}: expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        if max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            rgb = np.array(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        self._uploads.append(to_input(rgb, self.model)[0])
        self.names.append(name)
        return len(self) - 1

    def add_upload(self, data: bytes, name: str) -> int:
        """Append an uploaded image file (bytes; read as :func:`decode_image`); returns its index."""
        return self.add_image(decode_image(data, name), printable(name))

    def query(self, index: int, labels: str | Sequence[str]) -> LabelQuery:
        """Segment image ``index`` with ``labels`` (comma-separated text or a list; empty entries and repeats
        are errors naming them); the image is embedded only when ``index`` changes."""
        names = clean_labels(labels)
        if index != self._index:
            self.predictor.set_image(self.image_tensor(index))
            self._index = index
        text = self.model.encode_text(names)
        logits = self.predictor.predict(text).numpy()
        return LabelQuery(index, names, logits, self.predictor.similarity(text).numpy())

    def draw(self, query: LabelQuery) -> Figure:
        """A query as image | overlay | label map, with a key of label shares."""
        return plot_label_query(
            self.display_image(query.index), query.mask, query.labels, self.names[query.index]
        )

    def figure(self, index: int, labels: str | Sequence[str]) -> Figure:
        """:meth:`query` then :meth:`draw`."""
        return self.draw(self.query(index, labels))


def png_bytes(image: np.ndarray | Figure, dpi: int = 90) -> bytes:
    """PNG encoding of an RGB uint8 array or a matplotlib figure (for ``ipywidgets.Image``)."""
    buf = io.BytesIO()
    if hasattr(image, "savefig"):  # a matplotlib Figure (matplotlib itself is imported only by viz)
        image.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    else:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class LabelExplorerWidget(W.VBox):
    """The explorer's controls and views.

    Inspectable state: ``last_query`` (the result shown), ``error`` (the message shown instead, or ``None``),
    ``legend_labels`` (labels in the key), ``pixel`` and ``top`` (the clicked pixel ``(y, x)`` and its top
    labels with probabilities). Every view element has a CSS class ``lseg-*`` for browser tests.
    """

    def __init__(
        self,
        explorer: LabelExplorer,
        labels: str,
        index: int = 0,
        temperature: float = 1.0,
        display_size: int = 384,
        top_k: int = 5,
    ) -> None:
        if not 0 <= index < len(explorer):
            raise IndexError(f"image index {index} is out of range 0..{len(explorer) - 1}")
        self.explorer, self.display_size, self.top_k = explorer, display_size, top_k
        self.last_query: LabelQuery | None = None
        self.error: str | None = None
        self.pixel: tuple[int, int] | None = None
        self.top: list[tuple[str, float]] = []
        self._scale = 1  # overlay pixels per image pixel
        self._holding = False
        self.picker = W.Dropdown(options=self._options(), value=index, description="image")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.labels = W.Text(
            value=labels,
            description="labels",
            continuous_update=False,
            layout=W.Layout(width="60%"),
            placeholder="comma-separated, e.g. red, stripes, grass (press Enter)",
        )
        self.temperature = W.FloatLogSlider(
            value=temperature,
            base=10,
            min=-1,
            max=1,
            step=0.01,
            description="temperature",
            readout_format=".2f",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.message = W.HTML()
        self.overlay = W.Image(format="png")
        self.legend = W.HTML()
        self.pixel_info = W.HTML(PIXEL_HINT)
        self.heatmaps = W.Image(format="png")
        parts = dict(
            picker=self.picker,
            upload=self.upload,
            labels=self.labels,
            temperature=self.temperature,
            message=self.message,
            overlay=self.overlay,
            legend=self.legend,
            pixel=self.pixel_info,
            heatmaps=self.heatmaps,
        )
        for name, widget in parts.items():
            widget.add_class(f"lseg-{name}")
        self._clicks = Event(source=self.overlay, watched_events=["click"], prevent_default_action=True)
        self._clicks.on_dom_event(self._guarded(self._on_click))
        super().__init__(
            [
                W.HBox([self.picker, self.upload]),
                W.HBox([self.labels, self.temperature]),
                self.message,
                W.HBox([W.VBox([self.overlay, self.legend]), self.pixel_info]),
                W.HTML("<b>Cosine similarity of each label's text with every pixel</b>"),
                self.heatmaps,
            ]
        )
        self.add_class("lseg-explorer")
        self.picker.observe(self._guarded(self._update), names="value")
        self.labels.observe(self._guarded(self._update), names="value")
        self.temperature.observe(self._guarded(self._show_pixel), names="value")
        self.upload.observe(self._guarded(self._on_upload), names="value")
        self._guarded(self._update)()

    @property
    def legend_labels(self) -> list[str]:
        """Labels in the key now (empty while an error is shown)."""
        return [] if self.error is not None or self.last_query is None else list(self.last_query.labels)

    def _options(self) -> list[tuple[str, int]]:
        return [(name, i) for i, name in enumerate(self.explorer.names)]

    def _guarded(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Run a callback; bad input shows one message in the widget, anything else its traceback (no
        exception is lost in the kernel log, where a notebook user would never see it)."""

        def run(*args: object) -> None:
            try:
                fn(*args)
            except (UserError, OSError, IndexError) as e:  # what the user can fix: one line
                self._fail(html.escape(printable(str(e))), printable(str(e)))
            except Exception as e:  # a bug: show it where the user looks
                text = traceback.format_exc()
                self._fail(f"<pre>{html.escape(text)}</pre>", f"{type(e).__name__}: {e}")

        return run

    def _fail(self, shown: str, error: str) -> None:
        # hide every view of the last result, so nothing stale is read as the answer to the new input
        self.error = error
        self.message.value = f'<div class="lseg-error" style="color:#b00020">{shown}</div>'
        self.legend.value = self.pixel_info.value = ""
        self.overlay.layout.display = self.heatmaps.layout.display = "none"
        self.top = []

    def _update(self, change: dict | None = None) -> None:
        if self._holding:
            return
        query = self.explorer.query(self.picker.value, self.labels.value)
        if self.last_query is None or query.index != self.last_query.index:
            self.pixel = None
        self.last_query, self.error = query, None
        self.message.value = ""
        self.overlay.layout.display = self.heatmaps.layout.display = None
        self.legend.value = legend_html(query.labels, query.shares)
        self.heatmaps.value = png_bytes(plot_similarity_maps(query.similarity, query.labels))
        self._show_pixel()

    def _draw_overlay(self) -> None:
        q = self.last_query
        rgb = overlay(self.explorer.display_image(q.index), q.mask, label_palette(q.labels), ignore_index=-1)
        s = self._scale = max(1, self.display_size // max(rgb.shape[:2]))
        big = enlarge(rgb, s)
        if self.pixel is not None:  # drawn on the enlarged image, so its size is in display pixels
            y, x = self.pixel
            big = mark_pixel(big, y * s + s // 2, x * s + s // 2, gap=s // 2 + 2)
        self.overlay.value = png_bytes(big)
        self.overlay.width = str(min(rgb.shape[1] * s, self.display_size))

    def _show_pixel(self, change: dict | None = None) -> None:
        if self.last_query is None or self.error is not None:
            return
        self._draw_overlay()
        if self.pixel is None:
            self.top, self.pixel_info.value = [], PIXEL_HINT
            return
        t = float(self.temperature.value)
        self.top = self.last_query.top_labels(*self.pixel, self.top_k, t)
        self.pixel_info.value = top_labels_html(self.pixel, self.top, t, self.last_query.labels)

    def select_pixel(self, y: int, x: int) -> None:
        """Query pixel ``(y, x)`` of the shown image (what a click on the overlay does)."""
        if self.last_query is None or self.error is not None:
            return
        h, w = self.last_query.mask.shape
        if not (0 <= y < h and 0 <= x < w):
            raise IndexError(f"pixel (y={y}, x={x}) is outside the {h}x{w} image")
        self.pixel = (y, x)
        self._show_pixel()

    def _on_click(self, event: dict) -> None:
        # ipyevents gives dataX/dataY in the PNG's own pixels (it undoes the browser's scaling of the <img>)
        if self.last_query is None or "dataX" not in event:
            return
        h, w = self.last_query.mask.shape
        y = min(max(int(event["dataY"]) // self._scale, 0), h - 1)
        x = min(max(int(event["dataX"]) // self._scale, 0), w - 1)
        self.select_pixel(y, x)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[-1]
        index = self.explorer.add_upload(bytes(item["content"]), item["name"])
        self._holding = True  # new options must not trigger a query of the old selection
        try:
            self.picker.options = self._options()
        finally:
            self._holding = False
        self.picker.value = index
        if self.last_query is None or self.last_query.index != index:
            self._update()


def label_explorer(
    model: LSeg,
    images: Sequence,
    labels: str = "red, green, blue, yellow",
    index: int = 0,
    temperature: float = 1.0,
    names: Sequence[str] | None = None,
) -> LabelExplorerWidget:
    """Widget: pick (or upload) an image, type comma-separated labels (any words), see and probe the result."""
    return LabelExplorerWidget(LabelExplorer(model, images, names), labels, index, temperature)
