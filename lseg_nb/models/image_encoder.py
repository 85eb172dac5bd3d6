"""Dense image encoders: a timm backbone tapped at four depths.

ViTs: outputs of four chosen blocks, turned into token grids with a DPT readout (``ignore|add|project``);
position embeddings are resized bilinearly to any input size, as the official LSeg/DPT ``forward_flex`` does.
CNNs: timm ``features_only`` at four ``out_indices``.
Pretrained weights come from timm's download (``backbone_pretrained``) or, offline, from a local file
(``backbone_weights``, loaded after the encoder is built so its checks see exactly the tensors the encoder uses).
Both return four ``(B, C_i, H/r_i, W/r_i)`` maps and expose ``channels`` and ``reductions``.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.config import ModelConfig
from lseg_nb.models.backbone_weights import WeightsReport, load_backbone_weights
from lseg_nb.models.text_encoder import respect_hf_offline
from lseg_nb.utils.errors import InputError, SetupError


def _create_timm(name: str, pretrained: bool, **kwargs) -> nn.Module:
    try:
        with respect_hf_offline():
            return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise InputError(f"timm has no model {name!r}; see timm.list_models('*{name[:6]}*')") from None
        raise
    except OSError as e:  # huggingface_hub cache misses/offline errors and urllib failures are OSErrors
        said = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SetupError(f"{_timm_offline_message(name)}\n(timm said: {said})") from None


def _timm_offline_message(name: str) -> str:
    return (
        f"could not fetch pretrained timm weights for {name!r} (no internet, or HF_HUB_OFFLINE=1 and not in the "
        "Hugging Face cache). Either copy ~/.cache/huggingface/hub from a machine with internet (cached weights "
        "load with HF_HUB_OFFLINE=1), or download the weights file once and pass it: "
        "--model.backbone-weights /path/to/model.safetensors (ModelConfig.backbone_weights; a timm .safetensors "
        "or a torchvision .pth). Official LSeg checkpoints already contain the fine-tuned backbone "
        "(lseg_nb.checkpoints.official.load_official)."
    )


def _download(cfg: ModelConfig) -> bool:
    """Whether timm fetches pretrained weights: not when a local file supplies them."""
    return cfg.backbone_pretrained and cfg.backbone_weights is None


def _load_weights(model: nn.Module, cfg: ModelConfig) -> WeightsReport | None:
    """Load ``cfg.backbone_weights`` into the timm ``model`` (None: nothing to load)."""
    if cfg.backbone_weights is None:
        return None
    return load_backbone_weights(model, cfg.backbone_weights, cfg.backbone)


class ProjectReadout(nn.Module):
    """DPT 'project' readout: concat(patch token, cls token) -> Linear -> GELU."""

    def __init__(self, dim: int, start: int = 1) -> None:
        super().__init__()
        self.start = start
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        cls = x[:, 0:1].expand_as(x[:, self.start :])
        return self.project(torch.cat([x[:, self.start :], cls], dim=-1))


class ViTEncoder(nn.Module):
    """timm VisionTransformer with hooked blocks and DPT readout; any input size divisible by the patch size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if len(cfg.hooks) != 4:
            raise InputError(f"ModelConfig.hooks needs 4 block indices, got {cfg.hooks}")
        model = _create_timm(cfg.backbone, _download(cfg), num_classes=0)
        if not hasattr(model, "blocks") or not hasattr(model, "pos_embed"):
            raise InputError(
                f"{cfg.backbone!r} is not a timm VisionTransformer; use a CNN name or a vit_* model"
            )
        depth = len(model.blocks)
        if max(cfg.hooks) >= depth:
            raise InputError(f"hooks {cfg.hooks} exceed the {depth} blocks of {cfg.backbone}")
        # Blocks after the last hook, the final norm and the classifier never influence the output.
        model.blocks = model.blocks[: max(cfg.hooks) + 1]
        model.norm = nn.Identity()
        self.model = model
        self.weights_report = _load_weights(model, cfg)
        self.hooks = tuple(cfg.hooks)
        self.readout_kind = cfg.readout
        self.start = int(getattr(model, "num_prefix_tokens", 1))
        self.patch = int(model.patch_embed.patch_size[0])
        dim = int(model.embed_dim)
        self.readout = nn.ModuleList(
            [ProjectReadout(dim, self.start) for _ in range(4)] if cfg.readout == "project" else []
        )
        self.channels = [dim] * 4
        self.reductions = [self.patch] * 4

    def _pos_embed(self, gh: int, gw: int) -> Tensor:
        pos = self.model.pos_embed
        n_prefix = 0 if getattr(self.model, "no_embed_class", False) else self.start
        tok, grid = pos[:, :n_prefix], pos[0, n_prefix:]
        old = int(round(grid.shape[0] ** 0.5))
        if (old, old) == (gh, gw):
            return pos
        grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        return torch.cat([tok, grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def _readout(self, i: int, x: Tensor) -> Tensor:
        if self.readout_kind == "project":
            return self.readout[i](x)
        if self.readout_kind == "add":
            return x[:, self.start :] + x[:, 0:1]
        return x[:, self.start :]

    def forward(self, images: Tensor) -> list[Tensor]:
        b, _, h, w = images.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"image size {h}x{w} is not divisible by the ViT patch size {self.patch}")
        gh, gw = h // self.patch, w // self.patch
        m = self.model
        x = m.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = m.patch_embed.norm(x)
        pos = self._pos_embed(gh, gw)
        prefix = [t.expand(b, -1, -1) for t in (m.cls_token, getattr(m, "reg_token", None)) if t is not None]
        if getattr(m, "no_embed_class", False):
            x = torch.cat([*prefix, x + pos], dim=1)
        else:
            x = torch.cat([*prefix, x], dim=1) + pos
        x = m.norm_pre(m.pos_drop(x))
        outs = []
        for i, blk in enumerate(m.blocks):
            x = blk(x)
            if i in self.hooks:
                y = self._readout(len(outs), x)
                outs.append(y.transpose(1, 2).reshape(b, -1, gh, gw))
        return outs


class CNNEncoder(nn.Module):
    """timm CNN with ``features_only``: four stages at increasing stride."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if len(cfg.out_indices) != 4:
            raise InputError(f"ModelConfig.out_indices needs 4 stage indices, got {cfg.out_indices}")
        self.model = _create_timm(
            cfg.backbone, _download(cfg), features_only=True, out_indices=cfg.out_indices
        )
        self.weights_report = _load_weights(self.model, cfg)
        self.channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())

    def forward(self, images: Tensor) -> list[Tensor]:
        return list(self.model(images))


def is_vit(backbone: str) -> bool:
    """Whether a timm model name denotes a plain VisionTransformer (handled by :class:`ViTEncoder`)."""
    return backbone.split(".")[0].startswith(("vit_", "deit_", "deit3_"))


def create_image_encoder(cfg: ModelConfig) -> nn.Module:
    """ViT or CNN image encoder for ``cfg.backbone``."""
    return ViTEncoder(cfg) if is_vit(cfg.backbone) else CNNEncoder(cfg)
