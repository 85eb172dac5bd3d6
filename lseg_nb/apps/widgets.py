"""Interactive label explorer: pick an image, type any comma-separated labels, see the segmentation update.

The logic lives in :class:`LabelExplorer` (index + label text -> :class:`LabelQuery` / figure), which needs no
browser; :func:`label_explorer` only wires it to ipywidgets. Pixel embeddings of the current image are cached
by a :class:`~lseg_nb.engine.inference.Predictor`, so a new label set costs only the text encoder and the head.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from lseg_nb.data.transforms import denormalize
from lseg_nb.engine.inference import Predictor
from lseg_nb.models import LSeg
from lseg_nb.utils.labels import clean_labels as parse_labels
from lseg_nb.viz.explorer import plot_label_query


@dataclass(frozen=True, eq=False)
class LabelQuery:
    """Result of one query: ``mask`` int64 ``(H, W)`` indexes ``labels``; ``shares[i]`` = pixel share of label i."""

    index: int
    labels: list[str]
    mask: np.ndarray
    shares: np.ndarray


class LabelExplorer:
    """Segment images of ``images`` (a dataset of ``(image, label)`` items or a sequence of normalised
    ``(3, H, W)`` tensors) with arbitrary label lists."""

    def __init__(self, model: LSeg, images: Sequence) -> None:
        if len(images) < 1:
            raise ValueError("the label explorer needs at least one image")
        self.model, self.images = model, images
        self.predictor = Predictor(model)
        self._index: int | None = None

    def __len__(self) -> int:
        return len(self.images)

    def image_tensor(self, index: int) -> Tensor:
        """Normalised ``(3, H, W)`` image ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"image index {index} is out of range 0..{len(self) - 1}")
        item = self.images[index]
        return torch.as_tensor(item[0] if isinstance(item, tuple | list) else item)

    def display_image(self, index: int) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)`` of image ``index``."""
        return denormalize(self.image_tensor(index), self.model.config.mean, self.model.config.std)

    def query(self, index: int, labels: str | Sequence[str]) -> LabelQuery:
        """Segment image ``index`` with ``labels`` (comma-separated text or a list); embeds it only on change."""
        names = parse_labels(labels)
        if index != self._index:
            self.predictor.set_image(self.image_tensor(index))
            self._index = index
        mask = self.predictor.predict_mask(names).numpy()
        shares = np.bincount(mask.ravel(), minlength=len(names)) / mask.size
        return LabelQuery(index, names, mask, shares)

    def draw(self, query: LabelQuery) -> Figure:
        """A query as image | overlay, with a legend of label shares."""
        return plot_label_query(
            self.display_image(query.index), query.mask, query.labels, f"image {query.index}"
        )

    def figure(self, index: int, labels: str | Sequence[str]) -> Figure:
        """:meth:`query` then :meth:`draw`."""
        return self.draw(self.query(index, labels))


class LabelExplorerWidget(W.VBox):
    """Slider (image index) + text box (labels) + output area; ``last_query``/``error`` hold the latest result."""

    def __init__(self, explorer: LabelExplorer, labels: str, index: int = 0) -> None:
        self.explorer = explorer
        self.index = W.IntSlider(
            value=index, min=0, max=len(explorer) - 1, description="image", continuous_update=False
        )
        self.labels = W.Text(
            value=labels,
            description="labels",
            continuous_update=False,
            layout=W.Layout(width="70%"),
            placeholder="comma-separated, e.g. red, stripes, grass",
        )
        self.output = W.Output()
        self.last_query: LabelQuery | None = None
        self.error: str | None = None
        super().__init__([W.HBox([self.index, self.labels]), self.output])
        self.index.observe(self._update, names="value")
        self.labels.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        # The output area is set through its `outputs` state rather than by capturing (`with self.output:`):
        # no dependence on the execution context, and headless runners (nbclient) need not mirror the capture
        # back to the kernel, which can stall their wait for the cell's reply until the cell timeout.
        try:
            self.last_query = self.explorer.query(self.index.value, self.labels.value)
            self.error = None
        except ValueError as e:  # bad label text: say so in place of the figure
            self.error = str(e)
            self.output.outputs = ({"output_type": "stream", "name": "stdout", "text": self.error + "\n"},)
            return
        self.output.outputs = (figure_output(self.explorer.draw(self.last_query)),)


def figure_output(fig: Figure, dpi: int = 100) -> dict:
    """A figure as a Jupyter ``display_data`` output (PNG + text), e.g. for ``ipywidgets.Output.outputs``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": repr(fig)},
        "metadata": {},
    }


def label_explorer(
    model: LSeg, images: Sequence, labels: str = "red, green, blue, yellow", index: int = 0
) -> LabelExplorerWidget:
    """Widget: choose an image with a slider, type comma-separated labels (any words), see the segmentation."""
    return LabelExplorerWidget(LabelExplorer(model, images), labels, index)
