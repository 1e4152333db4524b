"""Detection on original images: the one inference pipeline that every caller uses.

Each image, whatever its size and whatever form it comes in (a path, a Pillow image, an
array in either layout, uint8 or float: ``yolov4.data.images.as_image``), is placed in the
network's input (``yolov4.letterbox``): letterboxed by default, or stretched to fill it as
darknet's ``detector test`` does (``letterbox=False``). The batch goes through
``model.predict`` (forward, decode, scores, NMS: ``yolov4.detect``), and each image's
detections are mapped back to its own pixels (``to_original``). Evaluation, the demo,
``YOLO_V4.predict`` on photos and ``python -m yolov4 predict`` all detect through
``detect_images``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from yolov4.boxes import VIEWING, NMSSettings
from yolov4.data.images import as_image
from yolov4.letterbox import letterbox_image, to_original


def input_shape(input_size: Any, where: str = "detect_images") -> tuple[int, int]:
    """``input_size`` (a side, or (height, width)) as (height, width), each a positive multiple
    of 32, or a one-line ValueError."""
    size = (input_size, input_size) if isinstance(input_size, (int, np.integer)) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 and s % 32 == 0 for s in size):
        raise ValueError(f"{where}: the input size must be a positive multiple of 32 (or two), got {input_size!r}")
    return int(size[0]), int(size[1])


def detect_images(
    model: Any,
    images: Sequence[Any],
    input_size: int | tuple[int, int],
    settings: NMSSettings = VIEWING,
    batch_size: int = 8,
    letterbox: bool = True,
) -> list[list[dict[str, Any]]]:
    """Detections on each image, ``{"box": [x1, y1, x2, y2], "score", "class_id"}`` with the
    box in that image's own pixels, best first; one list per image.

    ``images`` is a list; each may be a path, a Pillow image, or an array or Tensor (H, W, 3)
    or (3, H, W), uint8 or float in [0, 1] (``as_image`` states the rule). ``input_size`` is
    the network's input, multiples of 32: a side (a square input) or (height, width). With
    ``letterbox`` (the default) an image keeps its aspect ratio, padded grey; without, it is
    stretched to the input, as darknet's ``detector test`` and OpenCV's ``DetectionModel`` do.
    The images go through ``model.predict`` (lucid's API) ``batch_size`` at a time, with the
    thresholds, ``max_det`` and NMS kind of ``settings``.
    """
    size = input_shape(input_size)
    if not isinstance(settings, NMSSettings):
        raise TypeError(f"detect_images: settings must be an NMSSettings, got {type(settings).__name__}")
    if batch_size < 1:
        raise ValueError(f"detect_images: batch_size must be at least 1, got {batch_size}")
    if not isinstance(images, (list, tuple)):
        raise ValueError(f"detect_images: expected a list of images, got {type(images).__name__} (pass [image])")
    images = [as_image(image, f"detect_images: image {index}") for index, image in enumerate(images)]
    thresholds = (settings.conf_thresh, settings.iou_thresh, settings.max_det)
    kind = {"nms_kind": settings.nms_kind} if settings.nms_kind is not None else {}  # else the model's own
    found = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        placed = np.stack([letterbox_image(image, size, letterbox) for image in batch])  # (B, 3, height, width)
        for image, detections in zip(batch, model.predict(placed, *thresholds, **kind), strict=True):
            found.append(to_original(detections, image.shape[1:], size, letterbox))
    return found
