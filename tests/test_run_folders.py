"""Run folders (reliability round 3): a run trains where its config lives (or where --run-dir says), resuming with
more steps is a defined continuation or refused, an edited config.json cannot slip into a resume, Ctrl-C stops
at a step boundary with a checkpoint and says how to resume, and two identical runs write identical bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from lseg_nb.apps.cli import main
from lseg_nb.apps.notebook import ensure_run, load_run
from lseg_nb.config import ConfigError, DataConfig, TextEncoderConfig, TrainConfig, load_config, save_json
from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.runs import MetricsLog, load_model
from lseg_nb.engine.train import Trainer, train
from lseg_nb.models import get_config
from lseg_nb.utils.errors import Interrupted
from lseg_nb.utils.io import safetensors_metadata


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_train=8, n_val=2, n_test=2, size=64)


def cfg_for(root: Path, run_dir: Path | str, **kw) -> TrainConfig:
    model = get_config(
        "lseg_small_cpu", features=8, crop_size=64, text=TextEncoderConfig(kind="random", dim=16)
    )
    base = dict(
        model=model,
        data=DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0),
        run_dir=str(run_dir),
        steps=3,
        batch_size=2,
        log_every=1,
        checkpoint_every=1,
        progress=False,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in MetricsLog(run / "metrics.jsonl").read() if "loss" in r]


# ---- where a run lives ----


def test_a_copied_run_trains_in_the_copy_never_in_the_folder_its_config_names(synth_root, tmp_path, capsys):
    original = tmp_path / "original"
    Trainer(cfg_for(synth_root, original)).fit(stop_at=1)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert load_config(TrainConfig, copy / "config.json").run_dir == str(original)  # the stale name
    before = {p.name: digest(p) for p in (original / "checkpoints").iterdir()}
    assert main(["train", "--config", str(copy / "config.json")]) == 0
    assert (copy / "model.safetensors").is_file() and not (original / "model.safetensors").exists()
    assert {p.name: digest(p) for p in (original / "checkpoints").iterdir()} == before
    assert load_config(TrainConfig, copy / "config.json").run_dir == str(copy)
    assert f"run folder: {copy}" in capsys.readouterr().out
    # --run-dir still says where: a third folder
    third = tmp_path / "third"
    assert main(["train", "--config", str(copy / "config.json"), "--run-dir", str(third)]) == 0
    assert (third / "model.safetensors").is_file()


def test_other_config_files_train_in_their_run_dir(synth_root, tmp_path):
    save_json(cfg_for(synth_root, tmp_path / "runs" / "x", steps=1), tmp_path / "recipe.json")
    assert main(["train", "--config", str(tmp_path / "recipe.json")]) == 0
    assert (tmp_path / "runs" / "x" / "model.safetensors").is_file()


def test_tilde_in_run_dir_is_the_home_folder(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    train(cfg_for(synth_root, "~/runs/x", steps=1))
    assert (tmp_path / "home" / "runs" / "x" / "model.safetensors").is_file()
    assert not (tmp_path / "~").exists()


# ---- resuming with other steps ----


def test_resuming_a_finished_run_with_more_steps_is_refused_with_the_fix(synth_root, tmp_path):
    """Its schedule decayed over 2 steps: 4 steps would restart the learning rate mid-run."""
    cfg = cfg_for(synth_root, tmp_path / "run", steps=2)
    run = train(cfg)
    before = digest(run / "model.safetensors"), (run / "config.json").read_text()
    with pytest.raises(
        ConfigError, match=r"cosine learning-rate schedule over 2 steps and is at step 2; steps=4"
    ):
        train(dataclasses.replace(cfg, steps=4))
    assert (digest(run / "model.safetensors"), (run / "config.json").read_text()) == before
    with pytest.raises(ConfigError, match="use a new run_dir"):
        train(dataclasses.replace(cfg, steps=1))


def test_a_run_planned_with_a_longer_schedule_continues_exactly(synth_root, tmp_path):
    """steps=2 of schedule_steps=4, then steps=4: the same run as 4 straight steps; config.json says 4."""
    straight = train(cfg_for(synth_root, tmp_path / "straight", steps=4, schedule_steps=4))
    cfg = cfg_for(synth_root, tmp_path / "extended", steps=2, schedule_steps=4)
    run = train(cfg)
    assert safetensors_metadata(run / "model.safetensors")["step"] == "2"
    train(dataclasses.replace(cfg, steps=4))
    assert load_config(TrainConfig, run / "config.json").steps == 4
    assert safetensors_metadata(run / "model.safetensors")["step"] == "4"
    a, b = losses(straight), losses(run)
    assert [s for s, _ in b] == [1, 2, 3, 4] and [v for _, v in b] == pytest.approx(
        [v for _, v in a], rel=1e-5
    )
    sa, sb = load_model(straight).state_dict(), load_model(run).state_dict()
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)


def test_a_resume_checks_the_config_the_checkpoint_was_trained_with(synth_root, tmp_path, capsys):
    """Editing the run's own config.json before resuming must not change a run half-way."""
    run = tmp_path / "run"
    Trainer(cfg_for(synth_root, run)).fit(stop_at=1)
    data = json.loads((run / "config.json").read_text())
    data["lr"] = 0.5
    (run / "config.json").write_text(json.dumps(data))
    assert main(["train", "--config", str(run / "config.json")]) == 2
    assert "different config (fields ['lr'], at step 1)" in capsys.readouterr().err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 1


