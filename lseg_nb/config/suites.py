"""The open-vocabulary benchmark suites as data: which datasets, in the papers' column order, each reference
harness's settings per dataset, and the published numbers (published, not reproduced here).

* ``trainingfree``: the eight benchmarks of the training-free dense-CLIP family, with the settings of three
  reference harnesses -- SCLIP (wangf3014/SCLIP@b56bd30), NACLIP (sinahmr/NACLIP@0cac3a6) and ClearCLIP
  (mc-lan/ClearCLIP@ad68a40) -- which differ per dataset (logit scale, thresholds, whole image or windows, short
  side, PAMR). :class:`ProtocolSettings.eval_fields` gives the values of the ``EvalConfig`` fields of the same
  names; the window is the model's ``config.crop_size`` (``crop_size`` here records what the reference used).
* ``crossdataset``: train on COCO-Stuff-171, test on six sets (cvlab-kaist/CAT-Seg@6d3a188), with CAT-Seg's own
  inference recorded in :data:`CATSEG_PROTOCOL` (its window/global-view scheme has no ``EvalConfig`` equivalent).

Every record carries its source (``repo@commit path:lines``); ``docs/protocols-trainingfree.md`` explains each
rule. Plain values only: this module imports nothing from lseg_nb, so ``EvalConfig`` can be built from it above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SCLIP = "wangf3014/SCLIP@b56bd30"
NACLIP = "sinahmr/NACLIP@0cac3a6"
CLEARCLIP = "mc-lan/ClearCLIP@ad68a40"
CATSEG = "cvlab-kaist/CAT-Seg@6d3a188"
HARNESSES = ("sclip", "naclip", "clearclip")
PUBLISHED = "published, not reproduced here"


@dataclass(frozen=True)
class Benchmark:
    """One dataset of a suite: ``name`` (lseg_nb's dataset name), ``column`` (the table header), the reference
    class list (``classes_file``, relative to ``../shared/reference/ovss``; ``num_classes`` classes, a line or
    entry may hold several names), the background class index (``None``: none scored), source and notes."""

    name: str
    column: str
    num_classes: int
    classes_file: str
    background: int | None
    source: str
    notes: str = ""


@dataclass(frozen=True)
class Suite:
    """A suite: its benchmarks in the column order of the papers' tables (``source`` says whose)."""

    name: str
    benchmarks: tuple[Benchmark, ...]
    source: str

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.benchmarks)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(b.column for b in self.benchmarks)

    def benchmark(self, name: str) -> Benchmark:
        for b in self.benchmarks:
            if b.name == name:
                return b
        raise ValueError(f"{name!r} is not a dataset of the {self.name} suite: one of {list(self.datasets)}")


@dataclass(frozen=True)
class ProtocolSettings:
    """One harness's test settings for one dataset (field names = ``EvalConfig``'s where one exists).

    ``short_side``/``long_cap``: mmcv ``Resize(scale=(long_cap, short_side), keep_ratio=True)`` before inference,
    logits resized back to the label map. ``mode``: ``single`` (whole image, the reference ``slide_crop=0``) or
    ``sliding`` (``crop_size`` windows at stride ``crop_size * stride_ratio``). ``logit_scale``: softmax over all
    names of ``cosine * logit_scale``, then max per class. ``prob_thd``: top class probability below it -> class 0.
    ``area_thd``: SCLIP's small-class suppression (``None`` = off). ``pamr_steps``/``pamr_dilations``: PAMR on the
    logits at the label-map size (0 steps = off).
    """

    dataset: str
    harness: str
    short_side: int
    mode: str
    logit_scale: float
    prob_thd: float
    area_thd: float | None
    pamr_steps: int
    pamr_dilations: tuple[int, ...]
    source: str
    crop_size: int = 224
    stride_ratio: float = 0.5
    long_cap: int = 2048
    notes: str = ""

    def __post_init__(self) -> None:
        if self.harness not in HARNESSES or self.mode not in ("single", "sliding"):
            raise ValueError(f"{self.dataset}: harness {self.harness!r} / mode {self.mode!r} not known")

    def eval_fields(self) -> dict[str, Any]:
        """The ``EvalConfig`` field values of these settings (``protocol="dense"``)."""
        return {
            "protocol": "dense",
            "mode": self.mode,
            "stride_ratio": self.stride_ratio,
            "short_side": self.short_side,
            "long_cap": self.long_cap,
            "logit_scale": self.logit_scale,
            "prob_thd": self.prob_thd,
            "area_thd": self.area_thd,
            "pamr_steps": self.pamr_steps,
            "pamr_dilations": self.pamr_dilations,
        }


