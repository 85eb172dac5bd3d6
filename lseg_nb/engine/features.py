"""Per-pixel features for 3D scene understanding and robot mapping: named recipes, storage, a manifest, loading.

Downstream users (OpenScene, VLMaps, ...) run LSeg as a per-pixel CLIP-space feature extractor and fuse the
features across views; their results depend on how the image was resized and padded before the network and on the
resolution the features are kept at (openscene issues #9/#49/#57: a user's own extraction gave 31 instead of 49
mIoU). :func:`extract_features` implements their recipes by name:

``native``
    lseg_nb's own single pass: the image zero-padded (the normalised mean colour) at the bottom/right to the
    backbone's size multiple, one forward pass, the embedding grid cropped back to the image (LSeg: ``H/2 x W/2``;
    dense-CLIP: ``H/p x W/p``) -- exactly the embeddings :func:`~lseg_nb.engine.inference.predict_logits`
    (single mode) scores.
``openscene``
    The official demo checkpoint (``demo_e200.ckpt``, ViT-L/16, mean = std = 0.5) as OpenScene extracts it
    (pengsongyou/lseg_feature_extraction ``lseg_feature_extraction.py`` L75-L85: one scale, ``flip=True``,
    ``crop_size = base_size = 2 * long side``). In ``LSeg_MultiEvalModule.forward``
    (``additional_utils/models.py`` L70-L103) the long side becomes ``2L``, so the image is resized (bilinear,
    ``align_corners=True``, L18/L91) to exactly ``2H x 2W``, padded (L95, ``pad_image`` L158: the value
    ``-mean/std``, i.e. black) at the bottom/right to the ``2L x 2L`` square, run with its mirror
    (``module_inference`` L142-L147: the mirrored image's features flipped back and *added*), and the stride-2
    embedding grid is cropped to ``[:H, :W]`` (L99) -- features at the original image resolution. The network
    returns the unit embeddings before the head's upsampling (``modules/models/lseg_net.py`` L185-L195);
    ``fusion_util.py`` L40 stores them as float16.
``vlmaps``
    VLMaps' ``get_lseg_feat`` (vlmaps/vlmaps ``vlmaps/utils/lseg_utils.py`` L21-L95, called with ``crop_size=480,
    base_size=520`` from ``vlmaps/map/vlmap_builder.py`` L230-L231): long side resized to ``base_size`` (bilinear,
    ``align_corners=True``), padded with black to at least one ``crop_size`` window, ``crop_size`` windows at
    stride ``int(2/3 crop_size)`` (the last ones clipped to the image and padded to a full window), each window's
    embeddings upsampled x2 (``lseg_net.py`` L333/L351, bilinear ``align_corners=True``) and averaged over the
    overlaps, cropped to the *resized* image (the resize back is commented out, L94-L95).

Deviations, all recipes: the result is re-normalised to unit length per pixel (the references keep a sum of two
unit vectors, or ``logit_scale`` times an average; the direction, hence every cosine ranking and nearest-text map,
is the same); computation is float32 (the references multiply in float16); inputs are padded further to the
model's size multiple when a recipe's square or window is not one. Features are the head's embeddings *before* any
regularisation block: their nearest-text map equals the model's argmax only for models without one
(``head_block="none"``, as the official checkpoints).

``size=(h, w)`` resizes the features with the model's own resize rule (``model.upsample_logits``: LSeg bilinear
``align_corners=True``, dense-CLIP ``False``) and re-normalises them; scoring them against texts then equals
resizing the cosine maps (resizing is linear; normalisation only scales each pixel). ``native`` resizes as the
model's logits are resized (the padded grid to the padded input, cropped to the image), so ``size=(H, W)`` gives
exactly the pixel embeddings behind :func:`~lseg_nb.engine.inference.predict_logits`' single-pass prediction.

Storing and loading them, with a manifest: :mod:`lseg_nb.engine.feature_store`; nearest-text maps from stored
features need no model (:func:`lseg_nb.diagnostics.nearest_text_map`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lseg_nb.data.transforms import normalize_image
from lseg_nb.engine.inference import eval_mode, predict_logits
from lseg_nb.utils.device import model_device
from lseg_nb.utils.errors import InputError

RecipeName = Literal["native", "openscene", "vlmaps"]
_ALIGNED = dict(mode="bilinear", align_corners=True)  # the references' resize of the input image


@dataclass(frozen=True)
class FeatureRecipe:
    """How an image is resized/padded/windowed before the network (see the module docstring for each name).

    ``flip``: add the mirrored image's features (flipped back) before normalising. ``base_size``/``crop_size``/
    ``stride_ratio``: the ``vlmaps`` long side, window and window stride (ignored by the other recipes).
    """

    name: RecipeName = "native"
    flip: bool = False
    base_size: int = 520
    crop_size: int = 480
    stride_ratio: float = 2 / 3

    def __post_init__(self) -> None:
        if self.name not in RECIPES_DOC:
            raise InputError(f"feature recipe {self.name!r} is not one of {sorted(RECIPES_DOC)}")
        if self.base_size < 1 or self.crop_size < 1 or not 0 < self.stride_ratio <= 1:
            raise InputError(
                f"feature recipe {self.name!r}: need base_size, crop_size >= 1 and 0 < stride_ratio <= 1, got "
                f"{self.base_size}, {self.crop_size}, {self.stride_ratio}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields plus the recipe's one-line description (for manifests)."""
        return asdict(self) | {"description": RECIPES_DOC[self.name]}


