"""evaluate(): bookkeeping checked against independent computations on a few tiny images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from lseg_nb.config import EvalConfig
from lseg_nb.engine.dense import EvalData
from lseg_nb.engine.evaluate import evaluate
from lseg_nb.engine.examples import diverse_indices, example_indices
from lseg_nb.engine.inference import predict_logits
from lseg_nb.engine.metrics import compute_metrics, confusion_matrix
from lseg_nb.engine.pamr import pamr
from lseg_nb.engine.results import EvalResult
from lseg_nb.utils.labels import LabelSplit
from tests.conftest import with_crop

LABELS = ["sky", "cow", "grass", "tree"]
UNSEEN = [1, 3]


def ev(model, ds, labels=LABELS, unseen=(), protocol=None, max_images=None, batch_size=1, **kw) -> EvalResult:
    data = EvalData(
        ds, LabelSplit.from_labels(list(labels), unseen), max_images=max_images, batch_size=batch_size
    )
    return evaluate(model, data, protocol or EvalConfig(bootstrap=0), progress=False, **kw)


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


def _reference_cm(model, ds, text, *kw) -> torch.Tensor:
    k = text.shape[0]
    cm = torch.zeros(k, k, dtype=torch.long)
    for img, lab in ds:
        pred = predict_logits(model, img[None], text, *kw).argmax(1)
        cm += confusion_matrix(pred, lab[None], k)
    return cm


def test_confusion_matches_direct_predictions(tiny_model, dataset):
    res = ev(tiny_model, dataset, LABELS)
    ref = _reference_cm(tiny_model, dataset, tiny_model.encode_text(LABELS))
    np.testing.assert_array_equal(res.confusion, ref.numpy())
    assert res.num_images == 3 and res.protocol_name == "single" and res.unseen_only is None
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
    res = ev(tiny_model, PairDataset(pairs), LABELS)
    assert res.all_labels.pixel_acc == 1.0 and res.all_labels.miou == 1.0
    img, lab = pairs[0]
    lab = lab.clone()
    lab[5, 5] = (lab[5, 5] + 1) % len(LABELS)
    res = ev(tiny_model, PairDataset([(img, lab)]), LABELS)
    assert res.all_labels.pixel_acc == pytest.approx(1 - 1 / int((lab != 255).sum()))


def test_unseen_only_equals_hand_restriction(tiny_model, dataset):
    res = ev(tiny_model, dataset, LABELS, unseen=UNSEEN)
    text_u = tiny_model.encode_text([LABELS[c] for c in UNSEEN])
    ref = torch.zeros(2, 2, dtype=torch.long)
    for img, lab in dataset:
        pred = predict_logits(tiny_model, img[None], text_u).argmax(1)[0]
        for t, p in zip(lab.flatten().tolist(), pred.flatten().tolist(), strict=True):
            if t in UNSEEN:  # seen-class and void pixels are not scored
                ref[UNSEEN.index(t), p] += 1
    np.testing.assert_array_equal(res.settings["unseen_only"].confusion, ref.numpy())
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
    protocol = EvalConfig(mode="sliding", bootstrap=0)
    res = ev(with_crop(tiny_model, 32), dataset, LABELS, protocol=protocol, max_images=2)
    sub = PairDataset(dataset.pairs[:2])
    ref = _reference_cm(tiny_model, sub, tiny_model.encode_text(LABELS), protocol)
    np.testing.assert_array_equal(res.confusion, ref.numpy())
    assert res.num_images == 2 and res.protocol.mode == "sliding" and "window 32" in res.protocol_name


def test_batching_same_sizes(tiny_model):
    ds = PairDataset(_pairs([(32, 32)] * 3, seed=4))
    a = ev(tiny_model, ds, LABELS, batch_size=2)
    b = ev(tiny_model, ds, LABELS, batch_size=1)
    np.testing.assert_array_equal(a.confusion, b.confusion)


def test_examples_are_denormalised_arrays(tiny_model):
    mean, std = torch.tensor(tiny_model.config.mean), torch.tensor(tiny_model.config.std)
    raw = torch.randint(0, 256, (32, 32, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    img = (raw.permute(2, 0, 1).float() / 255 - mean[:, None, None]) / std[:, None, None]
    lab = torch.zeros(32, 32, dtype=torch.long)
    lab[0, 0] = 255
    res = ev(tiny_model, PairDataset([(img, lab), (img, lab)]), LABELS, examples=1)
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
    res = ev(tiny_model, ds, LABELS, examples=2)
    assert [e.index for e in res.examples] == [3, 4]
    np.testing.assert_array_equal(res.examples[1].target, ds[4][1].numpy())
    res = ev(tiny_model, ds, LABELS, examples=[4, 1])
    assert [e.index for e in res.examples] == [4, 1]
    with pytest.raises(ValueError, match=r"examples \[5\] must be distinct image indices in \[0, 5\)"):
        ev(tiny_model, ds, LABELS, examples=[5])
    with pytest.raises(ValueError, match="distinct"):
        ev(tiny_model, ds, LABELS, examples=[1, 1])


def test_save_json_roundtrip(tiny_model, dataset, tmp_path):
    res = ev(tiny_model, dataset, LABELS, unseen=UNSEEN, max_images=1)
    assert isinstance(res, EvalResult)
    path = tmp_path / "out" / "metrics.json"
    res.save_json(path)
    data = json.loads(path.read_text())
    assert data["num_images"] == 1 and data["labels"]["unseen"] == UNSEEN
    assert data["settings"]["all_labels"]["confusion"] == res.confusion.tolist()
    assert data["settings"]["unseen_only"]["classes"] == ["cow", "tree"]
    assert data["protocol"] == "single" and data["protocol_config"]["mode"] == "single"
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp files left


def test_bad_inputs(tiny_model, dataset):
    with pytest.raises(ValueError, match="only 2 labels"):
        ev(tiny_model, dataset, LABELS[:2])
    with pytest.raises(ValueError, match="batch_size=1"):
        ev(tiny_model, dataset, LABELS, batch_size=2)
    with pytest.raises(ValueError, match="listed twice"):
        LabelSplit(tuple(LABELS), (0, 1, 2), (1, 3))
    bad = PairDataset([(torch.randn(3, 8, 8), torch.zeros(8, 9, dtype=torch.long))])
    with pytest.raises(ValueError, match=r"dataset\[0\] label"):
        ev(tiny_model, bad, LABELS)
    with pytest.raises(ValueError, match="calibrate_seen fits its offset on the validation split"):
        ev(tiny_model, dataset, LABELS, unseen=UNSEEN, protocol=EvalConfig(calibrate_seen=True))


def test_non_finite_logits_stop_the_evaluation(tiny_model, dataset):
    """A broken (NaN) model used to report "red 100 %" and the majority baseline; now no score at all."""
    with torch.no_grad():
        tiny_model.head.proj.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        ev(tiny_model, dataset, LABELS)


def test_several_names_per_class_score_the_best_name(tiny_model, dataset):
    """'cow|calf' is one class whose logit is the maximum over both names' logits."""
    res = ev(tiny_model, dataset, ["sky", "cow|calf", "grass", "tree"])
    text = tiny_model.encode_text(["sky", "cow", "calf", "grass", "tree"])
    cm = torch.zeros(4, 4, dtype=torch.long)
    for img, lab in dataset:
        logits = predict_logits(tiny_model, img[None], text)
        per_class = torch.stack([logits[:, 0], logits[:, 1:3].max(1).values, logits[:, 3], logits[:, 4]], 1)
        cm += confusion_matrix(per_class.argmax(1), lab[None], 4)
    np.testing.assert_array_equal(res.confusion, cm.numpy())
    assert res.all_labels.class_names == (
        "sky",
        "cow",
        "grass",
        "tree",
    )  # reports name a class by its first name


