"""Post-processing rules of the training-free protocols on hand-computed cases: several names per class, softmax
over all names then max, prob_thd, SCLIP's area_thd, mmcv's short-side resize, the crop rule, the window loop."""

from __future__ import annotations

import math

import pytest
import torch

from lseg_nb.engine.postprocess import (
    class_probabilities,
    class_scores,
    crop_to_multiple,
    floor_to_multiple,
    max_over_names,
    predict_classes,
    short_side_size,
    slide_windows,
    suppress_small_classes,
    threshold_background,
)
from lseg_nb.utils.labels import LabelSplit


def _pixels(*columns):
    """(C, N) nested lists -> scores (1, C, 1, N): one row of N pixels."""
    return torch.tensor(columns, dtype=torch.float32).T.reshape(1, len(columns[0]), 1, len(columns))


def test_max_over_names_by_hand():
    logits = torch.tensor([0.1, 0.5, 0.3, -0.2, 0.9]).view(1, 5, 1, 1)
    # names of class 1 come first and last: the order of the texts does not matter, only owner
    out = max_over_names(logits, [1, 0, 1, 2, 2])
    assert out.flatten().tolist() == pytest.approx([0.5, 0.3, 0.9])
    same = torch.randn(2, 3, 4, 5)
    assert max_over_names(same, (0, 1, 2)) is same


def test_softmax_over_all_names_then_max_by_hand():
    """Cosines [0.2 | 0.25, 0.24] (class 0 | class 1), scale 40: p = softmax([8, 10, 9.6]) over the three names."""
    cos = torch.tensor([0.2, 0.25, 0.24]).view(1, 3, 1, 1)
    probs = class_probabilities(cos, [0, 1, 1], 40).flatten()
    z = math.exp(8) + math.exp(10) + math.exp(9.6)
    assert probs.tolist() == pytest.approx([math.exp(8) / z, math.exp(10) / z], rel=1e-5)
    # not the max-then-softmax rule, whose class-1 probability would be e^10 / (e^8 + e^10) = 0.88
    assert probs[1].item() == pytest.approx(0.5538, abs=1e-4)
    assert class_probabilities(cos, [0, 1, 1], 40).dtype == torch.float32


def test_lseg_path_takes_the_max_logit_and_agrees_on_the_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 5, 6, generator=g)
    owner = [0, 1, 1, 2, 3, 3, 3]
    plain = class_scores(logits, owner, None)
    assert torch.equal(plain[:, 1], logits[:, 1:3].amax(1)) and torch.equal(
        plain[:, 3], logits[:, 4:].amax(1)
    )
    probs = class_scores(logits, owner, 40.0)
    assert torch.equal(plain.argmax(1), probs.argmax(1))
    assert torch.allclose(probs, class_probabilities(logits, owner, 40.0))


def test_voc21_names_from_the_reference_file(reference_root):
    """The 21 lines of cls_voc21.txt (background: 26 names) through LabelSplit.owner: the class score is the max of
    the all-name softmax over the class's names, checked with an explicit loop."""
    lines = (reference_root / "ovss/trainingfree/cls/cls_voc21.txt").read_text().splitlines()
    split = LabelSplit(tuple(tuple(n.strip() for n in line.split(",")) for line in lines), background=0)
    assert split.num_classes == 21 and len(split.names[0]) == 26 and len(split.texts) == 56
    g = torch.Generator().manual_seed(1)
    cos = torch.rand(1, len(split.texts), 3, 4, generator=g) * 0.3
    probs = class_probabilities(cos, split.owner, 65)
    p = torch.softmax(cos * 65, dim=1)
    start = 0
    for c, names in enumerate(split.names):
        assert torch.allclose(probs[:, c], p[:, start : start + len(names)].amax(1))
        start += len(names)


def test_a_name_shared_by_two_classes_always_goes_to_the_first():
    """cls_coco_object.txt lists 'bed' among the background names (class 0) and as class 60: identical texts, so the
    background's max is never below the bed class's score and the tie goes to class 0 -- the reference can never
    predict 'bed' on COCO-Object."""
    cos = torch.tensor([0.1, 0.3, 0.2, 0.3]).view(1, 4, 1, 1)  # texts: sky, bed | person | bed
    probs = class_probabilities(cos, [0, 0, 1, 2], 50)
    assert probs[0, 0].item() == probs[0, 2].item()
    assert predict_classes(probs).item() == 0


def test_prob_thd_is_strict_and_sends_pixels_to_the_background():
    scores = _pixels([0.5, 0.3, 0.2], [0.05, 0.09, 0.01], [0.05, 0.1, 0.08], [0.2, 0.1, 0.7])
    assert threshold_background(scores, 0.0).flatten().tolist() == [0, 1, 1, 2]
    # pixel 1: top 0.09 < 0.1 -> background; pixel 2: top exactly 0.1 stays (strict <)
    assert threshold_background(scores, 0.1).flatten().tolist() == [0, 0, 1, 2]
    assert threshold_background(scores, 0.6, background=1).flatten().tolist() == [1, 1, 1, 2]


