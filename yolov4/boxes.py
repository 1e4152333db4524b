"""Boxes: format conversions, IoU and its variants, and non-maximum suppression.

Boxes are (..., 4) arrays or Tensors, ``xyxy`` = [x1, y1, x2, y2] or ``xywh`` =
[cx, cy, w, h], in pixels. Every function works on NumPy/CuPy arrays (evaluation) and on
Tensors (the loss, with gradients) alike: it picks ``m``, the module with the right
``maximum``/``minimum``/``clip``/``arctan``, from its input.

For boxes A (prediction) and B (ground truth), with C their smallest enclosing box:
    IoU  = |A n B| / |A u B|
    GIoU = IoU - (|C| - |A u B|) / |C|                          (Rezatofighi et al. 2019)
    DIoU = IoU - rho^2 / c^2, rho the distance between centres, c the diagonal of C
    CIoU = DIoU - alpha v, v = 4 / pi^2 (atan(wB / hB) - atan(wA / hA))^2,
           alpha = v / ((1 - IoU) + v), held constant in backward  (Zheng et al. 2020)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import minilucid as lucid
from minilucid.backend import as_numpy, get_array_module

KINDS = ("iou", "giou", "diou", "ciou")
EPS = 1e-9  # keeps empty and zero-area boxes finite


def _module(x: Any):
    return lucid if isinstance(x, lucid.Tensor) else get_array_module(x)


def _stack(parts: list, like: Any) -> Any:
    return _module(like).stack(parts, axis=-1)


def xywh_to_xyxy(boxes: Any) -> Any:
    """[cx, cy, w, h] -> [x1, y1, x2, y2]."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return _stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], boxes)


def xyxy_to_xywh(boxes: Any) -> Any:
    """[x1, y1, x2, y2] -> [cx, cy, w, h]."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def iou(a: Any, b: Any, kind: str = "iou") -> Any:
    """Element-wise IoU (or GIoU, DIoU, CIoU) of xyxy boxes ``a`` and ``b`` (broadcasting)."""
    if kind not in KINDS:
        raise ValueError(f"iou: kind must be one of {KINDS}, got {kind!r}")
    m = _module(a)
    ax1, ay1, ax2, ay2 = (a[..., i] for i in range(4))
    bx1, by1, bx2, by2 = (b[..., i] for i in range(4))
    aw, ah, bw, bh = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    inter_w = m.clip(m.minimum(ax2, bx2) - m.maximum(ax1, bx1), 0, None)
    inter_h = m.clip(m.minimum(ay2, by2) - m.maximum(ay1, by1), 0, None)
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    overlap = inter / (union + EPS)
    if kind == "iou":
        return overlap
    enclose_w = m.maximum(ax2, bx2) - m.minimum(ax1, bx1)
    enclose_h = m.maximum(ay2, by2) - m.minimum(ay1, by1)
    if kind == "giou":
        enclose = enclose_w * enclose_h
        return overlap - (enclose - union) / (enclose + EPS)
    rho2 = ((ax1 + ax2 - bx1 - bx2) ** 2 + (ay1 + ay2 - by1 - by2) ** 2) / 4
    c2 = enclose_w**2 + enclose_h**2
    diou = overlap - rho2 / (c2 + EPS)
    if kind == "diou":
        return diou
    v = (4 / math.pi**2) * (m.arctan(bw / (bh + EPS)) - m.arctan(aw / (ah + EPS))) ** 2
    alpha = v / ((1 - overlap) + v + EPS)
    if isinstance(alpha, lucid.Tensor):
        alpha = alpha.detach()  # a weight, not a path for gradients (as the CIoU paper)
    return diou - alpha * v


def pairwise_iou(a: Any, b: Any, kind: str = "iou") -> Any:
    """(N, M) IoU (or a variant) of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    return iou(a[:, None, :], b[None, :, :], kind)


def _center_distance_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """rho^2 / c^2 of DIoU, for a (4,) box against b (K, 4)."""
    rho2 = ((a[0] + a[2] - b[:, 0] - b[:, 2]) ** 2 + (a[1] + a[3] - b[:, 1] - b[:, 3]) ** 2) / 4
    cw = np.maximum(a[2], b[:, 2]) - np.minimum(a[0], b[:, 0])
    ch = np.maximum(a[3], b[:, 3]) - np.minimum(a[1], b[:, 1])
    return rho2 / (cw**2 + ch**2 + EPS)


def nms(
    boxes: Any,
    scores: Any,
    iou_thresh: float = 0.45,
    kind: str = "diou",
    beta: float = 0.6,
    classes: Any = None,
    max_det: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    The best remaining box suppresses every other box (of the same class, when ``classes``
    is given) whose overlap exceeds ``iou_thresh``: overlap = IoU for ``"greedy"``, and
    IoU - (rho^2 / c^2)^beta for ``"diou"`` (DIoU-NMS: a box whose centre is far away
    survives even with a large IoU, which keeps neighbours in a crowd). ``max_det`` keeps
    at most that many, the best.
    """
    if kind not in ("diou", "greedy"):
        raise ValueError(f"nms: kind must be 'diou' or 'greedy', got {kind!r}")
    boxes, scores = as_numpy(boxes).reshape(-1, 4), as_numpy(scores).reshape(-1)
    labels = None if classes is None else as_numpy(classes).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size and (max_det is None or len(kept) < max_det):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        overlap = iou(boxes[best][None], boxes[rest])
        if kind == "diou":
            overlap = overlap - _center_distance_ratio(boxes[best], boxes[rest]) ** beta
        suppressed = overlap > iou_thresh
        if labels is not None:
            suppressed &= labels[rest] == labels[best]
        order = rest[~suppressed]
    return np.asarray(kept, dtype=np.int64)