@dataclass(frozen=True)
class PublishedResult:
    """Published mIoU (%) of one method on one suite: per dataset, and the average if the source prints one."""

    method: str
    backbone: str
    suite: str
    miou: Mapping[str, float]
    average: float | None
    harness: str
    pamr: bool
    source: str
    notes: str = ""
    status: str = PUBLISHED

    def __post_init__(self) -> None:
        object.__setattr__(self, "miou", dict(self.miou))  # a copy: records stay plain, JSON-ready data


@dataclass(frozen=True)
class CatSegProtocol:
    """CAT-Seg's test-time inference (``TEST.SLIDING_WINDOW True`` in every ``eval.sh`` run)."""

    min_size_test: int = 640
    max_size_test: int = 2560
    out_res: tuple[int, int] = (640, 640)
    kernel: int = 384
    overlap: float = 0.333
    stride: int = 256
    global_view: bool = True
    clip_resolution: dict[str, int] = field(default_factory=lambda: {"ViT-B/16": 384, "ViT-L/14@336px": 336})
    scores: str = "sigmoid"
    prompt: str = "A photo of a {} in the scene"
    source: str = (
        f"{CATSEG} configs/config.yaml:52-53 (MIN_SIZE_TEST 640, MAX_SIZE_TEST 2560), configs/vitb_384.yaml:31,36; "
        "eval.sh:29-104 (SLIDING_WINDOW True, POOLING_SIZES [1,1]); cat_seg/cat_seg_model.py:78,188-224 "
        "(inference_sliding_window); cat_seg/modeling/transformer/cat_seg_predictor.py:84-85,194-196"
    )
    notes: str = (
        "detectron2 test mapper: ResizeShortestEdge(640, max 2560); then the image is resized to 640x640 (aspect "
        "ratio NOT kept), cut into 384 windows at stride int(384 * 0.667) = 256 (2 x 2 windows) plus the whole "
        "image resized to 384x384; every view is resized to the CLIP resolution, scored, upsampled to 384, "
        "sigmoid; windows are averaged over their overlaps (Fold), then averaged 1:1 with the global view "
        "upsampled to 640; finally resized to the label map (sem_seg_postprocess, bilinear). Bilinear resizes "
        "with align_corners=False. An entry 'a, b' of the class JSON is embedded by its first name only."
    )


def _cfg(repo: str, dataset: str, lines: str) -> str:
    return f"{repo} configs/cfg_{dataset}.py:{lines}"


_SCLIP_DEFAULTS = f"{SCLIP} clip_segmentor.py:19-21"
_NACLIP_DEFAULTS = f"{NACLIP} naclip.py:20-22"
_CLEARCLIP_DEFAULTS = f"{CLEARCLIP} clearclip_segmentor.py:22-23"
_CFG_NAME = {"cityscapes": "city_scapes", "ade20k150": "ade20k"}


def _sclip(dataset: str, short_side: int, lines: str, **overrides: Any) -> ProtocolSettings:
    values = dict(mode="sliding", logit_scale=40.0, prob_thd=0.0, area_thd=None, pamr_steps=0)
    values.update(overrides)
    src = f"{_SCLIP_DEFAULTS}; {_cfg(SCLIP, _CFG_NAME.get(dataset, dataset), lines)}"
    return ProtocolSettings(dataset, "sclip", short_side, pamr_dilations=(8, 16), source=src, **values)


def _naclip(dataset: str, short_side: int, lines: str, **overrides: Any) -> ProtocolSettings:
    values = dict(mode="sliding", logit_scale=40.0, prob_thd=0.0, area_thd=None, pamr_steps=10)
    values.update(overrides)
    src = f"{_NACLIP_DEFAULTS}; {_cfg(NACLIP, _CFG_NAME.get(dataset, dataset), lines)}"
    return ProtocolSettings(dataset, "naclip", short_side, pamr_dilations=(8, 16), source=src, **values)


def _clearclip(dataset: str, lines: str, **overrides: Any) -> ProtocolSettings:
    values = dict(mode="sliding", logit_scale=50.0, prob_thd=0.0, area_thd=None, pamr_steps=0, crop_size=448)
    values.update(overrides)
    src = f"{_CLEARCLIP_DEFAULTS}; {_cfg(CLEARCLIP, _CFG_NAME.get(dataset, dataset), lines)}"
    note = "model_type must be 'ClearCLIP' (configs/base_config.py:6 ships 'vanilla')"
    return ProtocolSettings(
        dataset, "clearclip", 448, pamr_dilations=(8, 16), source=src, notes=note, **values
    )