def test_bottleneck_head_subsets_are_computed_on_their_own(block_model, dataset):
    """With the official bottleneck head (adds the max over labels) the unseen-only logits are not a slice of
    the all-labels logits: the setting is scored from the unseen labels' own forward pass."""
    res = ev(block_model, dataset, LABELS, unseen=UNSEEN)
    text_u = block_model.encode_text([LABELS[c] for c in UNSEEN])
    ref = torch.zeros(2, 2, dtype=torch.long)
    lut = torch.full((256,), 255, dtype=torch.long)
    lut[UNSEEN] = torch.arange(2)
    for img, lab in dataset:
        ref += confusion_matrix(predict_logits(block_model, img[None], text_u).argmax(1), lut[lab[None]], 2)
    np.testing.assert_array_equal(res.settings["unseen_only"].confusion, ref.numpy())


def test_per_image_counts_sum_to_the_confusion_matrix(tiny_model, dataset):
    res = ev(tiny_model, dataset, LABELS, unseen=UNSEEN)
    for s in res.settings.values():
        counts = s.per_image
        assert counts.num_images == 3 and counts.ids == ("0", "1", "2")
        np.testing.assert_array_equal(counts.tp.sum(0), np.diag(s.confusion))
        np.testing.assert_array_equal(counts.gt.sum(0), s.confusion.sum(1))
        np.testing.assert_array_equal(counts.pred.sum(0), s.confusion.sum(0))


