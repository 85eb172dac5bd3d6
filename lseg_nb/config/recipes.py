"""Named recipes: whole training + evaluation settings (model, data and augmentation, optimiser and schedule,
evaluation protocol), as data. ``lseg-nb train --preset NAME --dry-run`` prints one fully resolved.

Every hyper-parameter of a paper recipe names its source in :data:`RECIPE_NOTES`; what still differs from the
official code is listed there too. Paper recipes: ``lseg_vitl16_ade20k`` (fixed labels) and the zero-shot
``lseg_rn101_pascal5i_fold{0..3}``, ``lseg_rn101_coco20i_fold{0..3}``, ``lseg_rn101_fss1000``,
``lseg_vitl16_fss1000`` (one per released official checkpoint), scored with the episodic protocol.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lseg_nb.config.eval import OFFICIAL_SCALES, EvalConfig
from lseg_nb.config.model import ModelConfig
from lseg_nb.config.named import MODEL_CONFIGS
from lseg_nb.config.serialize import ConfigError, from_dict, to_dict
from lseg_nb.config.train import DataConfig, TrainConfig

#: The official evaluation protocol (PyTorch-Encoding MultiEvalModule as used by the official test_lseg.py):
#: long side ceil(520 * s) for s in 0.5..1.75, horizontal flip, 480 windows (model.crop_size) at stride 2/3.
OFFICIAL_EVAL = EvalConfig(
    mode="multiscale", stride_ratio=2 / 3, base_size=520, scales=OFFICIAL_SCALES, flip=True
)

#: Processes (GPUs) the step counts of the paper recipes assume. The official code runs DDP on every visible GPU
#: and does not say how many; for P processes recompute with :func:`steps_for_epochs`.
ASSUMED_PROCESSES = 8
#: Images served per zero-shot training episode (query + one support image: HSNet's loaders are built with
#: ``shot=1`` for training and the official ``training_step`` trains on both).
EPISODE_IMAGES = 2
#: Zero-shot training episodes per epoch. PASCAL-5i: HSNet's trn lists of the other three folds (published
#: lists). COCO-20i: distinct images of HSNet's ``trn/fold<f>.pkl``, not available offline; the recipes assume
#: every annotated train2014 image (82081, an upper bound; ``lseg-nb prepare coco20i`` prints the real count).
#: FSS-1000: 520 training classes x 10 images.
PASCAL_TRAIN_EPISODES = (11394, 10255, 7797, 11594)
COCO_TRAIN_EPISODES_ASSUMED = 82081
FSS_TRAIN_EPISODES = 5200
#: The official zero-shot module exits after validating epoch index 3 on PASCAL/COCO; poly decays over
#: ``max_epochs`` (default 200), also the FSS-1000 training length (no early exit there).
OFFICIAL_ZS_EPOCHS = 4
OFFICIAL_MAX_EPOCHS = 200
#: Published mIoU (%) of the official checkpoints (lang-seg README model zoo), episodic zero-shot protocol.
PUBLISHED_MIOU: dict[str, float] = {
    **{f"lseg_rn101_pascal5i_fold{f}": v for f, v in enumerate((52.8, 53.8, 44.4, 38.5))},
    **{f"lseg_rn101_coco20i_fold{f}": v for f, v in enumerate((22.1, 25.1, 24.9, 21.5))},
    "lseg_rn101_fss1000": 84.7,
    "lseg_vitl16_fss1000": 87.8,
}


def steps_for_epochs(
    items: int, epochs: int, batch_size: int, grad_accum: int = 1, processes: int = 1
) -> int:
    """Optimiser steps of ``epochs`` passes over ``items`` training items as lseg_nb's loader counts them: each
    process gets ``floor(items / processes)`` items (``DistributedSampler`` with ``drop_last``), cut into whole
    batches of ``batch_size``; ``grad_accum`` batches make one step."""
    if min(items, epochs, batch_size, grad_accum, processes) < 1:
        raise ConfigError(
            "steps_for_epochs needs positive items, epochs, batch_size, grad_accum and processes"
        )
    return epochs * (items // processes // batch_size) // grad_accum


_DEMO = TrainConfig(
    run_dir="runs/demo",
    steps=250,
    batch_size=8,
    lr=2e-3,
    schedule="cosine",
    warmup_steps=10,
    log_every=5,
    checkpoint_every=50,
)

#: The official optimiser set-up (lsegmentation_module.py / lsegmentation_module_zs.py): SGD momentum 0.9 on every
#: parameter with weight decay 1e-4, base lr 0.004 rescaled as lr / 16 * batch_size, net.pretrained at 1x and
#: net.scratch at 10x, poly 0.9, AMP disabled ("mixed precision ... leading to NAN error").
OFFICIAL_OPTIMISER = dict(
    optimizer="sgd",
    schedule="poly",
    lr=0.004,
    lr_rule="official",
    param_groups="official",
    decoder_lr_mult=10.0,
    weight_decay=1e-4,
    no_decay_norm_bias=False,
    momentum=0.9,
    poly_power=0.9,
    amp="none",
)

RECIPES: dict[str, TrainConfig] = {
    # The offline demo (`make demo`): small CPU model, synthetic 96 px images, fold 0.
    "demo_synthetic": _DEMO,
    # The real-data demo on MSRC-v2 (`lseg-nb demo --dataset msrc_v2`): the "neighbours" fold (index 4), where
    # every unseen class keeps a seen semantic neighbour, and 900 steps (~8-9 min on 2 CPU cores).
    "demo_msrc_v2": dataclasses.replace(
        _DEMO,
        model=MODEL_CONFIGS["lseg_small_cpu"],
        data=DataConfig(dataset="msrc_v2", fold=4, scale_range=(0.5, 1.5)),
        steps=900,
    ),
    # The paper's fixed-label ADE20K-150 training (official train.sh / lsegmentation_module.py).
    "lseg_vitl16_ade20k": TrainConfig(
        model=MODEL_CONFIGS["lseg_vitl16_384"],
        data=DataConfig(dataset="ade20k150", fold=None, scale_range=(0.5, 2.0), base_size=520, flip=True),
        eval=OFFICIAL_EVAL,
        run_dir="runs/lseg_vitl16_ade20k",
        steps=303_150,
        batch_size=1,
        grad_accum=2,
        **OFFICIAL_OPTIMISER,
        sync_bn=True,
        log_every=50,
        checkpoint_every=2000,
    ),
    # Cross-dataset: train on COCO-Stuff-171, test on the six (lseg-nb benchmark crossdataset). Not in the paper.
    "lseg_vitl16_coco_stuff171": TrainConfig(
        model=MODEL_CONFIGS["lseg_vitl16_384"],
        data=DataConfig(
            dataset="catseg_coco_stuff", fold=None, scale_range=(0.5, 2.0), base_size=520, flip=True
        ),
        eval=OFFICIAL_EVAL,
        run_dir="runs/lseg_vitl16_coco_stuff171",
        steps=80_000,
        batch_size=4,
        **OFFICIAL_OPTIMISER,
        sync_bn=True,
        log_every=50,
        checkpoint_every=2000,
    ),
}

#: torchvision's ImageNet ResNet-101, the backbone of the official ``clip_resnet101`` (``models.resnet101``).
_RN101 = dataclasses.replace(MODEL_CONFIGS["lseg_rn101"], backbone="resnet101.tv_in1k")


def _zero_shot(
    name: str, model: ModelConfig, dataset: str, fold: int, episodes: int, epochs: int
) -> TrainConfig:
    """The official zero-shot set-up (see :data:`RECIPE_NOTES`) for ``episodes`` per epoch over ``epochs``."""
    items = episodes * EPISODE_IMAGES
    steps = steps_for_epochs(items, epochs, 20, 2, ASSUMED_PROCESSES)
    horizon = steps_for_epochs(items, OFFICIAL_MAX_EPOCHS, 20, 2, ASSUMED_PROCESSES)
    return TrainConfig(
        model=model,
        data=DataConfig(dataset=dataset, fold=fold, scale_range=(1.0, 1.0), flip=False, square_resize=True),
        eval=EvalConfig(protocol="episodic"),
        run_dir=f"runs/{name}",
        steps=steps,
        schedule_steps=None if horizon == steps else horizon,
        batch_size=20,
        grad_accum=2,
        **OFFICIAL_OPTIMISER,
        loss="binary",
        unseen_pixels="others",
        # FSS-1000 has 761 training labels: 1001 (its label space's void value) is never one of them
        ignore_index=1001 if dataset == "fss1000" else 255,
        sync_bn=True,
        log_every=10,
        checkpoint_every=max(1, steps // epochs),
    )


for _f in range(4):
    _name = f"lseg_rn101_pascal5i_fold{_f}"
    RECIPES[_name] = _zero_shot(_name, _RN101, "pascal5i", _f, PASCAL_TRAIN_EPISODES[_f], OFFICIAL_ZS_EPOCHS)
for _f in range(4):
    _name = f"lseg_rn101_coco20i_fold{_f}"
    RECIPES[_name] = _zero_shot(_name, _RN101, "coco20i", _f, COCO_TRAIN_EPISODES_ASSUMED, OFFICIAL_ZS_EPOCHS)
for _name, _model in (
    ("lseg_rn101_fss1000", _RN101),
    ("lseg_vitl16_fss1000", MODEL_CONFIGS["lseg_vitl16_384"]),
):
    RECIPES[_name] = _zero_shot(_name, _model, "fss1000", 0, FSS_TRAIN_EPISODES, OFFICIAL_MAX_EPOCHS)

RECIPE_NOTES: dict[str, str] = {
    "demo_synthetic": "lseg_nb's offline demo; no paper counterpart.",
    "demo_msrc_v2": (
        "lseg_nb's real-data demo on MSRC-v2; no paper counterpart. Small CPU model (ResNet-18 from scratch + DPT "
        "width 64, MiniLM text), 128 px crops, batch 8, AdamW 2e-3 cosine, 900 steps. Fold: 'neighbours' (index "
        "4: sheep, face, bicycle, flower, cat, boat held out, each with its closest seen class kept). The "
        "consecutive folds 0-3 hold semantic neighbours out together (fold 0: cow, horse and sheep), so nothing "
        "seen can carry them; at 400 steps on fold 0 the unseen-only score was below chance. "
        "benchmarks/msrc_zero_shot.py runs every fold and the controls."
    ),
    "lseg_vitl16_ade20k": (
        "Official train.sh (active line): --backbone clip_vitl16_384 --batch_size 1 --accumulate_grad_batches 2 "
        "--base_lr 0.004 --weight_decay 1e-4 --max_epochs 240 --widehead --no-scaleinv; lsegmentation_module.py: "
        "lr = base_lr / 16 * batch_size (lr_rule='official' -> 0.00025), SGD momentum 0.9 on all parameters "
        "(no no-decay group), net.pretrained at 1x and net.scratch at 10x (param_groups='official'), poly 0.9, "
        "AMP disabled (self.enabled = False), sync BN under DDP; lseg_module.py: base size 520, crop 480, "
        "mean = std = 0.5. Augmentation (PyTorch-Encoding _sync_transform): flip, long side random in "
        "0.5-2.0 x 520, pad + random crop 480. Evaluation: official multi-scale (base 520, scales 0.5-1.75, "
        "flip, stride 2/3). Remaining differences: steps = 240 epochs x 20210 images / (8 processes x 1 x 2) "
        "= 303150 assumes 8 processes (set --steps for another world size); the poly decay is applied per "
        "optimiser step (official: per epoch); PyTorch-Encoding's random Gaussian blur is not applied; the "
        "official ignore label is -1 after shifting ADE's 0 ('other'), lseg_nb uses 255. Data: "
        "data.dataset='ade20k150' is the ADE20K adapter (lseg_nb.data.benchmarks.training): pass "
        "--data.data-root, the folder holding ADEChallengeData2016/ (annotations shifted: 0 'other' -> void, "
        "k -> k - 1); 'test' and 'val' are the validation split."
    ),
}

_ZS_SOURCES = (
    "Sources: [ZS] isl-org/lang-seg modules/lsegmentation_module_zs.py (argparse defaults, __init__, "
    "training_step, criterion, configure_optimizers, validation_epoch_end); [HS] its HSNet loaders "
    "fewshot_data/data/{dataset,pascal,coco,fss}.py; [NET] modules/models/lseg_vit_zs.py; [ZOO] the README model "
    "zoo."
)
_ZS_DATA = {
    "pascal5i": lambda f: (
        f"HSNet trn/fold<g>.txt for the three g != {f} (the other folds' classes; [HS] pascal.py "
        f"build_img_metadata): {PASCAL_TRAIN_EPISODES[f]} episodes per epoch; support drawn among the listed "
        f"images of the episode's class. Published mIoU {PUBLISHED_MIOU[f'lseg_rn101_pascal5i_fold{f}']} "
        f"(pascal_fold{f}.ckpt, [ZOO])."
    ),
    "coco20i": lambda f: (
        f"HSNet trn/fold{f}.pkl (pass --data.splits) or the train2014 index of `lseg-nb prepare coco20i`: "
        "episodes per epoch = distinct images of the fold's 60 seen classes, each drawing a class uniformly, then "
        "an image of its list ([HS] coco.py load_frame). That count is not available offline: the steps assume "
        f"{COCO_TRAIN_EPISODES_ASSUMED} (every annotated train2014 image, an upper bound); `prepare` prints the "
        "real N: set --steps steps_for_epochs(2 * N, 4, 20, 2, 8) and --schedule-steps steps_for_epochs(2 * N, "
        f"200, 20, 2, 8). Published mIoU {PUBLISHED_MIOU[f'lseg_rn101_coco20i_fold{f}']} (coco_fold{f}.ckpt, "
        "[ZOO]; its README test loop loads the PASCAL checkpoints instead)."
    ),
    "fss1000": lambda f: (
        f"every image of the 520 HSNet trn classes ([HS] fss.py): {FSS_TRAIN_EPISODES} episodes per epoch; "
        "support: another image of the class. max_epochs 200 ([ZS] default; no early exit for FSS, the authors "
        "give no number). ignore_index 1001: FSS-1000 has 761 training labels, 255 would be one of them."
    ),
}
_ZS_MODEL = {
    "resnet101.tv_in1k": (
        "Model: clip_resnet101 = torchvision's ImageNet ResNet-101 (models.resnet101, [NET]; timm "
        "resnet101.tv_in1k) + DPT decoder, 256 features, BN in the fusion blocks, CLIP ViT-B/32 text encoder "
        "frozen (not in any optimiser group, [ZS]); ImageNet mean/std ([ZS] FSSDataset.initialize(imagenet_norm="
        "True) for clip_resnet101)."
    ),
    "vit_large_patch16_384": (
        "Model: clip_vitl16_384 = timm vit_large_patch16_384 ([NET]; today's timm holds only its "
        "augreg_in21k_ft_in1k weights, the 2021 timm default may differ) with project readout, hooks 5/11/17/23, "
        "CLIP ViT-B/32 text encoder frozen; mean = std = 0.5 ([ZS] FSSDataset.initialize default)."
    ),
}


def _zero_shot_note(name: str) -> str:
    cfg = RECIPES[name]
    d, published = cfg.data, PUBLISHED_MIOU.get(name)
    epochs = OFFICIAL_ZS_EPOCHS if d.dataset != "fss1000" else OFFICIAL_MAX_EPOCHS
    fss = (
        f" Published mIoU {published} ([ZOO] fss_{'l16' if 'vitl' in name else 'rn101'}.ckpt)."
        if d.dataset == "fss1000"
        else ""
    )
    horizon = cfg.schedule_steps or cfg.steps
    return " ".join(
        (
            f"Zero-shot {d.dataset} fold {d.fold} (the official repository ships no zero-shot training script; "
            "this is its zero-shot module trained as train_lseg.py does).",
            _ZS_SOURCES,
            _ZS_MODEL[cfg.model.backbone],
            f"Data: {_ZS_DATA[d.dataset](d.fold)}{fss}",
            "Each episode serves its query and one support image of the same class (HSNet build_dataloader "
            "shot=1; [ZS] training_step trains on both): 2 items per episode. Input: resize to 480x480, no "
            "other augmentation ([HS] dataset.py transform) -> square_resize, scale_range (1, 1), flip False.",
            "Loss: 2-way cross-entropy over ['others', class] with no ignore index: every pixel not of the episode's "
            "class (other classes, unseen classes, VOC boundaries) is 'others' ([ZS] criterion, [HS] "
            "extract_ignore_idx) -> loss='binary', unseen_pixels='others'; unseen classes are never an episode "
            "class.",
            "Optimiser: SGD momentum 0.9 (hard-coded; --momentum ignored), weight decay 1e-4 on every parameter "
            "(--weight_decay default, no no-decay group), --base_lr 0.004 rescaled to base_lr / 16 * batch_size = "
            f"{cfg.effective_lr:g} at --batch_size 20 (lr_rule='official'), net.pretrained at 1x and net.scratch "
            "at 10x (param_groups='official', decoder_lr_mult 10), poly 0.9 over max_epochs 200 stepped per epoch "
            "([ZS] configure_optimizers). AMP disabled ([ZS] self.enabled = False); DDP on every visible GPU with "
            "SyncBN (sync_bn).",
            f"Length: {epochs} epochs ([ZS] validation_epoch_end exits after epoch index 3 on PASCAL/COCO). 20 "
            "episodes = 40 images per optimiser step and process (batch_size 20, grad_accum 2); steps = "
            f"{epochs} x floor(floor(2 x episodes / {ASSUMED_PROCESSES}) / 20) / 2 = {cfg.steps}, poly horizon "
            f"(200 epochs) = {horizon}, assuming {ASSUMED_PROCESSES} processes (unknown; for P processes use "
            "lseg_nb.config.recipes.steps_for_epochs).",
            "Evaluation: episodic protocol (eval.protocol='episodic', lseg_nb.engine.episodic).",
            "Remaining differences: the official batch holds each episode's query and support together, lseg_nb "
            "shuffles them as separate items; BatchNorm sees 20-image micro-batches (official 40); poly is stepped "
            "per optimiser step, not per epoch (< 0.5% lr difference within an epoch); the official loader keeps "
            "the last partial batch, lseg_nb drops it (at most one step per epoch); images are resized by torch "
            "(bilinear, antialiased; labels nearest-exact), officially by PIL bilinear and F.interpolate nearest; "
            "episode and support draws are keyed on (seed, epoch, index), officially an unseeded NumPy RNG; the "
            "official code validates every epoch on the val fold (the unseen classes) and its authors report the "
            "best of epochs 0-3, lseg_nb keeps the last step.",
        )
    )


RECIPE_NOTES["lseg_vitl16_coco_stuff171"] = (
    "Cross-dataset training (not in the LSeg paper; the field's protocol since CAT-Seg): LSeg's own model and "
    "training set-up on the COCO-Stuff-171 training set, then `lseg-nb benchmark crossdataset --weights RUN`. "
    "Model: the official lseg_vitl16_384 (ViT-L/16 image encoder, DPT 256, frozen CLIP ViT-B/32 text encoder). "
    "Data: catseg_coco_stuff, CAT-Seg's annotations_detectron2/train2017 (cvlab-kaist/CAT-Seg@6d3a188 "
    "cat_seg/data/datasets/register_coco_stuff.py; 171 classes named by datasets/coco.json, first name of each "
    "entry). Augmentation and optimiser: the official ADE20K recipe (lseg_vitl16_ade20k: long side 520 x "
    "[0.5, 2.0], 480 crops, flip; SGD momentum 0.9, lr 0.004 / 16 x batch, poly 0.9, decoder 10x, no AMP). "
    "Length: CAT-Seg's 80k iterations at 4 images per step (configs/config.yaml SOLVER.IMS_PER_BATCH 4, "
    "MAX_ITER 80000: about 2.7 epochs of the 118k images). Differences from CAT-Seg: CAT-Seg fine-tunes CLIP's "
    "attention with AdamW (lr 2e-4, cosine) on 384 crops of a 384-short-side resize and scores with a cost-"
    "aggregation decoder; this recipe keeps LSeg's frozen text encoder and its per-pixel softmax loss. Evaluation "
    "here: OFFICIAL_EVAL (multi-scale) on the validation split; the suite uses its cross-dataset protocol."
)

RECIPE_NOTES |= {
    name: _zero_shot_note(name) for name in RECIPES if name.startswith("lseg_") and "_fold" in name
}
RECIPE_NOTES |= {name: _zero_shot_note(name) for name in ("lseg_rn101_fss1000", "lseg_vitl16_fss1000")}


def list_recipes() -> list[str]:
    """Names accepted by :func:`get_recipe` and ``lseg-nb train --preset``."""
    return sorted(RECIPES)


def get_recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe with top-level field overrides (nested ones: pass a whole sub-config)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown preset {name!r}; named recipes: {list_recipes()}")
    try:
        return dataclasses.replace(RECIPES[name], **overrides)
    except TypeError as e:
        raise ConfigError(f"invalid override for recipe {name!r}: {e}") from None


def recipe_roundtrip(cfg: TrainConfig) -> TrainConfig:
    """``from_dict(to_dict(cfg))`` (what a run folder's config.json stores and reads back)."""
    return from_dict(TrainConfig, to_dict(cfg))