_WHOLE = "whole image (slide_crop=0): PAMR still applies (naclip.py:121-135)"
SETTINGS: Mapping[tuple[str, str], ProtocolSettings] = MappingProxyType(
    {
        (s.harness, s.dataset): s
        for s in (
            _sclip("voc21", 336, "4-9,17", logit_scale=65.0, prob_thd=0.1, area_thd=0.1),
            _sclip("context60", 336, "4-8,16", logit_scale=50.0, prob_thd=0.1),
            _sclip("coco_object", 336, "4-8,16", logit_scale=50.0, prob_thd=0.1),
            _sclip("voc20", 336, "4-6,14"),
            _sclip("context59", 336, "4-6,14"),
            _sclip("coco_stuff164k", 448, "4-6,14"),
            _sclip("cityscapes", 560, "4-6,14"),
            _sclip("ade20k150", 336, "4-6,14"),
            _naclip("voc21", 336, "4-8,16", prob_thd=0.1, mode="single", notes=_WHOLE),
            _naclip("context60", 336, "4-7,15", prob_thd=0.1),
            _naclip("coco_object", 336, "4-7,15", prob_thd=0.1),
            _naclip("voc20", 336, "4-7,15", mode="single", notes=_WHOLE),
            _naclip("context59", 336, "4-6,14"),
            _naclip("coco_stuff164k", 336, "4-6,14"),
            _naclip("cityscapes", 560, "4-6,14"),
            _naclip("ade20k150", 336, "4-6,14"),
            _clearclip("voc21", "4-7,15", prob_thd=0.5),
            _clearclip("context60", "4-7,15", prob_thd=0.15),
            _clearclip("coco_object", "4-7,15", prob_thd=0.4),
            _clearclip("voc20", "4-6,14"),
            _clearclip("context59", "4-6,14"),
            _clearclip("coco_stuff164k", "4-6,14"),
            _clearclip("cityscapes", "4-7,15", crop_size=224, stride_ratio=1.0),
            _clearclip("ade20k150", "4-6,14"),
        )
    }
)


def get_settings(dataset: str, harness: str = "sclip") -> ProtocolSettings:
    """The reference settings of ``harness`` (sclip | naclip | clearclip) for a training-free ``dataset``."""
    if harness not in HARNESSES:
        raise ValueError(f"unknown harness {harness!r}: one of {list(HARNESSES)}")
    try:
        return SETTINGS[(harness, dataset)]
    except KeyError:
        raise ValueError(
            f"{dataset!r} is not a training-free benchmark: one of {list(TRAININGFREE.datasets)}"
        ) from None


_TF = "trainingfree/cls/cls_{}.txt"
TRAININGFREE = Suite(
    "trainingfree",
    (
        Benchmark("voc21", "VOC21", 21, _TF.format("voc21"), 0, _cfg(SCLIP, "voc21", "11-33")),
        Benchmark("context60", "PC60", 60, _TF.format("context60"), 0, _cfg(SCLIP, "context60", "10-32")),
        Benchmark(
            "coco_object",
            "Object",
            81,
            _TF.format("coco_object"),
            0,
            _cfg(SCLIP, "coco_object", "10-34"),
            "background line 0 also lists 'bed', the name of class 60: the bed class can never win a pixel",
        ),
        Benchmark("voc20", "VOC20", 20, _TF.format("voc20"), None, _cfg(SCLIP, "voc20", "8-30")),
        Benchmark("context59", "PC59", 59, _TF.format("context59"), None, _cfg(SCLIP, "context59", "8-30")),
        Benchmark(
            "coco_stuff164k",
            "Stuff",
            171,
            _TF.format("coco_stuff"),
            None,
            _cfg(SCLIP, "coco_stuff164k", "8-29"),
        ),
        Benchmark(
            "cityscapes", "City", 19, _TF.format("city_scapes"), None, _cfg(SCLIP, "city_scapes", "8-31")
        ),
        Benchmark("ade20k150", "ADE", 150, _TF.format("ade20k"), None, _cfg(SCLIP, "ade20k", "8-30")),
    ),
    "SCLIP paper Table 1 order, as issue 17 lists it; the repositories do not print it (SCLIP's README lists "
    f"alphabetically); {CLEARCLIP} assets/results.png uses it for its five no-background columns",
)
#: NACLIP's README table and test_all.sh order (sinahmr/NACLIP@0cac3a6 README.md:64-73, test_all.sh:8).
NACLIP_COLUMN_ORDER = (
    "voc21", "context60", "coco_object", "voc20", "cityscapes", "context59", "ade20k150", "coco_stuff164k",
)  # fmt: skip

