"""Run a model over a dataset and measure it: COCO mAP, VOC AP, PR curves, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from yolov4.boxes import pairwise_iou, xywh_to_xyxy
from yolov4.data.loader import collate
from yolov4.evaluate import coco_evaluate
from yolov4.letterbox import letterbox, to_original
from yolov4.plots import plot_confusion, plot_pr_curves

MAP_CONF_THRESH = 0.005  # darknet's threshold when measuring mAP


def detect_dataset(
    model: Any,
    dataset: Any,
    size: int,
    batch_size: int = 8,
    conf_thresh: float = MAP_CONF_THRESH,
    iou_thresh: float = 0.45,
    max_det: int = 100,
) -> tuple[list[dict], list[dict]]:
    """(ground truth, detections) per image, in each original image's pixels."""
    truths, found = [], []
    for start in range(0, len(dataset), batch_size):
        originals = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images, _ = collate([letterbox(image, boxes, (size, size)) for image, boxes in originals], model_device(model))
        for (image, boxes), detections in zip(
            originals, model.predict(images, conf_thresh, iou_thresh, max_det), strict=True
        ):
            detections = to_original(detections, image.shape[1:], (size, size))
            truths.append({"boxes": xywh_to_xyxy(boxes[:, 1:5]), "classes": boxes[:, 0].astype(int)})
            found.append(
                {
                    "boxes": np.array([d["box"] for d in detections]).reshape(-1, 4),
                    "scores": np.array([d["score"] for d in detections]),
                    "classes": np.array([d["class_id"] for d in detections], dtype=int),
                }
            )
    return truths, found


def model_device(model: Any) -> str:
    return next(iter(model.parameters())).device


def confusion_matrix(
    truths: list[dict], found: list[dict], num_classes: int, conf_thresh: float = 0.25, iou_thresh: float = 0.5
) -> np.ndarray:
    """(C + 1, C + 1) counts: [true class, predicted class]; the last column counts missed
    objects, the last row detections of nothing (false alarms). Detections above
    ``conf_thresh``; each truth matched at most once, to its best-overlapping detection."""
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for truth, detected in zip(truths, found, strict=True):
        keep = detected["scores"] >= conf_thresh
        boxes, classes = detected["boxes"][keep], detected["classes"][keep]
        used = np.zeros(len(boxes), dtype=bool)
        ious = pairwise_iou(truth["boxes"], boxes) if len(boxes) and len(truth["boxes"]) else None
        for g, cls in enumerate(truth["classes"]):
            if ious is None:
                matrix[cls, num_classes] += 1
                continue
            overlap = np.where(used, -1.0, ious[g])
            best = int(np.argmax(overlap))
            if overlap[best] >= iou_thresh:
                matrix[cls, classes[best]] += 1
                used[best] = True
            else:
                matrix[cls, num_classes] += 1
        for cls in classes[~used]:
            matrix[num_classes, cls] += 1
    return matrix


def evaluate_model(
    model: Any,
    dataset: Any,
    size: int = 416,
    batch_size: int = 8,
    plots: str | Path | None = None,
    **predict_options: Any,
) -> dict[str, Any]:
    """COCO and VOC metrics of ``model`` on ``dataset``; with ``plots`` (a folder), also
    ``pr_curve.png`` and ``confusion_matrix.png`` there."""
    truths, found = detect_dataset(model, dataset, size, batch_size, **predict_options)
    names = list(getattr(dataset, "class_names", [str(k) for k in range(model.config.num_classes)]))
    metrics = coco_evaluate(truths, found, model.config.num_classes, names)
    matrix = confusion_matrix(truths, found, model.config.num_classes)
    metrics["confusion_matrix"] = matrix.tolist()
    if plots is not None:
        folder = Path(plots)
        folder.mkdir(parents=True, exist_ok=True)
        plot_pr_curves(metrics["pr_curves_50"], folder / "pr_curve.png")
        plot_confusion(matrix, names, folder / "confusion_matrix.png")
    return metrics
