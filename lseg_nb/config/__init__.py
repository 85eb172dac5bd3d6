"""Configuration layer: frozen dataclasses (validated on creation) with a lossless JSON round trip, named model
configs and named whole recipes. Nothing here imports a model or a dataset.

* :mod:`.serialize` - ``to_dict``/``from_dict``/``load_config``/``save_json``, :class:`ConfigError`.
* :mod:`.model` - :class:`TextEncoderConfig`, :class:`ModelConfig`.
* :mod:`.named` - ``MODEL_CONFIGS`` (the paper's models and a small CPU model), ``get_config``.
* :mod:`.eval` - :class:`EvalConfig`, the evaluation protocol.
* :mod:`.train` - :class:`DataConfig`, :class:`TrainConfig`.
* :mod:`.recipes` - ``RECIPES`` (whole recipes incl. the evaluation protocol), ``get_recipe``.
"""

from lseg_nb.config.eval import (
    EPISODIC_BENCHMARKS,
    OFFICIAL_SCALES,
    EvalConfig,
    EvalProtocol,
    InferenceMode,
)
from lseg_nb.config.model import (
    Activation,
    HeadBlock,
    ModelConfig,
    Readout,
    TextEncoderConfig,
    TextEncoderKind,
)
from lseg_nb.config.named import CLIP_B32, MINILM, MODEL_CONFIGS, get_config, list_models
from lseg_nb.config.recipes import (
    OFFICIAL_EVAL,
    PUBLISHED_MIOU,
    RECIPE_NOTES,
    RECIPES,
    get_recipe,
    list_recipes,
    steps_for_epochs,
)
from lseg_nb.config.serialize import ConfigError, check_fields, from_dict, load_config, save_json, to_dict
from lseg_nb.config.train import DataConfig, TrainConfig

__all__ = [
    "CLIP_B32",
    "EPISODIC_BENCHMARKS",
    "MINILM",
    "MODEL_CONFIGS",
    "OFFICIAL_EVAL",
    "OFFICIAL_SCALES",
    "PUBLISHED_MIOU",
    "RECIPES",
    "RECIPE_NOTES",
    "Activation",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "EvalProtocol",
    "HeadBlock",
    "InferenceMode",
    "ModelConfig",
    "Readout",
    "TextEncoderConfig",
    "TextEncoderKind",
    "TrainConfig",
    "check_fields",
    "from_dict",
    "get_config",
    "get_recipe",
    "list_models",
    "list_recipes",
    "load_config",
    "save_json",
    "steps_for_epochs",
    "to_dict",
]
