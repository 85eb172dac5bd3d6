"""Text-encoder ablation (issue 4): is zero-shot transfer carried by the pixel-text alignment or by the text encoder?

Two experiments, both scored in the generalised zero-shot setting (all labels compete: seen / unseen mIoU and
their harmonic mean) and in the unseen-only setting (ZS3Net/SPNet-style: unseen labels only, unseen pixels only):

* :func:`run_text_encoder_ablation` trains the *same* image encoder / decoder / head recipe once per text encoder
  under one protocol: same seed, data, fold, steps and optimiser; only ``model.text`` differs. Because the text
  encoder is built before the seeded model, the image encoder and decoder also start from identical weights.
* :func:`swap_text_encoder` (the referee's variant) freezes a trained image encoder + decoder and swaps only the
  text encoder. The head's 1x1 projection ``head.proj`` maps decoder features into the text space, so for a new
  space it alone is re-fitted on the seen classes (everything else frozen, BatchNorm statistics included); when
  the dimension matches, the swap without any retraining is reported too. The image features are then *exactly*
  the same for every text encoder, so if unseen mIoU collapses with random or one-hot text, the zero-shot
  transfer is carried by the geometry of the text embeddings (which unseen labels lie near which seen ones), not
  by the image features alone. One-hot texts are the control: every unseen text is orthogonal to every seen one,
  so nothing learned on seen classes can say which unseen label a pixel belongs to.

Results are :class:`AblationReport` dataclasses (JSON round-trip); plots live in :mod:`lseg_nb.viz.ablation`.
The swap experiment lives in :mod:`lseg_nb.diagnostics.text_swap`; shared report types and helpers in
:mod:`lseg_nb.diagnostics.ablation_report`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

from lseg_nb.config import ConfigError, TextEncoderConfig, TrainConfig, load_config, to_dict
from lseg_nb.data.experiment import Experiment, make_experiment
from lseg_nb.diagnostics.ablation_report import (
    AblationReport,
    AblationRow,
    SkippedEncoder,
    ablation_metrics,
    build_text,
    check_ablation_args,
    complete_text,
    make_report,
    protocol_of,
    skipped_row,
)
from lseg_nb.engine.runs import load_model
from lseg_nb.engine.train import train
from lseg_nb.utils.device import resolve_device


def run_text_encoder_ablation(
    base: TrainConfig,
    encoders: Mapping[str, TextEncoderConfig | SkippedEncoder],
    out_dir: str | Path,
    eval_split: str = "test",
    max_eval_images: int | None = None,
    progress: bool = True,
) -> AblationReport:
    """Train ``base`` once per text encoder into ``out_dir/<name>`` and evaluate seen/unseen on ``eval_split``.

    Only ``model.text`` (and ``run_dir``) differ between runs; a one-hot encoder gets every class name (unseen
    included) as vocabulary. Finished runs with the same config are reused; a folder holding a different run
    raises :class:`ConfigError`. Encoders that cannot be built (e.g. open_clip weights unavailable offline)
    become ``skipped`` rows with the reason. The report is written to ``out_dir/ablation.json`` after every row.
    """
    check_ablation_args(base, encoders)
    exp, out_dir, rows = make_experiment(base.data), Path(out_dir), []
    report = make_report("retrain", exp, base, eval_split, rows)
    for name, spec in encoders.items():
        if isinstance(spec, SkippedEncoder):
            rows.append(skipped_row(name, "retrained", spec.text, spec.reason))
        else:
            text = complete_text(spec, exp.labels.class_names)
            cfg = dataclasses.replace(
                base,
                model=dataclasses.replace(base.model, text=text),
                run_dir=str(out_dir / name),
                progress=progress,
            )
            rows.append(_train_and_evaluate(name, cfg, exp, eval_split, max_eval_images, progress))
        report.save_json(out_dir / "ablation.json")
    return report


def _train_and_evaluate(
    name: str, cfg: TrainConfig, exp: Experiment, split: str, max_images: int | None, progress: bool
) -> AblationRow:
    encoder = build_text(cfg.model.text)
    if isinstance(encoder, str):
        return skipped_row(name, "retrained", cfg.model.text, encoder)
    run_dir = Path(cfg.run_dir)
    reused = (run_dir / "model.safetensors").is_file()
    if reused:
        saved = load_config(TrainConfig, run_dir / "config.json")
        if protocol_of(saved) != protocol_of(cfg) or saved.model.text != cfg.model.text:
            raise ConfigError(
                f"{run_dir} holds a finished run with another config: delete it or use a new out_dir"
            )
    t0 = time.perf_counter()
    if not reused:
        train(cfg, text_encoder=encoder)
    seconds = None if reused else round(time.perf_counter() - t0, 1)
    model = load_model(run_dir, text_encoder=encoder, map_location=str(resolve_device(cfg.device)))
    return AblationRow(
        name,
        "retrained",
        to_dict(cfg.model.text),
        text_dim=encoder.dim,
        run_dir=str(run_dir),
        steps=cfg.steps,
        seconds=seconds,
        reused=reused,
        **ablation_metrics(model, exp, cfg, split, max_images, progress),
    )
