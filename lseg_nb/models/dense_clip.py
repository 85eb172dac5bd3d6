"""Training-free dense-CLIP baselines with the LSeg interface: MaskCLIP, SCLIP, NACLIP and ClearCLIP.

A CLIP ViT image tower (any open_clip model name + pretrained tag, local weights file, or random weights) gives one
embedding per patch in CLIP's joint space by changing only its last block; the text tower of the *same* CLIP model
is wrapped in :class:`~lseg_nb.models.text_encoder.OpenCLIPTextEncoder`, so label embeddings, prompt templates and
their cache work exactly as for LSeg. :class:`DenseCLIP` has LSeg's interface (``encode_text``, ``encode_image``,
``logits_from_embeddings``, ``forward``, ``config.mean/std/crop_size``, ``text_dim``, ``size_multiple``), so the
inference modes, evaluation, the PASCAL-5i protocol, the label explorer and the diagnostics accept it unchanged.

Methods (last block only; every earlier block runs unchanged; then ``ln_post`` and ``proj`` on each patch token):

* ``maskclip`` -- MaskCLIP (Zhou, Loy, Dai, "Extract Free Dense Labels from CLIP", ECCV 2022): the value
  embeddings through the output projection replace the attention (no query-key mixing); as the reference
  ``return_qkv`` path the block's residual and FFN are kept: ``v = x + out_proj(v(ln_1 x)); v = v + mlp(ln_2 v)``.
* ``sclip`` -- SCLIP (Wang, Mei, Yuille, "SCLIP: Rethinking Self-Attention for Dense Vision-Language Inference",
  ECCV 2024): correlative self-attention ``softmax(q q^T s) + softmax(k k^T s)`` applied to ``v``; residual and
  FFN kept, as its reference ``clip/model.py``.
* ``naclip`` -- NACLIP (Hajimiri, Ben Ayed, Dolz, "Pay Attention to Your Neighbours: Training-Free
  Open-Vocabulary Semantic Segmentation", WACV 2025): ``softmax(k k^T s + omega)`` with a Gaussian neighbourhood
  ``omega`` (std ``gaussian_std``, default 5 as its reference) between patch positions; residual and FFN of the
  last block removed ("reduced" architecture).
* ``clearclip`` -- ClearCLIP (Lan et al., "ClearCLIP: Decomposing CLIP Representations for Dense Vision-Language
  Inference", ECCV 2024): self-self attention ``softmax(q q^T s)`` applied to ``v``, residual and FFN of the last
  block removed (mc-lan/ClearCLIP@ad68a40 ``open_clip/transformer.py:523-536,614-616``; ``s`` = ``head_dim**-0.5``).

Deviations from the reference implementations (all four pin an mmsegmentation stack):

* the model applies no post-processing: the references' softmax over all names with a fixed logit scale, the
  per-class max over names, ``prob_thd``/``area_thd`` and PAMR are pure functions of the engine
  (:mod:`lseg_nb.engine.postprocess`, :mod:`lseg_nb.engine.pamr`) applied by the evaluation protocol; no MaskCLIP
  key smoothing / prompt denoising / MaskCLIP+ self-training;
* test pipelines are the engine's (:mod:`lseg_nb.engine.inference`); the references' exact pipelines (short-side
  resize, 224 px windows at stride 112, dropping ``H mod 16`` rows where lseg_nb pads) are written down in
  ``docs/protocols-trainingfree.md``; ``config.crop_size`` defaults to the tower's native size (224 for ViT-B/16);
* positional embeddings are resized bicubically (``align_corners=False``) to the exact patch grid, as mmseg's
  ``resize_pos_embed`` used by MaskCLIP; SCLIP/NACLIP/ClearCLIP interpolate with a scale factor ``(n + 0.1) / N``,
  which samples marginally different positions;
* logits are ``logit_scale * cosine`` (default: the CLIP model's own learned scale, 100 for OpenAI weights;
  SCLIP/NACLIP use 40 before their softmax, ClearCLIP 50 -- the argmax is the same), upsampled bilinearly with
  ``align_corners=False`` as the references;
* every method uses the same prompt templates (default: OpenAI's 80 ImageNet templates, as SCLIP, NACLIP and
  ClearCLIP; MaskCLIP's reference has its own template list); computation is float32 (the references run CLIP in
  fp16).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.models.dense_clip_attention import (
    check_block,
    clearclip_block,
    maskclip_block,
    naclip_block,
    sclip_block,
)
from lseg_nb.models.text_encoder import (
    OpenCLIPTextEncoder,
    check_text_embeddings,
    create_open_clip,
    open_clip_local_name,
)
from lseg_nb.utils.errors import InputError

Method = Literal["maskclip", "sclip", "naclip", "clearclip"]
METHODS: tuple[str, ...] = ("maskclip", "sclip", "naclip", "clearclip")
RANDOM_WEIGHTS = ("", "none", "random")
SPEC_FORMS = (
    "'METHOD:MODEL/PRETRAINED' with METHOD one of maskclip|sclip|naclip|clearclip, MODEL an open_clip name "
    "(e.g. ViT-B-16) and PRETRAINED an open_clip tag (e.g. openai), a local weights file "
    "(maskclip:ViT-B-16//path/to/open_clip_pytorch_model.bin) or 'none' for random weights"
)


@dataclass(frozen=True)
class DenseCLIPConfig:
    """A training-free dense-CLIP model (see the module docstring for the methods and their deviations).

    ``name``: open_clip model name (a ViT, e.g. ``ViT-B-16``). ``pretrained``: open_clip tag, local weights file or
    ``None`` (random weights). ``quick_gelu``: ``None`` = as the pretrained tag was trained (QuickGELU for
    ``openai``). ``templates``: prompt templates with ``{}``; ``None`` = OpenAI's 80 ImageNet templates.
    ``gaussian_std``: NACLIP's neighbourhood std in patches. ``logit_scale``: ``None`` = the CLIP model's learned
    scale. ``crop_size``/``mean``/``std``: ``None`` = the tower's native image size and open_clip's
    normalisation for the pretrained tag (for a local file or random weights open_clip's default, OpenAI's
    statistics: set ``mean``/``std`` for weights trained otherwise). :func:`create_dense_clip` fills every
    ``None`` in ``model.config``.
    """

    method: Method = "maskclip"
    name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    quick_gelu: bool | None = None
    templates: tuple[str, ...] | None = None
    gaussian_std: float = 5.0
    logit_scale: float | None = None
    crop_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"DenseCLIPConfig.method {self.method!r} is not one of {list(METHODS)}")
        if self.gaussian_std <= 0 or (self.logit_scale is not None and self.logit_scale <= 0):
            raise InputError("DenseCLIPConfig.gaussian_std and logit_scale must be > 0")
        if self.crop_size is not None and self.crop_size < 1:
            raise InputError(f"DenseCLIPConfig.crop_size must be >= 1, got {self.crop_size}")

    @property
    def spec(self) -> str:
        """The ``METHOD:MODEL/PRETRAINED`` string of this config (``none`` for random weights)."""
        return f"{self.method}:{self.name}/{self.pretrained or 'none'}"


def parse_model_spec(spec: str, **overrides) -> DenseCLIPConfig:
    """``"maskclip:ViT-B-16/openai"`` -> :class:`DenseCLIPConfig` (``overrides`` set further fields).

    PRETRAINED may be a local file path (everything after the first ``/``) or ``none``/empty for random weights.
    """
    method, sep, rest = str(spec).partition(":")
    name, slash, pretrained = rest.partition("/")
    if not sep or method not in METHODS or not slash or not name.strip():
        raise InputError(f"model spec {spec!r} is not valid: expected {SPEC_FORMS}")
    weights = None if pretrained.strip().lower() in RANDOM_WEIGHTS else pretrained
    return DenseCLIPConfig(method=method, name=name.strip(), pretrained=weights, **overrides)  # type: ignore[arg-type]


def openai_imagenet_templates() -> tuple[str, ...]:
    """OpenAI's 80 ImageNet prompt templates (as shipped by open_clip) with ``{}`` for the label."""
    import open_clip

    return tuple(t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES)


