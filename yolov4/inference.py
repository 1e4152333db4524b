"""Detection on original images: the one inference pipeline that every caller uses.

Each image, of any size, is letterboxed into the network's input (``yolov4.letterbox``); the
batch goes through ``model.predict`` (forward, decode, scores, DIoU-NMS: ``yolov4.detect``);
and each image's detections are mapped back to its own pixels (``to_original``). Evaluation,
the demo and ``python -m yolov4 predict`` all detect through ``detect_images``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from yolov4.letterbox import letterbox_image, to_original


def detect_images(
    model: Any,
    images: Sequence[np.ndarray],
    input_size: int | tuple[int, int],
    conf_thresh: float = 0.25,
    iou_thresh: float = 0.45,
    max_det: int = 300,
    batch_size: int = 8,
) -> list[list[dict[str, Any]]]:
    """Detections on each (3, H, W) image, ``{"box": [x1, y1, x2, y2], "score", "class_id"}``
    with the box in that image's own pixels, best first; one list per image.

    ``input_size`` is the network's input, multiples of 32: a side (a square input) or
    (height, width). The images go through ``model`` ``batch_size`` at a time; the
    thresholds and ``max_det`` are ``model.predict``'s.
    """
    size = (input_size, input_size) if isinstance(input_size, (int, np.integer)) else tuple(input_size)
    if batch_size < 1:
        raise ValueError(f"detect_images: batch_size must be at least 1, got {batch_size}")
    for index, image in enumerate(images):
        if np.ndim(image) != 3 or np.shape(image)[0] != 3:
            raise ValueError(
                f"detect_images: image {index} must be (3, H, W), got shape {np.shape(image)} (pass a list of images)"
            )
    found = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        boxed = np.stack([letterbox_image(image, size) for image in batch])  # (B, 3, height, width)
        for image, detections in zip(batch, model.predict(boxed, conf_thresh, iou_thresh, max_det), strict=True):
            found.append(to_original(detections, image.shape[1:], size))
    return found
