"""Boxes: format conversions, overlaps (IoU and its variants), label rows, and non-maximum
suppression with its settings (``NMSSettings``): every box computation of the detector, in
one place.

Boxes are (..., 4) arrays or Tensors, ``xyxy`` = [x1, y1, x2, y2] or ``xywh`` =
[cx, cy, w, h], in pixels. Every function on boxes works on NumPy/CuPy arrays (evaluation)
and on Tensors (the loss, with gradients) alike: it picks ``m``, the module with the right
``maximum``/``minimum``/``clip``/``arctan``, from its input. Label rows are what datasets
and augmentations carry: (M, 5) float64 arrays [class_id, cx, cy, w, h] (or, where a
function says so, [class_id, x1, y1, x2, y2]).

For boxes A (prediction) and B (ground truth), with C their smallest enclosing box:
    IoU  = |A n B| / |A u B|
    GIoU = IoU - (|C| - |A u B|) / |C|                          (Rezatofighi et al. 2019)
    DIoU = IoU - rho^2 / c^2, rho the distance between centres, c the diagonal of C
    CIoU = DIoU - alpha v, v = 4 / pi^2 (atan(wB / hB) - atan(wA / hA))^2,
           alpha = v / ((1 - IoU) + v), held constant in backward  (Zheng et al. 2020)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

import minilucid as lucid
from minilucid.backend import as_numpy, get_array_module
from yolov4.model_config import NMS_KINDS

KINDS = ("iou", "giou", "diou", "ciou")
EPS = 1e-9  # keeps empty and zero-area boxes finite


def _module(x: Any):
    return lucid if isinstance(x, lucid.Tensor) else get_array_module(x)


def _stack(parts: list, like: Any) -> Any:
    return _module(like).stack(parts, axis=-1)


def xywh_to_xyxy(boxes: Any) -> Any:
    """[cx, cy, w, h] -> [x1, y1, x2, y2]."""
    cx, cy, w, h = _corners(boxes)
    return _stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], boxes)


def xyxy_to_xywh(boxes: Any) -> Any:
    """[x1, y1, x2, y2] -> [cx, cy, w, h]."""
    x1, y1, x2, y2 = _corners(boxes)
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def _corners(boxes: Any) -> tuple:
    """The four columns of (..., 4) boxes, each (...)."""
    return tuple(boxes[..., i] for i in range(4))


def _intersection(m: Any, a: tuple, b: tuple) -> Any:
    """Overlap area of boxes given as corner columns (x1, y1, x2, y2); 0 where they do not meet."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter_w = m.clip(m.minimum(ax2, bx2) - m.maximum(ax1, bx1), 0, None)
    inter_h = m.clip(m.minimum(ay2, by2) - m.maximum(ay1, by1), 0, None)
    return inter_w * inter_h


def intersection(a: Any, b: Any) -> Any:
    """Element-wise area of the overlap of xyxy boxes ``a`` and ``b`` (broadcasting); 0 where
    they do not meet."""
    return _intersection(_module(a), _corners(a), _corners(b))


def _enclosing_size(m: Any, a: tuple, b: tuple) -> tuple[Any, Any]:
    """(width, height) of the smallest box enclosing both, from corner columns."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    return m.maximum(ax2, bx2) - m.minimum(ax1, bx1), m.maximum(ay2, by2) - m.minimum(ay1, by1)


def _centre_distance_ratio(a: tuple, b: tuple, enclose_w: Any, enclose_h: Any) -> Any:
    """rho^2 / c^2 of DIoU, from corner columns: the squared distance between the centres over
    the squared diagonal of the enclosing box (of size ``enclose_w`` x ``enclose_h``)."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    rho2 = ((ax1 + ax2 - bx1 - bx2) ** 2 + (ay1 + ay2 - by1 - by2) ** 2) / 4
    return rho2 / (enclose_w**2 + enclose_h**2 + EPS)


def iou(a: Any, b: Any, kind: str = "iou") -> Any:
    """Element-wise IoU (or GIoU, DIoU, CIoU) of xyxy boxes ``a`` and ``b`` (broadcasting)."""
    if kind not in KINDS:
        raise ValueError(f"iou: kind must be one of {KINDS}, got {kind!r}")
    m = _module(a)
    corners_a, corners_b = _corners(a), _corners(b)
    ax1, ay1, ax2, ay2 = corners_a
    bx1, by1, bx2, by2 = corners_b
    aw, ah, bw, bh = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    inter = _intersection(m, corners_a, corners_b)
    union = aw * ah + bw * bh - inter
    overlap = inter / (union + EPS)
    if kind == "iou":
        return overlap
    enclose_w, enclose_h = _enclosing_size(m, corners_a, corners_b)
    if kind == "giou":
        enclose = enclose_w * enclose_h
        return overlap - (enclose - union) / (enclose + EPS)
    diou = overlap - _centre_distance_ratio(corners_a, corners_b, enclose_w, enclose_h)
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


