"""Atomic writes: normal file permissions, nothing half-written, no temporary files left behind."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from lseg_nb.utils.io import (
    atomic_save_safetensors,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    load_tensors,
    safe_torch_load,
)

WRITERS = {
    "text": lambda p: atomic_write_text(p, "hello\n"),
    "bytes": lambda p: atomic_write_bytes(p, b"\x00\x01"),
    "torch": lambda p: atomic_torch_save({"w": torch.ones(2)}, p),
    "safetensors": lambda p: atomic_save_safetensors({"w": torch.ones(2)}, p),
}


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize(
    ("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_written_files_get_umask_permissions(tmp_path, umask, kind, mask, mode):
    umask(mask)
    path = tmp_path / "sub" / f"out.{kind}"
    WRITERS[kind](path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_overwrite_replaces_restrictive_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_text_write_keeps_old_file_and_no_temp(tmp_path):
    path = tmp_path / "notes.txt"
    atomic_write_text(path, "first version\n")
    # A lone surrogate cannot be encoded: the write fails after the temporary file was opened.
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "partial \udcff text")
    assert path.read_text() == "first version\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_torch_save_keeps_old_checkpoint_and_no_temp(tmp_path):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 3, "w": torch.arange(4.0)}, path)
    with pytest.raises(Exception):  # noqa: B017 - pickle raises AttributeError or PicklingError by version
        atomic_torch_save({"step": 4, "fn": lambda: None}, path)
    state = safe_torch_load(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_round_trips(tmp_path):
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    tensors = {"a": torch.arange(6.0).view(2, 3), "b": torch.zeros(2, dtype=torch.long)}
    atomic_save_safetensors(tensors, tmp_path / "t.safetensors")
    loaded = load_tensors(tmp_path / "t.safetensors")
    assert set(loaded) == {"a", "b"} and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