RECIPES_DOC = {
    "native": "zero-pad (mean colour) to the size multiple, one pass, embedding grid cropped to the image",
    "openscene": "resize x2 (bilinear, align_corners), pad black to the 2L square, + mirrored pass, "
    "stride-2 grid cropped to the original H x W (OpenScene / lseg_feature_extraction)",
    "vlmaps": "long side to base_size (bilinear, align_corners), pad black to crop_size, crop_size windows at "
    "stride 2/3, embeddings upsampled x2 and averaged, cropped to the resized image (VLMaps get_lseg_feat)",
}
RECIPES: dict[str, FeatureRecipe] = {
    "native": FeatureRecipe("native"),
    "openscene": FeatureRecipe("openscene", flip=True),
    "vlmaps": FeatureRecipe("vlmaps"),
}


def feature_recipe(recipe: str | FeatureRecipe) -> FeatureRecipe:
    """A recipe by name (``native``, ``openscene``, ``vlmaps``) or the given :class:`FeatureRecipe`."""
    if isinstance(recipe, FeatureRecipe):
        return recipe
    if recipe not in RECIPES:
        raise InputError(f"unknown feature recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[recipe]


def model_input(model: nn.Module, image: Tensor | np.ndarray) -> Tensor:
    """One image as a normalised batch ``(1, 3, H, W)`` float32: an RGB uint8 array ``(H, W, 3)`` is normalised
    with the model's ``config.mean/std``; a float tensor ``(3, H, W)`` or ``(1, 3, H, W)`` is taken as normalised."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(
                f"image arrays must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}; pass a normalised "
                "float tensor (3, H, W) otherwise"
            )
        x = (
            torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
        )  # a copy: inputs may be read-only
        return normalize_image(x, model.config.mean, model.config.std).unsqueeze(0)
    if not isinstance(image, Tensor) or not image.is_floating_point():
        raise InputError("image must be an RGB uint8 array (H, W, 3) or a normalised float tensor (3, H, W)")
    x = image.unsqueeze(0) if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise InputError(f"one image (3, H, W) or (1, 3, H, W) is needed, got {tuple(image.shape)}")
    return x.float()


def _pad(x: Tensor, h: int, w: int, value: Tensor | None) -> Tensor:
    """Pad bottom/right to ``h x w``: with 0 (``value=None``) or a per-channel value ``(3,)``."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    out = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)))
    if value is not None:
        out[..., x.shape[-2] :, :] = value.view(3, 1, 1)
        out[..., :, x.shape[-1] :] = value.view(3, 1, 1)
    return out


def _black(model: nn.Module, x: Tensor) -> Tensor:
    """The normalised value of a black pixel, ``-mean/std`` (the references' ``pad_image``)."""
    mean = torch.as_tensor(model.config.mean, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(model.config.std, dtype=x.dtype, device=x.device)
    return -mean / std


def _up(n: int, m: int) -> int:
    return math.ceil(n / m) * m


def _embed(model: nn.Module, x: Tensor, flip: bool) -> Tensor:
    """Embeddings ``(1, D, h, w)`` of ``x`` (sides multiples of the model's size multiple), plus those of its mirror
    flipped back when ``flip`` (a sum of two unit vectors per pixel, as the OpenScene reference)."""
    emb = model.encode_image(x).float()
    if flip:
        emb = emb + model.encode_image(x.flip(-1)).float().flip(-1)
    return emb


def _grid_crop(emb: Tensor, padded: tuple[int, int], valid: tuple[int, int]) -> Tensor:
    """Crop an embedding grid of a ``padded`` input to the cells covering its top-left ``valid`` region."""
    gh = math.ceil(valid[0] * emb.shape[-2] / padded[0])
    gw = math.ceil(valid[1] * emb.shape[-1] / padded[1])
    return emb[..., :gh, :gw]


def _resize(model: nn.Module, feats: Tensor, size: tuple[int, int] | None) -> Tensor:
    return feats if size is None else model.upsample_logits(feats, size)


def _native(model: nn.Module, x: Tensor, r: FeatureRecipe, size: tuple[int, int] | None) -> Tensor:
    h, w = x.shape[-2:]
    m = model.size_multiple
    padded = (_up(h, m), _up(w, m))
    emb = _embed(model, _pad(x, *padded, None), r.flip)
    if size is None:
        return _grid_crop(emb, padded, (h, w))
    # as the logits: the padded grid resized to the padded input, cropped to the image (resizing the cropped grid
    # instead would sample other positions), then resized to ``size``
    return _resize(model, model.upsample_logits(emb, padded)[..., :h, :w], None if size == (h, w) else size)


def _openscene(model: nn.Module, x: Tensor, r: FeatureRecipe, size: tuple[int, int] | None) -> Tensor:
    h, w = x.shape[-2:]
    # crop_size = base_size = 2L makes the reference's resized size exactly (2H, 2W)
    xs = F.interpolate(x, size=(2 * h, 2 * w), **_ALIGNED)
    side = _up(2 * max(h, w), model.size_multiple)
    emb = _embed(model, _pad(xs, side, side, _black(model, x)), r.flip)
    return _resize(model, _grid_crop(emb, (side, side), (2 * h, 2 * w)), size)


def _vlmaps(model: nn.Module, x: Tensor, r: FeatureRecipe, size: tuple[int, int] | None) -> Tensor:
    h, w = x.shape[-2:]
    long = r.base_size
    height, width = (long, int(w * long / h + 0.5)) if h > w else (int(h * long / w + 0.5), long)
    xs = F.interpolate(x, size=(height, width), **_ALIGNED)
    crop, black = r.crop_size, _black(model, x)
    window = _up(crop, model.size_multiple)
    xp = _pad(xs, max(height, crop), max(width, crop), black)
    ph, pw = xp.shape[-2:]
    stride = int(crop * r.stride_ratio)
    total = x.new_zeros(1, model.text_dim, ph, pw)
    count = x.new_zeros(1, 1, ph, pw)
    for h0 in (i * stride for i in range(math.ceil((ph - crop) / stride) + 1)):
        for w0 in (j * stride for j in range(math.ceil((pw - crop) / stride) + 1)):
            h1, w1 = min(h0 + crop, ph), min(w0 + crop, pw)
            tile = _pad(xp[..., h0:h1, w0:w1], window, window, black)
            emb = model.upsample_logits(_embed(model, tile, r.flip), (window, window))
            total[..., h0:h1, w0:w1] += emb[..., : h1 - h0, : w1 - w0]
            count[..., h0:h1, w0:w1] += 1
    return _resize(model, (total / count)[..., :height, :width], size)


_RECIPE_FNS = {"native": _native, "openscene": _openscene, "vlmaps": _vlmaps}


def extract_features(
    model: nn.Module,
    image: Tensor | np.ndarray,
    recipe: str | FeatureRecipe = "native",
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Unit per-pixel embeddings ``(D, h, w)`` float32 (on the model's device) of one image by a named recipe.

    Args:
        model: an lseg_nb model (LSeg or dense-CLIP; anything with ``encode_image``, ``upsample_logits``,
            ``size_multiple``, ``text_dim`` and ``config.mean/std``); run in eval mode, without gradients.
        image: RGB uint8 ``(H, W, 3)`` or a tensor ``(3, H, W)`` normalised with the model's mean/std.
        recipe: ``"native"``, ``"openscene"``, ``"vlmaps"`` or a :class:`FeatureRecipe` (module docstring).
        size: ``(h, w)`` to resize the features to (the model's resize rule, then re-normalised); ``None``
            keeps the recipe's resolution (native: the embedding grid; openscene: the image; vlmaps: the resized
            image).
    """
    r = feature_recipe(recipe)
    if size is not None and (len(size) != 2 or min(int(s) for s in size) < 1):
        raise InputError(f"size must be (height, width) with both >= 1, got {size}")
    x = model_input(model, image).to(model_device(model))
    size = None if size is None else (int(size[0]), int(size[1]))
    with eval_mode(model), torch.inference_mode():
        return F.normalize(_RECIPE_FNS[r.name](model, x, r, size)[0], dim=0)


def model_label_map(model: nn.Module, image: Tensor | np.ndarray, text_emb: Tensor) -> Tensor:
    """The model's own prediction ``(H, W)`` int64 (CPU) for one image: argmax of its dense single-pass logits.

    The one call into dense inference in this module (to compare stored features with the model's output).
    """
    x = model_input(model, image).to(model_device(model))
    return predict_logits(model, x, text_emb)[0].argmax(0).cpu()
