"""Text-encoder ablation: one protocol per encoder, one-hot geometry, swap touches only head.proj, plot."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from lseg_nb.config import ConfigError, DataConfig, TextEncoderConfig, TrainConfig, load_config, to_dict
from lseg_nb.data.experiment import make_experiment
from lseg_nb.data.synthetic import CLASS_NAMES, generate_synthetic
from lseg_nb.diagnostics import (
    AblationReport,
    SkippedEncoder,
    default_ablation_encoders,
    load_ablation_report,
    run_text_encoder_ablation,
    swap_text_encoder,
)
from lseg_nb.diagnostics.ablation_report import make_report
from lseg_nb.engine.evaluate import evaluate_run
from lseg_nb.engine.runs import load_model
from lseg_nb.models import get_config
from lseg_nb.utils.io import load_tensors
from lseg_nb.viz.ablation import plot_ablation

UNSEEN = ["red stripes", "green dots", "blue checks", "yellow plain"]  # fold 0 of synthetic_textures


def tiny_base(root: Path) -> TrainConfig:
    data = DataConfig(dataset="synthetic_textures", data_root=str(root), fold=0)
    return TrainConfig(
        model=get_config("lseg_small_cpu", features=8, crop_size=64),
        data=data,
        steps=2,
        batch_size=2,
        lr=1e-3,
        log_every=1,
        checkpoint_every=0,
        progress=False,
        device="cpu",  # compares reproduced evaluations exactly: the CPU, also on a machine with a GPU
    )


@pytest.fixture(scope="module")
def ablation(tmp_path_factory) -> tuple[TrainConfig, Path, AblationReport]:
    tmp = tmp_path_factory.mktemp("ablation")
    base = tiny_base(generate_synthetic(tmp / "data", n_train=8, n_val=2, n_test=3, size=64))
    encoders = default_ablation_encoders(CLASS_NAMES)
    encoders["random"] = TextEncoderConfig(kind="random", dim=16, seed=0)  # small: keeps the test fast
    return base, tmp / "runs", run_text_encoder_ablation(base, encoders, tmp / "runs", progress=False)


def test_one_row_per_encoder_and_runs_differ_only_in_the_text_encoder(ablation):
    base, out, report = ablation
    assert [(r.name, r.status) for r in report.rows] == [
        ("minilm", "ok"),
        ("random", "ok"),
        ("one_hot", "ok"),
        ("clip", "skipped"),
    ]
    assert "clip_pretrained=None" in report.row("clip").reason
    configs = {r.name: load_config(TrainConfig, out / r.name / "config.json") for r in report.rows[:3]}
    protocols = []
    for name, cfg in configs.items():
        d = to_dict(cfg)
        assert d.pop("run_dir") == str(out / name)
        d["model"].pop("text")
        protocols.append(d)
    assert protocols[0] == protocols[1] == protocols[2]
    assert protocols[0]["model"] == {k: v for k, v in to_dict(base.model).items() if k != "text"}
    assert [c.model.text.kind for c in configs.values()] == ["sentence_transformers", "random", "one_hot"]
    assert configs["one_hot"].model.text.vocabulary == CLASS_NAMES  # unseen classes included
    assert [r.text_dim for r in report.rows[:3]] == [384, 16, 16]
    assert report.unseen_classes == UNSEEN and report.fold == 0 and report.kind == "retrain"


def test_rows_hold_the_evaluation_of_their_run_and_the_json_round_trips(ablation):
    _, out, report = ablation
    result = evaluate_run(out / "random", split="test", progress=False)
    row = report.row("random")
    assert row.seen_miou == result.all_labels.seen_miou and row.unseen_miou == result.all_labels.unseen_miou
    assert row.unseen_only_miou == result.unseen_only.miou
    s, u = row.seen_miou, row.unseen_miou
    assert row.harmonic_iou == pytest.approx(2 * s * u / (s + u) if s + u else 0.0)
    saved = json.loads((out / "ablation.json").read_text())
    assert saved == report.to_dict()
    assert load_ablation_report(out / "ablation.json").to_dict() == report.to_dict()


def test_one_hot_unseen_texts_are_orthogonal_and_score_a_raw_embedding_coordinate(ablation, images):
    _, out, _ = ablation
    model = load_model(out / "one_hot")
    text = model.encode_text(list(CLASS_NAMES))
    unseen = [CLASS_NAMES.index(c) for c in UNSEEN]
    seen = [i for i in range(len(CLASS_NAMES)) if i not in unseen]
    # exactly zero: nothing learned against seen texts carries over to an unseen one
    assert torch.equal(text[unseen] @ text[seen].T, torch.zeros(len(unseen), len(seen)))
    with torch.no_grad():
        pix = model.encode_image(images)
        logits = model.head.logits(pix, text[unseen])  # before upsampling
    torch.testing.assert_close(logits, model.head.scale * pix[:, unseen], rtol=0, atol=1e-6)


def test_finished_runs_are_reused_and_a_different_config_is_refused(ablation):
    base, out, report = ablation
    before = (out / "random" / "model.safetensors").stat().st_mtime_ns
    again = run_text_encoder_ablation(
        base, {"random": TextEncoderConfig(kind="random", dim=16)}, out, progress=False
    )
    assert again.rows[0].reused and again.rows[0].seconds is None
    assert (out / "random" / "model.safetensors").stat().st_mtime_ns == before
    assert again.rows[0].unseen_miou == report.row("random").unseen_miou
    with pytest.raises(ConfigError, match="another config"):
        run_text_encoder_ablation(
            dataclasses.replace(base, lr=0.5),
            {"random": TextEncoderConfig(kind="random", dim=16)},
            out,
            progress=False,
        )


def test_swap_refits_only_head_proj_and_keeps_every_other_weight_bit_identical(ablation):
    _, out, _ = ablation
    swap = swap_text_encoder(out / "minilm", TextEncoderConfig(kind="one_hot"), head_steps=2, progress=False)
    assert [(r.name, r.variant, r.text_dim) for r in swap.rows] == [("one_hot", "swap_head_refit", 16)]
    assert len(swap.head_losses) == 2
    trained = load_tensors(out / "minilm" / "model.safetensors")
    state = swap.model.trainable_state_dict()
    assert set(state) == set(trained)
    changed = [
        k for k in trained if state[k].shape != trained[k].shape or not torch.equal(state[k], trained[k])
    ]
    assert sorted(changed) == ["head.proj.bias", "head.proj.weight"]
    assert state["head.proj.weight"].shape == (16, 8, 1, 1)


def test_same_encoder_swap_without_retraining_reproduces_the_run(ablation):
    _, out, report = ablation
    swap = swap_text_encoder(
        out / "random", TextEncoderConfig(kind="random", dim=16), head_steps=0, progress=False
    )
    (row,) = swap.rows
    assert row.variant == "swap_zero_retrain"
    original = report.row("random")
    for key in ("seen_miou", "unseen_miou", "harmonic_iou", "unseen_only_miou", "per_class_iou"):
        assert json.dumps(getattr(row, key)) == json.dumps(getattr(original, key)), key  # NaN-safe equality


def test_other_dimension_without_refit_is_refused(ablation):
    _, out, _ = ablation
    with pytest.raises(ValueError, match="head_steps"):
        swap_text_encoder(
            out / "random", TextEncoderConfig(kind="random", dim=32), head_steps=0, progress=False
        )


def test_default_encoders_skip_clip_without_weights(tmp_path):
    enc = default_ablation_encoders(["a", "b"])
    assert enc["one_hot"].vocabulary == ("a", "b") and enc["random"].dim == 384
    assert isinstance(enc["clip"], SkippedEncoder)
    missing = default_ablation_encoders(["a"], clip_pretrained=str(tmp_path / "none.bin"))["clip"]
    assert isinstance(missing, SkippedEncoder) and "does not exist" in missing.reason
    assert default_ablation_encoders(["a"], clip_pretrained="openai")["clip"].pretrained == "openai"


def test_plot_draws_one_bar_per_defined_value(ablation):
    report = ablation[2]
    fig = plot_ablation(report)
    bars = fig.axes[0].patches
    keys = ("seen_miou", "unseen_miou", "harmonic_iou", "unseen_only_miou")
    values = [getattr(r, k) for k in keys for r in report.rows if r.status == "ok"]
    expected = [100 * v for v in values if v is not None and not math.isnan(v)]
    assert sorted(b.get_height() for b in bars) == pytest.approx(sorted(expected))
    assert "skipped" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_a_fold_given_by_name_is_recorded_as_its_index(tmp_path):
    # `--data.fold fold1` is accepted everywhere; the report stores the index (it raised ValueError on int("fold1"))
    base = tiny_base(generate_synthetic(tmp_path / "data", n_train=2, n_val=1, n_test=1, size=32))
    cfg = dataclasses.replace(base, data=dataclasses.replace(base.data, fold="fold1"))
    exp = make_experiment(cfg.data)
    report = make_report("retrain", exp, cfg, "test", [])
    assert report.fold == 1
    assert report.unseen_classes == exp.labels.unseen_names != UNSEEN
