"""Device-agnostic training loop: AMP, gradient accumulation, SGD+poly / AdamW+cosine, atomic checkpoints with
exact resume, run folders, and DDP under ``torchrun`` (rank 0 logs and checkpoints).

Data order and augmentation are pure functions of (seed, epoch, index), so a resumed run sees exactly the batches
an uninterrupted one would. A resumed run says so first (``resuming from step N of M``), and a CPU run prints the
speed hints of :func:`~lseg_nb.utils.device.cpu_training_hints` (too many threads on a busy CPU, emulated bf16)
once at the start: both cost minutes to hours when unnoticed and are invisible in the loss.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from lseg_nb.config import ConfigError, TrainConfig, save_json, to_dict
from lseg_nb.data.experiment import Experiment, SeededDataset, make_experiment
from lseg_nb.data.loading import train_loader
from lseg_nb.engine.dense import run_dense
from lseg_nb.engine.evaluate import eval_data
from lseg_nb.engine.loss import binary_zero_shot_loss, pixel_cross_entropy
from lseg_nb.engine.optim import build_optimizer, lr_factor, parameter_groups  # noqa: F401 - re-exported
from lseg_nb.engine.runs import (
    MetricsLog,
    RunLock,
    check_resume,
    checkpoint_config,
    environment_info,
    load_training_state,
    save_model,
    save_training_state,
)
from lseg_nb.models.lseg import build_lseg
from lseg_nb.models.text_encoder import TextEncoder
from lseg_nb.utils.device import autocast, cpu_training_hints, own_load, resolve_device
from lseg_nb.utils.errors import DivergedError, InputError, Interrupted
from lseg_nb.utils.interrupt import StopRequest
from lseg_nb.utils.io import atomic_write_text, check_output_dir, clean_stale_tmp


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): model initialisation is a function of the seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return DistInfo(dist.get_rank(), dist.get_world_size())


def _say(message: str) -> None:
    # stderr, beside the progress bar: stdout stays the summary scripts read
    print(message, file=sys.stderr, flush=True)


def _autocast(cfg: TrainConfig, device: torch.device):
    try:
        return autocast(cfg.amp, device)
    except ValueError as e:
        raise ConfigError(str(e)) from None


class Trainer:
    """Owns model, optimiser, data and run folder for one training run."""

    def __init__(self, cfg: TrainConfig, text_encoder: TextEncoder | None = None) -> None:
        self._clock = (time.perf_counter(), time.process_time())  # this run's own share of the load (hints)
        # before any work: a bad folder must not waste a run; `~` is the home folder here as in every path field
        self.cfg, self.run_dir = cfg, check_output_dir(cfg.run_dir, "run_dir")
        self.device = resolve_device(cfg.device)
        self.dist = setup_distributed(self.device)
        seed_everything(cfg.seed)
        self.exp: Experiment = make_experiment(cfg.data)
        self.model = build_lseg(cfg.model, text_encoder).to(self.device)
        if cfg.sync_bn and self.dist.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.labels = self.exp.labels
        if cfg.ignore_index < len(self.labels.seen):
            raise ConfigError(
                f"ignore_index={cfg.ignore_index} collides with training label {cfg.ignore_index} "
                f"({self.labels.seen_names[cfg.ignore_index]!r}): it must be >= the number of training labels "
                f"({len(self.labels.seen)}); the default 255 works for up to 255 classes"
            )
        self.learned_labels = self.model.text_encoder.trainable  # closed-set baseline: rows change every step
        if self.learned_labels:
            vocab = set(getattr(self.model.text_encoder, "vocabulary", ()))
            need = [*self.labels.seen_names, *(["others"] if cfg.loss == "binary" else [])]
            if missing := [n for n in need if n not in vocab]:
                raise ConfigError(
                    f"model.text.vocabulary lacks training labels {missing}: the learned label table "
                    f"(closed-set baseline) needs every one, e.g. vocabulary = the fold's seen class names"
                )
        self.text_emb = self.model.encode_text(self.labels.seen_names).to(self.device)
        self.others_emb = self.model.encode_text(["others"]).to(self.device) if cfg.loss == "binary" else None
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and self.device.type == "cuda")
        self.step = self.start_step = 0
        self.saved_step: int | None = None  # step of the checkpoint on disk, for the message after a Ctrl-C
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.net: nn.Module = self.model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.net = torch.compile(self.net)

    def _batches(self):
        generator = torch.Generator()
        base = self.exp.dataset(
            self.cfg.data.train_split, self.cfg.model, self.cfg.data, train=True, generator=generator
        )
        episodes = len(self.labels.seen) if self.cfg.loss == "binary" else None
        data = SeededDataset(
            base,
            self.cfg.seed,
            self.labels.train_lut(self.cfg.ignore_index),
            generator,
            episodes,
            self.cfg.ignore_index,
        )
        loader = train_loader(
            data,
            self.cfg.batch_size,
            self.cfg.seed,
            self.device,
            world=self.dist.world,
            rank=self.dist.rank,
            start=self.step * self.cfg.grad_accum,
            num_workers=self.cfg.data.num_workers,
        )
        return iter(loader)

    def prepare_run_dir(self) -> None:
        """Write config/environment, or resume from ``checkpoints/last.pt`` when the folder holds this run."""
        ckpt = self.run_dir / "checkpoints" / "last.pt"
        if ckpt.exists() and self.cfg.resume:
            self.load_checkpoint(ckpt)
            if self.dist.main:
                _say(f"resuming from step {self.step} of {self.cfg.steps} ({ckpt})")
                self.log.truncate_after(self.step)
                save_json(self.cfg, self.run_dir / "config.json")  # a continuation's new steps (check_resume)
            return
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            save_json(self.cfg, self.run_dir / "config.json")
            info = environment_info(self.exp.manifest_hashes, str(self.device))
            info["world_size"] = self.dist.world
            atomic_write_text(self.run_dir / "environment.json", json.dumps(info, indent=2) + "\n")

    def state(self) -> dict:
        return {
            "model": self.model.trainable_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(to_dict(self.cfg)),  # what a resume is checked against (check_resume)
        }

    def save_checkpoint(self) -> None:
        if self.dist.main:
            save_training_state(self.run_dir / "checkpoints" / "last.pt", self.state())
        self.saved_step = self.step

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = load_training_state(path)
        except ValueError as e:
            raise InputError(
                f"cannot resume: {path} is not a readable training checkpoint (truncated by a full disk or an "
                "incomplete copy?). Delete it to restart this run from step 0, or train with --no-resume "
                "(resume=False) to start the folder over"
            ) from e
        check_resume(checkpoint_config(state, self.run_dir), self.cfg, int(state["step"]), self.run_dir)
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        missing = [k for k in missing if not k.startswith("text_encoder.")]
        if missing or unexpected:
            raise InputError(
                f"{path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = self.saved_step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])

    def _label_embeddings(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training-label and "others" embeddings: the fixed text embeddings, or (closed-set baseline) the learned
        table's current rows, with gradient."""
        if not self.learned_labels:
            return self.text_emb, self.others_emb
        table = self.model.text_encoder
        return table(self.labels.seen_names), table(["others"]) if self.cfg.loss == "binary" else None

    def _loss(self, images: torch.Tensor, target: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        text_emb, others_emb = self._label_embeddings()
        if self.cfg.loss == "ce":
            return pixel_cross_entropy(self.net(images, text_emb), target, self.cfg.ignore_index)
        # (B, 2, D): "others" and the episode class of each image, chosen by the dataset (seed, epoch, index)
        pairs = torch.cat([others_emb.expand(len(cls), 1, -1), text_emb[cls][:, None]], dim=1)
        return binary_zero_shot_loss(
            self.net(images, pairs),
            target,
            cls,
            self.cfg.ignore_index,
            ignored_are_others=self.cfg.unseen_pixels == "others",
        )

    def train_step(self, batches) -> float:
        """One optimiser step over ``grad_accum`` micro-batches; returns the mean loss (waits for the device)."""
        loss = self._step(batches).item()
        if not math.isfinite(loss):
            raise DivergedError(f"loss became {loss} at step {self.step}: lower lr or disable amp")
        return loss

    def _step(self, batches) -> torch.Tensor:
        """One optimiser step; the mean loss stays on the device, so nothing here waits for the GPU. DDP
        all-reduces gradients once per step: every micro-batch but the last runs under ``no_sync``."""
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i in range(self.cfg.grad_accum):
            images, target, *cls = (t.to(self.device, non_blocking=True) for t in next(batches))
            last = i == self.cfg.grad_accum - 1
            with self.ddp.no_sync() if self.ddp is not None and not last else nullcontext():
                with _autocast(self.cfg, self.device):
                    loss = self._loss(images, target, cls[0] if cls else None) / self.cfg.grad_accum
                self.scaler.scale(loss).backward()
            total += loss.detach().float()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return total

    def _sync_point(self) -> bool:
        """Steps at which the host reads the loss: logging, checkpointing, evaluation, the last step."""
        cfg, s = self.cfg, self.step
        return (
            s % cfg.log_every == 0
            or s == cfg.steps
            or bool(cfg.checkpoint_every and s % cfg.checkpoint_every == 0)
            or bool(cfg.eval_every and s % cfg.eval_every == 0)
        )

    def fit(self, stop_at: int | None = None) -> Path:
        """Train to ``cfg.steps`` (or pause at ``stop_at``, e.g. to simulate an interruption), holding the run
        folder's lock (:class:`~lseg_nb.engine.runs.RunLock`) throughout.

        The loss is read on the host only at :meth:`_sync_point` steps on a GPU (every step on the CPU, where
        reading it costs nothing); a non-finite loss is caught there, before a checkpoint could store damaged
        weights, so ``last.pt`` keeps the last good state.

        Ctrl-C (or SIGTERM) finishes the current step, saves the checkpoint and raises
        :class:`~lseg_nb.utils.errors.Interrupted` naming the step, from which rerunning resumes; a second Ctrl-C
        stops at once, and the message names the step of the last checkpoint (in a single process; under DDP
        every Ctrl-C stops at once).
        """
        with RunLock(self.run_dir) if self.dist.main else nullcontext():
            if self.dist.main:  # under the lock no other writer exists: leftovers are from a crash
                for folder in (self.run_dir, self.run_dir / "checkpoints"):
                    clean_stale_tmp(folder)
            stop = StopRequest() if self.dist.world == 1 else None
            try:
                with stop or nullcontext():
                    return self._fit(stop_at, stop)
            except Interrupted:
                raise
            except KeyboardInterrupt:
                raise self._interrupted(at_once=True) from None

    def _interrupted(self, at_once: bool = False) -> Interrupted:
        ckpt = self.run_dir / "checkpoints" / "last.pt"
        if self.saved_step is None:
            resume = f"no checkpoint was saved yet, so rerunning starts at step 0 (in {self.run_dir})"
        else:
            resume = f"{ckpt} holds step {self.saved_step}: rerun the same training to resume from there"
        where = f"during step {self.step + 1}" if at_once else f"at step {self.step}"
        return Interrupted(f"training interrupted {where} of {self.cfg.steps}; {resume}")

    def _fit(self, stop_at: int | None, stop: StopRequest | None = None) -> Path:
        self.prepare_run_dir()
        self.start_step = self.step  # where this call began (0, or the resumed checkpoint's step)
        own = own_load(time.process_time() - self._clock[1], time.perf_counter() - self._clock[0])
        for hint in cpu_training_hints(self.cfg.amp, self.device, own) if self.dist.main else ():
            _say(f"note: {hint}")
        batches = self._batches()
        end = min(self.cfg.steps, stop_at or self.cfg.steps)
        bar = tqdm(
            total=end,
            initial=self.step,
            desc="train",
            disable=not (self.cfg.progress and self.dist.main),
            mininterval=0.1 if sys.stderr.isatty() else 10.0,  # keep CI / nohup logs short
        )
        t0, seen = time.perf_counter(), 0
        finite, since = torch.ones((), dtype=torch.bool, device=self.device), self.step + 1
        on_cpu = self.device.type == "cpu"  # reading the loss never waits for a device there
        stopping = False
        while self.step < end and not stopping:
            loss_t = self._step(batches)
            finite &= torch.isfinite(loss_t)
            seen += self.cfg.batch_size * self.cfg.grad_accum * self.dist.world
            bar.update(1)
            stopping = (
                stop is not None and stop.requested
            )  # Ctrl-C: a checked, consistent stop after this step
            sync = self._sync_point() or self.step == end or stopping
            if not (sync or on_cpu):
                continue
            if not bool(finite):
                when = (
                    f"at step {self.step}" if since == self.step else f"between steps {since} and {self.step}"
                )
                raise DivergedError(
                    f"loss became {loss_t.item()} {when}; training stopped before a checkpoint could store the "
                    f"damaged weights: {self.run_dir / 'checkpoints' / 'last.pt'} keeps the last checkpoint saved "
                    "before it. Lower lr or disable amp (in a new run_dir)"
                )
            if not sync:
                since = self.step + 1
                continue
            loss = loss_t.item()
            since = self.step + 1
            bar.set_postfix(loss=f"{loss:.4f}")
            self._after_step(loss, seen / (time.perf_counter() - t0))
        bar.close()
        self.save_checkpoint()
        if stopping and self.step < end:
            raise self._interrupted()
        if self.step >= self.cfg.steps and self.dist.main:
            save_model(self.model, self.run_dir / "model.safetensors", {"step": str(self.step)})
        return self.run_dir

    def _after_step(self, loss: float, images_per_s: float) -> None:
        cfg = self.cfg
        if self.dist.main and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
            lr = self.optimizer.param_groups[0]["lr"]
            self.log.write(
                {"step": self.step, "loss": loss, "lr": lr, "images_per_s": round(images_per_s, 2)}
            )
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
            self.save_checkpoint()
        if cfg.eval_every and self.step % cfg.eval_every == 0:
            if self.dist.main:
                data = dataclasses.replace(cfg.data, max_images=cfg.eval_max_images or cfg.data.max_images)
                val = eval_data(data, cfg.data.val_split, self.model, exp=self.exp)
                # a quick look at training: no calibration fit, no intervals
                quick = dataclasses.replace(cfg.eval, calibrate_seen=False, bootstrap=0)
                result = run_dense(self.model, val, quick, progress=False)
                self.log.write({"step": self.step, "eval": result.to_dict()})
            if self.dist.world > 1:
                dist.barrier()  # the other ranks wait here, not inside the next all-reduce


@contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Silence the warnings every training step would repeat (bilinear upsampling backward is nondeterministic
    on CUDA; the data order and augmentation stay deterministic)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*upsample_bilinear2d_backward.*")
        yield


def train(cfg: TrainConfig, text_encoder: TextEncoder | None = None, stop_at: int | None = None) -> Path:
    """Run (or resume) training as configured; returns the run folder."""
    with quiet_known_warnings():
        return Trainer(cfg, text_encoder).fit(stop_at)
