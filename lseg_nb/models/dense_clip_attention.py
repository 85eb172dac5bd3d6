"""Last-block variants of a CLIP ViT used by the training-free dense-CLIP baselines (MaskCLIP, SCLIP, NACLIP,
ClearCLIP).

Every function works on batch-first tokens ``x`` ``(B, N, C)`` with the class token first and the ``h x w`` patch
tokens after it in row-major order, and on the last ``ResidualAttentionBlock`` of an open_clip
``VisionTransformer`` (``ln_1``, ``attn`` = ``torch.nn.MultiheadAttention`` with a packed ``in_proj_weight``,
``ln_2``, ``mlp``). Only the public weights of those modules are used; heads follow ``nn.MultiheadAttention``
(``C / num_heads`` channels each, scale ``head_dim ** -0.5``). Shapes: ``q``/``k``/``v`` ``(B, H, N, d)``,
attention weights ``(B, H, N, N)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_block(block: nn.Module) -> None:
    """Raise a clear ``ValueError`` unless ``block`` is a plain CLIP residual attention block.

    Needed: ``ln_1``/``ln_2``/``mlp`` and a self-attention ``nn.MultiheadAttention`` with packed q/k/v weights, no
    extra key/value biases, no LayerScale (the three reference implementations are defined for OpenAI-style CLIP
    ViTs, which have none).
    """
    attn = getattr(block, "attn", None)
    if not isinstance(attn, nn.MultiheadAttention) or not all(
        hasattr(block, m) for m in ("ln_1", "ln_2", "mlp")
    ):
        raise ValueError(
            f"{type(block).__name__} is not an open_clip ResidualAttentionBlock with nn.MultiheadAttention; "
            "dense-CLIP baselines support plain CLIP ViT towers (no custom/timm blocks)"
        )
    if attn.in_proj_weight is None or attn.bias_k is not None or attn.add_zero_attn:
        raise ValueError(
            "the attention must use packed q/k/v projections without bias_k/bias_v/zero attention"
        )
    for name in ("ls_1", "ls_2"):
        if not isinstance(getattr(block, name, nn.Identity()), nn.Identity):
            raise ValueError("CLIP towers with LayerScale are not supported by the dense-CLIP baselines")
    if hasattr(block, "ln_1_kv"):
        raise ValueError("cross-attention blocks are not supported by the dense-CLIP baselines")


def qkv_heads(attn: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Project ``x`` ``(B, N, C)`` with the packed in-projection -> ``q, k, v`` each ``(B, H, N, C / H)``."""
    b, n, c = x.shape
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return tuple(t.reshape(b, n, attn.num_heads, c // attn.num_heads).transpose(1, 2) for t in (q, k, v))


def head_scale(attn: nn.MultiheadAttention) -> float:
    """The dot-product scale ``head_dim ** -0.5`` of ``nn.MultiheadAttention``."""
    return (attn.embed_dim // attn.num_heads) ** -0.5


def attend(attn: nn.MultiheadAttention, weights: Tensor, v: Tensor) -> Tensor:
    """Weights ``(B, H, N, N)`` applied to values ``(B, H, N, d)``, heads merged, output projection -> ``(B, N, C)``."""
    b, h, n, d = v.shape
    out = (weights @ v).transpose(1, 2).reshape(b, n, h * d)
    return attn.out_proj(out)


def correlative_weights(q: Tensor, k: Tensor, scale: float) -> Tensor:
    """SCLIP's correlative self-attention: ``softmax(q q^T * s) + softmax(k k^T * s)`` (rows sum to 2)."""
    return F.softmax(q @ q.transpose(-2, -1) * scale, dim=-1) + F.softmax(
        k @ k.transpose(-2, -1) * scale, dim=-1
    )


def gaussian_neighbourhood(h: int, w: int, std: float) -> Tensor:
    """NACLIP's additive neighbourhood term ``(1 + h*w, 1 + h*w)`` for a class token plus an ``h x w`` grid.

    Patch ``p`` at row/column ``(r_p, c_p)`` gets ``exp(-((r_p - r_q)^2 + (c_p - c_q)^2) / (2 std^2))`` towards
    patch ``q``; the class token's row and column are 0. NACLIP builds the same matrix by convolving one-hot maps
    with a ``(2h-1) x (2w-1)`` Gaussian window; the closed form is exact and independent of the grid size.
    """
    if std <= 0:
        raise ValueError(f"the Gaussian std must be > 0, got {std}")
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    r, c = rows.reshape(-1).float(), cols.reshape(-1).float()
    # Squared distances from coordinate differences: exact for integer positions (cdist's sqrt-then-square is
    # not), and exportable to ONNX (cdist has no ONNX lowering).
    dist2 = (r[:, None] - r[None, :]).square() + (c[:, None] - c[None, :]).square()
    omega = torch.exp(-dist2 / (2 * std**2))
    return F.pad(omega, (1, 0, 1, 0))


def self_self_weights(q: Tensor, scale: float) -> Tensor:
    """ClearCLIP's self-self (query-query) attention: ``softmax(q q^T * s)`` (rows sum to 1).

    ``s`` is the block's own ``head_dim ** -0.5``: the reference uses no other temperature
    (mc-lan/ClearCLIP@ad68a40 ``open_clip/transformer.py:594,614-616``).
    """
    return F.softmax(q @ q.transpose(-2, -1) * scale, dim=-1)


def neighbourhood_weights(k: Tensor, omega: Tensor, scale: float) -> Tensor:
    """NACLIP's attention: ``softmax(k k^T * s + omega)`` with ``omega`` from :func:`gaussian_neighbourhood`."""
    return F.softmax(k @ k.transpose(-2, -1) * scale + omega.to(k), dim=-1)


def maskclip_block(block: nn.Module, x: Tensor) -> Tensor:
    """MaskCLIP's last block: the value path replaces attention, residual and FFN are kept.

    ``v = x + out_proj(W_v ln_1(x) + b_v)`` then ``v + mlp(ln_2(v))``, exactly as the reference's
    ``TransformerEncoderLayer.forward(return_qkv=True)`` (``v += x; v = ffn(norm2(v), identity=v)``).
    """
    attn = block.attn
    c = attn.embed_dim
    value = F.linear(block.ln_1(x), attn.in_proj_weight[2 * c :], _slice(attn.in_proj_bias, 2 * c))
    v = x + attn.out_proj(value)
    return v + block.mlp(block.ln_2(v))


def sclip_block(block: nn.Module, x: Tensor) -> Tensor:
    """SCLIP's last block: correlative self-attention on ``ln_1(x)``, residual and FFN kept (as its reference)."""
    q, k, v = qkv_heads(block.attn, block.ln_1(x))
    x = x + attend(block.attn, correlative_weights(q, k, head_scale(block.attn)), v)
    return x + block.mlp(block.ln_2(x))


def naclip_block(block: nn.Module, x: Tensor, grid: tuple[int, int], std: float) -> Tensor:
    """NACLIP's last block ("reduced" architecture): neighbourhood k-k attention only, no residual, no FFN."""
    _, k, v = qkv_heads(block.attn, block.ln_1(x))
    omega = gaussian_neighbourhood(grid[0], grid[1], std).to(device=x.device)
    return attend(block.attn, neighbourhood_weights(k, omega, head_scale(block.attn)), v)


def clearclip_block(block: nn.Module, x: Tensor) -> Tensor:
    """ClearCLIP's last block: q-q attention on ``ln_1(x)`` through the output projection; no residual, no FFN.

    ``out_proj(softmax(q q^T s) v)``, as the reference ``VisionTransformer.forward`` with ``model_type='ClearCLIP'``
    and ``ignore_residual=True`` (mc-lan/ClearCLIP@ad68a40 ``open_clip/transformer.py:523-536``): the attention
    output alone replaces the block's output (the block's own forward still runs there, its result is discarded);
    ``ln_post`` and ``proj`` follow as for every method.
    """
    q, _, v = qkv_heads(block.attn, block.ln_1(x))
    return attend(block.attn, self_self_weights(q, head_scale(block.attn)), v)


def _slice(bias: Tensor | None, start: int) -> Tensor | None:
    return None if bias is None else bias[start:]
