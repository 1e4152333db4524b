"""From raw output maps to boxes: darknet's decoding of a ``[yolo]`` layer.

Shapes: a raw map (N, A * V, H, W) is viewed as (N, A, V, H, W) and laid out per cell and
anchor as (N, H, W, A, V), V = [tx, ty, tw, th, obj, (iou,) classes...].

With grid sensitivity s = scale_x_y, the box of anchor (w_a, h_a) in cell (cx, cy) is

    x = (cx + sigmoid(tx) * s - (s - 1) / 2) * stride,    w = w_a * exp(tw)

(s > 1 lets the centre reach the cell's borders, which a plain sigmoid only approaches),
and the scores are sigmoid(obj) and sigmoid(class), independent of one another.
"""

from __future__ import annotations

from typing import Any

from minilucid.backend import get_array_module
from minilucid.ops import stable_sigmoid

MAX_LOG_SCALE = 12.0  # exp(12) ~ 1.6e5 x the anchor: larger tw would only overflow


def split_anchors(raw: Any, num_anchors: int) -> Any:
    """(N, A * V, H, W) -> (N, H, W, A, V)."""
    n, channels, h, w = raw.shape
    return raw.reshape(n, num_anchors, channels // num_anchors, h, w).transpose(0, 3, 4, 1, 2)


def decode_level(raw: Any, anchors, stride: int, scale_x_y: float, iou_aware: bool = False) -> dict[str, Any]:
    """Decode one raw map (an array) into boxes and probabilities.

    Returns a dict of arrays: ``boxes`` (N, H, W, A, 4) as [cx, cy, w, h] in input pixels,
    ``objectness`` (N, H, W, A) and ``class_probs`` (N, H, W, A, C).
    """
    xp = get_array_module(raw)
    values = split_anchors(raw, len(anchors))
    _, h, w, _, _ = values.shape
    anchors = xp.asarray(anchors, dtype=raw.dtype)  # (A, 2)
    cell_x = xp.arange(w, dtype=raw.dtype).reshape(1, 1, w, 1)
    cell_y = xp.arange(h, dtype=raw.dtype).reshape(1, h, 1, 1)
    offset = (scale_x_y - 1) / 2
    cx = (cell_x + stable_sigmoid(values[..., 0]) * scale_x_y - offset) * stride
    cy = (cell_y + stable_sigmoid(values[..., 1]) * scale_x_y - offset) * stride
    bw = anchors[:, 0] * xp.exp(xp.minimum(values[..., 2], MAX_LOG_SCALE))
    bh = anchors[:, 1] * xp.exp(xp.minimum(values[..., 3], MAX_LOG_SCALE))
    first_class = 6 if iou_aware else 5
    return {
        "boxes": xp.stack([cx, cy, bw, bh], axis=-1),
        "objectness": stable_sigmoid(values[..., 4]),
        "class_probs": stable_sigmoid(values[..., first_class:]),
    }
