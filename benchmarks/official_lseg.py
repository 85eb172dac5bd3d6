"""A re-creation of the official LSeg forward design, for side-by-side timing only (never used by the package).

Written from the paper's description and the official checkpoint key layouts in ``../shared/reference/`` (names
``net.pretrained.*``, ``net.scratch.layerN_rn``, ``net.scratch.refinenetN``, ``net.scratch.head1`` 256 -> 512,
``net.clip_pretrained.*`` = a whole CLIP ViT-B/32, ``logit_scale`` fixed at 1/0.07). The network body is the same
computation as lseg_nb's (the converter maps those keys one to one onto ``image_encoder``/``decoder``/``head``),
so this module shares lseg_nb's modules and re-implements only what the official *design* does differently:

* ``LSegNet.forward(x, labelset)``: the label set is tokenised (``clip.tokenize``) and encoded by the CLIP text
  tower inside every forward pass; image features (``head1``) and text features are L2-normalised, the similarity
  is ``logit_scale * image_features.half() @ text_features.t()`` on CUDA (the official CLIP text tower is loaded in
  fp16 there), cast back to float, reshaped and upsampled x2 (bilinear, ``align_corners=True``);
* ``LSeg_MultiEvalModule`` (PyTorch-Encoding style): batch 1 only; per scale the long side becomes
  ``ceil(base_size * s)``; an image whose long side fits the crop is padded to ``crop x crop`` with black
  (``-mean/std``) and run once, otherwise ``crop x crop`` windows at stride ``2/3 crop`` are padded to the crop when
  needed and run one at a time; every padded window is run again mirrored (``module_inference``) and the logits
  summed; per-scale logits are resized to the input size and summed.

Run under ``torch.no_grad()`` like the official test script.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.models import LSeg

_UP = dict(mode="bilinear", align_corners=True)


class OfficialLSegNet(nn.Module):
    """``LSegNet`` forward: image encoder + DPT, ``head1``, CLIP text tower run inside every forward."""

    def __init__(self, model: LSeg) -> None:
        super().__init__()
        self.pretrained = model.image_encoder
        self.scratch = model.decoder
        self.head1 = model.head.proj
        # a copy of the open_clip CLIP text tower: fp16 on CUDA as the official clip.load() leaves it there
        clip = copy.deepcopy(model.text_encoder.model)
        self.clip_pretrained = clip.half() if next(clip.parameters()).is_cuda else clip
        self.tokenize = model.text_encoder.tokenizer
        self.logit_scale = float(model.head.scale)
        self.out_c = self.head1.out_channels

    def forward(self, x: Tensor, labelset: Sequence[str]) -> Tensor:
        text = self.tokenize(list(labelset)).to(x.device)
        path_1 = self.scratch(self.pretrained(x))
        text_features = self.clip_pretrained.encode_text(text)
        image_features = self.head1(path_1)
        imshape = image_features.shape
        image_features = image_features.permute(0, 2, 3, 1).reshape(-1, self.out_c)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        if x.is_cuda:  # official: image_features.half() @ fp16 CLIP text features
            logits = self.logit_scale * image_features.half() @ text_features.half().t()
        else:  # (fp16 matmuls are not what a CPU run of the official code would do either)
            logits = self.logit_scale * image_features @ text_features.t()
        out = logits.float().view(imshape[0], imshape[2], imshape[3], -1).permute(0, 3, 1, 2)
        return F.interpolate(out, scale_factor=2, **_UP)  # scratch.output_conv


def _pad_image(img: Tensor, mean: Sequence[float], std: Sequence[float], crop: int) -> Tensor:
    """Pad bottom/right to ``crop`` with black in normalised space (``-mean/std`` per channel)."""
    b, c, h, w = img.shape
    padh, padw = max(crop - h, 0), max(crop - w, 0)
    if not padh and not padw:
        return img
    values = [-m / s for m, s in zip(mean, std, strict=True)]
    return torch.stack([F.pad(img[:, i], (0, padw, 0, padh), value=values[i]) for i in range(c)], dim=1)


def _module_inference(net: OfficialLSegNet, image: Tensor, labelset: Sequence[str], flip: bool) -> Tensor:
    output = net(image, labelset)
    if flip:
        output = output + net(image.flip(-1), labelset).flip(-1)
    return output


def official_multi_eval(
    net: OfficialLSegNet,
    image: Tensor,
    labelset: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    crop_size: int = 480,
    base_size: int = 520,
    scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
    flip: bool = True,
) -> Tensor:
    """``LSeg_MultiEvalModule.forward`` for one image ``(1, 3, H, W)``: summed logits ``(1, K, H, W)``."""
    batch, _, h, w = image.shape
    assert batch == 1, "the official multi-scale module evaluates one image at a time"
    stride = int(crop_size * 2.0 / 3.0)
    scores = image.new_zeros(batch, len(labelset), h, w)
    for scale in scales:
        long_size = int(math.ceil(base_size * scale))
        if h > w:
            height, width = long_size, int(1.0 * w * long_size / h + 0.5)
            short_size = width
        else:
            width, height = long_size, int(1.0 * h * long_size / w + 0.5)
            short_size = height
        cur_img = F.interpolate(image, size=(height, width), **_UP)
        if long_size <= crop_size:
            pad_img = _pad_image(cur_img, mean, std, crop_size)
            outputs = _module_inference(net, pad_img, labelset, flip)[:, :, :height, :width]
        else:
            pad_img = _pad_image(cur_img, mean, std, crop_size) if short_size < crop_size else cur_img
            _, _, ph, pw = pad_img.shape
            h_grids = int(math.ceil(1.0 * (ph - crop_size) / stride)) + 1
            w_grids = int(math.ceil(1.0 * (pw - crop_size) / stride)) + 1
            outputs = image.new_zeros(batch, len(labelset), ph, pw)
            count_norm = image.new_zeros(batch, 1, ph, pw)
            for idh in range(h_grids):
                for idw in range(w_grids):
                    h0, w0 = idh * stride, idw * stride
                    h1, w1 = min(h0 + crop_size, ph), min(w0 + crop_size, pw)
                    crop_img = _pad_image(pad_img[:, :, h0:h1, w0:w1], mean, std, crop_size)
                    output = _module_inference(net, crop_img, labelset, flip)
                    outputs[:, :, h0:h1, w0:w1] += output[:, :, : h1 - h0, : w1 - w0]
                    count_norm[:, :, h0:h1, w0:w1] += 1
            outputs = (outputs / count_norm)[:, :, :height, :width]
        scores += F.interpolate(outputs, size=(h, w), **_UP)
    return scores


def official_window_count(h: int, w: int, crop: int, base: int, scales: Sequence[float]) -> int:
    """Windows the official module runs for an ``h x w`` image (each once more mirrored with flip)."""
    stride, n = int(crop * 2 / 3), 0
    for s in scales:
        long = math.ceil(base * s)
        hh, ww = (long, int(w * long / h + 0.5)) if h > w else (int(h * long / w + 0.5), long)
        if long <= crop:
            n += 1
            continue
        ph, pw = max(hh, crop), max(ww, crop)
        n += (math.ceil((ph - crop) / stride) + 1) * (math.ceil((pw - crop) / stride) + 1)
    return n
