"""The suite runner: every dataset's protocol is the reference harness's settings, overrides are recorded, the
window follows the reference for training-free models only, the table keeps the papers' column order."""

from __future__ import annotations

import json

import open_clip
import pytest

from lseg_nb.config.suites import CROSSDATASET, TRAININGFREE, get_settings
from lseg_nb.engine.suite import CROSSDATASET_EVAL, DATASETS, SuiteConfig, _window, suite_protocol
from lseg_nb.models.dense_clip import DenseCLIPConfig, create_dense_clip
from lseg_nb.utils.errors import InputError, UnknownNameError

TINY = "lseg-nb-test-suite-ViT"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("open_clip_cfg") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return create_dense_clip(DenseCLIPConfig(method="naclip", name=TINY, pretrained=None, templates=("{}",)))


def test_every_suite_benchmark_has_a_dataset():
    for suite in (TRAININGFREE, CROSSDATASET):
        for name in suite.datasets:
            assert (suite.name, name) in DATASETS


@pytest.mark.parametrize("harness", ["sclip", "naclip", "clearclip"])
def test_trainingfree_protocol_is_the_harness_settings(harness):
    for name in TRAININGFREE.datasets:
        protocol, window, notes = suite_protocol(SuiteConfig("trainingfree", "/data", harness), name)
        s = get_settings(name, harness)
        assert window == s.crop_size
        for key, value in s.eval_fields().items():
            assert getattr(protocol, key) == value, (harness, name, key)
        # the references drop the remainder rows/columns and never pad a window
        assert protocol.input_fit == "crop"
        assert not any("changed from" in n for n in notes)


def test_known_reference_facts_reach_the_protocol():
    naclip_voc21, _, _ = suite_protocol(SuiteConfig(harness="naclip"), "voc21")
    assert naclip_voc21.mode == "single" and naclip_voc21.pamr_steps == 10
    sclip_city, _, _ = suite_protocol(SuiteConfig(harness="sclip"), "cityscapes")
    assert sclip_city.short_side == 560 and sclip_city.mode == "sliding"
    _, clear_window, _ = suite_protocol(SuiteConfig(harness="clearclip"), "voc20")
    assert clear_window == 448


def test_overrides_apply_to_every_dataset_and_are_noted():
    cfg = SuiteConfig("trainingfree", "/data", "sclip", eval={"pamr_steps": 10, "amp": "bf16"})
    protocol, _, notes = suite_protocol(cfg, "voc20")
    assert protocol.pamr_steps == 10 and protocol.amp == "bf16"
    assert any("changed from the sclip settings" in n and "pamr_steps" in n for n in notes)


def test_crossdataset_protocol_says_it_is_not_catsegs():
    protocol, window, notes = suite_protocol(SuiteConfig("crossdataset", "/data"), "ade20k847")
    assert protocol == CROSSDATASET_EVAL and window is None
    assert protocol.short_side == 640 and protocol.long_cap == 2560
    assert any("not reproduced" in n for n in notes)


def test_config_refuses_unknown_names():
    with pytest.raises(UnknownNameError, match="voc99"):
        SuiteConfig("trainingfree", "/d", only=("voc99",))
    with pytest.raises(UnknownNameError, match="harness"):
        SuiteConfig("trainingfree", "/d", harness="mmseg")
    with pytest.raises(UnknownNameError, match="suite"):
        SuiteConfig("zeroshot", "/d")
    with pytest.raises(InputError, match="not EvalConfig fields"):
        SuiteConfig(eval={"stride": 0.5})
    assert SuiteConfig(only=("ade20k150", "voc21")).datasets == ("voc21", "ade20k150")  # column order


def test_window_follows_the_reference_for_training_free_models_only(tiny_clip, tiny_model):
    own = tiny_clip.config.crop_size
    with _window(tiny_clip, 448) as used:
        assert used == 448 and tiny_clip.config.crop_size == 448
    assert tiny_clip.config.crop_size == own  # restored
    lseg_crop = tiny_model.config.crop_size
    with _window(tiny_model, 448) as used:
        assert used == lseg_crop and tiny_model.config.crop_size == lseg_crop