# ---- Ctrl-C ----


def _interrupt_at(monkeypatch, step: int, times: int = 1) -> None:
    """Press Ctrl-C (a real SIGINT to this process) ``times`` times while step ``step`` is being computed."""
    real = Trainer._step

    def step_then_interrupt(self, batches):
        if self.step == step - 1:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return real(self, batches)

    monkeypatch.setattr(Trainer, "_step", step_then_interrupt)


def test_ctrl_c_finishes_the_step_saves_it_and_rerunning_resumes(synth_root, tmp_path, monkeypatch, capsys):
    straight = train(cfg_for(synth_root, tmp_path / "straight", steps=5, checkpoint_every=0))
    cfg = cfg_for(synth_root, tmp_path / "run", steps=5, checkpoint_every=0)  # only Ctrl-C saves a checkpoint
    save_json(cfg, tmp_path / "cfg.json")
    with monkeypatch.context() as m:
        _interrupt_at(m, 2)
        try:
            code = main(["train", "--config", str(tmp_path / "cfg.json")])
        except KeyboardInterrupt:  # must not escape: it would stop the whole test session
            code = "KeyboardInterrupt escaped"
        assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"lseg-nb train: training interrupted at step 2 of 5; {tmp_path / 'run' / 'checkpoints' / 'last.pt'} "
        "holds step 2: rerun the same training to resume from there"
    )
    assert "Traceback" not in "\n".join(err)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert main(["train", "--config", str(tmp_path / "cfg.json")]) == 0
    got, want = losses(tmp_path / "run"), losses(straight)
    assert [s for s, _ in got] == [1, 2, 3, 4, 5] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=1e-5
    )


def test_a_second_ctrl_c_stops_at_once_naming_the_last_checkpoint(synth_root, tmp_path, monkeypatch):
    cfg = cfg_for(synth_root, tmp_path / "run", steps=5, checkpoint_every=2)
    _interrupt_at(monkeypatch, 4, times=2)
    try:
        Trainer(cfg).fit()
        raised: BaseException | None = None
    except KeyboardInterrupt as e:  # caught here: an escaping KeyboardInterrupt would stop the test session
        raised = e
    assert isinstance(raised, Interrupted) and "interrupted during step 4 of 5; " in str(raised)
    assert str(raised).endswith("last.pt holds step 2: rerun the same training to resume from there")
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was put back


# ---- identical runs, identical bytes ----


def test_two_identical_runs_write_identical_files(synth_root, tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        train(cfg_for(synth_root, "run", steps=2))  # the same relative run_dir: config.json can be equal too
    for rel in ("model.safetensors", "config.json"):
        assert digest(tmp_path / "a" / "run" / rel) == digest(tmp_path / "b" / "run" / rel), rel
    # torch.save archives carry a random serialization id: checkpoints are compared by content
    a, b = (torch.load(tmp_path / n / "run" / "checkpoints" / "last.pt", weights_only=True) for n in "ab")
    assert a["config"] == b["config"] and a["step"] == b["step"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


# ---- notebook helpers never hand back a run of another dataset or fold ----


def test_notebook_helpers_refuse_a_finished_run_of_another_fold(synth_root, tmp_path):
    run = tmp_path / "run"
    train(cfg_for(synth_root, run, steps=1))  # fold 0
    assert ensure_run(run, verbose=False, fold=0) == run
    assert ensure_run(run, verbose=False, steps=50) == run  # steps only matter when training
    with pytest.raises(
        ConfigError, match=r"holds a finished run with data\.fold=0, not the run asked for \(data\.fold=1\)"
    ):
        ensure_run(run, verbose=False, fold=1)
    with pytest.raises(ConfigError, match=r"data\.dataset='synthetic_textures'.*data\.dataset='msrc_v2'"):
        ensure_run(run, verbose=False, dataset="msrc_v2")
    with pytest.raises(ConfigError, match=r"data\.fold"):
        ensure_run(run, cfg_for(synth_root, run, steps=1, data=DataConfig(data_root=str(synth_root), fold=2)))
    assert load_run(run, "cpu", fold=0).config.data.fold == 0
    with pytest.raises(ConfigError, match=r"data\.fold=0, not the run asked for \(data\.fold=None\)"):
        load_run(run, "cpu", fold=None)
    with pytest.raises(ConfigError, match="data.dataset"):
        load_run(run, "cpu", dataset="msrc_v2")
