"""Run folders: the metrics log survives a torn last line, and the run-folder lock names its holder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lseg_nb.engine.runs import MetricsLog, RunFolderBusy, RunLock

REPO = Path(__file__).resolve().parents[1]


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\n{"step": 3, "lo')
    with pytest.warns(UserWarning, match=r"metrics\.jsonl:3: skipping a torn last line"):
        records = MetricsLog(path).read()
    assert records == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.1}]
    with pytest.warns(UserWarning):
        MetricsLog(path).truncate_after(2)  # what resume does: the torn line is dropped for good
    assert [json.loads(line) for line in path.read_text().splitlines()] == records


def test_a_bad_line_before_the_end_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo\n{"step": 3, "loss": 2.0}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record .*--no-resume"):
        MetricsLog(path).read()


def test_run_lock_names_the_other_process_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lseg_nb.engine.runs import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(300)",
            str(tmp_path),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        other = f"process {holder.pid} on host {socket.gethostname()}"
        with pytest.raises(RunFolderBusy, match=f"run folder {tmp_path} is in use by {other}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
        holder.wait()
    with RunLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == f"process {os.getpid()} on host {socket.gethostname()}"


def test_run_lock_is_exclusive_within_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunFolderBusy, match=f"process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # released on exit