def test_area_thd_counts_the_foreground_area_and_reassigns_to_the_runner_up():
    """20 pixels: 10 predicted background, 9 class 1, 1 class 2. F = 9 + 1 = 10 non-background pixels, threshold
    0.1 * 10 = 1: class 2 (1 pixel, not > 1) is suppressed and its pixel goes to class 1, its runner-up -- not to
    the background."""
    cols = [[0.6, 0.3, 0.1]] * 10 + [[0.2, 0.7, 0.1]] * 9 + [[0.2, 0.3, 0.5]]
    scores = _pixels(*cols)
    out = suppress_small_classes(scores, 0.1)
    assert torch.equal(out[:, :2], scores[:, :2]) and out[:, 2].abs().sum() == 0
    pred = predict_classes(scores, area_thd=0.1).flatten().tolist()
    assert pred == [0] * 10 + [1] * 10
    # the image-area rule (0.1 * 20 = 2) would also drop class 2; here the two rules differ:
    # 14 background, 4 class 1, 2 class 2 -> F = 6, 0.1 * 6 = 0.6 < 2: both classes stay (image rule: 2 > 2 fails)
    cols = [[0.6, 0.3, 0.1]] * 14 + [[0.2, 0.7, 0.1]] * 4 + [[0.2, 0.3, 0.5]] * 2
    scores = _pixels(*cols)
    assert torch.equal(suppress_small_classes(scores, 0.1), scores)
    assert predict_classes(scores, area_thd=0.1).flatten().tolist() == [0] * 14 + [1] * 4 + [2] * 2


def test_area_then_prob_threshold_in_the_reference_order():
    """The re-assigned pixel's new top score (0.08 after class 2 is zeroed) falls under prob_thd 0.1."""
    cols = [[0.6, 0.3, 0.1]] * 10 + [[0.2, 0.7, 0.1]] * 9 + [[0.05, 0.08, 0.87]]
    scores = _pixels(*cols)
    assert predict_classes(scores, prob_thd=0.1).flatten().tolist()[-1] == 2
    assert predict_classes(scores, prob_thd=0.1, area_thd=0.1).flatten().tolist() == [0] * 10 + [1] * 9 + [0]
    batch = torch.cat([scores, scores.flip(-1)])  # per image: the second image's counts are its own
    assert (
        predict_classes(batch, prob_thd=0.1, area_thd=0.1)[1].flatten().tolist() == [0] + [1] * 9 + [0] * 10
    )


def test_bad_owner_and_background_are_named():
    with pytest.raises(ValueError, match="owner has 2 entries for 3 name logits"):
        max_over_names(torch.zeros(1, 3, 2, 2), [0, 1])
    with pytest.raises(ValueError, match=r"classes \[1\] own no name"):
        max_over_names(torch.zeros(1, 3, 2, 2), [0, 2, 2])
    with pytest.raises(ValueError, match="background class 3 outside the 3 classes"):
        threshold_background(torch.zeros(1, 3, 2, 2), 0.1, background=3)
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        class_probabilities(torch.zeros(1, 3, 2, 2), [0, 1, 2], 0)


@pytest.mark.parametrize(
    ("hw", "short", "expected"),
    [
        ((375, 500), 336, (336, 448)),  # VOC 500x375: s = 336/375 = 0.896
        ((333, 500), 336, (336, 505)),  # 500 * 336/333 = 504.5045 -> 505
        ((512, 683), 336, (336, 448)),  # 683 * 0.65625 = 448.22 -> 448
        ((1024, 2048), 560, (560, 1120)),  # Cityscapes, S = 560
        ((480, 640), 448, (448, 597)),  # COCO 640x480, SCLIP S = 448: 640 * 448/480 = 597.33
        ((2000, 100), 336, (2048, 102)),  # long side capped: s = 2048/2000 = 1.024 < 3.36
        ((2, 3), 3, (3, 5)),  # s = 1.5, 3 * 1.5 = 4.5 rounds half up to 5 (Python's round gives 4)
        ((100, 150), 336, (336, 504)),  # upscaling
    ],
)
def test_short_side_size_by_hand(hw, short, expected):
    assert short_side_size(*hw, short) == expected


def test_short_side_size_swaps_a_short_side_above_the_cap_like_mmcv():
    # mmcv takes max/min of the scale tuple: (2048, 4096) means long edge 4096, short edge 2048
    assert short_side_size(1000, 1000, 4096) == (2048, 2048)
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        short_side_size(0, 10, 336)


def test_crop_to_multiple_drops_the_remainder():
    assert floor_to_multiple(337, 505, 16) == (336, 496)
    assert floor_to_multiple(336, 448, 16) == (336, 448)
    x = torch.arange(2 * 3 * 20 * 37).view(2, 3, 20, 37)
    y = crop_to_multiple(x, 16)
    assert y.shape == (2, 3, 16, 32) and torch.equal(y, x[..., :16, :32])
    with pytest.raises(ValueError, match="need sides >= multiple"):
        floor_to_multiple(10, 40, 16)


def test_slide_windows_by_hand():
    ys = [(0, 224), (112, 336)]
    assert slide_windows(336, 448, 224, 112) == [
        (*y, *x) for y in ys for x in [(0, 224), (112, 336), (224, 448)]
    ]
    # 500 wide: 4 columns, the last shifted to end at the border
    xs = {(w[2], w[3]) for w in slide_windows(336, 500, 224, 112)}
    assert xs == {(0, 224), (112, 336), (224, 448), (276, 500)}
    # a side shorter than the window: one smaller window, no padding
    assert slide_windows(200, 300, 224, 112) == [(0, 200, 0, 224), (0, 200, 76, 300)]
    count = torch.zeros(333, 505)
    for y1, y2, x1, x2 in slide_windows(333, 505, 224, 112):
        assert y2 - y1 == 224 and x2 - x1 == 224
        count[y1:y2, x1:x2] += 1
    assert count.min() >= 1
