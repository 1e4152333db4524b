"""From raw maps to detections: scores, thresholds and NMS, in the network input's pixels.

Shapes: N images; K = sum over levels of H * W * A predictions per image; C classes; M
candidates, the (prediction, class) pairs of the batch whose score passes the threshold.

The maps are decoded and thresholded for the whole batch where they are (CPU or GPU); the
candidates go to the host in one packed array, and NMS runs there per image. On the GPU a
batch costs two blocking syncs: the ``nonzero`` that finds the candidates and that one copy.
Each image's best candidates are chosen on the device without a sync of their own
(``sync_free.best_per_group``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minilucid as lucid
from minilucid.backend import as_numpy, get_array_module
from yolov4.boxes import VIEWING, NMSSettings
from yolov4.decode import decode_level
from yolov4.model_config import YOLO_V4Config
from yolov4.sync_free import best_per_group

MAX_CANDIDATES = 30_000  # the best scores kept per image before NMS: bounds its cost on a noisy map


def detect(
    config: YOLO_V4Config, maps: list[Any], input_size: tuple[int, int], settings: NMSSettings = VIEWING
) -> list[list[dict[str, Any]]]:
    """Detections per image of a batch, from its raw maps (each (N, A * V, H, W)), best first.

    Every (box, class) whose score = objectness x class probability exceeds
    ``settings.conf_thresh`` is a candidate, as in darknet; with the IoU branch the score is
    objectness^(1 - alpha) x IoU^alpha x class probability. Each image keeps its best
    ``MAX_CANDIDATES`` candidates; boxes are clipped to the network input's ``input_size``
    (height, width): ``yolov4.letterbox.to_original`` takes them back to an original image.
    """
    if not isinstance(settings, NMSSettings):
        raise TypeError(f"detect: settings must be an NMSSettings, got {type(settings).__name__}")
    maps = [m.data if isinstance(m, lucid.Tensor) else m for m in maps]
    scores, boxes = score_predictions(config, maps)
    rows = as_numpy(candidates(scores, boxes, settings.conf_thresh))  # (L, 7), the one copy to the host
    # an image's own rows come first, at most MAX_CANDIDATES of them, then those over the cap
    return [
        suppress(rows[rows[:, 0] == n][:MAX_CANDIDATES], input_size, settings, config) for n in range(scores.shape[0])
    ]


def score_predictions(config: YOLO_V4Config, maps: list[Any]) -> tuple[Any, Any]:
    """Scores (N, K, C) and xyxy boxes (N, K, 4) of every prediction, levels in order,
    on the maps' device."""
    scores, boxes = [], []
    for level, raw in enumerate(maps):
        decoded = decode_level(
            raw, config.anchors[level], config.strides[level], config.scale_x_y[level], config.has_iou_branch
        )
        n = raw.shape[0]
        confidence = decoded["objectness"].reshape(n, -1)  # (N, H * W * A)
        if config.has_iou_branch:
            alpha = config.iou_aware_alpha
            confidence = confidence ** (1 - alpha) * decoded["iou"].reshape(n, -1) ** alpha
        scores.append(confidence[..., None] * decoded["class_probs"].reshape(n, -1, config.num_classes))
        boxes.append(decoded["xyxy"].reshape(n, -1, 4))
    xp = get_array_module(*scores)
    return xp.concatenate(scores, axis=1), xp.concatenate(boxes, axis=1)


def candidates(scores: Any, boxes: Any, conf_thresh: float) -> Any:
    """The candidates of a batch, packed as rows [image, class, score, x1, y1, x2, y2] in
    the scores' dtype (exact for indices below 2**24), on their device: (L, 7).

    Rows come image by image, best score first (ties in map order), each image's best
    ``MAX_CANDIDATES``; the rows over that cap follow them (L = min(M, N * cap)), so an
    image's own rows are its first rows. One ``nonzero`` is the only sync.
    """
    xp = get_array_module(scores)
    image, k, cls = xp.nonzero(scores > conf_thresh)  # (M,) each, in map order: the sync
    score = scores[image, k, cls]
    order = best_per_group(image, score, MAX_CANDIDATES, scores.shape[0])  # (L,)
    image, k, cls = image[order], k[order], cls[order]
    dtype = scores.dtype
    labels = xp.stack([image.astype(dtype), cls.astype(dtype), score[order]], axis=1)  # (L, 3)
    return xp.concatenate([labels, boxes[image, k]], axis=1)


def suppress(
    rows: np.ndarray, input_size: tuple[int, int], settings: NMSSettings, config: YOLO_V4Config
) -> list[dict[str, Any]]:
    """One image's detections from its candidate rows (L, 7) on the host: clip, NMS, dicts."""
    boxes, scores, classes = rows[:, 3:], rows[:, 2], rows[:, 1].astype(np.int64)
    height, width = input_size
    boxes = np.clip(boxes, 0, [width, height, width, height])
    keep = settings.keep(boxes, scores, classes, config)
    return [{"box": [float(v) for v in boxes[k]], "score": float(scores[k]), "class_id": int(classes[k])} for k in keep]
