"""From raw output maps to boxes: darknet's decoding of a ``[yolo]`` layer.

Shapes: a raw map (N, A * V, H, W) is viewed as (N, A, V, H, W) and laid out per cell and
anchor as (N, H, W, A, V), V = [tx, ty, tw, th, obj, (iou,) classes...].

With grid sensitivity s = scale_x_y, the box of anchor (w_a, h_a) in cell (cx, cy) is

    x = (cx + sigmoid(tx) * s - (s - 1) / 2) * stride,    w = w_a * exp(tw)

(s > 1 lets the centre reach the cell's borders, which a plain sigmoid only approaches),
and the scores are sigmoid(obj) and sigmoid(class), independent of one another.
``cell_offset`` (grid sensitivity) and ``decode_boxes`` are that formula once, for arrays
(prediction) and Tensors (the loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minilucid as lucid
from minilucid import backend
from minilucid.backend import get_array_module
from minilucid.ops import stable_sigmoid
from yolov4.boxes import xyxy_to_xywh

MAX_LOG_SCALE = 12.0  # exp(12) ~ 1.6e5 x the anchor: larger tw would only overflow


def split_anchors(raw: Any, num_anchors: int) -> Any:
    """(N, A * V, H, W) -> (N, H, W, A, V), for arrays and Tensors."""
    n, channels, h, w = raw.shape
    return raw.reshape(n, num_anchors, channels // num_anchors, h, w).transpose(0, 3, 4, 1, 2)


def cell_offset(t_xy: Any, scale_x_y: float) -> Any:
    """The centre's offset inside its cell from raw (..., 2) [tx, ty]: sigmoid(t) * s - (s - 1) / 2,
    in (-(s - 1) / 2, (s + 1) / 2) (grid sensitivity). Works on arrays and Tensors."""
    sigmoid = lucid.sigmoid if isinstance(t_xy, lucid.Tensor) else stable_sigmoid
    return sigmoid(t_xy) * scale_x_y - (scale_x_y - 1) / 2


def decode_boxes(t: Any, cell_xy: Any, anchor_wh: Any, stride: int, scale_x_y: float) -> Any:
    """xyxy boxes (..., 4) in pixels from raw (..., 4) [tx, ty, tw, th]; ``cell_xy`` and
    ``anchor_wh`` (..., 2) broadcast against them. Works on arrays and Tensors."""
    m = lucid if isinstance(t, lucid.Tensor) else get_array_module(t)
    centre = (cell_offset(t[..., 0:2], scale_x_y) + cell_xy) * stride
    size = anchor_wh * m.exp(m.minimum(t[..., 2:4], MAX_LOG_SCALE))
    return m.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def grid(h: int, w: int, xp: Any, dtype: Any) -> Any:
    """(H, W, 1, 2) cell coordinates [column, row]."""
    cols, rows = xp.meshgrid(xp.arange(w, dtype=dtype), xp.arange(h, dtype=dtype))
    return xp.stack([cols, rows], axis=-1)[:, :, None, :]


def cached_grid(h: int, w: int, device: str, dtype: Any) -> Any:
    """``grid(h, w)`` on ``device``, made (and copied there) once per size and dtype."""
    dtype = np.dtype(dtype)
    return backend.constant(("decode grid", h, w, dtype.str), device, lambda: grid(h, w, np, dtype))


def cached_anchors(anchors, device: str, dtype: Any) -> Any:
    """(A, 2) anchor sizes on ``device``, made (and copied there) once per anchor set and dtype."""
    dtype = np.dtype(dtype)
    key = ("decode anchors", tuple(map(tuple, anchors)), dtype.str)
    return backend.constant(key, device, lambda: np.asarray(anchors, dtype=dtype))


def decode_level(raw: Any, anchors, stride: int, scale_x_y: float, iou_branch: bool = False) -> dict[str, Any]:
    """Decode one raw map (an array) into boxes and probabilities.

    Returns a dict of arrays: ``boxes`` (N, H, W, A, 4) as [cx, cy, w, h] in input pixels,
    ``xyxy`` (N, H, W, A, 4), ``objectness`` (N, H, W, A), ``class_probs`` (N, H, W, A, C)
    and, with the IoU branch, ``iou`` (N, H, W, A). On the GPU it copies nothing to or from
    the host: the grid and the anchors are cached there.
    """
    device = backend.device_of(raw)
    values = split_anchors(raw, len(anchors))
    _, h, w, _, _ = values.shape
    cells, anchor_wh = cached_grid(h, w, device, raw.dtype), cached_anchors(anchors, device, raw.dtype)
    xyxy = decode_boxes(values[..., :4], cells, anchor_wh, stride, scale_x_y)
    first_class = 6 if iou_branch else 5
    decoded = {
        "boxes": xyxy_to_xywh(xyxy),
        "xyxy": xyxy,
        "objectness": stable_sigmoid(values[..., 4]),
        "class_probs": stable_sigmoid(values[..., first_class:]),
    }
    if iou_branch:
        decoded["iou"] = stable_sigmoid(values[..., 5])
    return decoded
