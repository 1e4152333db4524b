"""Run a model over a dataset and measure it: COCO mAP, VOC AP, PR curves, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from yolov4.boxes import NMSSettings, xywh_to_xyxy
from yolov4.evaluation.metrics import coco_metrics, confusion_matrix
from yolov4.evaluation.plots import plot_confusion, plot_pr_curves
from yolov4.inference import detect_images
from yolov4.tiles import detect_tiled

MAP_CONF_THRESH = 0.005  # darknet's threshold when measuring mAP
MAP_MAX_DET = 100  # COCO's maxDets: the detections per image that mAP counts


def map_settings(conf_thresh: float = MAP_CONF_THRESH) -> NMSSettings:
    """The NMS settings for measuring mAP: a low score bar (darknet's 0.005 unless given),
    darknet's NMS threshold, COCO's 100 detections per image."""
    return NMSSettings(conf_thresh=conf_thresh, max_det=MAP_MAX_DET)


def detect_dataset(
    model: Any,
    dataset: Any,
    input_size: int,
    batch_size: int = 8,
    settings: NMSSettings | None = None,
    letterbox: bool = True,
    tile: int | None = None,
    overlap: float = 0.2,
) -> tuple[list[dict], list[dict]]:
    """(ground truth, detections) per image, as ``yolov4.evaluation.metrics`` takes them, in each original
    image's pixels; each image letterboxed into the input, or stretched (``letterbox=False``),
    and detected with ``settings`` (None: ``map_settings()``). The dataset is read a batch at a
    time, never held whole. With ``tile`` (pixels), each image is detected sliced: its tiles
    ``overlap`` apart and the whole image (``yolov4.tiles.detect_tiled``), each letterboxed."""
    settings = map_settings() if settings is None else settings
    truths, found = [], []
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images = [image for image, _ in samples]
        if tile is not None:
            detected = detect_tiled(model, images, input_size, tile, overlap, settings, batch_size)
        else:
            detected = detect_images(model, images, input_size, settings, batch_size, letterbox)
        for (_, boxes), detections in zip(samples, detected, strict=True):
            truths.append({"boxes": xywh_to_xyxy(boxes[:, 1:5]), "classes": boxes[:, 0].astype(int)})
            found.append(
                {
                    "boxes": np.array([d["box"] for d in detections]).reshape(-1, 4),
                    "scores": np.array([d["score"] for d in detections]),
                    "classes": np.array([d["class_id"] for d in detections], dtype=int),
                }
            )
    return truths, found


def evaluate_model(
    model: Any,
    dataset: Any,
    input_size: int = 416,
    batch_size: int = 8,
    plots: str | Path | None = None,
    settings: NMSSettings | None = None,
    **options: Any,
) -> dict[str, Any]:
    """COCO and VOC metrics of ``model`` on ``dataset`` at the square ``input_size``, detected
    with ``settings`` (None: ``map_settings()``); with ``plots`` (a folder), also
    ``pr_curve.png`` and ``confusion_matrix.png`` there. The ``options`` are
    ``detect_dataset``'s (``letterbox``; ``tile`` and ``overlap`` for sliced detection)."""
    truths, found = detect_dataset(model, dataset, input_size, batch_size, settings, **options)
    names = list(getattr(dataset, "class_names", [str(k) for k in range(model.config.num_classes)]))
    metrics = coco_metrics(truths, found, model.config.num_classes, names)
    matrix = confusion_matrix(truths, found, model.config.num_classes)
    metrics["confusion_matrix"] = matrix.tolist()
    if plots is not None:
        folder = Path(plots)
        folder.mkdir(parents=True, exist_ok=True)
        plot_pr_curves(metrics["pr_curves_50"], folder / "pr_curve.png")
        plot_confusion(matrix, names, folder / "confusion_matrix.png")
    return metrics