def test_training_free_decision_rule_end_to_end(tiny_model, dataset):
    """logit scale 40 + prob_thd: softmax over all names of the rescaled cosines, max per class, low-confidence
    pixels to the background class (0), computed here by hand from the model's logits."""
    protocol = EvalConfig(logit_scale=40.0, prob_thd=0.5, bootstrap=0)
    labels = ["sky|air", "cow", "grass", "tree"]
    data = EvalData(dataset, LabelSplit.from_labels(labels, background="sky"))
    res = evaluate(tiny_model, data, protocol, progress=False)
    text = tiny_model.encode_text(["sky", "air", "cow", "grass", "tree"])
    cm = torch.zeros(4, 4, dtype=torch.long)
    for img, lab in dataset:
        cos = predict_logits(tiny_model, img[None], text) / tiny_model.logit_scale
        p = (cos * 40).softmax(1)
        per_class = torch.stack([p[:, :2].max(1).values, p[:, 2], p[:, 3], p[:, 4]], 1)
        pred = per_class.argmax(1)
        pred[per_class.max(1).values < 0.5] = 0
        cm += confusion_matrix(pred, lab[None], 4)
    np.testing.assert_array_equal(res.confusion, cm.numpy())
    assert "logit scale 40, prob_thd 0.5" in res.protocol_name
    with pytest.raises(ValueError, match="has no background class"):
        evaluate(tiny_model, EvalData(dataset, LabelSplit.from_labels(labels)), protocol, progress=False)


def test_pamr_refines_the_logits_before_the_decision(tiny_model, dataset):
    protocol = EvalConfig(pamr_steps=3, pamr_dilations=(1, 2), bootstrap=0)
    res = ev(tiny_model, dataset, LABELS, protocol=protocol)
    text = tiny_model.encode_text(LABELS)
    cm = torch.zeros(4, 4, dtype=torch.long)
    for img, lab in dataset:
        refined = pamr(img[None], predict_logits(tiny_model, img[None], text), 3, (1, 2))
        cm += confusion_matrix(refined.argmax(1), lab[None], 4)
    np.testing.assert_array_equal(res.confusion, cm.numpy())
    assert not np.array_equal(res.confusion, ev(tiny_model, dataset, LABELS).confusion)


def test_crop_fit_drops_the_remainder_and_stretches_the_grid(tiny_vit):
    """input_fit='crop' (the references' ViT): a 40x56 input is seen as 32x48 and its logits stretched over
    40x56 with the model's resize rule; 'pad' pads to 48x64 and crops the logits back."""
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    text = tiny_vit.encode_text(LABELS)
    crop = predict_logits(tiny_vit, x, text, EvalConfig(input_fit="crop"))
    tiny_vit.eval()
    with torch.no_grad():
        emb = tiny_vit.encode_image(x[..., :32, :48])
        ref = tiny_vit.logits_from_embeddings(emb, text, (40, 56))
    torch.testing.assert_close(crop, ref)
    assert not torch.allclose(crop, predict_logits(tiny_vit, x, text))