_CD = "crossdataset/{}.json"
CROSSDATASET = Suite(
    "crossdataset",
    (
        Benchmark("ade20k847", "A-847", 847, _CD.format("ade847"), None, f"{CATSEG} eval.sh:41-52"),
        Benchmark("context459", "PC-459", 459, _CD.format("pc459"), None, f"{CATSEG} eval.sh:93-104"),
        Benchmark("ade20k150", "A-150", 150, _CD.format("ade150"), None, f"{CATSEG} eval.sh:28-39"),
        Benchmark("context59", "PC-59", 59, _CD.format("pc59"), None, f"{CATSEG} eval.sh:80-91"),
        Benchmark("voc20", "PAS-20", 20, _CD.format("voc20"), None, f"{CATSEG} eval.sh:54-65"),
        Benchmark(
            "voc20b", "PAS-20b", 21, _CD.format("voc20b"), 20,
            f"{CATSEG} eval.sh:67-78; train_net.py:43-69; cat_seg/data/datasets/register_pascal_20.py:25,32-34",
            "59 texts (the 20 VOC classes + 39 other PASCAL Context classes); every prediction >= 20 counts as "
            "class 20, background, appended after the 20 VOC classes",
        ),
    ),
    f"{CATSEG} README.md:80-85",
)  # fmt: skip
SUITES: Mapping[str, Suite] = MappingProxyType({s.name: s for s in (TRAININGFREE, CROSSDATASET)})
CATSEG_PROTOCOL = CatSegProtocol()


def _row(datasets: tuple[str, ...], values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(datasets, values, strict=True))


_TF8 = TRAININGFREE.datasets
_NB5 = ("voc20", "context59", "coco_stuff164k", "cityscapes", "ade20k150")
_CC_FIG = f"{CLEARCLIP} assets/results.png (its appendix Table 2, ViT-Base rows; README.md:90-94)"
_CC_NOTE = "run in ClearCLIP's harness and implementation (448 short side, 448/224 windows, logit scale 50)"
PUBLISHED_RESULTS: tuple[PublishedResult, ...] = (
    PublishedResult(
        "SCLIP", "ViT-B/16", "trainingfree",
        _row(_TF8, (59.63, 31.74, 33.52, 81.54, 34.46, 22.77, 32.34, 16.45)), None, "sclip", False,
        f"{SCLIP} README.md:68-78", "also COCO-Stuff10k 25.91 (not one of the eight)",
    ),
    PublishedResult(
        "NACLIP", "ViT-B/16", "trainingfree",
        _row(NACLIP_COLUMN_ORDER, (64.07, 34.99, 36.19, 83.03, 38.27, 38.35, 19.05, 25.69)), 42.46, "naclip", True,
        f"{NACLIP} README.md:58-89", "default setup: PAMR on (10 steps, dilations 8, 16)",
    ),
    PublishedResult(
        "ClearCLIP", "ViT-B/16", "trainingfree", _row(_NB5, (80.9, 35.9, 23.9, 30.0, 16.7)), 37.5, "clearclip",
        False, _CC_FIG, "five no-background datasets only in the repository",
    ),
    PublishedResult(
        "CLIP", "ViT-B/16", "trainingfree", _row(_NB5, (41.8, 9.2, 4.4, 5.5, 2.1)), 12.6, "clearclip", False,
        _CC_FIG, _CC_NOTE,
    ),
    PublishedResult(
        "MaskCLIP", "ViT-B/16", "trainingfree", _row(_NB5, (74.9, 26.4, 16.4, 12.6, 9.8)), 28.0, "clearclip",
        False, _CC_FIG, _CC_NOTE,
    ),
    PublishedResult(
        "SCLIP", "ViT-B/16", "trainingfree", _row(_NB5, (78.2, 33.0, 21.1, 29.1, 14.6)), 35.2, "clearclip",
        False, _CC_FIG, _CC_NOTE + "; SCLIP's own harness: 81.54 / 34.46 / 22.77 / 32.34 / 16.45",
    ),
    PublishedResult(
        "CAT-Seg", "ViT-B/16", "crossdataset", _row(CROSSDATASET.datasets, (12.0, 19.0, 31.8, 57.5, 94.6, 77.3)),
        None, "catseg", False, f"{CATSEG} README.md:88-99", "trained on COCO-Stuff-171 (configs/vitb_384.yaml)",
    ),
    PublishedResult(
        "CAT-Seg", "ViT-L/14", "crossdataset", _row(CROSSDATASET.datasets, (16.0, 23.8, 37.9, 63.3, 97.0, 82.5)),
        None, "catseg", False, f"{CATSEG} README.md:100-111", "trained on COCO-Stuff-171 (configs/vitl_336.yaml)",
    ),
)  # fmt: skip


def average(miou: Mapping[str, float], datasets: tuple[str, ...]) -> float:
    """Mean of ``miou`` over ``datasets`` (all must be present): the papers' ``Avg`` column."""
    missing = [d for d in datasets if d not in miou]
    if missing:
        raise ValueError(f"no mIoU for {missing}: the average needs every dataset of the row")
    return sum(miou[d] for d in datasets) / len(datasets)
