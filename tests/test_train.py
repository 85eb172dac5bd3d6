"""Training: loss decreases on a fixed batch, exact resume, run-folder provenance, DDP on 2 CPU processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lseg_nb.checkpoints import load_lseg_nb
from lseg_nb.config import DataConfig, TrainConfig, load_config
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.runs import MetricsLog, load_model
from lseg_nb.engine.train import Trainer, lr_factor, train
from lseg_nb.models import get_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic(
        tmp_path_factory.mktemp("synth"), seed=0, n_train=12, n_val=4, n_test=4, size=64
    )


def tiny_cfg(root: Path, run_dir: Path, **kw) -> TrainConfig:
    model = get_config("lseg_small_cpu", features=8)
    data = DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0, crop_size=64)
    base = dict(
        model=model,
        data=data,
        run_dir=str(run_dir),
        steps=4,
        batch_size=2,
        lr=1e-3,
        log_every=1,
        checkpoint_every=2,
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def test_two_steps_lower_the_loss_on_a_fixed_batch(synth_root, tmp_path):
    trainer = Trainer(tiny_cfg(synth_root, tmp_path / "run", lr=1e-2))
    data = trainer.exp.dataset("train", trainer.cfg.model, trainer.cfg.data, train=True)
    images, labels = map(torch.stack, zip(*[data[i] for i in range(2)]))
    labels = trainer.labels.train_lut()[labels]
    fixed = iter([(images, labels)] * 3)
    before = trainer.train_step(fixed)
    trainer.train_step(fixed)
    after = trainer.train_step(fixed)
    assert after < before


def test_resume_reproduces_the_next_steps_of_an_uninterrupted_run(synth_root, tmp_path):
    train(tiny_cfg(synth_root, tmp_path / "full"))
    full = [r["loss"] for r in MetricsLog(tmp_path / "full" / "metrics.jsonl").read()]
    cfg = tiny_cfg(synth_root, tmp_path / "resumed")
    Trainer(cfg).fit(stop_at=2)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    Trainer(cfg).fit()
    resumed = [r["loss"] for r in MetricsLog(tmp_path / "resumed" / "metrics.jsonl").read()]
    assert len(full) == len(resumed) == 4
    assert resumed == pytest.approx(full, rel=1e-5, abs=1e-6)


def test_run_folder_records_provenance_and_reloads(synth_root, tmp_path):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2))
    assert load_config(TrainConfig, run / "config.json") == tiny_cfg(synth_root, tmp_path / "run", steps=2)
    env = json.loads((run / "environment.json").read_text())
    assert env["packages"]["torch"] == torch.__version__.split("+")[0] or env["packages"]["torch"]
    assert len(env["manifests"]["synthetic_textures"]) == 64
    model = load_model(run)
    assert model.config == get_config("lseg_small_cpu", features=8)
    # one weights format: a run's file is what checkpoints.load_lseg_nb (and converted official files) use
    again = load_lseg_nb(run / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2


def test_resume_with_a_different_config_is_refused(synth_root, tmp_path):
    cfg = tiny_cfg(synth_root, tmp_path / "run", steps=2)
    train(cfg)
    with pytest.raises(ValueError, match="different config"):
        train(dataclasses.replace(cfg, lr=0.5))


def test_unseen_classes_never_act_as_targets(synth_root, tmp_path):
    trainer = Trainer(tiny_cfg(synth_root, tmp_path / "run"))
    lut = trainer.labels.train_lut()
    assert all(lut[c] == 255 for c in trainer.labels.unseen)
    assert sorted(lut[list(trainer.labels.seen)].tolist()) == list(range(len(trainer.labels.seen)))
    assert trainer.text_emb.shape[0] == len(trainer.labels.seen) == 12


def test_binary_zero_shot_loss_trains(synth_root, tmp_path):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2, loss="binary"))
    losses = [r["loss"] for r in MetricsLog(run / "metrics.jsonl").read()]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_lr_schedules_start_high_and_end_low(schedule):
    cfg = TrainConfig(steps=100, schedule=schedule, warmup_steps=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.0, abs=1e-9)


def test_ddp_on_two_cpu_processes(synth_root, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lseg_nb",
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--log-every",
        "1",
        "--no-progress",
        "--data.dataset",
        "synthetic_textures",
        "--data.data-root",
        str(synth_root),
        "--data.crop-size",
        "64",
        "--model.features",
        "8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "environment.json").read_text())["world_size"] == 2
    records = MetricsLog(run / "metrics.jsonl").read()
    assert [r["step"] for r in records] == [1, 2]  # rank 0 logs once per step
    assert load_model(run).config.features == 8


def test_gradient_accumulation_and_bf16_autocast_train_on_cpu(synth_root, tmp_path):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2, grad_accum=2, amp="bf16", batch_size=1))
    losses = [r["loss"] for r in MetricsLog(run / "metrics.jsonl").read()]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)


def test_fp16_without_cuda_is_a_clear_config_error(synth_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid on CUDA")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(tiny_cfg(synth_root, tmp_path / "run", steps=1, amp="fp16"))
