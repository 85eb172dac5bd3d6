"""Weights in and out: the one lseg_nb weights format (safetensors + config metadata) and everything about the
official LSeg checkpoints (safe reading, name mapping, conversion) in one place.

* :mod:`.weights` - :func:`save_lseg_nb`, :func:`load_lseg_nb`, :func:`load_into`.
* :mod:`.official_reader` - weights-only reading of the official Lightning ``.ckpt`` files.
* :mod:`.official_names` - official tensor names <-> lseg_nb names, layout detection.
* :mod:`.official` - :func:`load_official`, :func:`convert_official`, :func:`official_config`.
"""

from lseg_nb.checkpoints.official import (
    build_from_official,
    convert_main,
    convert_official,
    load_official,
    official_config,
)
from lseg_nb.checkpoints.official_names import (
    LAYOUT_CONFIGS,
    UNUSED,
    ConversionReport,
    detect_layout,
    lseg_nb_to_official,
    official_to_lseg_nb,
    unused_placeholders,
)
from lseg_nb.checkpoints.official_reader import read_checkpoint, split_checkpoint
from lseg_nb.checkpoints.weights import load_into, load_lseg_nb, save_lseg_nb

__all__ = [
    "LAYOUT_CONFIGS",
    "UNUSED",
    "ConversionReport",
    "build_from_official",
    "convert_main",
    "convert_official",
    "detect_layout",
    "load_into",
    "load_lseg_nb",
    "load_official",
    "lseg_nb_to_official",
    "official_config",
    "official_to_lseg_nb",
    "read_checkpoint",
    "save_lseg_nb",
    "split_checkpoint",
    "unused_placeholders",
]
