"""Target assignment: which predictions are responsible for which ground-truth box.

Ground truth comes per image as an (M, 5) array [class_id, cx, cy, w, h] in input pixels.
The encoded form (the seed's) is one array per stride, (N, Hs, Ws, A * (5 + C)), holding
for every cell and anchor [tx, ty, tw, th, obj, one-hot classes]: tx, ty the centre's
offset inside its cell (in [0, 1)), tw, th = log(w / anchor_w), log(h / anchor_h), and
obj = 1 where that anchor of that cell is responsible.

darknet's rule (yolo_layer.c): a box belongs to the cell that holds its centre, at every
stride. Among *all* anchors (nine for YOLOv4) the one whose shape fits best (IoU of the
two sizes with centres aligned) is positive, and so is every other anchor whose shape IoU
exceeds ``iou_thresh`` (0.213), so one box can train several anchors at several strides.
When two boxes claim the same cell and anchor, the later one wins, as in darknet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minilucid.backend import as_numpy, get_array_module
from minilucid.tensor import Tensor
from yolov4.boxes import size_iou, xywh_to_xyxy
from yolov4.model_config import YOLO_V4Config

EDGE_TOLERANCE = 1.0  # pixels a box may stick out of the image (rounding of labels)


def check_boxes(boxes: Any, num_classes: int, input_size: tuple[int, int], image: int = 0) -> np.ndarray:
    """Validate one image's (M, 5) ground truth in an input of ``input_size`` (height, width);
    returns it as float64, or raises ValueError."""
    array = as_numpy(boxes.data if isinstance(boxes, Tensor) else boxes)
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 5))
    if array.ndim != 2 or array.shape[1] != 5:
        raise ValueError(
            f"image {image}: ground truth must be (M, 5) [class_id, cx, cy, w, h], got shape {array.shape}"
        )
    height, width = input_size
    for row, (cls, cx, cy, w, h) in enumerate(array):
        where = f"image {image}, box {row} ({cls:g}, {cx:g}, {cy:g}, {w:g}, {h:g})"
        if not np.all(np.isfinite(array[row])):
            raise ValueError(f"{where}: values must be finite")
        if cls != int(cls) or not 0 <= cls < num_classes:
            raise ValueError(f"{where}: class_id must be an integer in [0, {num_classes}), got {cls:g}")
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: width and height must be positive")
        x1, y1, x2, y2 = xywh_to_xyxy(array[row, 1:5])
        tol = EDGE_TOLERANCE
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise ValueError(
                f"{where}: the box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {width}x{height} image "
                "(boxes are [class_id, cx, cy, w, h] in input pixels)"
            )
    return array


def encode_targets(ground_truth: list, config: YOLO_V4Config, input_size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Per-image (M, 5) boxes in an input of ``input_size`` (height, width) -> one
    (N, Hs, Ws, A * (5 + C)) float32 array per stride."""
    height, width = input_size
    values = 5 + config.num_classes
    levels = [
        np.zeros((len(ground_truth), height // s, width // s, len(a), values), dtype=np.float32)
        for s, a in zip(config.strides, config.anchors, strict=True)
    ]
    # Every anchor of every stride, with where it lives: (level, index within the level).
    all_anchors = np.array([wh for level in config.anchors for wh in level])
    homes = [(level, index) for level, anchors in enumerate(config.anchors) for index in range(len(anchors))]
    for image, boxes in enumerate(ground_truth):
        for cls, cx, cy, w, h in check_boxes(boxes, config.num_classes, input_size, image):
            fits = size_iou(np.array([[w, h]]), all_anchors)[0]
            best = int(np.argmax(fits))
            for k, (level, index) in enumerate(homes):
                if k != best and fits[k] <= config.pos_iou_thr:
                    continue
                stride = config.strides[level]
                target = levels[level]
                i = min(int(cx // stride), target.shape[2] - 1)  # cell column
                j = min(int(cy // stride), target.shape[1] - 1)  # cell row
                anchor_w, anchor_h = config.anchors[level][index]
                slot = target[image, j, i, index]
                slot[:] = 0
                slot[:5] = [cx / stride - i, cy / stride - j, np.log(w / anchor_w), np.log(h / anchor_h), 1.0]
                slot[5 + int(cls)] = 1.0
    return tuple(t.reshape(t.shape[0], t.shape[1], t.shape[2], -1) for t in levels)


def truth_boxes(ground_truth: list) -> list[np.ndarray]:
    """Per image, the ground truth as xyxy boxes (M, 4) in pixels (for the ignore mask).

    Call it after ``encode_targets``, which checks the boxes: they are not checked twice."""
    raw = [as_numpy(b.data if isinstance(b, Tensor) else b) for b in ground_truth]
    return [xywh_to_xyxy(np.asarray(b, dtype=np.float64).reshape(-1, 5)[:, 1:]) for b in raw]


def positives(encoded: np.ndarray, num_anchors: int) -> tuple[np.ndarray, ...]:
    """Indices (n, j, i, a) of the responsible slots of one encoded level."""
    n, h, w, _ = encoded.shape
    return np.nonzero(encoded.reshape(n, h, w, num_anchors, -1)[..., 4] > 0.5)


def slot_boxes(slots: np.ndarray, cells: np.ndarray, anchors: np.ndarray, stride: int) -> np.ndarray:
    """xyxy boxes (P, 4), in pixels, held by positive slots (P, 5 + C) of cells (P, 2)
    [column, row] with anchors (P, 2): the inverse of the encoding above (NumPy or CuPy)."""
    xp = get_array_module(slots)
    centre = (cells + slots[:, 0:2]) * stride  # (P, 2)
    size = anchors * xp.exp(slots[:, 2:4])  # (P, 2)
    return xywh_to_xyxy(xp.concatenate([centre, size], axis=-1)).astype(xp.float32)


def decode_targets(encoded: tuple, config: YOLO_V4Config) -> list[np.ndarray]:
    """Per image, the xyxy boxes (in pixels) that the encoded targets hold (a box positive
    for several anchors appears once per anchor)."""
    encoded = [as_numpy(t.data if isinstance(t, Tensor) else t) for t in encoded]
    images = encoded[0].shape[0]
    found: list[list[np.ndarray]] = [[] for _ in range(images)]
    for level, target in enumerate(encoded):
        stride, anchors = config.strides[level], np.asarray(config.anchors[level])
        n, j, i, a = positives(target, len(anchors))
        slots = target.reshape(*target.shape[:3], len(anchors), -1)[n, j, i, a]
        boxes = slot_boxes(slots, np.stack([i, j], axis=-1), anchors[a], stride)
        for image in range(images):
            found[image].append(boxes[n == image])
    return [np.concatenate(parts) if parts else np.zeros((0, 4)) for parts in found]
