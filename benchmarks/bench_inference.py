"""Inference throughput of lseg_nb next to a re-creation of the official LSeg forward design, in one process.

Same weights (random), same labels, same inputs. The official design (``official_lseg.py``) encodes the label texts
inside every forward pass, casts the similarity to fp16 on CUDA and runs multi-scale windows one at a time (batch 1,
each padded window again mirrored); lseg_nb encodes the texts once and batches the windows of a scale.

Measured: single-scale forward (fp32 at batch 1; autocast at batch ``--batch``), multi-scale + flip on one image
(official protocol geometry: base size, 6 scales, stride 2/3, flip), and an equivalence check of the two single-scale
forwards. Targets (on a GPU): multi-scale >= 5x the official design, single-scale >= 1.6x at equal precision/batch.

Configs: ``paper`` = ViT-L/16 + DPT 256 + CLIP ViT-B/32 text tower, 480x480, 21 labels, a 512x683 image with base
520 (the issue's setting; needs a GPU). ``cpu`` = a stand-in that finishes in minutes on 2 cores: ViT-Ti/16 + DPT 64
+ CLIP ViT-S-32-alt text tower (256-d), 240x240, 21 labels, a 256x342 image with base 260 (the same 6 scales and
the same 36 official window passes, at half the size).

Usage: python benchmarks/bench_inference.py [--device cuda --config paper] [--compile] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from _common import record
from official_lseg import OfficialLSegNet, official_multi_eval, official_window_count

from lseg_nb.config import OFFICIAL_SCALES, EvalConfig, TextEncoderConfig
from lseg_nb.engine.inference import _window_starts, predict_logits, scaled_size
from lseg_nb.models import create_model, get_config

CONFIGS = {
    "paper": dict(
        model=get_config(
            "lseg_vitl16_384",
            backbone_pretrained=False,
            text=TextEncoderConfig(kind="open_clip", name="ViT-B-32", pretrained=None, dim=512),
        ),
        image=(512, 683),
        base=520,
    ),
    "cpu": dict(
        model=get_config(
            "lseg_vitb16_384",
            backbone="vit_tiny_patch16_384",
            backbone_pretrained=False,
            reassemble_channels=(48, 96, 192, 192),
            features=64,
            crop_size=240,
            text=TextEncoderConfig(kind="open_clip", name="ViT-S-32-alt", pretrained=None, dim=256),
        ),
        image=(256, 342),
        base=260,
    ),
}
LABELS = [f"label number {i}" for i in range(21)]


def _timed(fn, device: torch.device, repeat: int, warmup: int) -> float:
    """Median seconds of ``fn()``, waiting for the device before reading the clock."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return (
        torch.autocast(device.type, dtype=dtype)
        if dtype is not None
        else torch.autocast(device.type, enabled=False)
    )


