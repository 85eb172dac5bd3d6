"""LSeg model components (text encoder, image encoder, DPT decoder, head, composed model) and the training-free
dense-CLIP baselines (MaskCLIP, SCLIP, NACLIP) with the same interface."""

from lseg_nb.models.dense_clip import DenseCLIP, DenseCLIPConfig, create_dense_clip, parse_model_spec
from lseg_nb.models.lseg import MODEL_CONFIGS, LSeg, build_lseg, create_model, get_config, list_models
from lseg_nb.models.text_encoder import (
    OneHotTextEncoder,
    OpenCLIPTextEncoder,
    RandomTextEncoder,
    SentenceTransformerTextEncoder,
    TextEncoder,
    create_text_encoder,
)

__all__ = [
    "MODEL_CONFIGS",
    "DenseCLIP",
    "DenseCLIPConfig",
    "LSeg",
    "OneHotTextEncoder",
    "OpenCLIPTextEncoder",
    "RandomTextEncoder",
    "SentenceTransformerTextEncoder",
    "TextEncoder",
    "build_lseg",
    "create_dense_clip",
    "create_model",
    "create_text_encoder",
    "get_config",
    "list_models",
    "parse_model_spec",
]
