"""evaluate(): bookkeeping checked against independent computations on a few tiny images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from lseg_nb.engine.evaluate import EvalResult, diverse_indices, evaluate, example_indices
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.metrics import compute_metrics, confusion_matrix

LABELS = ["sky", "cow", "grass", "tree"]
UNSEEN = [1, 3]


class PairDataset(Dataset):
    """(image, label) pairs held in memory, as a data module would yield them."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[i]


def _pairs(sizes: list[tuple[int, int]], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in sizes:
        label = torch.randint(0, len(LABELS), (h, w), generator=g)
        label[:2] = 255
        out.append((torch.randn(3, h, w, generator=g), label))
    return out


@pytest.fixture
def dataset() -> PairDataset:
    return PairDataset(_pairs([(32, 32), (40, 24), (32, 32)]))


def _reference_cm(model, ds, text, **kw) -> torch.Tensor:
    k = text.shape[0]
    cm = torch.zeros(k, k, dtype=torch.long)
    for img, lab in ds:
        pred = predict_logits(model, img[None], text, **kw).argmax(1)
        cm += confusion_matrix(pred, lab[None], k)
    return cm


def test_confusion_matches_direct_predictions(tiny_model, dataset):
    res = evaluate(tiny_model, dataset, LABELS, progress=False)
    ref = _reference_cm(tiny_model, dataset, tiny_model.encode_text(LABELS))
    np.testing.assert_array_equal(res.confusion, ref.numpy())
    assert res.num_images == 3 and res.mode == "single" and res.unseen_only is None
    assert res.all_labels.num_pixels == sum(int((lab != 255).sum()) for _, lab in dataset)
    assert res.all_labels.miou == pytest.approx(compute_metrics(ref, LABELS).miou)
    assert res.all_labels.harmonic_iou is None


def test_perfect_labels_give_perfect_scores(tiny_model, dataset):
    """Ground truth set to the model's own argmax (plus void): every score is 1, except for one flipped pixel."""
    text = tiny_model.encode_text(LABELS)
    pairs = []
    for img, lab in dataset:
        pred = predict_logits(tiny_model, img[None], text).argmax(1)[0]
        pairs.append((img, torch.where(lab == 255, lab, pred)))
    res = evaluate(tiny_model, PairDataset(pairs), LABELS, progress=False)
    assert res.all_labels.pixel_acc == 1.0 and res.all_labels.miou == 1.0
    img, lab = pairs[0]
    lab = lab.clone()
    lab[5, 5] = (lab[5, 5] + 1) % len(LABELS)
    res = evaluate(tiny_model, PairDataset([(img, lab)]), LABELS, progress=False)
    assert res.all_labels.pixel_acc == pytest.approx(1 - 1 / int((lab != 255).sum()))


def test_unseen_only_equals_hand_restriction(tiny_model, dataset):
    res = evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, progress=False)
    text_u = tiny_model.encode_text([LABELS[c] for c in UNSEEN])
    ref = torch.zeros(2, 2, dtype=torch.long)
    for img, lab in dataset:
        pred = predict_logits(tiny_model, img[None], text_u).argmax(1)[0]
        for t, p in zip(lab.flatten().tolist(), pred.flatten().tolist(), strict=True):
            if t in UNSEEN:  # seen-class and void pixels are not scored
                ref[UNSEEN.index(t), p] += 1
    np.testing.assert_array_equal(res.unseen_confusion, ref.numpy())
    assert res.unseen_only.class_names == ("cow", "tree")
    assert res.unseen_only.miou == pytest.approx(compute_metrics(ref, ["cow", "tree"]).miou)
    # generalised setting: all labels, split metrics from the full matrix
    assert res.seen == (0, 2) and res.unseen == (1, 3)
    full = compute_metrics(res.confusion, LABELS, seen=[0, 2], unseen=UNSEEN)
    assert res.all_labels.seen_miou == pytest.approx(full.seen_miou)
    assert res.all_labels.unseen_miou == pytest.approx(full.unseen_miou)
    s, u = full.seen_miou, full.unseen_miou
    assert res.all_labels.harmonic_iou == pytest.approx(2 * s * u / (s + u))
    np.testing.assert_array_equal(
        res.confusion, _reference_cm(tiny_model, dataset, tiny_model.encode_text(LABELS))
    )


def test_sliding_mode_kwargs_are_forwarded(tiny_model, dataset):
    res = evaluate(tiny_model, dataset, LABELS, mode="sliding", crop_size=32, max_images=2, progress=False)
    sub = PairDataset(dataset.pairs[:2])
    ref = _reference_cm(tiny_model, sub, tiny_model.encode_text(LABELS), mode="sliding", crop_size=32)
    np.testing.assert_array_equal(res.confusion, ref.numpy())
    assert res.num_images == 2 and res.mode == "sliding"


def test_batching_same_sizes(tiny_model):
    ds = PairDataset(_pairs([(32, 32)] * 3, seed=4))
    a = evaluate(tiny_model, ds, LABELS, batch_size=2, progress=False)
    b = evaluate(tiny_model, ds, LABELS, batch_size=1, progress=False)
    np.testing.assert_array_equal(a.confusion, b.confusion)


