"""Text-encoder swap (the referee's variant of the ablation in :mod:`lseg_nb.diagnostics.ablation`).

:func:`swap_text_encoder` freezes a trained image encoder + decoder and swaps only the text encoder. The head's
1x1 projection ``head.proj`` maps decoder features into the text space, so for a new space it alone is re-fitted
on the seen classes (:func:`refit_head_projection`; everything else frozen, BatchNorm statistics included); when
the dimension matches, the swap without any retraining is reported too. :func:`run_swap_ablation` does this for
several encoders next to the run's own model and collects an :class:`AblationReport`.

"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lseg_nb.config import ConfigError, TextEncoderConfig, TrainConfig, load_config, to_dict
from lseg_nb.data.experiment import Experiment, SeededDataset, make_experiment
from lseg_nb.data.loading import train_loader
from lseg_nb.diagnostics.ablation_report import (
    PROJ,
    AblationReport,
    AblationRow,
    SkippedEncoder,
    ablation_metrics,
    build_text,
    check_ablation_args,
    complete_text,
    make_report,
    skipped_row,
)
from lseg_nb.engine.loss import pixel_cross_entropy
from lseg_nb.engine.runs import load_model
from lseg_nb.models.lseg import LSeg, build_lseg
from lseg_nb.models.text_encoder import TextEncoder, create_text_encoder
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.io import load_tensors


@dataclass(eq=False)
class SwapResult:
    """Rows of one text-encoder swap, the swapped model (``head.proj`` re-fitted) and the re-fit loss curve."""

    rows: list[AblationRow]
    model: LSeg
    head_losses: list[float]


def _swapped_model(
    cfg: TrainConfig, text: TextEncoderConfig, encoder: TextEncoder, state: dict, keep_proj: bool
) -> LSeg:
    """The run's architecture with ``encoder``; every trained weight loaded except (optionally) ``head.proj``."""
    # no pretrained download or weights file: all image weights come from the run
    model_cfg = dataclasses.replace(cfg.model, text=text, backbone_pretrained=False, backbone_weights=None)
    model = build_lseg(model_cfg, encoder)
    keep = {k: v for k, v in state.items() if keep_proj or not k.startswith(PROJ)}
    missing, unexpected = model.load_state_dict(keep, strict=False)
    missing = [
        k for k in missing if not k.startswith("text_encoder.") and (keep_proj or not k.startswith(PROJ))
    ]
    if missing or unexpected:
        raise ValueError(
            f"{cfg.run_dir}: weights do not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def _unfreeze_proj_only(model: LSeg, seed: int) -> list[torch.nn.Parameter]:
    """Re-initialise ``head.proj`` with ``seed``; freeze everything else (eval mode keeps BatchNorm stats)."""
    torch.manual_seed(seed)
    model.head.proj.reset_parameters()
    params = list(model.head.proj.parameters())
    model.requires_grad_(False).eval()
    for p in params:
        p.requires_grad_(True)
    return params


def refit_head_projection(
    model: LSeg,
    exp: Experiment,
    cfg: TrainConfig,
    steps: int,
    lr: float = 1e-2,
    batch_size: int | None = None,
    progress: bool = True,
) -> list[float]:
    """Fit only ``model.head.proj`` (re-initialised with ``cfg.seed``) on the seen classes of the training split.

    Everything else is frozen and stays in eval mode (BatchNorm statistics unchanged); the loss is
    :func:`~lseg_nb.engine.loss.pixel_cross_entropy` over the seen labels with unseen pixels ignored, the augmentation
    that of ``cfg.data``; AdamW with cosine decay. Batches come from the training loader
    (:func:`~lseg_nb.data.loading.train_loader`: epoch ``e`` shuffled with seed ``cfg.seed + e``, augmentation keyed
    on (seed, epoch, index), worker processes on a GPU). Returns the loss of every step.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    generator = torch.Generator()
    data = SeededDataset(
        exp.dataset(cfg.data.train_split, cfg.model, cfg.data, train=True, generator=generator),
        cfg.seed,
        exp.labels.train_lut(cfg.ignore_index),
        generator,
    )
    text_emb = model.encode_text(exp.labels.seen_names).to(device)
    params = _unfreeze_proj_only(model, cfg.seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    loader = train_loader(
        data, batch_size or cfg.batch_size, cfg.seed, device, num_workers=cfg.data.num_workers
    )
    batches, losses = iter(loader), []
    for _ in tqdm(range(steps), desc="re-fit head.proj", disable=not progress):
        images, target = (t.to(device, non_blocking=True) for t in next(batches))
        with torch.no_grad():
            feats = model.decoder(model.image_encoder(images))
        logits = model.head.logits(model.head.embed(feats), text_emb, images.shape[-2:])
        loss = pixel_cross_entropy(logits, target, cfg.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    model.requires_grad_(False)
    return torch.stack(losses).tolist() if losses else []  # one read of the losses, not one per step


def _load_run(run_dir: Path) -> tuple[TrainConfig, dict[str, torch.Tensor]]:
    weights = run_dir / "model.safetensors"
    if not weights.is_file() or not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a finished run folder (needs config.json and model.safetensors)"
        )
    return load_config(TrainConfig, run_dir / "config.json"), load_tensors(weights)


def _load_zero_shot_run(run_dir: Path) -> tuple[TrainConfig, dict[str, torch.Tensor]]:
    cfg, state = _load_run(run_dir)
    if cfg.data.fold is None:
        raise ConfigError(
            f"{run_dir} was trained without a zero-shot fold: there are no unseen classes to test"
        )
    return cfg, state


def _head_dim_matches(name: str, dim: int, state: dict[str, torch.Tensor], head_steps: int) -> bool:
    """Whether the run's ``head.proj`` already outputs ``dim``; if not, it must be re-fitted."""
    head_dim = state[PROJ + "weight"].shape[0]
    if dim != head_dim and head_steps < 1:
        raise ValueError(
            f"{name} embeds in {dim} dimensions, the run's head in {head_dim}: "
            "head.proj must be re-fitted, set head_steps >= 1"
        )
    return dim == head_dim


def swap_text_encoder(
    run_dir: str | Path,
    new_text: TextEncoderConfig,
    *,
    name: str | None = None,
    head_steps: int = 100,
    head_lr: float = 1e-2,
    head_batch_size: int | None = None,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    text_encoder: TextEncoder | None = None,
    progress: bool = True,
) -> SwapResult:
    """Freeze the trained image encoder + decoder of ``run_dir`` and swap its text encoder for ``new_text``.

    The head projects decoder features into the text space, so only ``head.proj`` is re-fitted (re-initialised,
    ``head_steps`` steps on the seen classes, see :func:`refit_head_projection`); every other weight and buffer
    stays bit-identical to the run's. When the new text dimension equals the run's, the swap with no retraining
    at all (the run's own ``head.proj``) is evaluated first. ``head_steps=0`` skips the re-fit. With the image
    features identical across encoders, a collapse of unseen mIoU under random/one-hot text means zero-shot
    transfer is carried by the text-embedding geometry, not by the image features alone.
    """

    run_dir = Path(run_dir)
    cfg, state = _load_zero_shot_run(run_dir)
    exp = make_experiment(cfg.data)
    text = complete_text(new_text, exp.labels.class_names)
    encoder = text_encoder or create_text_encoder(text)
    device = resolve_device(cfg.device)
    name = name or text.kind
    rows, losses = [], []
    base_row = dict(text=to_dict(text), text_dim=encoder.dim, run_dir=str(run_dir))
    same_dim = _head_dim_matches(name, encoder.dim, state, head_steps)
    model = _swapped_model(cfg, text, encoder, state, keep_proj=same_dim).to(device).eval()
    if same_dim:
        metrics = ablation_metrics(model, exp, cfg, eval_split, max_eval_images, progress)
        rows.append(AblationRow(name, "swap_zero_retrain", steps=0, **base_row, **metrics))
    if head_steps > 0:
        t0 = time.perf_counter()
        losses = refit_head_projection(model, exp, cfg, head_steps, head_lr, head_batch_size, progress)
        seconds = round(time.perf_counter() - t0, 1)
        metrics = ablation_metrics(model, exp, cfg, eval_split, max_eval_images, progress)
        rows.append(
            AblationRow(name, "swap_head_refit", steps=head_steps, seconds=seconds, **base_row, **metrics)
        )
    return SwapResult(rows, model, losses)


def _original_row(
    run_dir: Path,
    cfg: TrainConfig,
    exp: Experiment,
    name: str,
    split: str,
    max_images: int | None,
    progress: bool,
) -> AblationRow:
    """The run's own model evaluated as is (variant ``original``); it is freed on return, before any swap."""

    own = load_model(run_dir, map_location=str(resolve_device(cfg.device)))
    return AblationRow(
        name,
        "original",
        to_dict(cfg.model.text),
        text_dim=own.text_encoder.dim,
        run_dir=str(run_dir),
        steps=cfg.steps,
        **ablation_metrics(own, exp, cfg, split, max_images, progress),
    )


def run_swap_ablation(
    run_dir: str | Path,
    encoders: Mapping[str, TextEncoderConfig | SkippedEncoder],
    out_path: str | Path | None = None,
    *,
    reference_name: str | None = None,
    head_steps: int = 100,
    head_lr: float = 1e-2,
    head_batch_size: int | None = None,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    progress: bool = True,
) -> AblationReport:
    """:func:`swap_text_encoder` for each encoder, next to the run's own model (variant ``original``).

    Encoders that cannot be built become ``skipped`` rows. Saved atomically to ``out_path`` when given.
    """
    run_dir = Path(run_dir)
    cfg, _ = _load_run(run_dir)
    check_ablation_args(cfg, encoders)
    exp = make_experiment(cfg.data)
    own_name = reference_name or run_dir.name
    rows = [_original_row(run_dir, cfg, exp, own_name, eval_split, max_eval_images, progress)]
    refit = {
        "head_steps": head_steps,
        "head_lr": head_lr,
        "head_batch_size": head_batch_size or cfg.batch_size,
    }
    report = make_report(
        "swap", exp, cfg, eval_split, rows, head_refit=refit, trained_text=to_dict(cfg.model.text)
    )
    opts: dict[str, Any] = dict(
        head_steps=head_steps, head_lr=head_lr, head_batch_size=head_batch_size, eval_split=eval_split
    )
    opts |= dict(max_eval_images=max_eval_images, progress=progress)
    for name, spec in encoders.items():
        if isinstance(spec, SkippedEncoder):
            rows.append(skipped_row(name, "swap_head_refit", spec.text, spec.reason))
        else:
            text = complete_text(spec, exp.labels.class_names)
            encoder = build_text(text)
            if isinstance(encoder, str):
                rows.append(skipped_row(name, "swap_head_refit", text, encoder))
            else:
                rows += swap_text_encoder(run_dir, text, name=name, text_encoder=encoder, **opts).rows
        if out_path is not None:
            report.save_json(out_path)
    return report
