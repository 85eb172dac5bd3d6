"""Atomic writes: normal file permissions, nothing half-written, durable (fsync), no temporary files left behind;
output paths checked before the work; errors name the path and the reason. Paths built from data stay inside
their root, `~` expands in user paths, the same file is recognised however spelled, safetensors bytes are
reproducible, bounded values in messages."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from lseg_nb.utils.errors import InputError, printable, shorten
from lseg_nb.utils.io import (
    atomic_save_npy,
    atomic_save_safetensors,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    check_output_path,
    clean_stale_tmp,
    file_stem,
    inside,
    load_tensors,
    safe_torch_load,
    safetensors_metadata,
    same_file,
    user_path,
)

WRITERS = {
    "text": lambda p: atomic_write_text(p, "hello\n"),
    "bytes": lambda p: atomic_write_bytes(p, b"\x00\x01"),
    "torch": lambda p: atomic_torch_save({"w": torch.ones(2)}, p),
    "safetensors": lambda p: atomic_save_safetensors({"w": torch.ones(2)}, p),
    "npy": lambda p: atomic_save_npy(np.ones(2, np.float16), p),
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


def test_failed_npy_save_keeps_old_array_and_no_temp(tmp_path):
    path = tmp_path / "features.npy"
    atomic_save_npy(np.arange(3, dtype=np.float16), path)
    with pytest.raises(ValueError):  # object arrays need pickling, which is refused
        atomic_save_npy(np.array([{"a": 1}], dtype=object), path)
    assert np.array_equal(np.load(path), np.arange(3, dtype=np.float16))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "features.npy"
    ]  # no ".npy" appended to the temp name


def test_round_trips(tmp_path):
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    tensors = {"a": torch.arange(6.0).view(2, 3), "b": torch.zeros(2, dtype=torch.long)}
    atomic_save_safetensors(tensors, tmp_path / "t.safetensors")
    loaded = load_tensors(tmp_path / "t.safetensors")
    assert set(loaded) == {"a", "b"} and all(torch.equal(loaded[k], tensors[k]) for k in tensors)


# ---- reliability: durable writes, clear errors naming the path, output paths checked before the work ----


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced descriptors")
def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "last.pt")
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].endswith(".tmp") and Path(events[0][1]).parent == tmp_path  # the data, before
    assert events[2][1] == str(tmp_path)  # the folder entry of the rename, after


def test_disk_full_names_the_path_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left on device"):
        atomic_torch_save({"step": 2}, path)
    assert safe_torch_load(path) == {"step": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_write_below_a_file_names_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'file' / 'out.txt'}"):
        atomic_write_text(tmp_path / "file" / "out.txt", "hello")


def test_clean_stale_tmp_removes_only_leftovers_of_atomic_writes(tmp_path):
    stale = [tmp_path / ".last.pt.abc123.tmp", tmp_path / ".config.json.x.tmp"]
    keep = [tmp_path / "last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for p in stale + keep:
        p.write_text("x")
    assert sorted(clean_stale_tmp(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    young = tmp_path / ".model.safetensors.q.tmp"
    young.write_text("being written right now")
    assert clean_stale_tmp(tmp_path, min_age_s=3600) == [] and young.exists()
    assert clean_stale_tmp(tmp_path / "missing") == []


def test_check_output_path_refuses_folders_and_paths_below_files(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(IsADirectoryError, match=f"--out {tmp_path} is a folder"):
        check_output_path(tmp_path, "--out")
    with pytest.raises(NotADirectoryError, match=f"lies below {tmp_path / 'file'}, which is a file"):
        check_output_path(tmp_path / "file" / "sub" / "x.json", "--out")
    assert check_output_path(tmp_path / "new" / "x.json") == tmp_path / "new" / "x.json"
    assert (tmp_path / "new").is_dir()  # its folder is created up front


def test_check_output_dir_refuses_files_and_creates_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=f"run_dir {tmp_path / 'file'} is a file, not a folder"):
        check_output_dir(tmp_path / "file", "run_dir")
    with pytest.raises(NotADirectoryError, match=f"lies below {tmp_path / 'file'}, which is a file"):
        check_output_dir(tmp_path / "file" / "run", "run_dir")
    assert check_output_dir(tmp_path / "a" / "b").is_dir()


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root (as in CI containers) writes anyway")
def test_read_only_folders_are_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f"cannot write --out {ro / 'x.json'}: its folder {ro}"):
            check_output_path(ro / "x.json", "--out")
        with pytest.raises(PermissionError, match=f"cannot write into run_dir {ro}"):
            check_output_dir(ro, "run_dir")
        with pytest.raises(OSError, match=f"cannot write {ro / 'x.txt'}: Permission denied"):
            atomic_write_text(ro / "x.txt", "x")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    "part",
    ["../x", "a/../../x", "/etc/passwd", "a\\..\\..\\x", "C:\\x", "x/../../../outside/y.png", "", "a\0b"],
)
def test_paths_built_from_data_may_not_leave_their_root(tmp_path, part):
    with pytest.raises(InputError, match="layout.image_suffix"):
        inside(tmp_path, "images", part, what="layout.image_suffix")
    assert list(tmp_path.iterdir()) == []  # checked before anything is created


def test_paths_inside_the_root_are_joined(tmp_path):
    assert inside(tmp_path, "images", "sub/a.b.png") == tmp_path / "images" / "sub" / "a.b.png"


@pytest.mark.parametrize(
    ("text", "stem"),
    [
        ("maskclip:ViT-B-16/openai", "maskclip_ViT-B-16_openai"),
        ("..", "unnamed"),
        ("../../x", "x"),
        (".hid", "hid"),
    ],
)
def test_file_stem_is_one_plain_component(text, stem):
    assert file_stem(text) == stem and "/" not in file_stem(text)


def test_tilde_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/runs/x") == tmp_path / "runs" / "x"
    assert check_output_dir("~/runs/x", "run_dir") == tmp_path / "runs" / "x"
    assert (tmp_path / "runs" / "x").is_dir() and not Path("~").exists()


def test_same_file_however_spelled(tmp_path, monkeypatch):
    a = tmp_path / "in.safetensors"
    a.write_bytes(b"x")
    (tmp_path / "link.safetensors").symlink_to(a)
    os.link(a, tmp_path / "hard.safetensors")
    monkeypatch.chdir(tmp_path)
    for other in (
        "in.safetensors",
        "./in.safetensors",
        str(a),
        "link.safetensors",
        "hard.safetensors",
        "sub/../in.safetensors",
    ):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert same_file(a, other), other
    assert not same_file(a, "other.safetensors")


def test_identical_safetensors_writes_give_identical_bytes(tmp_path):
    """safetensors keeps metadata in a Rust HashMap whose order changes between writes: the header is sorted."""
    tensors = {"b": torch.arange(3.0), "a": torch.ones(2, 2)}
    meta = {f"key{i}": str(i) for i in range(8)}
    blobs = set()
    for i in range(6):
        atomic_save_safetensors(
            tensors, tmp_path / f"{i}.safetensors", dict(reversed(meta.items())) if i % 2 else meta
        )
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    back = load_tensors(tmp_path / "0.safetensors")
    assert torch.equal(back["a"], tensors["a"]) and torch.equal(back["b"], tensors["b"])
    assert safetensors_metadata(tmp_path / "0.safetensors") == meta


def test_safetensors_in_a_folder_whose_name_is_not_utf8(tmp_path):
    folder = tmp_path / os.fsdecode(b"w\xffx")
    atomic_save_safetensors({"w": torch.ones(2)}, folder / "m.safetensors", {"k": "v"})
    assert torch.equal(load_tensors(folder / "m.safetensors")["w"], torch.ones(2))
    assert safetensors_metadata(folder / "m.safetensors") == {"k": "v"}


def test_messages_show_huge_values_shortened_in_bounded_time():
    bomb: list = ["x"] * 9
    for _ in range(8):  # 9**9 = 387 million strings, sharing their lists (as YAML aliases expand)
        bomb = [bomb] * 9
    text = shorten(bomb)
    assert len(text) <= 80 and text.startswith("[[[")
    assert "..." in shorten("y" * 10**6) and len(shorten("y" * 10**6)) <= 80
    assert printable(os.fsdecode(b"a\xffb")) == "a\\udcffb"