def lseg_nb_windows(h: int, w: int, crop: int, base: int, scales) -> int:
    """Network inputs lseg_nb runs for one image with flip (windows and mirrored windows), for the record."""
    n, stride = 0, int(crop * 2 / 3)
    for s in scales:
        sh, sw = scaled_size(h, w, s, base)
        fits = sh <= crop and sw <= crop
        n += 2 * (
            1
            if fits
            else len(_window_starts(max(sh, crop), crop, stride))
            * len(_window_starts(max(sw, crop), crop, stride))
        )
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ms-repeat", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (CPU kernels warm up slowly)")
    ap.add_argument("--compile", action="store_true", help="also time lseg_nb with torch.compile")
    ap.add_argument("--window-batch", type=int, default=36)
    args = ap.parse_args()
    device = torch.device(args.device)
    spec = CONFIGS[args.config]
    torch.manual_seed(0)
    model = create_model(spec["model"]).to(device).eval()
    official = OfficialLSegNet(model).eval()
    crop, mean, std = model.config.crop_size, model.config.mean, model.config.std
    text = model.encode_text(LABELS).to(device)  # lseg_nb: once, cached
    amp = torch.float16 if device.type == "cuda" else torch.bfloat16
    amp_name = "fp16" if device.type == "cuda" else "bf16"
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(1, 3, crop, crop, generator=g).to(device)
    xb = torch.randn(args.batch, 3, crop, crop, generator=g).to(device)
    big = torch.randn(1, 3, *spec["image"], generator=g).to(device)
    rows: list[dict] = []

    def row(what: str, design: str, precision: str, batch: int, seconds: float, **extra) -> None:
        rows.append(
            dict(
                what=what, design=design, precision=precision, batch=batch, seconds=round(seconds, 4), **extra
            )
        )
        print(f"{what:28s} {design:22s} {precision:5s} batch {batch:2d}: {seconds:.4f} s", flush=True)

    # equivalence of the two single-scale forwards (fp32): the re-creation computes the same function
    with torch.no_grad():
        ref = official(x1, LABELS)
    ours = predict_logits(model, x1, text)
    agree = (ref.argmax(1) == ours.argmax(1)).float().mean().item()
    diff = (ref - ours).abs().max().item()

    def off_single(x, dtype=None):
        with torch.no_grad(), _autocast(device, dtype):
            official(x, LABELS)

    r = args.repeat
    row("single fp32", "official", "fp32", 1, _timed(lambda: off_single(x1), device, r, args.warmup))
    row(
        "single fp32",
        "lseg_nb",
        "fp32",
        1,
        _timed(lambda: predict_logits(model, x1, text), device, r, args.warmup),
    )
    b = args.batch
    row(
        f"single amp b{b}",
        "official",
        amp_name,
        b,
        _timed(lambda: off_single(xb, amp), device, r, args.warmup),
    )
    variants = [("bf16", False)] + ([("fp16", False)] if device.type == "cuda" else [])
    variants += [("bf16", True)] if args.compile else []
    for prec, comp in variants:
        protocol = EvalConfig(amp=prec, compile=comp)
        fn = lambda protocol=protocol: predict_logits(model, xb, text, protocol)  # noqa: E731
        row(
            f"single amp b{b}",
            "lseg_nb" + (" compile" if comp else ""),
            prec,
            b,
            _timed(fn, device, r, args.warmup),
        )

    h, w = spec["image"]
    base, scales = spec["base"], OFFICIAL_SCALES
    n_off = official_window_count(h, w, crop, base, scales) * 2
    n_ours = lseg_nb_windows(h, w, crop, base, scales)
    ms = f"multiscale {h}x{w} base {base}"

    def off_ms():
        with torch.no_grad():
            official_multi_eval(official, big, LABELS, mean, std, crop, base, scales, True)

    mr = args.ms_repeat
    row(ms, "official", "fp32", 1, _timed(off_ms, device, mr, 0), network_inputs=n_off)
    kw = dict(mode="multiscale", base_size=base, scales=scales, flip=True, window_batch=args.window_batch)
    for prec in ["none", "bf16"] + (["fp16"] if device.type == "cuda" else []):
        protocol = EvalConfig(amp=prec, **kw)
        fn = lambda protocol=protocol: predict_logits(model, big, text, protocol)  # noqa: E731
        row(
            ms,
            "lseg_nb",
            "fp32" if prec == "none" else prec,
            1,
            _timed(fn, device, mr, 1),
            network_inputs=n_ours,
        )

    def speed(what: str, design: str, precision: str) -> float:
        return next(
            x["seconds"]
            for x in rows
            if (x["what"], x["design"], x["precision"]) == (what, design, precision)
        )

    summary = {
        "config": args.config,
        "model": dataclasses.asdict(model.config)["backbone"],
        "crop": crop,
        "labels": len(LABELS),
        "single_fp32_speedup": round(
            speed("single fp32", "official", "fp32") / speed("single fp32", "lseg_nb", "fp32"), 2
        ),
        "multiscale_fp32_speedup": round(speed(ms, "official", "fp32") / speed(ms, "lseg_nb", "fp32"), 2),
        "multiscale_bf16_speedup": round(speed(ms, "official", "fp32") / speed(ms, "lseg_nb", "bf16"), 2),
        "single_fp32_argmax_agreement": round(agree, 5),
        "single_fp32_max_abs_logit_diff": diff,
    }
    if device.type == "cuda":
        summary["single_fp16_b8_speedup"] = round(
            speed(f"single amp b{b}", "official", "fp16") / speed(f"single amp b{b}", "lseg_nb", "fp16"), 2
        )
    print(summary)
    record(f"inference_{args.config}_{device.type}", rows + [summary])


if __name__ == "__main__":
    main()
