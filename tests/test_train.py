"""Training: loss decreases, exact resume for both losses, gradient accumulation, LR groups, provenance, DDP;
reliability: bad settings refused up front, run-folder lock, torn logs and checkpoints, SIGKILL then resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch

from lseg_nb.checkpoints import load_lseg_nb
from lseg_nb.config import ConfigError, DataConfig, TextEncoderConfig, TrainConfig, load_config, save_json
from lseg_nb.data.experiment import SeededDataset
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.runs import MetricsLog, RunFolderBusy, RunLock, load_model
from lseg_nb.engine.train import Trainer, lr_factor, parameter_groups, train
from lseg_nb.models import get_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic(
        tmp_path_factory.mktemp("synth"), seed=0, n_train=12, n_val=4, n_test=4, size=64
    )


def tiny_cfg(root: Path, run_dir: Path, **kw) -> TrainConfig:
    model = get_config("lseg_small_cpu", features=8, crop_size=64)
    data = DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0)
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
        device="cpu",  # these tests mean the CPU (exact comparisons), also on a machine with a GPU
    )
    return TrainConfig(**{**base, **kw})


def bn_free_cfg(root: Path, run_dir: Path, **kw) -> TrainConfig:
    """A ViT without BatchNorm and crops without padding: per-sample gradients add up exactly, so batch
    composition (micro-batches, DDP shards) must not change the update."""
    model = get_config(
        "lseg_vitb16_384",
        backbone="vit_tiny_patch16_224",
        backbone_pretrained=False,
        hooks=(0, 1, 2, 3),
        reassemble_channels=(8, 8, 16, 16),
        features=8,
        use_bn=False,
        crop_size=64,
        text=TextEncoderConfig(kind="random", dim=16),
    )
    # fold None: every class is a target, so no pixel is ignored and all images weigh the same
    data = DataConfig(dataset="synthetic_textures", data_root=str(root), fold=None, scale_range=(1.0, 1.0))
    return tiny_cfg(root, run_dir, model=model, data=data, **kw)


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


@pytest.mark.parametrize("loss", ["ce", "binary"])
def test_resume_reproduces_the_next_steps_of_an_uninterrupted_run(synth_root, tmp_path, loss):
    train(tiny_cfg(synth_root, tmp_path / "full", loss=loss))
    full = [r["loss"] for r in MetricsLog(tmp_path / "full" / "metrics.jsonl").read()]
    cfg = tiny_cfg(synth_root, tmp_path / "resumed", loss=loss)
    torch.manual_seed(1234)  # a resumed process starts with another global RNG state
    Trainer(cfg).fit(stop_at=2)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    torch.rand(7)  # ... and draws from it before training
    Trainer(cfg).fit()
    resumed = [r["loss"] for r in MetricsLog(tmp_path / "resumed" / "metrics.jsonl").read()]
    assert len(full) == len(resumed) == 4
    assert resumed == pytest.approx(full, rel=1e-5, abs=1e-6)
    a, b = load_model(tmp_path / "full").state_dict(), load_model(tmp_path / "resumed").state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_episode_classes_are_keyed_on_seed_epoch_and_index_not_global_rng(synth_root, tmp_path, monkeypatch):
    trainer = Trainer(tiny_cfg(synth_root, tmp_path / "run", loss="binary"))
    g = torch.Generator()
    base = trainer.exp.dataset("train", trainer.cfg.model, trainer.cfg.data, train=True, generator=g)
    data = SeededDataset(base, 0, trainer.labels.train_lut(), g, episode_classes=len(trainer.labels.seen))
    seeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: seeded.append(s))
    first = [data[i] for i in range(4)]
    torch.manual_seed(99)
    seeded.clear()
    again = [data[i] for i in range(4)]
    assert seeded == [], "SeededDataset must not reseed the global (CUDA) generators"
    for (x1, y1, c1), (x2, y2, c2) in zip(first, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and int(c1) == int(c2)
        assert int(c1) in set(y1[y1 != 255].tolist()), "the episode class must be present in the target"
    data.set_epoch(1)
    assert any(not torch.equal(a[0], data[i][0]) for i, a in enumerate(first)), "epochs must differ"


def test_gradient_accumulation_equals_the_larger_batch(synth_root, tmp_path):
    big = Trainer(
        bn_free_cfg(synth_root, tmp_path / "a", batch_size=2, grad_accum=1, optimizer="sgd", lr=0.1)
    )
    small = Trainer(
        bn_free_cfg(synth_root, tmp_path / "b", batch_size=1, grad_accum=2, optimizer="sgd", lr=0.1)
    )
    small.model.load_state_dict(big.model.state_dict())
    data = big.exp.dataset("train", big.cfg.model, big.cfg.data, train=False)
    lut = big.labels.train_lut()
    items = [(data[i][0], lut[data[i][1]]) for i in range(2)]
    images, target = torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
    assert (target != 255).sum(dim=(1, 2)).unique().numel() == 1, "equal valid-pixel counts per image"
    loss_big = big.train_step(iter([(images, target)]))
    loss_small = small.train_step(iter([(images[:1], target[:1]), (images[1:], target[1:])]))
    assert loss_small == pytest.approx(loss_big, rel=1e-5)
    sa, sb = big.model.state_dict(), small.model.state_dict()
    for k in sa:
        assert torch.allclose(sa[k], sb[k], atol=1e-6), k


def _group_of(groups: list[dict], model, name: str) -> dict:
    param = dict(model.named_parameters())[name]
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_lr_groups_official_and_lseg_nb(synth_root, tmp_path):
    vit = bn_free_cfg(synth_root, tmp_path / "r").model
    model = Trainer(bn_free_cfg(synth_root, tmp_path / "r")).model
    ours = TrainConfig(model=vit, lr=0.01, decoder_lr_mult=10, weight_decay=1e-4)
    groups = parameter_groups(model, ours)
    assert _group_of(groups, model, "image_encoder.model.blocks.0.attn.qkv.weight")["lr"] == pytest.approx(
        0.01
    )
    assert _group_of(groups, model, "decoder.reassemble.0.proj.weight")["lr"] == pytest.approx(0.1)
    assert _group_of(groups, model, "decoder.layer_rn.0.weight")["lr"] == pytest.approx(0.1)
    assert _group_of(groups, model, "head.proj.weight")["lr"] == pytest.approx(0.1)
    # no weight decay on biases and norms; decay on conv/linear weights
    assert _group_of(groups, model, "head.proj.bias")["weight_decay"] == 0.0
    assert _group_of(groups, model, "image_encoder.model.blocks.0.norm1.weight")["weight_decay"] == 0.0
    assert _group_of(groups, model, "head.proj.weight")["weight_decay"] == pytest.approx(1e-4)
    official = dataclasses.replace(
        ours, param_groups="official", lr_rule="official", batch_size=6, no_decay_norm_bias=False
    )
    groups = parameter_groups(model, official)
    base = 0.01 / 16 * 6
    assert official.effective_lr == pytest.approx(base)
    assert _group_of(groups, model, "image_encoder.readout.0.project.0.weight")["lr"] == pytest.approx(base)
    assert _group_of(groups, model, "decoder.reassemble.0.proj.weight")["lr"] == pytest.approx(base)
    assert _group_of(groups, model, "decoder.layer_rn.0.weight")["lr"] == pytest.approx(10 * base)
    assert _group_of(groups, model, "decoder.fusion.0.out_conv.weight")["lr"] == pytest.approx(10 * base)
    assert _group_of(groups, model, "head.proj.bias")["weight_decay"] == pytest.approx(1e-4)
    names = {n for n, p in model.named_parameters() if any(p is q for g in groups for q in g["params"])}
    assert not any(n.startswith("text_encoder.") for n in names)
    assert len(names) == len([n for n, p in model.named_parameters() if p.requires_grad])


def test_learnable_logit_scale_gets_no_weight_decay(synth_root, tmp_path):
    cfg = tiny_cfg(synth_root, tmp_path / "r")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, learnable_scale=True))
    model = Trainer(cfg).model
    assert _group_of(parameter_groups(model, cfg), model, "head.log_scale")["weight_decay"] == 0.0


def test_run_folder_records_provenance_and_reloads(synth_root, tmp_path):
    kw = dict(steps=2, eval_every=2, eval_max_images=1)
    run = train(tiny_cfg(synth_root, tmp_path / "run", **kw))
    assert load_config(TrainConfig, run / "config.json") == tiny_cfg(synth_root, tmp_path / "run", **kw)
    [ev] = [r for r in MetricsLog(run / "metrics.jsonl").read() if "eval" in r]
    assert ev["step"] == 2 and ev["eval"]["num_images"] == 1 and ev["eval"]["protocol"] == "single"
    env = json.loads((run / "environment.json").read_text())
    assert env["packages"]["torch"] == metadata.version("torch")
    assert len(env["manifests"]["synthetic_textures"]) == 64
    model = load_model(run)
    assert model.config == get_config("lseg_small_cpu", features=8, crop_size=64)
    # one weights format: a run's file is what checkpoints.load_lseg_nb (and converted official files) use
    again = load_lseg_nb(run / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2


def test_periodic_evaluation_uses_the_data_and_protocol_of_the_run(synth_root, tmp_path):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2, eval_every=2, eval_max_images=1))
    [record] = [r for r in MetricsLog(run / "metrics.jsonl").read() if "eval" in r]
    assert (
        record["step"] == 2 and record["eval"]["num_images"] == 1 and record["eval"]["protocol"] == "single"
    )
    assert record["eval"]["labels"]["unseen"] == [0, 5, 10, 15]  # fold 0 of the run's data


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


@pytest.mark.parametrize("unseen_pixels", ["ignore", "others"])
def test_binary_zero_shot_loss_trains(synth_root, tmp_path, unseen_pixels):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2, loss="binary", unseen_pixels=unseen_pixels))
    losses = [r["loss"] for r in MetricsLog(run / "metrics.jsonl").read()]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)


def test_resume_accepts_the_same_folder_spelled_differently(synth_root, tmp_path, monkeypatch):
    cfg = tiny_cfg(synth_root, tmp_path / "run", steps=2)
    Trainer(cfg).fit(stop_at=1)
    monkeypatch.chdir(tmp_path)
    Trainer(dataclasses.replace(cfg, run_dir="./run")).fit()
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_lr_schedules_start_high_and_end_low(schedule):
    cfg = TrainConfig(steps=100, schedule=schedule, warmup_steps=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.0, abs=1e-9)


def _torchrun(cfg_file: Path, nproc: int, extra: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd += ["-m", "lseg_nb", "train", "--config", str(cfg_file), "--device", "cpu", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_ddp_ranks_see_disjoint_shards(synth_root, tmp_path):
    from torch.utils.data.distributed import DistributedSampler

    data = SeededDataset(list(range(12)), seed=0)
    shards = [list(DistributedSampler(data, 2, r, shuffle=True, seed=0, drop_last=True)) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(12))


def test_ddp_on_two_cpu_processes_matches_one_process_with_the_total_batch(synth_root, tmp_path):
    base = bn_free_cfg(synth_root, tmp_path / "x", steps=2, optimizer="sgd", lr=0.05, checkpoint_every=0)
    runs = {}
    # 2 processes x 2 micro-batches of 1 (gradients all-reduced once, after the last) = 1 process x batch 4
    for nproc, batch, accum in ((2, 1, 2), (1, 4, 1)):
        run = tmp_path / f"ddp{nproc}"
        cfg_file = tmp_path / f"cfg{nproc}.json"
        save_json(dataclasses.replace(base, run_dir=str(run), batch_size=batch, grad_accum=accum), cfg_file)
        proc = _torchrun(cfg_file, nproc, [])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((run / "environment.json").read_text())["world_size"] == nproc
        assert [r["step"] for r in MetricsLog(run / "metrics.jsonl").read()] == [1, 2]  # rank 0 logs once
        runs[nproc] = load_model(run).state_dict()
    for k, v in runs[1].items():
        assert torch.allclose(v, runs[2][k], atol=1e-5), k


def test_bf16_autocast_with_gradient_accumulation_trains_on_cpu(synth_root, tmp_path):
    run = train(tiny_cfg(synth_root, tmp_path / "run", steps=2, grad_accum=2, amp="bf16", batch_size=1))
    losses = [r["loss"] for r in MetricsLog(run / "metrics.jsonl").read()]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)


def test_fp16_without_cuda_is_a_clear_config_error(synth_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid on CUDA")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(tiny_cfg(synth_root, tmp_path / "run", steps=1, amp="fp16"))


# ---- reliability: bad settings refused before the work, nothing lost or interleaved, crashes recoverable ----


def fast_cfg(root: Path, run_dir: Path, **kw) -> TrainConfig:
    """tiny_cfg with a random text encoder (no sentence-transformers model to load)."""
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    return tiny_cfg(root, run_dir, model=model, **kw)


def test_ignore_index_colliding_with_a_training_label_is_refused(synth_root, tmp_path):
    with pytest.raises(ConfigError, match=r"ignore_index=5 collides with training label 5 \('[a-z ]+'\)"):
        Trainer(fast_cfg(synth_root, tmp_path / "run", ignore_index=5))


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(synth_root, tmp_path):
    # a divergent SGD step: step 1 is finite and checkpointed, the loss of step 2 is not
    cfg = fast_cfg(synth_root, tmp_path / "run", optimizer="sgd", lr=1e10, checkpoint_every=1)
    with pytest.raises(
        FloatingPointError, match=r"loss became nan at step 2; .*last\.pt keeps the last checkpoint"
    ):
        train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["step"] for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read()] == [1]
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_run_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("keep me")
    # no dataset at this root: had any work started, the error would be about the data
    data = DataConfig(dataset="synthetic_textures", data_root=str(tmp_path / "none"))
    for run_dir, reason in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", "lies below")):
        with pytest.raises(NotADirectoryError, match=f"run_dir {run_dir} {reason}"):
            Trainer(TrainConfig(data=data, run_dir=str(run_dir)))
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root (as in CI containers) writes anyway")
def test_read_only_run_dir_is_refused_before_any_work(tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    data = DataConfig(dataset="synthetic_textures", data_root=str(tmp_path / "none"))
    try:
        with pytest.raises(PermissionError, match=f"cannot write into run_dir {tmp_path / 'ro'}"):
            Trainer(TrainConfig(data=data, run_dir=str(tmp_path / "ro")))
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_second_training_in_a_locked_run_folder_is_refused(synth_root, tmp_path):
    cfg = fast_cfg(synth_root, tmp_path / "run", steps=1)
    with RunLock(tmp_path / "run"):  # as another training process would hold it
        with pytest.raises(
            RunFolderBusy, match=f"in use by process {os.getpid()} on host {socket.gethostname()}"
        ):
            train(cfg)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # nothing written
    train(cfg)  # released: the same run now goes ahead
    assert [r["step"] for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read()] == [1]


def test_resume_skips_a_torn_metrics_line_with_a_warning(synth_root, tmp_path):
    cfg = fast_cfg(synth_root, tmp_path / "run", steps=2, checkpoint_every=1)
    Trainer(cfg).fit(stop_at=1)
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "loss": 1.2')  # a crash mid-write
    with pytest.warns(UserWarning, match=r"metrics\.jsonl:2: skipping a torn last line"):
        Trainer(cfg).fit()
    records = MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    assert [r["step"] for r in records] == [1, 2] and all(isinstance(r["loss"], float) for r in records)


def test_truncated_checkpoint_says_how_to_recover(synth_root, tmp_path):
    cfg = fast_cfg(synth_root, tmp_path / "run", steps=2, checkpoint_every=1)
    Trainer(cfg).fit(stop_at=1)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(
        ValueError, match=r"cannot resume: .*last\.pt is not a readable training checkpoint"
    ) as e:
        Trainer(cfg).fit()
    assert "Delete it to restart this run from step 0" in str(e.value) and "--no-resume" in str(e.value)
    Trainer(dataclasses.replace(cfg, resume=False)).fit(stop_at=1)  # the advice works
    assert torch.load(last, weights_only=True)["step"] == 1


def test_stale_tmp_files_are_cleaned_at_the_start_of_a_run(synth_root, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / "checkpoints" / ".last.pt.k2j4_x.tmp", run / ".config.json.8fq1.tmp"]
    for p in stale:
        p.write_bytes(b"half a file from a crash")
    (run / "notes.tmp").write_text("not ours")  # not a temporary file of an atomic write
    Trainer(fast_cfg(synth_root, run, steps=1)).fit()
    assert not any(p.exists() for p in stale)
    assert (run / "notes.tmp").read_text() == "not ours"


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(synth_root, tmp_path):
    """A real ``lseg-nb train`` process killed with SIGKILL after its first checkpoint, then rerun, ends with
    the same losses and bit-identical weights as an uninterrupted run."""
    cfg = fast_cfg(synth_root, tmp_path / "killed", steps=12, checkpoint_every=1)
    save_json(cfg, tmp_path / "cfg.json")
    cmd = [sys.executable, "-m", "lseg_nb", "train", "--config", str(tmp_path / "cfg.json")]
    # one thread everywhere: the same kernels in all three runs, and no spinning threads on a shared CPU
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert last.exists(), "the process never wrote its first checkpoint"
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "killed too late: the run had finished"
    killed_at = torch.load(last, weights_only=True)["step"]
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(dataclasses.replace(cfg, run_dir=str(tmp_path / "straight")))  # uninterrupted, in this process
    finally:
        torch.set_num_threads(threads)

    def losses(run: str) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in MetricsLog(tmp_path / run / "metrics.jsonl").read()]

    assert 1 <= killed_at < 12 and [s for s, _ in losses("killed")] == list(range(1, 13))
    assert losses("killed") == losses("straight")
    a, b = load_model(tmp_path / "killed").state_dict(), load_model(tmp_path / "straight").state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _closed_set_cfg(root: Path, run_dir: Path, vocabulary: tuple[str, ...] | None = None) -> TrainConfig:
    cfg = tiny_cfg(root, run_dir)
    seen = vocabulary or tuple(
        Trainer(dataclasses.replace(cfg, run_dir=str(run_dir) + "_probe")).labels.seen_names
    )
    text = TextEncoderConfig(kind="learned", vocabulary=seen, dim=16)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=text))


def test_closed_set_baseline_learns_its_label_table_and_reloads(synth_root, tmp_path):
    """The closed-set baseline (text.kind='learned') trains its label rows with the head; everything else is the
    LSeg recipe. The trained table is saved with the run and reloaded; unseen labels cannot be scored."""
    cfg = _closed_set_cfg(synth_root, tmp_path / "run")
    trainer = Trainer(cfg)
    table = trainer.model.text_encoder.table
    before = table.detach().clone()
    group = next(g for g in parameter_groups(trainer.model, cfg) if any(p is table for p in g["params"]))
    assert group["lr"] == pytest.approx(cfg.lr * cfg.decoder_lr_mult)  # trains with the head
    trainer.fit()
    assert not torch.allclose(before, table.detach())
    model = load_model(tmp_path / "run")
    seen = list(cfg.model.text.vocabulary)
    assert torch.equal(model.encode_text(seen), trainer.model.encode_text(seen))
    unseen = trainer.labels.unseen_names[0]
    with pytest.raises(KeyError, match=f"only scores labels it was trained on, not \\['{unseen}'\\]"):
        model.encode_text([unseen])


def test_closed_set_baseline_needs_every_training_label(synth_root, tmp_path):
    cfg = _closed_set_cfg(synth_root, tmp_path / "run", vocabulary=("not a class",))
    with pytest.raises(ConfigError, match="text.vocabulary lacks training labels"):
        Trainer(cfg)
    with pytest.raises(ConfigError, match="text.vocabulary"):
        TextEncoderConfig(kind="learned")