def size_iou(sizes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, K) IoU of (N, 2) sizes [w, h] with (K, 2) anchor sizes, centres aligned: how well a
    box's shape fits an anchor's (target assignment, k-means anchors)."""
    inter = np.minimum(sizes[:, None, 0], anchors[None, :, 0]) * np.minimum(sizes[:, None, 1], anchors[None, :, 1])
    return inter / (sizes[:, None, 0] * sizes[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter)


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
            a, b = _corners(boxes[best]), _corners(boxes[rest])
            overlap = overlap - _centre_distance_ratio(a, b, *_enclosing_size(np, a, b)) ** beta
        suppressed = overlap > iou_thresh
        if labels is not None:
            suppressed &= labels[rest] == labels[best]
        order = rest[~suppressed]
    return np.asarray(kept, dtype=np.int64)


@dataclass(frozen=True)
class NMSSettings:
    """How scored predictions become detections: the score bar, the NMS that merges boxes
    of one object, and how many an image keeps. ``YOLO_V4.predict``'s keywords build one;
    ``yolov4.detect.detect``, ``detect_images``, ``detect_tiled`` and ``evaluate_model`` take
    it whole. Checked on construction: a value out of range is a one-line ValueError."""

    conf_thresh: float = 0.25
    """A (box, class) is a candidate when its score, objectness x class probability, exceeds
    this; in [0, 1). darknet's 0.25 for viewing, 0.005 for mAP."""

    iou_thresh: float = 0.45
    """NMS suppresses a box whose overlap with a better box of its class exceeds this (IoU, or
    DIoU's IoU - (rho^2 / c^2)^beta_nms); in [0, 1]. darknet's 0.45."""

    max_det: int = 300
    """The most detections an image keeps, the best; at least 1."""

    nms_kind: str | None = None
    """``"diou"`` (DIoU-NMS, darknet's yolov4.cfg) or ``"greedy"`` (plain IoU); None: the
    model config's ``nms_kind``, with its ``beta_nms``."""

    def __post_init__(self) -> None:
        checks = (
            ("conf_thresh", _number(self.conf_thresh) and 0 <= self.conf_thresh < 1, "a score in [0, 1)"),
            ("iou_thresh", _number(self.iou_thresh) and 0 <= self.iou_thresh <= 1, "an overlap in [0, 1]"),
            ("max_det", isinstance(self.max_det, Integral) and self.max_det >= 1, "a whole number, at least 1"),
            ("nms_kind", self.nms_kind is None or self.nms_kind in NMS_KINDS, f"None or one of {NMS_KINDS}"),
        )
        for name, good, expected in checks:
            if not good:
                raise ValueError(f"NMS settings: {name} must be {expected}, got {getattr(self, name)!r}")

    def keep(self, boxes: Any, scores: Any, classes: Any, config: Any) -> np.ndarray:
        """Indices of the detections this NMS keeps, best first (``yolov4.boxes.nms`` per class,
        the kind and beta from ``config`` where ``nms_kind`` is None)."""
        kind = self.nms_kind or config.nms_kind
        return nms(boxes, scores, self.iou_thresh, kind, config.beta_nms, classes, self.max_det)


def _number(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool)."""
    return isinstance(value, Real) and not isinstance(value, bool)


VIEWING = NMSSettings()  # darknet's for looking at detections: score 0.25, NMS 0.45


# ----------------------------------------------------------------------------- label rows

MIN_SIZE = 2.0  # pixels: a box narrower or lower than this after clipping is dropped
MIN_VISIBLE = 0.25  # a box keeping less than this fraction of its area after clipping is dropped


def labels_to_xyxy(labels: np.ndarray) -> np.ndarray:
    """(M, 5) [cls, cx, cy, w, h] -> (M, 5) float64 [cls, x1, y1, x2, y2]."""
    labels = labels.astype(np.float64)
    return np.concatenate([labels[:, :1], xywh_to_xyxy(labels[:, 1:5])], axis=1)


def labels_to_xywh(labels: np.ndarray) -> np.ndarray:
    """(M, 5) [cls, x1, y1, x2, y2] -> (M, 5) float64 [cls, cx, cy, w, h]."""
    labels = labels.astype(np.float64)
    return np.concatenate([labels[:, :1], xyxy_to_xywh(labels[:, 1:5])], axis=1)


def affine_labels(labels: np.ndarray, scale_x: float, scale_y: float, shift_x: float, shift_y: float) -> np.ndarray:
    """(M, 5) label rows under x -> x * scale_x + shift_x, y -> y * scale_y + shift_y."""
    out = labels.astype(np.float64, copy=True)
    out[:, 1] = labels[:, 1] * scale_x + shift_x
    out[:, 2] = labels[:, 2] * scale_y + shift_y
    out[:, 3] = labels[:, 3] * abs(scale_x)
    out[:, 4] = labels[:, 4] * abs(scale_y)
    return out


def clip_labels(labels: np.ndarray, width: float, height: float, region=None) -> np.ndarray:
    """Clip (M, 5) label rows to the image (or to ``region`` = (x1, y1, x2, y2)); drop the ones
    left smaller than MIN_SIZE or with less than MIN_VISIBLE of their area."""
    if len(labels) == 0:
        return np.zeros((0, 5))
    x1, y1, x2, y2 = region if region is not None else (0.0, 0.0, width, height)
    corners = labels_to_xyxy(labels)
    area = (corners[:, 3] - corners[:, 1]) * (corners[:, 4] - corners[:, 2])
    corners[:, [1, 3]] = np.clip(corners[:, [1, 3]], x1, x2)
    corners[:, [2, 4]] = np.clip(corners[:, [2, 4]], y1, y2)
    w, h = corners[:, 3] - corners[:, 1], corners[:, 4] - corners[:, 2]
    keep = (w >= MIN_SIZE) & (h >= MIN_SIZE) & (w * h >= MIN_VISIBLE * area)
    return labels_to_xywh(corners[keep])
