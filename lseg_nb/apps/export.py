"""ONNX export of a segmentation model (``lseg-nb export``), validated against PyTorch with onnxruntime.

The graph is the image encoder, decoder and head of an lseg_nb model, i.e. lseg_nb's single-pass dense inference:

* input ``images``: float32 ``(B, 3, H, W)``, normalised RGB ``(rgb / 255 - mean) / std`` with the mean/std in the
  metadata props. Any ``H, W``: the graph zero-pads (the normalised mean colour) at the bottom/right to the
  model's size multiple and crops the logits back, as :func:`~lseg_nb.engine.inference.predict_logits` does in
  ``single`` mode;
* text: either baked in as a constant (``labels``: the label embeddings of the model's own text encoder; a class
  with several names, ``"sofa|couch"``, scores the maximum over its names' logits) or a second input
  ``text_embeddings`` float32 ``(K, D)`` (``text_input=True``; normalised inside the graph, so any scale works);
* output ``logits``: float32 ``(B, K, H, W)``, the model's own logits (LSeg: ``logit_scale * cosine`` through any
  head block, bilinear ``align_corners=True``; dense-CLIP: ``align_corners=False``) at the input resolution.

Dynamic axes: batch, height and width for every family (LSeg CNN and ViT, dense-CLIP MaskCLIP/SCLIP/NACLIP),
plus the label count with ``text_input``. ViT position embeddings are resized inside the graph, so any grid works.
Exporters: ``dynamo`` (``torch.onnx.export(dynamo=True)``, the default; every family) and ``torchscript`` (the
older tracer: faster to run but deprecated by PyTorch, and only the CNN LSeg traces; ViTs and CLIP towers are
refused with the reason). Sliding-window and multi-scale protocols are loops over this graph and are not exported.

Metadata props (strings; JSON where structured): ``lseg_nb_version``, ``model_family``, ``model_name``,
``config_sha256``, ``model_config``, ``weights``, ``mean``, ``std``, ``size_multiple``, ``text_dim``,
``text_input``, ``labels`` (baked: the classes with their names), ``inputs``, ``outputs``, ``dynamic_axes``,
``resize``, ``exporter``, ``opset``, ``parity_max_abs_diff``.

Validation runs the exported file in onnxruntime (CPU) on seeded random inputs at two shapes (the export shape
and another batch / non-multiple size / label count) against the same module in PyTorch; the export is refused
when the max absolute difference exceeds ``tolerance * max(1, max |logit|)``. Nothing is written before it passes;
the file is written atomically, and the output path is checked before any work.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim

from lseg_nb.engine.provenance import file_sha256, model_family, model_fingerprint
from lseg_nb.engine.runs import load_model
from lseg_nb.utils.errors import InputError
from lseg_nb.utils.io import atomic_write_bytes, check_output_path
from lseg_nb.utils.labels import LabelSplit
from lseg_nb.utils.optional import MissingDependencyError

Exporter = Literal["dynamo", "torchscript"]
EXPORTERS = ("dynamo", "torchscript")
MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit for a single-file ONNX model
# Export-time input grid (in size multiples): not square, so never a ViT's native (square) position grid, where
# the position-embedding resize is skipped and the dynamo exporter would fix height and width to that size.
SAMPLE = (5, 7)


class OnnxSegmenter(nn.Module):
    """What is exported: pad to the size multiple, encode, score against the text, crop (see the module docstring).

    ``text_emb``: label embeddings to bake in (``None``: a second input). ``owner``: class of each baked text
    (several names per class -> the maximum logit over its names).
    """

    def __init__(self, model: nn.Module, text_emb: Tensor | None = None, owner: Sequence[int] = ()) -> None:
        super().__init__()
        self.model = model
        self.multiple = int(model.size_multiple)
        self.baked = text_emb is not None
        if text_emb is not None:
            self.register_buffer("text", F.normalize(text_emb.detach().float(), dim=-1))
        classes = sorted(set(owner))
        self.groups = [[i for i, c in enumerate(owner) if c == k] for k in classes]
        self.multi_name = any(len(g) > 1 for g in self.groups)

    def forward(self, images: Tensor, text_embeddings: Tensor | None = None) -> Tensor:
        h, w = images.shape[-2], images.shape[-1]
        m = self.multiple
        x = F.pad(images, (0, (m - w % m) % m, 0, (m - h % m) % m))
        text = self.text if self.baked else text_embeddings
        emb = self.model.encode_image(x)
        logits = self.model.logits_from_embeddings(emb, text, (x.shape[-2], x.shape[-1]))[..., :h, :w]
        if self.multi_name:
            logits = torch.stack([logits[:, g].amax(dim=1) for g in self.groups], dim=1)
        return logits


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured. ``checks``: one record per validation shape (input shape,
    label count, max absolute difference)."""

    path: Path
    family: str
    exporter: str
    text_input: bool
    labels: tuple[tuple[str, ...], ...] | None
    dynamic_axes: dict[str, dict[int, str]]
    max_abs_diff: float
    bound: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """Human summary: file, family, inputs and dynamic axes, parity per validation shape."""
        dyn = "; ".join(f"{k}: {', '.join(v.values())}" for k, v in self.dynamic_axes.items())
        text = (
            "labels as input (text_embeddings (K, D))"
            if self.text_input
            else f"{len(self.labels)} labels baked"
        )
        lines = [f"ONNX model written to {self.path} ({self.family}, {self.exporter} exporter, {text})"]
        lines.append(f"dynamic axes: {dyn}")
        for c in self.checks:
            lines.append(
                f"onnxruntime vs PyTorch, images {c['images']} labels {c['labels']}: max |diff| {c['max_abs_diff']:.3g}"
            )
        lines.append(f"max |diff| {self.max_abs_diff:.3g} (bound {self.bound:.3g}, float32)")
        return "\n".join(lines)


