"""From raw maps to detections: thresholds, NMS, and the way back to the original image."""

from __future__ import annotations

from typing import Any

import numpy as np

from minilucid.backend import as_numpy
from yolov4.boxes import nms
from yolov4.config import YOLO_V4Config
from yolov4.decode import decode_level
from yolov4.geometry import letterbox_geometry

MAX_CANDIDATES = 30_000  # the best scores kept before NMS: bounds its cost on a noisy map


def detect(
    config: YOLO_V4Config,
    maps: list[Any],
    image_size: tuple[int, int],
    conf_thresh: float = 0.25,
    iou_thresh: float = 0.45,
    max_det: int = 300,
    nms_kind: str | None = None,
) -> list[dict[str, Any]]:
    """Detections of one image from its raw maps (each (1, A * V, H, W)), best first.

    Every (box, class) whose score = objectness x class probability exceeds ``conf_thresh``
    is a candidate, as in darknet; with the IoU branch the score is
    objectness^(1 - alpha) x IoU^alpha x class probability.
    """
    boxes, scores, classes = [], [], []
    for level, raw in enumerate(maps):
        decoded = decode_level(
            as_numpy(raw), config.anchors[level], config.strides[level], config.scale_x_y[level], config.iou_aware
        )
        confidence = decoded["objectness"].reshape(-1)
        if config.iou_aware:
            alpha = config.iou_aware_alpha
            confidence = confidence ** (1 - alpha) * decoded["iou"].reshape(-1) ** alpha
        level_scores = confidence[:, None] * decoded["class_probs"].reshape(-1, config.num_classes)  # (K, C)
        index, cls = np.nonzero(level_scores > conf_thresh)
        boxes.append(decoded["xyxy"].reshape(-1, 4)[index])
        scores.append(level_scores[index, cls])
        classes.append(cls)
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    if len(scores) > MAX_CANDIDATES:
        best = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
        boxes, scores, classes = boxes[best], scores[best], classes[best]
    height, width = image_size
    boxes = np.clip(boxes, 0, [width, height, width, height])
    keep = nms(boxes, scores, iou_thresh, nms_kind or config.nms_kind, config.beta_nms, classes, max_det)
    return [{"box": [float(v) for v in boxes[k]], "score": float(scores[k]), "class_id": int(classes[k])} for k in keep]


def to_original(
    detections: list[dict[str, Any]],
    original_size: tuple[int, int],
    input_size: tuple[int, int],
    letterbox: bool = True,
) -> list[dict[str, Any]]:
    """Map detections from the network's input frame back to the original image.

    ``original_size`` and ``input_size`` are (height, width). With ``letterbox`` the image was
    scaled by one factor and centred with padding (``yolov4.data.letterbox``); otherwise it
    was stretched to the input size.
    """
    place = letterbox_geometry(original_size, input_size, letterbox)
    h0, w0 = original_size
    mapped = []
    for d in detections:
        x1, y1, x2, y2 = d["box"]
        box = [
            (x1 - place.pad_x) / place.scale_x,
            (y1 - place.pad_y) / place.scale_y,
            (x2 - place.pad_x) / place.scale_x,
            (y2 - place.pad_y) / place.scale_y,
        ]
        box = [min(max(v, 0.0), limit) for v, limit in zip(box, (w0, h0, w0, h0), strict=True)]
        mapped.append({**d, "box": box})
    return mapped
