"""lseg_nb: Jupyter-first language-driven semantic segmentation (LSeg).

Layers follow the data flow and imports only point down it:
``utils`` -> ``config`` -> ``models`` (+ ``checkpoints``) -> ``data`` -> ``engine`` (loss, training, inference,
evaluation, few-shot protocol) -> ``diagnostics`` / ``viz`` -> ``apps`` (CLI, pipeline, reports, widgets, notebook
helpers). The main entry points are re-exported here and imported on first use (``import lseg_nb`` stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "lseg_nb.models",
    "LSeg": "lseg_nb.models",
    "TrainConfig": "lseg_nb.config",
    "DataConfig": "lseg_nb.config",
    "EvalConfig": "lseg_nb.config",
    "ModelConfig": "lseg_nb.config",
    "get_recipe": "lseg_nb.config",
    "train": "lseg_nb.engine.train",
    "evaluate": "lseg_nb.engine.evaluate",
    "predict_logits": "lseg_nb.engine.inference",
    "Predictor": "lseg_nb.engine.inference",
    "load_model": "lseg_nb.engine.runs",
    "load_official": "lseg_nb.checkpoints",
    "load_lseg_nb": "lseg_nb.checkpoints",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lseg_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