def _dynamic(text_input: bool) -> dict[str, dict[int, str]]:
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    if text_input:
        axes["text_embeddings"] = {0: "labels"}
        axes["logits"] = {0: "batch", 1: "labels", 2: "height", 3: "width"}
    return axes


def _sample(model: nn.Module, batch: int, h: int, w: int, k: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, h, w, generator=g), torch.randn(k, int(model.text_dim), generator=g)


def _export(module: OnnxSegmenter, args: tuple[Tensor, ...], path: Path, exporter: str, opset: int) -> None:
    names = ["images", "text_embeddings"][: len(args)]
    axes = _dynamic(len(args) == 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings; parity is checked below
        if exporter == "dynamo":
            dims = {
                "batch": Dim("batch"),
                "height": Dim("height"),
                "width": Dim("width"),
                "labels": Dim("labels"),
            }
            shapes = {n: {i: dims[d] for i, d in axes[n].items()} for n in names}
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,
                artifacts_dir=str(path.parent),
            )
        else:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                dynamo=False,
                dynamic_axes=axes,
            )


def _hint(exporter: str) -> str:
    if exporter == "torchscript":
        return "the TorchScript tracer handles only CNN LSeg models: use the default exporter='dynamo'"
    return "the dynamo exporter failed on this model; set LSEG_NB_DEBUG=1 for the traceback and report it"


def _require_onnx() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401 - validation needs it; fail before the export work
    except ImportError as e:
        raise MissingDependencyError(
            f"ONNX export needs the onnx and onnxruntime packages ({e.name} is missing): "
            "pip install 'lseg_nb[export]'"
        ) from None
    return onnx


def _validate(module: OnnxSegmenter, onnx_bytes: bytes, text_input: bool, k: int) -> list[dict[str, Any]]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    m = module.multiple
    shapes = [(2, SAMPLE[0] * m, SAMPLE[1] * m, k, 1), (1, 3 * m + 5, 2 * m + 3, k + 2, 2)]
    checks = []
    for batch, h, w, kk, seed in shapes:
        images, text = _sample(module.model, batch, h, w, kk, seed)
        feeds = {"images": images.numpy()} | ({"text_embeddings": text.numpy()} if text_input else {})
        with torch.inference_mode():
            ref = module(images, text if text_input else None).numpy()
        try:
            out = session.run(["logits"], feeds)[0]
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise RuntimeError(
                f"the exported graph does not run on images {[batch, 3, h, w]}"
                f"{f' with {kk} labels' if text_input else ''} (the exporter fixed a dimension?): "
                f"{str(e).strip().splitlines()[0][:300]}"
            ) from e
        if out.shape != ref.shape:
            raise RuntimeError(f"the ONNX model returned logits {out.shape} where PyTorch gives {ref.shape}")
        diff = float(abs(out - ref).max())
        checks.append(
            {
                "images": [batch, 3, h, w],
                "labels": ref.shape[1],
                "max_abs_diff": diff,
                "max_abs": float(abs(ref).max()),
            }
        )
    return checks


