"""Anchors from data: k-means on box sizes with the distance 1 - IoU (darknet's calc_anchors).

Sizes are compared as boxes sharing a centre, so a 10x10 and a 100x100 box are far apart
while two boxes of similar shape and size are close, whatever their absolute scale; plain
Euclidean k-means would let the large boxes dominate.
"""

from __future__ import annotations

import numpy as np

from yolov4.boxes import size_iou
from yolov4.data.images import image_size
from yolov4.model_config import zoo_config


def kmeans_anchors(sizes: np.ndarray, k: int = 9, seed: int = 0, iterations: int = 300) -> tuple[np.ndarray, float]:
    """(anchors (k, 2) sorted by area, mean IoU of each size with its best anchor).

    Initialization is k-means++ under the 1 - IoU distance; each centre then moves to the
    median of its cluster (robust to outliers) until nothing changes.
    """
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    if len(sizes) < k:
        raise ValueError(f"kmeans_anchors: {len(sizes)} boxes are too few for {k} anchors")
    if np.any(sizes <= 0):
        raise ValueError("kmeans_anchors: box widths and heights must be positive")
    rng = np.random.default_rng(seed)
    centres = [sizes[rng.integers(len(sizes))]]
    for _ in range(1, k):
        distance = 1 - size_iou(sizes, np.array(centres)).max(axis=1)
        centres.append(sizes[rng.choice(len(sizes), p=distance**2 / (distance**2).sum())])
    centres = np.array(centres)
    assignment = None
    for _ in range(iterations):
        nearest = np.argmax(size_iou(sizes, centres), axis=1)
        if assignment is not None and np.array_equal(nearest, assignment):
            break
        assignment = nearest
        for j in range(k):
            if np.any(nearest == j):
                centres[j] = np.median(sizes[nearest == j], axis=0)
    centres = centres[np.argsort(centres.prod(axis=1))]
    return centres, float(size_iou(sizes, centres).max(axis=1).mean())


def anchor_layout(model: str) -> list[int]:
    """How many anchors each output level of a trainer model has: yolov4 [3, 3, 3], yolov4-tiny [3, 3]."""
    return [len(level) for level in zoo_config(model).anchors]


def default_anchors(model: str) -> np.ndarray:
    """(K, 2) the anchors a trainer model uses unless told otherwise, in input pixels."""
    return np.array([anchor for level in zoo_config(model).anchors for anchor in level], dtype=np.float64)


def box_sizes(dataset, input_size: int = 416) -> np.ndarray:
    """(N, 2) widths and heights of a dataset's boxes, scaled as letterboxing to ``input_size``
    scales each image."""
    sizes = []
    for path, boxes in dataset.items:
        if len(boxes):
            width, height = image_size(path)  # as shown: EXIF orientation applied
            sizes.append(boxes[:, 3:5] * (input_size / max(width, height)))
    if not sizes:
        raise ValueError("dataset_anchors: the dataset has no boxes")
    return np.concatenate(sizes)


def mean_best_iou(sizes: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over (N, 2) sizes of the IoU with their best of (K, 2) anchors, centres aligned."""
    return float(size_iou(np.asarray(sizes, np.float64), np.asarray(anchors, np.float64)).max(axis=1).mean())


def dataset_anchors(dataset, input_size: int = 416, k: int = 9, levels: int = 3, seed: int = 0):
    """Anchors for a dataset at an input size: box sizes are scaled as letterboxing scales
    each image; returns (per-level anchors for YOLO_V4Config, mean IoU). The ``k`` anchors,
    sorted by area, go ``k // levels`` to a level, smallest to the finest stride; a ``k``
    that does not split evenly into ``levels`` is a ValueError."""
    if levels < 1 or k < levels or k % levels:
        raise ValueError(f"{k} anchors do not split evenly into {levels} levels (give a positive multiple of {levels})")
    anchors, mean_iou = kmeans_anchors(box_sizes(dataset, input_size), k, seed)
    per_level = k // levels
    grouped = tuple(
        tuple((round(float(w), 1), round(float(h), 1)) for w, h in anchors[i * per_level : (i + 1) * per_level])
        for i in range(levels)
    )
    return grouped, mean_iou


# ----------------------------------------------------------------------------- autoanchor

ANCHOR_RATIO = 4.0  # a box fits an anchor when neither side differs by more than this factor
ENOUGH_RECALL = 0.98  # anchors whose best possible recall reaches this are kept (Ultralytics' rule)
AUTOANCHOR_MODES = ("auto", "always", "off")


def best_possible_recall(sizes: np.ndarray, anchors: np.ndarray, ratio: float = ANCHOR_RATIO) -> float:
    """The share of (N, 2) box sizes that some anchor of (K, 2) fits within ``ratio`` in width
    and in height, both ways, as Ultralytics' autoanchor measures anchors (its anchor_t = 4)."""
    quotient = np.asarray(sizes, np.float64)[:, None, :] / np.asarray(anchors, np.float64)[None, :, :]  # (N, K, 2)
    worst = np.maximum(quotient, 1 / quotient).max(axis=2)  # (N, K): the side that fits worse
    return float((worst.min(axis=1) <= ratio).mean())


def fit_anchors(dataset, model: str, input_size: int, mode: str = "auto") -> tuple[tuple | None, str]:
    """(anchors for YOLO_V4Config, or None to keep ``model``'s defaults; a line saying why).

    ``mode`` ``"auto"`` fits anchors to the dataset's boxes (``dataset_anchors``) when the
    default anchors' best possible recall is below ``ENOUGH_RECALL``, and uses them where they
    fit better; ``"always"`` uses fitted anchors whatever the defaults' fit; ``"off"`` keeps
    the defaults. A dataset with fewer boxes than anchors keeps the defaults."""
    if mode not in AUTOANCHOR_MODES:
        raise ValueError(f"autoanchor must be one of {AUTOANCHOR_MODES}, got {mode!r}")
    if mode == "off":
        return None, f"anchors: {model}'s defaults (autoanchor off)"
    defaults, layout = default_anchors(model), anchor_layout(model)
    sizes = box_sizes(dataset, input_size)
    if len(sizes) < len(defaults):
        return None, f"anchors: {model}'s defaults ({len(sizes)} boxes are too few to fit {len(defaults)} anchors)"
    before = best_possible_recall(sizes, defaults)
    said = f"best possible recall at {input_size} px {before:.3f} with {model}'s default anchors"
    if mode == "auto" and before >= ENOUGH_RECALL:
        return None, f"anchors: {said}; defaults kept"
    fitted, _ = dataset_anchors(dataset, input_size, len(defaults), levels=len(layout))
    after = best_possible_recall(sizes, np.array([a for level in fitted for a in level]))
    better = mean_best_iou(sizes, np.array([a for level in fitted for a in level])) > mean_best_iou(sizes, defaults)
    if mode == "auto" and after <= before and not better:
        return None, f"anchors: {said}, {after:.3f} with fitted ones; defaults kept"
    return fitted, f"anchors: {said}, {after:.3f} with anchors fitted to the data (used): {list(fitted)}"
