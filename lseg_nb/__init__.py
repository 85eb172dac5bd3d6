"""lseg_nb: Jupyter-first language-driven semantic segmentation (LSeg).

>>> from lseg_nb import Predictor, load_model
>>> predictor = Predictor(load_model("runs/demo"))   # a run, a converted official checkpoint or "naclip:..."
>>> predictor.set_image("photo.jpg")
>>> mask = predictor.predict_mask("sky, grass, cow|calf")

Layers follow the data flow and imports only point down it:
``utils`` -> ``config`` -> ``models`` (+ ``checkpoints``) -> ``data`` -> ``engine`` (loss, training, inference,
evaluation) -> ``diagnostics`` / ``viz`` -> ``apps`` (CLI, pipeline, reports, widgets, notebook helpers). The
names below are imported on first use (``import lseg_nb`` stays fast). Diagnostics live in
``lseg_nb.diagnostics``, figures in ``lseg_nb.viz``, notebook helpers in ``lseg_nb.apps.notebook``.
"""

from __future__ import annotations

from lseg_nb.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # models
    "create_model": "lseg_nb.models.lseg",
    "load_model": "lseg_nb.engine.runs",
    "load_official": "lseg_nb.checkpoints.official",
    "Predictor": "lseg_nb.engine.predictor",
    "predict_logits": "lseg_nb.engine.inference",
    # configs and labels
    "ModelConfig": "lseg_nb.config",
    "DataConfig": "lseg_nb.config",
    "EvalConfig": "lseg_nb.config",
    "TrainConfig": "lseg_nb.config",
    "OFFICIAL_EVAL": "lseg_nb.config",
    "LabelSplit": "lseg_nb.utils.labels",
    "get_recipe": "lseg_nb.config",
    "list_recipes": "lseg_nb.config",
    # jobs
    "train": "lseg_nb.engine.train",
    "evaluate": "lseg_nb.engine.evaluate",
    "evaluate_run": "lseg_nb.engine.evaluate",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
__all__ = sorted(_EXPORTS)