def resize_pos_embed(pos: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Class + ``grid`` patch position embeddings ``(1 + gh*gw, C)`` -> ``(1 + h*w, C)`` for a ``size`` grid.

    Patch embeddings are resized bicubically (``align_corners=False``); the class embedding is kept.
    """
    if tuple(size) == tuple(grid):
        return pos
    (gh, gw), (h, w) = grid, size
    patch = pos[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch.float(), size=(h, w), mode="bicubic", align_corners=False).to(pos.dtype)
    return torch.cat([pos[:1], patch.permute(0, 2, 3, 1).reshape(h * w, -1)])


class DenseCLIP(nn.Module):
    """A frozen CLIP ViT with a modified last block (``config.method``) + the same CLIP's text tower.

    ``encode_image``: normalised images ``(B, 3, H, W)`` (H, W multiples of the patch) -> unit patch embeddings
    ``(B, D, H/p, W/p)`` in the text space; logits are ``logit_scale * cosine`` upsampled bilinearly.
    """

    #: the resize rule of score maps (logits, similarities) for this model: bilinear, as the references
    align_corners = False

    def __init__(self, config: DenseCLIPConfig, visual: nn.Module, text_encoder: OpenCLIPTextEncoder) -> None:
        super().__init__()
        _check_visual(visual)
        if visual.output_dim != text_encoder.dim:
            raise ValueError(f"image tower dim {visual.output_dim} != text tower dim {text_encoder.dim}")
        if None in (config.logit_scale, config.crop_size, config.mean, config.std, config.templates):
            raise ValueError("DenseCLIP needs a resolved config: build it with create_dense_clip(cfg)")
        self.config = config
        self.visual = visual
        self.text_encoder = text_encoder
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @property
    def text_dim(self) -> int:
        """Dimension ``D`` of the joint embedding space."""
        return int(self.text_encoder.dim)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the patch size)."""
        return int(self.visual.patch_size[0])

    @property
    def logit_scale(self) -> float:
        return float(self.config.logit_scale)

    def train(self, mode: bool = True) -> DenseCLIP:
        # Training-free: always in eval mode (no dropout, no patch dropout).
        return super().train(False)

    def encode_text(self, labels: Sequence[str]) -> Tensor:
        """Label strings -> unit embeddings ``(K, D)`` (prompt templates averaged, cached, no gradient)."""
        return self.text_encoder.encode(labels)

    def tokens_before_last_block(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Normalised images -> tokens ``(B, 1 + h*w, C)`` entering the last block, and the patch grid ``(h, w)``.

        Patch embedding, class token, resized position embeddings, ``ln_pre`` and every block but the last, as
        open_clip's own forward pass (batch-first or not).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        p, (height, width) = self.size_multiple, images.shape[-2:]
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the patch size {p}: pad or resize "
                "(lseg_nb.engine.inference pads automatically)"
            )
        grid = (height // p, width // p)
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype)).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + resize_pos_embed(v.positional_embedding, v.grid_size, grid).to(
            x.dtype
        )
        x = v.ln_pre(x)
        batch_first = getattr(v.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        for block in v.transformer.resblocks[:-1]:
            x = block(x)
        return (x if batch_first else x.transpose(0, 1)), grid

    def encode_image(self, images: Tensor) -> Tensor:
        """Normalised images ``(B, 3, H, W)`` -> unit patch embeddings ``(B, D, H/p, W/p)``."""
        x, grid = self.tokens_before_last_block(images)
        x = self._last_block(self.visual.transformer.resblocks[-1], x, grid)
        emb = self.visual.ln_post(x[:, 1:]) @ self.visual.proj
        return F.normalize(emb, dim=-1).transpose(1, 2).reshape(x.shape[0], -1, *grid)

    def _last_block(self, block: nn.Module, x: Tensor, grid: tuple[int, int]) -> Tensor:
        if self.config.method == "maskclip":
            return maskclip_block(block, x)
        if self.config.method == "sclip":
            return sclip_block(block, x)
        if self.config.method == "clearclip":
            return clearclip_block(block, x)
        return naclip_block(block, x, grid, self.config.gaussian_std)

    def logits_from_embeddings(self, pixel_emb: Tensor, text_emb: Tensor, size: tuple[int, int]) -> Tensor:
        """Unit embeddings ``(B, D, h, w)`` x text ``(K, D)`` or ``(B, K, D)`` -> logits ``(B, K, *size)``.

        ``logit_scale * cosine``, upsampled bilinearly (``align_corners=False``) when ``size`` differs.
        """
        text = F.normalize(text_emb.to(device=pixel_emb.device, dtype=pixel_emb.dtype), dim=-1)
        pattern = "bdhw,kd->bkhw" if text.ndim == 2 else "bdhw,bkd->bkhw"
        out = torch.einsum(pattern, pixel_emb, text) * self.logit_scale
        return self.upsample_logits(out, size)

    def upsample_logits(self, logits: Tensor, size: tuple[int, int] | None) -> Tensor:
        """Resize logit maps ``(B, K, h, w)`` as :meth:`logits_from_embeddings` does (bilinear,
        ``align_corners=False``); unchanged when ``size`` is ``None`` or already the map size."""
        if size is None or tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    def forward(self, images: Tensor, text_emb: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` and text embeddings ``(K, D)`` or ``(B, K, D)`` -> logits ``(B, K, H, W)``."""
        check_text_embeddings(
            text_emb,
            self.text_dim,
            images.shape[0],
            "use model.encode_text(labels) (the CLIP text tower of this model)",
        )
        return self.logits_from_embeddings(self.encode_image(images), text_emb, images.shape[-2:])


def _check_visual(visual: nn.Module) -> None:
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")
    if (
        any(getattr(visual, n, None) is None for n in needed)
        or getattr(visual, "attn_pool", None) is not None
    ):
        raise InputError(
            f"{type(visual).__name__} is not a plain open_clip VisionTransformer (class token, learnt positions, "
            "ln_post, proj, no attentional pooling): dense-CLIP baselines need a CLIP ViT such as ViT-B-16"
        )
    if visual.patch_size[0] != visual.patch_size[1]:
        raise InputError(f"non-square patches {visual.patch_size} are not supported")
    check_block(visual.transformer.resblocks[-1])


def _offline_message(spec: str) -> Callable[[str, str | None, bool], str]:
    def message(name: str, pretrained: str | None, quick_gelu: bool) -> str:
        method = spec.partition(":")[0]
        return (
            f"could not load open_clip weights {name!r} / pretrained={pretrained!r} for {spec!r} (no internet, or "
            "HF_HUB_OFFLINE=1 and not in the Hugging Face cache). Download them once on a machine with internet "
            "(or copy its ~/.cache/huggingface/hub folder) and pass the local file after the slash, e.g. "
            f"'{method}:{open_clip_local_name(name, quick_gelu)}//path/to/open_clip_pytorch_model.bin' "
            "(OpenAI weights need the -quickgelu name), or 'none' for random weights."
        )

    return message


def create_dense_clip(cfg: DenseCLIPConfig | str, device: str | torch.device = "cpu") -> DenseCLIP:
    """Build a :class:`DenseCLIP` from a config or a spec string; ``model.config`` has every ``None`` resolved."""
    import open_clip

    cfg = parse_model_spec(cfg) if isinstance(cfg, str) else cfg
    vision = (open_clip.get_model_config(cfg.name) or {}).get("vision_cfg", {})
    if isinstance(vision.get("layers"), list | tuple) or "timm_model_name" in vision:
        raise InputError(
            f"{cfg.spec}: open_clip model {cfg.name!r} has no plain ViT image tower (ResNet or timm tower); "
            "use a CLIP ViT such as ViT-B-16"
        )
    clip, tokenizer, quick_gelu = create_open_clip(
        cfg.name, cfg.pretrained, cfg.quick_gelu, _offline_message(cfg.spec)
    )
    visual = clip.visual
    if visual is None or not hasattr(visual, "transformer"):
        raise InputError(f"open_clip model {cfg.name!r} has no ViT image tower; use e.g. ViT-B-16")
    pre = open_clip.get_model_preprocess_cfg(clip)
    scale = cfg.logit_scale or float(clip.logit_scale.detach().exp().clamp(max=100))
    templates = cfg.templates if cfg.templates is not None else openai_imagenet_templates()
    resolved = dataclasses.replace(
        cfg,
        quick_gelu=quick_gelu,
        templates=tuple(templates),
        logit_scale=scale,
        crop_size=cfg.crop_size or int(visual.image_size[0]),
        mean=cfg.mean or tuple(float(m) for m in pre["mean"]),
        std=cfg.std or tuple(float(s) for s in pre["std"]),
    )
    text = OpenCLIPTextEncoder(clip, tokenizer, resolved.templates)  # drops clip.visual (kept above)
    return DenseCLIP(resolved, visual, text).to(device)
