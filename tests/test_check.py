"""`lseg-nb check DATA` and the data check of `train --dry-run` (lseg_nb.data.check, lseg_nb.apps.cli_check)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lseg_nb.apps import cli_check
from lseg_nb.apps.cli import main
from lseg_nb.config import DataConfig
from lseg_nb.data import check as data_check
from lseg_nb.data.check import check_data
from lseg_nb.data.manifests import ManifestError
from lseg_nb.utils.errors import InputError

MANIFEST = {
    "name": "streets",
    "classes": ["sky", "building", "road", "car", "bicyclist"],
    "layout": {"images_dir": "images", "labels_dir": "labels"},
    "splits": {"train": {"file": "splits/train.txt"}, "test": {"file": "splits/test.txt"}},
    "zero_shot_folds": [
        {"name": "no_car", "unseen": ["car"]},
        {"name": "no_bicyclist", "unseen": ["bicyclist"]},
    ],
}


def label(h: int = 6, w: int = 8, car: bool = True) -> np.ndarray:
    """Rows of sky / building / road, a car in the road, the right column void (255)."""
    lab = np.zeros((h, w), np.uint8)
    lab[h // 3 : 2 * h // 3] = 1
    lab[2 * h // 3 :] = 2
    if car:
        lab[-1, :2] = 3
    lab[:, -1] = 255
    return lab


def write(root: Path, id_: str, lab: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
    h, w = image_size or lab.shape
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(root / "images" / f"{id_}.png")
    Image.fromarray(lab).save(root / "labels" / f"{id_}.png")


@pytest.fixture
def streets(tmp_path) -> Path:
    """A CamVid-like dataset: 3 train images (one 6x10), 2 test images; no bicyclist anywhere."""
    root = tmp_path / "streets"
    for sub in ("images", "labels", "splits"):
        (root / sub).mkdir(parents=True)
    write(root, "tr0", label())
    write(root, "tr1", label())
    write(root, "tr2", label(6, 10))
    write(root, "te0", label())
    write(root, "te1", label(car=False))
    (root / "splits" / "train.txt").write_text("tr0\ntr1\ntr2\n")
    (root / "splits" / "test.txt").write_text("te0\nte1\n")
    (root / "manifest.yaml").write_text(yaml.safe_dump(MANIFEST, sort_keys=False))
    return root


def data(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset=str(root / "manifest.yaml"), data_root=str(root), **kw)


def test_summary_of_a_clean_dataset(streets):
    check = check_data(data(streets, fold="no_car"))
    assert check.ok and check.labels.unseen == (3,)
    train, test = check.splits
    assert (train.name, train.images, train.min_size, train.max_size) == ("train", 3, (6, 8), (6, 10))
    assert train.present() == (0, 1, 2, 3) and test.present() == (0, 1, 2, 3)
    # void: one column per image: 6 of 48, 6 of 48, 6 of 60 pixels
    assert train.void_share == pytest.approx(18 / 156)
    assert train.class_pixels[3] == 6  # two car pixels in each train image
    # bicyclist never occurs: a note, not a problem; the val split the config names does not exist: a note
    assert any("['bicyclist'] have no pixel in any split" in n for n in check.notes)
    assert any("data.val_split 'val' is not a split of streets" in n for n in check.notes)


def test_check_command_prints_the_table_and_exits_0(streets, capsys):
    manifest = str(streets / "manifest.yaml")
    assert main(["check", manifest, "--data-root", str(streets), "--fold", "no_car"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"dataset streets at {streets}: 5 classes; fold 'no_car' holds out ['car']"
    assert (
        out[1].split()
        == "split images classes present void % image size unseen of fold 'no_car' present".split()
    )
    assert out[2].split() == ["train", "3", "4/5", "11.5", "H", "6,", "W", "8..10", "1/1"]
    assert out[3].split() == ["test", "2", "4/5", "12.5", "6x8", "1/1"]


def test_problems_are_all_listed_naming_the_file_and_exit_2(streets, capsys):
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(streets / "labels" / "tr0.png")  # a colour label
    bad = label()
    bad[0, 0] = 7
    write(streets, "tr1", bad)  # a value that is no class
    write(streets, "tr2", label(), image_size=(5, 8))  # image and label differ in size
    (streets / "images" / "te1.png").unlink()
    manifest = str(streets / "manifest.yaml")
    assert main(["check", manifest, "--data-root", str(streets)]) == 2
    captured = capsys.readouterr()
    problems = [line for line in captured.out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 4
    assert "labels/tr0.png has mode RGB; expected a single-channel class-index PNG" in problems[0]
    assert "labels/tr1.png (id 'tr1') has values [7] outside 0..4 and not ignore_index 255" in problems[1]
    assert "labels/tr2.png is 6x8 but its image" in problems[2] and "images/tr2.png is 5x8" in problems[2]
    assert "image for id 'te1' (split 'test') is missing" in problems[3]
    assert "error: 4 problem(s) in the data of streets" in captured.err
    # only the readable items are summarised
    assert captured.out.splitlines()[2].split()[:2] == ["train", "0"]


def test_problem_list_is_capped(streets):
    for i in range(3):
        (streets / "images" / f"tr{i}.png").unlink()
    check = check_data(data(streets), max_problems=2)
    assert len(check.problems) == 2 and check.more_problems == 1 and not check.ok


def test_notes_for_shared_ids_void_labels_and_absent_unseen_classes(streets):
    (streets / "splits" / "test.txt").write_text("te0\nte1\ntr0\n")
    write(streets, "te1", np.full((6, 8), 255, np.uint8))
    check = check_data(data(streets, fold="no_bicyclist"))
    assert check.ok
    notes = "\n".join(check.notes)
    assert "splits 'train' and 'test' share 1 id(s), e.g. 'tr0'" in notes
    assert "split 'test': 1 label(s) are void everywhere, e.g. id 'te1'" in notes
    assert "fold 'no_bicyclist': unseen class(es) ['bicyclist'] have no pixel in split 'test'" in notes


def test_missing_split_file_and_split_roles(streets):
    (streets / "splits" / "test.txt").unlink()
    (streets / "splits" / "val.txt").write_text("te0\n")
    manifest = {**MANIFEST, "splits": {**MANIFEST["splits"], "val": {"file": "splits/val.txt"}}}
    (streets / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    check = check_data(data(streets, train_split="training"))
    assert [s.name for s in check.splits] == ["train", "val"]
    assert any(
        "split 'test':" in p and "splits/test.txt (splits.test.file) does not exist" in p
        for p in check.problems
    )
    assert any("data.train_split 'training' is not a split of streets" in p for p in check.problems)


def test_unknown_fold_name_and_benchmarks_are_one_error(streets):
    with pytest.raises(
        ManifestError, match=r"no zero-shot fold 'no_bus'; folds are 0\.\.1 = \['no_car', 'no_bicyclist'\]"
    ):
        check_data(data(streets, fold="no_bus"))
    with pytest.raises(InputError, match="lseg-nb prepare pascal5i --root PATH"):
        check_data(DataConfig(dataset="pascal5i", data_root=str(streets), fold=0))


def test_train_dry_run_checks_the_data(streets, tmp_path, capsys):
    argv = ["train", "--dry-run", "--data.dataset", str(streets / "manifest.yaml"), "--data.fold", "no_car"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["data"]["fold"] == "no_car"  # stdout stays the config alone
    assert "dataset streets at" in captured.err and "train       3" in captured.err
    bad = label()
    bad[0, 0] = 9
    write(streets, "te0", bad)
    assert main(argv) == 2
    assert "has values [9] outside 0..4" in capsys.readouterr().err
    assert main([*argv, "--no-data-check"]) == 0  # a config inspected where the data is not


# ---------------------------------------------------------------- docs/custom-data.md, run as written

DOC = Path(__file__).resolve().parents[1] / "docs" / "custom-data.md"
DOC_ROOT = "~/data/streets"


def walkthrough_dataset(root: Path) -> None:
    """The page's example data: 36 street scenes of 96x128 px (24/6/6), bicyclists rare in training, void border."""
    for d in ("images", "labels", "splits"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    colours = {0: (120, 170, 230), 1: (140, 90, 70), 2: (90, 90, 90), 3: (200, 30, 30), 4: (240, 220, 40)}
    for split, n in {"train": 24, "val": 6, "test": 6}.items():
        ids = []
        for i in range(n):
            lab = np.zeros((96, 128), np.uint8)
            lab[rng.integers(25, 45) :] = 1
            road = rng.integers(60, 75)
            lab[road:] = 2
            x = rng.integers(0, 128 - 40)
            lab[road - 12 : road + 6, x : x + 36] = 3
            if split != "train" or i % 3 == 0:
                bx = rng.integers(0, 128 - 12)
                lab[road - 20 : road + 4, bx : bx + 10] = 4
            lab[:, :2] = 255
            img = np.zeros((96, 128, 3), np.float32)
            for c, col in colours.items():
                img[lab == c] = col
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
            ids.append(f"{split}_{i:03d}")
            Image.fromarray(img).save(root / "images" / f"{ids[-1]}.png")
            Image.fromarray(lab).save(root / "labels" / f"{ids[-1]}.png")
        (root / "splits" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def doc_commands(text: str) -> list[tuple[list[str], list[str]]]:
    """``($ lseg-nb ... words, the output lines below it)`` of each console block of the page."""
    import re
    import shlex

    out = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        if lines[0].startswith("$ lseg-nb "):
            out.append((shlex.split(lines[0][len("$ lseg-nb ") :]), lines[1:]))
    return out


def test_walkthrough_template_and_commands_run_as_written(tmp_path, capsys, monkeypatch):
    import re

    text = DOC.read_text()
    template = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    root = tmp_path / "streets"
    walkthrough_dataset(root)
    (root / "streets.yaml").write_text(template)
    monkeypatch.chdir(tmp_path)
    commands = {words[0]: (words, shown) for words, shown in doc_commands(text)}
    assert {"check", "train", "evaluate"} <= set(commands)

    words, shown = commands["check"]
    argv = [w.replace(DOC_ROOT, str(root)) for w in words]
    assert main(argv) == 0
    printed = capsys.readouterr().out.replace(str(root), "/home/me/data/streets").splitlines()
    assert printed == shown  # the table on the page is this dataset's, exactly

    dry = [cmd for cmd in doc_commands(text) if cmd[0][0] == "train" and "--dry-run" in cmd[0]]
    assert len(dry) == 1
    assert main([w.replace(DOC_ROOT, str(root)) for w in dry[0][0]]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["data"]["fold"] == "no_bicyclist" and cfg["model"]["crop_size"] == 96


def test_cli_default_problem_count_is_the_checks_own():
    # the CLI keeps its own copy so that `check --help` does not import the data layer (torch)
    assert cli_check.MAX_PROBLEMS == data_check.MAX_PROBLEMS
