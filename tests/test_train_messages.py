"""What training says when it starts: the step a resumed run continues from, and the CPU speed hints."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from lseg_nb.data.synthetic import generate_synthetic
from lseg_nb.engine.train import train
from tests.test_train import tiny_cfg


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_train=4, n_val=2, n_test=2, size=64)


@pytest.fixture(autouse=True)
def hints_on(monkeypatch):
    monkeypatch.delenv("LSEG_NB_CPU_HINTS")  # conftest silences them for every other test


@pytest.fixture
def idle_cpu(monkeypatch):
    # the machine's load is not what these tests are about: an idle CPU unless a test says otherwise
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


def test_a_resumed_run_says_the_step_it_resumes_from(small_root, tmp_path, capsys, idle_cpu):
    cfg = tiny_cfg(small_root, tmp_path / "run", steps=3, checkpoint_every=0)
    train(cfg, stop_at=2)  # paused: checkpoints/last.pt holds step 2
    assert "resuming" not in capsys.readouterr().err  # a fresh run resumes nothing
    train(cfg)
    err = capsys.readouterr().err.splitlines()
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    assert err.count(f"resuming from step 2 of 3 ({ckpt})") == 1


def test_a_busy_cpu_prints_the_thread_hint_once_at_the_start(small_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 7.0, 4.0))  # other processes keep both cores busy
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(tiny_cfg(small_root, tmp_path / "run", steps=2))
    finally:
        torch.set_num_threads(threads)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1
    # 9.5 less this process's own share (model building, at most its 2 threads, removed): other work fills both cores
    assert re.match(
        r"note: the CPU is busy \(load average [7-9]\.\d from other work on 2 cores\) and torch uses 2 threads",
        notes[0],
    )
    assert notes[0].endswith(
        "set OMP_NUM_THREADS=1 before starting (or torch.set_num_threads(1) in a notebook)"
    )


def test_an_idle_cpu_prints_no_thread_hint(small_root, tmp_path, capsys, idle_cpu):
    train(tiny_cfg(small_root, tmp_path / "run", steps=1))
    assert "the CPU is busy" not in capsys.readouterr().err


def test_the_hints_can_be_silenced(small_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 7.0, 4.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("LSEG_NB_CPU_HINTS", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(tiny_cfg(small_root, tmp_path / "run", steps=1, checkpoint_every=0))
    finally:
        torch.set_num_threads(threads)
    assert "the CPU is busy" not in capsys.readouterr().err