def test_examples_are_denormalised_arrays(tiny_model):
    mean, std = torch.tensor(tiny_model.config.mean), torch.tensor(tiny_model.config.std)
    raw = torch.randint(0, 256, (32, 32, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    img = (raw.permute(2, 0, 1).float() / 255 - mean[:, None, None]) / std[:, None, None]
    lab = torch.zeros(32, 32, dtype=torch.long)
    lab[0, 0] = 255
    res = evaluate(tiny_model, PairDataset([(img, lab), (img, lab)]), LABELS, examples=1, progress=False)
    assert len(res.examples) == 1
    ex = res.examples[0]
    assert ex.index == 0 and ex.image.dtype == np.uint8 and ex.image.shape == (32, 32, 3)
    np.testing.assert_array_equal(ex.image, raw.numpy())
    assert ex.target[0, 0] == 255 and ex.pred.shape == (32, 32)
    pred = predict_logits(tiny_model, img[None], tiny_model.encode_text(LABELS)).argmax(1)[0]
    np.testing.assert_array_equal(ex.pred, pred.numpy())


def _planted(class_lists: list[list[int]], size: int = 16) -> PairDataset:
    """One image per entry whose label holds exactly the listed classes (vertical bands), plus a void row."""
    pairs = []
    for i, classes in enumerate(class_lists):
        label = torch.tensor(classes).repeat_interleave(-(-size // len(classes)))[:size].repeat(size, 1)
        label[0] = 255
        pairs.append((torch.randn(3, size, size, generator=torch.Generator().manual_seed(i)), label.long()))
    return PairDataset(pairs)


def _covered(ds: PairDataset, indices: list[int]) -> set[int]:
    return {int(c) for i in indices for c in ds[i][1].unique() if c != 255}


def test_example_selection_covers_more_classes_than_the_first_images():
    # the split opens with four all-"sky" images; the others each show different classes
    ds = _planted([[0], [0], [0], [0], [0, 1], [2, 3], [0, 2], [1, 3], [0]])
    first = list(range(3))
    chosen = example_indices(ds, 3, len(LABELS))
    assert _covered(ds, first) == {0}
    assert _covered(ds, chosen) == {0, 1, 2, 3}
    # biggest gain first; when all classes are shown a new round starts: most classes, then farthest away
    assert chosen == [4, 5, 7]
    assert example_indices(ds, 3, len(LABELS)) == chosen  # deterministic
    assert example_indices(ds, 3, len(LABELS), max_images=4) == [0, 3, 1]  # only the first 4 images
    assert example_indices(ds, 0, len(LABELS)) == []
    with pytest.raises(ValueError, match=">= 0"):
        example_indices(ds, -1, len(LABELS))


def test_diverse_indices_rules():
    # unseen classes (weight 2) win over a larger number of seen ones
    assert diverse_indices([{0, 1}, {3}, {0, 1, 2}], 1, {3: 2.0})[0] == 2
    assert diverse_indices([{0, 1}, {3}, {0, 1}], 1, {3: 2.5})[0] == 1
    # equal gains: spread over the list; a second round starts when nothing new is left
    assert diverse_indices([{0}] * 5, 3) == [0, 4, 2]
    assert diverse_indices([{0}, {1}], 5) == [0, 1]  # never more than there are items
    assert diverse_indices([set(), {1}], 2) == [1, 0]  # all-void images come last


def test_evaluate_keeps_the_selected_examples_in_selection_order(tiny_model):
    ds = _planted([[0], [0], [0], [0, 1], [2, 3]])
    res = evaluate(tiny_model, ds, LABELS, examples=2, progress=False)
    assert [e.index for e in res.examples] == [3, 4]
    np.testing.assert_array_equal(res.examples[1].target, ds[4][1].numpy())
    res = evaluate(tiny_model, ds, LABELS, examples=[4, 1], progress=False)
    assert [e.index for e in res.examples] == [4, 1]
    with pytest.raises(ValueError, match=r"examples \[5\] must be distinct image indices in \[0, 5\)"):
        evaluate(tiny_model, ds, LABELS, examples=[5], progress=False)
    with pytest.raises(ValueError, match="distinct"):
        evaluate(tiny_model, ds, LABELS, examples=[1, 1], progress=False)


def test_save_json_roundtrip(tiny_model, dataset, tmp_path):
    res = evaluate(tiny_model, dataset, LABELS, unseen=UNSEEN, max_images=1, progress=False)
    assert isinstance(res, EvalResult)
    path = tmp_path / "out" / "metrics.json"
    res.save_json(path)
    data = json.loads(path.read_text())
    assert data["num_images"] == 1 and data["unseen"] == UNSEEN
    assert data["confusion"] == res.confusion.tolist()
    assert data["unseen_only"]["class_names"] == ["cow", "tree"]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp files left


def test_bad_inputs(tiny_model, dataset):
    with pytest.raises(ValueError, match="only 2 labels"):
        evaluate(tiny_model, dataset, LABELS[:2], progress=False)
    with pytest.raises(ValueError, match="batch_size=1"):
        evaluate(tiny_model, dataset, LABELS, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="both seen and unseen"):
        evaluate(tiny_model, dataset, LABELS, seen=[0, 1], unseen=[1], progress=False)
    with pytest.raises(ValueError, match="without unseen"):
        evaluate(tiny_model, dataset, LABELS, seen=[0], progress=False)
    bad = PairDataset([(torch.randn(3, 8, 8), torch.zeros(8, 9, dtype=torch.long))])
    with pytest.raises(ValueError, match=r"dataset\[0\] label"):
        evaluate(tiny_model, bad, LABELS, progress=False)
