"""From raw output maps to boxes: darknet's decoding of a ``[yolo]`` layer.

Shapes: a raw map (N, A * V, H, W) is viewed as (N, A, V, H, W) and laid out per cell and
anchor as (N, H, W, A, V), V = [tx, ty, tw, th, obj, (iou,) classes...].

With grid sensitivity s = scale_x_y, the box of anchor (w_a, h_a) in cell (cx, cy) is

    x = (cx + sigmoid(tx) * s - (s - 1) / 2) * stride,    w = w_a * exp(tw)

(s > 1 lets the centre reach the cell's borders, which a plain sigmoid only approaches),
and the scores are sigmoid(obj) and sigmoid(class), independent of one another.
``decode_boxes`` is that formula once, for arrays (prediction) and Tensors (the loss).
"""

from __future__ import annotations

from typing import Any

import minilucid as lucid
from minilucid.backend import get_array_module
from minilucid.ops import stable_sigmoid

MAX_LOG_SCALE = 12.0  # exp(12) ~ 1.6e5 x the anchor: larger tw would only overflow


def split_anchors(raw: Any, num_anchors: int) -> Any:
    """(N, A * V, H, W) -> (N, H, W, A, V), for arrays and Tensors."""
    n, channels, h, w = raw.shape
    return raw.reshape(n, num_anchors, channels // num_anchors, h, w).transpose(0, 3, 4, 1, 2)


def decode_boxes(t: Any, cell_xy: Any, anchor_wh: Any, stride: int, scale_x_y: float) -> Any:
    """xyxy boxes (..., 4) in pixels from raw (..., 4) [tx, ty, tw, th]; ``cell_xy`` and
    ``anchor_wh`` (..., 2) broadcast against them. Works on arrays and Tensors."""
    tensor = isinstance(t, lucid.Tensor)
    m = lucid if tensor else get_array_module(t)
    sigmoid = lucid.sigmoid if tensor else stable_sigmoid
    centre = (sigmoid(t[..., 0:2]) * scale_x_y - (scale_x_y - 1) / 2 + cell_xy) * stride
    size = anchor_wh * m.exp(m.minimum(t[..., 2:4], MAX_LOG_SCALE))
    return m.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def grid(h: int, w: int, xp: Any, dtype: Any) -> Any:
    """(H, W, 1, 2) cell coordinates [column, row]."""
    cols, rows = xp.meshgrid(xp.arange(w, dtype=dtype), xp.arange(h, dtype=dtype))
    return xp.stack([cols, rows], axis=-1)[:, :, None, :]


def decode_level(raw: Any, anchors, stride: int, scale_x_y: float, iou_aware: bool = False) -> dict[str, Any]:
    """Decode one raw map (an array) into boxes and probabilities.

    Returns a dict of arrays: ``boxes`` (N, H, W, A, 4) as [cx, cy, w, h] in input pixels,
    ``xyxy`` (N, H, W, A, 4), ``objectness`` (N, H, W, A), ``class_probs`` (N, H, W, A, C)
    and, with the IoU branch, ``iou`` (N, H, W, A).
    """
    xp = get_array_module(raw)
    values = split_anchors(raw, len(anchors))
    _, h, w, _, _ = values.shape
    xyxy = decode_boxes(
        values[..., :4], grid(h, w, xp, raw.dtype), xp.asarray(anchors, dtype=raw.dtype), stride, scale_x_y
    )
    first_class = 6 if iou_aware else 5
    decoded = {
        "boxes": xp.concatenate([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], axis=-1),
        "xyxy": xyxy,
        "objectness": stable_sigmoid(values[..., 4]),
        "class_probs": stable_sigmoid(values[..., first_class:]),
    }
    if iou_aware:
        decoded["iou"] = stable_sigmoid(values[..., 5])
    return decoded