def export_onnx(
    model: nn.Module,
    out: str | Path,
    labels: str | Sequence[str] | None = None,
    text_input: bool = False,
    exporter: Exporter = "dynamo",
    opset: int = 18,
    tolerance: float = 1e-4,
    weights: str | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX at ``out`` (validated with onnxruntime first, written atomically).

    Args:
        model: an lseg_nb LSeg or dense-CLIP model (exported on the CPU in float32, in eval mode).
        out: the ``.onnx`` file to write (checked before any work: not a folder, writable).
        labels: labels to bake in (``"sky, sofa|couch"`` or a list; ``|`` separates names of one class).
        text_input: instead of ``labels``, take the label embeddings ``(K, D)`` as a second input.
        exporter: ``"dynamo"`` (every family) or ``"torchscript"`` (CNN LSeg only; see the module docstring).
        opset: the ONNX opset.
        tolerance: refuse when max |onnx - torch| > ``tolerance * max(1, max |logit|)``.
        weights: where the model came from (recorded in the metadata, with its sha256 when it is a file).
    """
    onnx = _require_onnx()
    out = check_output_path(out, "--out")
    if (labels is None) == (not text_input):
        raise InputError("give labels to bake in (--labels ...) or text_input=True (--text-input), not both")
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if tolerance <= 0:
        raise InputError(f"tolerance must be > 0, got {tolerance}")
    family = model_family(model)
    split = None if labels is None else LabelSplit.from_labels(labels)
    flags = [(mod, mod.training) for mod in model.modules()]
    model = model.eval()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    model.to("cpu", torch.float32)
    try:
        text = None if split is None else model.encode_text(list(split.texts)).float().cpu()
        module = OnnxSegmenter(model, text, split.owner if split else ()).eval()
        k = 3 if split is None else len(split.texts)
        m = module.multiple
        images, sample_text = _sample(model, 2, SAMPLE[0] * m, SAMPLE[1] * m, k, 0)
        args = (images, sample_text) if text_input else (images,)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
            path = Path(tmp) / "model.onnx"
            try:
                _export(module, args, path, exporter, opset)
                proto = onnx.load(str(path))
            except Exception as e:  # noqa: BLE001 - exporters raise many types; the cause stays chained
                said = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise RuntimeError(
                    f"cannot export this {family} model to ONNX with the {exporter} exporter: {said} "
                    f"({_hint(exporter)})"
                ) from e
        data = proto.SerializeToString()
        if len(data) > MAX_PROTO_BYTES:
            raise RuntimeError(
                f"the ONNX model is {len(data) / 2**30:.1f} GiB, over the 2 GiB single-file limit; "
                "lseg_nb writes single-file models only"
            )
        onnx.checker.check_model(proto)
        checks = _validate(module, data, text_input, k)
    finally:
        model.to(device, dtype)
        for mod, flag in flags:
            mod.training = flag
    worst = max(c["max_abs_diff"] for c in checks)
    bound = tolerance * max(1.0, max(c["max_abs"] for c in checks))
    if not worst <= bound:
        raise RuntimeError(
            f"onnxruntime disagrees with PyTorch by up to {worst:.3g} (> {bound:.3g}); nothing written to {out}. "
            f"Try the other exporter or opset (now {exporter}, opset {opset})"
        )
    ident = model_fingerprint(model)
    axes = _dynamic(text_input)
    meta = {
        "lseg_nb_version": ident["lseg_nb_version"],
        "model_family": family,
        "model_name": ident["name"],
        "config_sha256": ident["config_sha256"],
        "model_config": json.dumps(ident["config"], sort_keys=True),
        "weights": weights or "",
        "mean": json.dumps(ident["mean"]),
        "std": json.dumps(ident["std"]),
        "size_multiple": str(ident["size_multiple"]),
        "text_dim": str(ident["text_dim"]),
        "text_input": str(text_input).lower(),
        "labels": json.dumps([list(n) for n in split.names]) if split else "",
        "inputs": "images: float32 (B, 3, H, W), RGB/255 normalised with mean/std, any H, W (padded inside to "
        "size_multiple)" + ("; text_embeddings: float32 (K, D), normalised inside" if text_input else ""),
        "outputs": "logits: float32 (B, K, H, W), the model's logits at the input resolution"
        + (
            "; a class with several names scores the max over its names" if split and split.multi_name else ""
        ),
        "dynamic_axes": json.dumps(axes),
        "resize": "bilinear, align_corners=" + ("False" if family == "dense-clip" else "True"),
        "exporter": exporter,
        "opset": str(opset),
        "parity_max_abs_diff": f"{worst:.6g}",
    }
    if weights and Path(weights).is_file():
        meta["weights_sha256"] = file_sha256(weights)
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = (
        f"lseg_nb {family} segmenter {ident['name']}: " + meta["inputs"] + " -> " + meta["outputs"]
    )
    atomic_write_bytes(out, proto.SerializeToString())
    return ExportReport(
        out, family, exporter, text_input, split.names if split else None, axes, worst, bound, checks, meta
    )


def export_weights(
    weights: str | Path,
    out: str | Path,
    labels: str | Sequence[str] | None = None,
    text_input: bool = False,
    **options: Any,
) -> ExportReport:
    """:func:`export_onnx` of a run folder, ``.safetensors`` file or dense-CLIP spec (``maskclip:ViT-B-16/openai``);
    the labels and the output path are checked before the model is loaded. ``options`` as in :func:`export_onnx`."""
    check_output_path(out, "--out")
    if (labels is None) == (not text_input):
        raise InputError("give --labels LABEL ... to bake in, or --text-input, not both")
    if labels is not None:
        LabelSplit.from_labels(labels)
    weights_file = Path(weights) / "model.safetensors" if Path(weights).is_dir() else Path(weights)
    model = load_model(weights, map_location="cpu")
    recorded = str(weights_file) if weights_file.is_file() else str(weights)
    return export_onnx(model, out, labels, text_input, weights=recorded, **options)
