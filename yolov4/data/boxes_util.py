"""Moving boxes with their pixels: affine maps, clipping, and dropping what was cut away."""

from __future__ import annotations

import numpy as np

MIN_SIZE = 2.0  # pixels: a box narrower or lower than this after clipping is dropped
MIN_VISIBLE = 0.25  # a box keeping less than this fraction of its area after clipping is dropped


def to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(M, 5) [cls, cx, cy, w, h] -> (M, 5) [cls, x1, y1, x2, y2]."""
    out = boxes.astype(np.float64, copy=True)
    out[:, 1:3] = boxes[:, 1:3] - boxes[:, 3:5] / 2
    out[:, 3:5] = boxes[:, 1:3] + boxes[:, 3:5] / 2
    return out


def to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(M, 5) [cls, x1, y1, x2, y2] -> (M, 5) [cls, cx, cy, w, h]."""
    out = boxes.astype(np.float64, copy=True)
    out[:, 1:3] = (boxes[:, 1:3] + boxes[:, 3:5]) / 2
    out[:, 3:5] = boxes[:, 3:5] - boxes[:, 1:3]
    return out


def affine(boxes: np.ndarray, scale_x: float, scale_y: float, shift_x: float, shift_y: float) -> np.ndarray:
    """Boxes under x -> x * scale_x + shift_x, y -> y * scale_y + shift_y."""
    out = boxes.astype(np.float64, copy=True)
    out[:, 1] = boxes[:, 1] * scale_x + shift_x
    out[:, 2] = boxes[:, 2] * scale_y + shift_y
    out[:, 3] = boxes[:, 3] * abs(scale_x)
    out[:, 4] = boxes[:, 4] * abs(scale_y)
    return out


def clip(boxes: np.ndarray, width: float, height: float, region=None) -> np.ndarray:
    """Clip boxes to the image (or to ``region`` = (x1, y1, x2, y2)); drop the ones left
    smaller than MIN_SIZE or with less than MIN_VISIBLE of their area."""
    if len(boxes) == 0:
        return np.zeros((0, 5))
    x1, y1, x2, y2 = region if region is not None else (0.0, 0.0, width, height)
    corners = to_xyxy(boxes)
    area = (corners[:, 3] - corners[:, 1]) * (corners[:, 4] - corners[:, 2])
    corners[:, [1, 3]] = np.clip(corners[:, [1, 3]], x1, x2)
    corners[:, [2, 4]] = np.clip(corners[:, [2, 4]], y1, y2)
    w, h = corners[:, 3] - corners[:, 1], corners[:, 4] - corners[:, 2]
    keep = (w >= MIN_SIZE) & (h >= MIN_SIZE) & (w * h >= MIN_VISIBLE * area)
    return to_xywh(corners[keep])
