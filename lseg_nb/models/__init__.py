"""LSeg model components: text encoder, image encoder, DPT decoder, head, and the composed model."""

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
    "LSeg",
    "OneHotTextEncoder",
    "OpenCLIPTextEncoder",
    "RandomTextEncoder",
    "SentenceTransformerTextEncoder",
    "TextEncoder",
    "build_lseg",
    "create_model",
    "create_text_encoder",
    "get_config",
    "list_models",
]
