"""Optimiser and learning-rate schedule of a training run (moved out of :mod:`lseg_nb.engine.train`, which
re-exports these names): parameter groups with their learning rates and weight decay, SGD or AdamW, and the
warmup + poly/cosine factor over the schedule's horizon (``schedule_steps or steps``)."""

from __future__ import annotations

import math

import torch

from lseg_nb.config import TrainConfig
from lseg_nb.models.lseg import LSeg


def _no_decay(name: str, p: torch.nn.Parameter) -> bool:
    # biases, norm scales/shifts (1-D) and the learnable logit scale: decaying them only shrinks calibration
    return p.ndim <= 1 or name.endswith("log_scale")


def parameter_groups(model: LSeg, cfg: TrainConfig) -> list[dict]:
    """Optimiser groups with their learning rate and weight decay (see :class:`TrainConfig`).

    ``lseg_nb``: image encoder at ``lr``, decoder and head at ``lr * decoder_lr_mult``. ``official``: the
    official ``pretrained`` part (image encoder incl. the ViT readout, plus the DPT reassemble layers) at ``lr``,
    ``scratch`` (``layer_rn``, fusion blocks, head) at ``lr * decoder_lr_mult``. ``lr`` is
    ``cfg.effective_lr``. With ``no_decay_norm_bias``, each group is split into decay / no-decay parts.
    A frozen text encoder never enters the optimiser; a learned label table (closed-set baseline) joins the head.
    """
    lr = cfg.effective_lr
    # a frozen text encoder never trains; the closed-set baseline's label table trains with the head
    named = [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad and (model.text_encoder.trainable or not n.startswith("text_encoder."))
    ]
    if cfg.param_groups == "official":
        low = ("image_encoder.", "decoder.reassemble.")
    else:
        low = ("image_encoder.",)
    groups: list[dict] = []
    for tag, mult, members in (
        ("backbone", 1.0, [(n, p) for n, p in named if n.startswith(low)]),
        ("head", cfg.decoder_lr_mult, [(n, p) for n, p in named if not n.startswith(low)]),
    ):
        split = (
            [
                (f"{tag}", [p for n, p in members if not _no_decay(n, p)], cfg.weight_decay),
                (f"{tag}_no_decay", [p for n, p in members if _no_decay(n, p)], 0.0),
            ]
            if cfg.no_decay_norm_bias
            else [(tag, [p for _, p in members], cfg.weight_decay)]
        )
        for name, params, wd in split:
            if params:
                groups.append({"name": name, "params": params, "lr": lr * mult, "weight_decay": wd})
    return groups


def build_optimizer(model: LSeg, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over :func:`parameter_groups`."""
    groups = parameter_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.effective_lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.effective_lr)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base LR at optimiser step ``step`` (linear warmup, then poly or cosine decay over
    ``cfg.schedule_steps``, by default ``cfg.steps``)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    horizon = cfg.schedule_steps or cfg.steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, horizon - cfg.warmup_steps))
    if cfg.schedule == "poly":
        return (1 - t) ** cfg.poly_power
    return 0.5 * (1 + math.cos(math.pi * t))
