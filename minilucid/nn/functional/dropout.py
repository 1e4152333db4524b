"""Dropout, DropBlock and one_hot.

Both dropouts multiply by a constant mask (drawn from ``minilucid.random``) scaled so the
expected activation is unchanged; the mask is a constant, so the gradient is the same mask.

DropBlock (Ghiasi et al., 2018) drops whole BxB squares instead of single values, because
neighbouring activations of a conv net are correlated and single drops are easily filled in.
Block corners are drawn with rate gamma = p / B^2 * (H W) / ((H - B + 1)(W - B + 1)) over the
positions where a whole block fits, so about a fraction p of the map is dropped.
"""

from __future__ import annotations

from minilucid import random
from minilucid.backend import get_array_module
from minilucid.nn.functional.conv import pad2d, window_view
from minilucid.tensor import Tensor


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each value with probability ``p`` and scale the rest by 1 / (1 - p)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    xp = get_array_module(x.data)
    keep = random.generator(xp).random(x.shape) >= p
    return x * Tensor._from_array((keep / (1 - p)).astype(x.dtype))


def drop_block_mask(shape, block_size: int, drop_prob: float, xp, dtype):
    """A (N, C, H, W) keep-mask with BxB blocks of zeros, scaled to mean 1."""
    n, c, h, w = shape
    block = min(block_size, h, w)
    valid_h, valid_w = h - block + 1, w - block + 1
    gamma = drop_prob / block**2 * (h * w) / (valid_h * valid_w)
    corners = (random.generator(xp).random((n, c, valid_h, valid_w)) < gamma).astype(dtype)
    # Grow each corner into a BxB block: a stride-1 max over BxB windows of the corners
    # padded by B-1 on every side; the top-left (H, W) of that map is the block mask.
    padded = pad2d(corners, block - 1)
    windows = window_view(padded, (block, block), 1, (h, w))  # (N, C, B, B, H, W)
    keep = 1 - windows.max(axis=(2, 3))
    # Scale to mean 1. An all-dropped mask stays all zeros whatever the scale, so the count
    # is clamped to 1 on the device rather than tested on the host (a GPU sync).
    keep *= keep.size / xp.maximum(keep.sum(), 1)
    return keep


def drop_block(x: Tensor, block_size: int = 7, drop_prob: float = 0.1, training: bool = True) -> Tensor:
    """DropBlock on x (N, C, H, W): drop BxB squares covering about ``drop_prob`` of it."""
    if x.ndim != 4:
        raise ValueError(f"drop_block expects input of shape (N, C, H, W), got {x.shape}")
    if not 0 <= drop_prob < 1:
        raise ValueError(f"drop_block: drop_prob must be in [0, 1), got {drop_prob}")
    if block_size < 1:
        raise ValueError(f"drop_block: block_size must be positive, got {block_size}")
    if not training or drop_prob == 0:
        return x
    mask = drop_block_mask(x.shape, block_size, drop_prob, get_array_module(x.data), x.dtype)
    return x * Tensor._from_array(mask)


def one_hot(labels, num_classes: int, dtype=None) -> Tensor:
    """(..., num_classes) float32 one-hot rows for integer ``labels``."""
    raw = labels.data if isinstance(labels, Tensor) else labels
    xp = get_array_module(raw)
    raw = xp.asarray(raw)
    if raw.dtype.kind not in "iu" and not (raw.size == 0 or (raw == raw.astype(int)).all()):
        raise ValueError(f"one_hot expects integer labels, got dtype {raw.dtype}")
    raw = raw.astype(int)
    if raw.size and (raw.min() < 0 or raw.max() >= num_classes):
        raise ValueError(
            f"one_hot: labels must be in [0, {num_classes}), got values from {int(raw.min())} to {int(raw.max())}"
        )
    out = xp.eye(num_classes, dtype=dtype or "float32")[raw]
    return Tensor._from_array(out)
