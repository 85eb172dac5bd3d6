"""One way to evaluate: :func:`evaluate` (any model, any data, any protocol) and :func:`evaluate_run` (a trained
run folder on its own data, or on other data with the seen/unseen split that is true for it).

:func:`evaluate` dispatches on ``protocol.protocol``: ``dense`` scores every labelled pixel of a split in its
settings (:mod:`lseg_nb.engine.dense`), ``episodic`` runs the paper's episodes of a benchmark fold
(:mod:`lseg_nb.engine.episodic`). Seen-bias calibration (``protocol.calibrate_seen``) fits its offset on the
validation split first. Every result carries its protocol; with ``protocol.bootstrap`` every metric gets an
image-level (episode-level) bootstrap interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from lseg_nb.config import DataConfig, EvalConfig, TrainConfig, load_config
from lseg_nb.data.benchmarks.base import EpisodeSource
from lseg_nb.data.benchmarks.registry import episode_source
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.engine.dense import EvalData, run_dense
from lseg_nb.engine.episodic import run_episodes
from lseg_nb.engine.results import EpisodicResult, EvalResult
from lseg_nb.engine.runs import load_model
from lseg_nb.engine.seen_bias import fit_seen_offset
from lseg_nb.utils.device import resolve_device
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.labels import LabelSplit

Data = DataConfig | EvalData | EpisodeSource


def _episodes(data: Data, protocol: EvalConfig) -> EpisodeSource:
    if isinstance(data, EpisodeSource):
        return data
    if not isinstance(data, DataConfig):
        raise InputError(
            "the episodic protocol scores a benchmark fold: pass a DataConfig or an EpisodeSource"
        )
    if data.data_root is None or data.fold is None:
        raise InputError(
            f"the episodic protocol scores one fold of a benchmark folder: set data.data_root and data.fold "
            f"(got data_root={data.data_root!r}, fold={data.fold})"
        )
    return episode_source(data.dataset, data.data_root, data.fold, data.splits)


def eval_data(
    data: DataConfig,
    split: str,
    model: nn.Module,
    labels: LabelSplit | None = None,
    exp: Experiment | None = None,
) -> EvalData:
    """The :class:`EvalData` of ``split`` of a dataset config (images normalised for ``model``); ``labels``
    replaces the data's label split (same classes, e.g. another seen/unseen partition); ``exp``: the
    already resolved experiment of ``data``."""
    exp = exp or make_experiment(data)
    dataset = exp.dataset(split, model.config, data)
    split_labels = exp.labels if labels is None else labels
    if split_labels.class_names != exp.labels.class_names:
        raise InputError("labels must have the data's classes, in order")
    name = Path(data.dataset).stem
    return EvalData(dataset, split_labels, name, split, data.fold, data.max_images, data.num_workers)


def evaluate(
    model: nn.Module,
    data: Data,
    protocol: EvalConfig | None = None,
    split: str = "test",
    examples: int | Sequence[int] = 0,
    progress: bool = True,
) -> EvalResult | EpisodicResult:
    """Score ``model`` on ``data`` with ``protocol``.

    Args:
        model: LSeg, a converted official checkpoint or a dense-CLIP baseline (``lseg_nb.load_model``).
        data: a :class:`~lseg_nb.config.DataConfig` (dataset, root, fold, ``max_images``, ``num_workers``), an
            :class:`~lseg_nb.engine.dense.EvalData` (any torch dataset + its label split) or, for the episodic
            protocol, an :class:`~lseg_nb.data.benchmarks.base.EpisodeSource`.
        protocol: the evaluation protocol (default ``EvalConfig()``: dense, one pass per image).
        split: the split of a DataConfig to score (``DataConfig.val_split`` fits the calibration offset).
        examples: how many diverse images (or which indices) to keep with predictions for figures.
        progress: show progress bars.

    Returns an :class:`~lseg_nb.engine.results.EvalResult` (dense) or an
    :class:`~lseg_nb.engine.results.EpisodicResult` (episodic).
    """
    protocol = protocol or EvalConfig()
    if protocol.protocol == "episodic":
        max_episodes = data.max_images if isinstance(data, DataConfig) else None
        return run_episodes(model, _episodes(data, protocol), protocol, max_episodes, progress)
    if isinstance(data, EpisodeSource):
        raise InputError(
            "an EpisodeSource is scored with the episodic protocol: EvalConfig(protocol='episodic')"
        )
    if isinstance(data, DataConfig):
        return _dense_config(model, data, protocol, split, examples, progress)
    if protocol.calibrate_seen:
        raise InputError(
            "eval.calibrate_seen fits its offset on the validation split, which an EvalData does not have: pass a "
            "DataConfig, or fit the offset with fit_seen_offset(model, val_data) and score with "
            "run_dense(..., seen_offset=offset)"
        )
    return run_dense(model, data, protocol, examples, progress)


def _dense_config(
    model: nn.Module,
    data: DataConfig,
    protocol: EvalConfig,
    split: str,
    examples: int | Sequence[int],
    progress: bool,
    labels: LabelSplit | None = None,
) -> EvalResult:
    """Dense evaluation of a split of a dataset config (``labels``: another partition of its classes), with the
    calibration offset fitted on the whole validation split when the protocol asks for it."""
    target = eval_data(data, split, model, labels)
    if protocol.calibrate_seen:
        if not target.labels.is_zero_shot:
            raise InputError(
                "eval.calibrate_seen needs a zero-shot fold (seen and unseen classes): set data.fold or turn "
                "calibration off"
            )
        val = eval_data(data, data.val_split, model, target.labels)
        fit = fit_seen_offset(model, val, protocol, progress=progress)
        result = run_dense(model, target, protocol, examples, progress, fit.offset)
        return dataclasses.replace(result, notes=(*result.notes, fit.line()))
    return run_dense(model, target, protocol, examples, progress)


def _training_labels(cfg: TrainConfig) -> LabelSplit | None:
    try:
        return make_experiment(cfg.data).labels
    except (OSError, ValueError):  # the training data is not on this machine
        return None


def evaluate_run(
    run_dir: str | Path,
    data: DataConfig | None = None,
    protocol: EvalConfig | None = None,
    split: str = "test",
    examples: int | Sequence[int] = 0,
    progress: bool = True,
) -> EvalResult | EpisodicResult:
    """Evaluate the model of a finished run folder: on its own data and fold with its recipe's protocol unless
    ``data`` / ``protocol`` override them (the window is always the model's ``crop_size``).

    Args:
        run_dir: a run folder (``config.json`` + ``model.safetensors``).
        data: other data (dataset, root, fold, max_images) to score the run on.
        protocol: another protocol than the run's ``eval``.
        split: the split to score.
        examples: how many diverse images (or which indices) to keep with predictions for figures.
        progress: show progress bars.

    On other data than it was trained on (another dataset or fold), "seen" and "unseen" keep their meaning:
    a class is seen when one of its names was a training label of the run, unseen otherwise; the result's
    ``notes`` say so.
    """
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a run folder (no config.json): pass a finished run's folder"
        )
    cfg = load_config(TrainConfig, config)
    target = data or cfg.data
    protocol = protocol or cfg.eval
    model = load_model(run_dir, map_location=str(resolve_device("auto")))
    same = (Path(target.dataset).stem, target.fold) == (Path(cfg.data.dataset).stem, cfg.data.fold)
    if protocol.protocol == "episodic" or same:
        return evaluate(model, target, protocol, split, examples, progress)
    # other data: seen = classes the run was trained on (by name), unseen = the rest
    trained = _training_labels(cfg)
    labels = make_experiment(target).labels
    notes = [
        f"trained on {Path(cfg.data.dataset).stem} fold {cfg.data.fold}, scored on "
        f"{Path(target.dataset).stem} fold {target.fold}"
    ]
    if trained is not None:
        known = {name for c in trained.seen for name in trained.names[c]}
        unseen = tuple(c for c in range(labels.num_classes) if not set(labels.names[c]) & known)
        seen = tuple(c for c in range(labels.num_classes) if c not in unseen and c != labels.background)
        labels = LabelSplit(labels.names, seen, unseen, labels.void, labels.background)
        notes.append("seen / unseen follow the run's training labels (a class is seen when it was a target)")
    else:
        labels = LabelSplit(labels.names, (), (), labels.void, labels.background)
        notes.append("the run's training data is not available here: no seen / unseen split is reported")
    if protocol.calibrate_seen and not labels.is_zero_shot:
        protocol = dataclasses.replace(protocol, calibrate_seen=False)
        notes.append("no unseen class: seen-bias calibration is not scored")
    result = _dense_config(model, target, protocol, split, examples, progress, labels)
    return dataclasses.replace(result, notes=(*result.notes, *notes))
