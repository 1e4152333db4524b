"""Detection metrics, detections against ground truth: COCO's mAP (as pycocotools computes
it), Pascal VOC's AP@0.5 and a confusion matrix. No model here: ``yolov4.evaluation.evaluate`` runs one.

COCO, per image and class: detections sorted by score (best 100 kept) are matched greedily
to ground truths at each IoU threshold 0.50, 0.55, ..., 0.95; ground truths outside an area
range (small < 32^2 <= medium < 96^2 <= large) or marked crowd are "ignored": matching one
neither helps nor hurts, and an unmatched detection outside the range is ignored too. Per
class, the detections of all images are sorted by score into a precision-recall curve, the
precision made monotone from the right, and read at the 101 recall points 0, 0.01, ..., 1.
AP is the mean over recall points, IoU thresholds and classes that have ground truth.

VOC: one IoU threshold, 0.5; AP as the mean of the best precision at recall >= 0, 0.1, ..., 1
(11-point, VOC2007), or the area under the monotone curve (VOC2010 onwards).

Ground truth per image: {"boxes": (M, 4) xyxy, "classes": (M,), optional "areas", "crowd"}.
Detections per image: {"boxes": (K, 4) xyxy, "scores": (K,), "classes": (K,)}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from yolov4.boxes import intersection, pairwise_iou
from yolov4.data.coco import coco_bbox, coco_content
from yolov4.files import read_json

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETECTIONS = 100


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _ious(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU; against a crowd region, the overlap over the detection's own area."""
    ious = pairwise_iou(dt, gt) if len(dt) and len(gt) else np.zeros((len(dt), len(gt)))
    if crowd.any() and len(dt):
        over_dt = intersection(dt[:, None, :], gt[None, :, :]) / np.maximum(_area(dt)[:, None], 1e-12)
        ious[:, crowd] = over_dt[:, crowd]
    return ious


def match_image(
    gt: dict, dt: dict, area_range: tuple[float, float], thresholds=IOU_THRESHOLDS, max_det: int = MAX_DETECTIONS
) -> dict[str, np.ndarray] | None:
    """COCO's matching for one image and one class; None when it has neither."""
    if len(gt["boxes"]) == 0 and len(dt["boxes"]) == 0:
        return None
    lo, hi = area_range
    gt_ignore = gt["crowd"] | (gt["areas"] < lo) | (gt["areas"] > hi)
    order = np.argsort(gt_ignore, kind="mergesort")  # ignored ground truths last
    gt_boxes, gt_ignore, crowd = gt["boxes"][order], gt_ignore[order], gt["crowd"][order]
    ranking = np.argsort(-dt["scores"], kind="mergesort")[:max_det]
    dt_boxes, dt_scores = dt["boxes"][ranking], dt["scores"][ranking]
    ious = _ious(dt_boxes, gt_boxes, crowd)
    t_count, d_count, g_count = len(thresholds), len(dt_boxes), len(gt_boxes)
    gt_matched = np.zeros((t_count, g_count), dtype=bool)
    dt_matched = np.zeros((t_count, d_count), dtype=bool)
    dt_ignore = np.zeros((t_count, d_count), dtype=bool)
    for t, threshold in enumerate(thresholds):
        for d in range(d_count):
            best, match = min(threshold, 1 - 1e-10), -1
            for g in range(g_count):
                if gt_matched[t, g] and not crowd[g]:
                    continue
                if match > -1 and not gt_ignore[match] and gt_ignore[g]:
                    break  # only ignored ground truths are left
                if ious[d, g] < best:
                    continue
                best, match = ious[d, g], g
            if match > -1:
                dt_ignore[t, d] = gt_ignore[match]
                dt_matched[t, d] = True
                gt_matched[t, match] = True
    outside = (_area(dt_boxes) < lo) | (_area(dt_boxes) > hi) if d_count else np.zeros(0, dtype=bool)
    dt_ignore |= ~dt_matched & outside[None, :]
    return {"scores": dt_scores, "matched": dt_matched, "ignored": dt_ignore, "gt_ignore": gt_ignore}


def precision_curve(matches: list[dict], thresholds=IOU_THRESHOLDS) -> tuple[np.ndarray, np.ndarray] | None:
    """(precision (T, 101), recall (T,)) of one class over all images, or None without ground truth."""
    matches = [m for m in matches if m is not None]
    if not matches:
        return None
    scores = np.concatenate([m["scores"] for m in matches])
    ranking = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m["matched"] for m in matches], axis=1)[:, ranking]
    ignored = np.concatenate([m["ignored"] for m in matches], axis=1)[:, ranking]
    positives = int(np.count_nonzero(~np.concatenate([m["gt_ignore"] for m in matches])))
    if positives == 0:
        return None
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    precision = np.zeros((len(thresholds), len(RECALL_POINTS)))
    recall = np.zeros(len(thresholds))
    for t in range(len(thresholds)):
        rc = tp[t] / positives
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if len(rc) else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr  # monotone from the right
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        valid = at < len(pr)
        precision[t, valid] = pr[at[valid]]
    return precision, recall


def _split(items: list[dict], cls: int, kind: str) -> list[dict]:
    out = []
    for item in items:
        keep = item["classes"] == cls
        part = {"boxes": item["boxes"][keep]}
        if kind == "gt":
            part["areas"], part["crowd"] = item["areas"][keep], item["crowd"][keep]
        else:
            part["scores"] = item["scores"][keep]
        out.append(part)
    return out


def _prepare(ground_truth: list[dict], detections: list[dict]) -> tuple[list[dict], list[dict]]:
    if len(ground_truth) != len(detections):
        raise ValueError(
            f"coco_metrics: {len(ground_truth)} images of ground truth but {len(detections)} of detections"
        )
    gts, dts = [], []
    for g in ground_truth:
        boxes = np.asarray(g["boxes"], dtype=np.float64).reshape(-1, 4)
        areas = np.asarray(g.get("areas", _area(boxes)), dtype=np.float64).reshape(-1)
        crowd = np.asarray(g.get("crowd", np.zeros(len(boxes), bool)), dtype=bool).reshape(-1)
        gts.append(
            {
                "boxes": boxes,
                "classes": np.asarray(g["classes"]).astype(int).reshape(-1),
                "areas": areas,
                "crowd": crowd,
            }
        )
    for d in detections:
        boxes = np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4)
        dts.append(
            {
                "boxes": boxes,
                "scores": np.asarray(d["scores"], np.float64).reshape(-1),
                "classes": np.asarray(d["classes"]).astype(int).reshape(-1),
            }
        )
    return gts, dts


def coco_metrics(
    ground_truth: list[dict], detections: list[dict], num_classes: int, class_names: list[str] | None = None
) -> dict[str, Any]:
    """COCO metrics: map (mAP@[.5:.95]), map50, map75, map_small/medium/large, per_class AP,
    and the VOC APs at 0.5 (11-point and area under the curve); plus the curves."""
    gts, dts = _prepare(ground_truth, detections)
    names = class_names or [str(k) for k in range(num_classes)]
    curves: dict[str, list] = {area: [] for area in AREA_RANGES}
    for cls in range(num_classes):
        g, d = _split(gts, cls, "gt"), _split(dts, cls, "dt")
        for area, bounds in AREA_RANGES.items():
            curves[area].append(precision_curve([match_image(a, b, bounds) for a, b in zip(g, d, strict=True)]))

    def mean_precision(area: str, t: slice | int = slice(None)) -> float:
        values = [c[0][t] for c in curves[area] if c is not None]
        return float(np.mean(values)) if values else -1.0

    per_class = {names[k]: (float(np.mean(c[0])) if c is not None else -1.0) for k, c in enumerate(curves["all"])}
    voc11, voc_auc = voc_ap(gts, dts, num_classes)
    return {
        "map": mean_precision("all"),
        "map50": mean_precision("all", 0),
        "map75": mean_precision("all", 5),
        "map_small": mean_precision("small"),
        "map_medium": mean_precision("medium"),
        "map_large": mean_precision("large"),
        "per_class": per_class,
        "voc07_map50": voc11,
        "voc_map50": voc_auc,
        "pr_curves_50": {names[k]: c[0][0].tolist() for k, c in enumerate(curves["all"]) if c is not None},
    }


def voc_ap(gts: list[dict], dts: list[dict], num_classes: int) -> tuple[float, float]:
    """Mean over classes with ground truth of VOC AP@0.5: (11-point, area under the curve)."""
    elevens, areas = [], []
    for cls in range(num_classes):
        g, d = _split(gts, cls, "gt"), _split(dts, cls, "dt")
        matches = [
            match_image(a, b, AREA_RANGES["all"], np.array([0.5]), max_det=10**9) for a, b in zip(g, d, strict=True)
        ]
        matches = [m for m in matches if m is not None]
        positives = sum(int(np.count_nonzero(~m["gt_ignore"])) for m in matches)
        if positives == 0:
            continue
        scores = np.concatenate([m["scores"] for m in matches])
        ranking = np.argsort(-scores, kind="mergesort")
        hit = np.concatenate([m["matched"][0] & ~m["ignored"][0] for m in matches])[ranking]
        miss = np.concatenate([~m["matched"][0] & ~m["ignored"][0] for m in matches])[ranking]
        tp, fp = np.cumsum(hit), np.cumsum(miss)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
        elevens.append(
            np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in np.linspace(0, 1, 11)])
        )
        envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
        steps = np.concatenate([[0.0], recall, [1.0]])
        changes = np.nonzero(steps[1:] != steps[:-1])[0]
        areas.append(float(np.sum((steps[changes + 1] - steps[changes]) * envelope[changes + 1])))
    return (float(np.mean(elevens)) if elevens else -1.0, float(np.mean(areas)) if areas else -1.0)


# ----------------------------------------------------------------------------- confusion matrix


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


# ----------------------------------------------------------------------------- COCO files


def load_coco_pair(gt_json: str | Path, dt_json: str | Path) -> tuple[list[dict], list[dict], list[str]]:
    """Ground truth and detections from COCO-format files, as per-image dicts, plus class names.
    The detections are a list (or an object with one under ``annotations``) of results
    ``{"image_id", "category_id", "bbox", "score"}``; a malformed file is a one-line ValueError."""
    gt_content = coco_content(gt_json)
    detections = read_json(dt_json)
    if isinstance(detections, dict) and "annotations" in detections:
        detections = detections["annotations"]
    if not isinstance(detections, list):
        raise ValueError(
            f"{dt_json}: expected a list of detections [{{image_id, category_id, bbox, score}}, ...], "
            f"got {type(detections).__name__}"
        )
    categories = sorted(gt_content["categories"], key=lambda c: c["id"])
    class_of = {c["id"]: k for k, c in enumerate(categories)}
    image_ids = [image["id"] for image in gt_content["images"]]
    index = {image_id: k for k, image_id in enumerate(image_ids)}
    gts = [{"boxes": [], "classes": [], "areas": [], "crowd": []} for _ in image_ids]
    dts = [{"boxes": [], "scores": [], "classes": []} for _ in image_ids]
    for k, a in enumerate(gt_content["annotations"]):
        x, y, w, h = coco_bbox(f"{gt_json}: annotations[{k}]", a, index, class_of)
        g = gts[index[a["image_id"]]]
        g["boxes"].append([x, y, x + w, y + h])
        g["classes"].append(class_of[a["category_id"]])
        g["areas"].append(_number(f"{gt_json}: annotations[{k}]: area", a.get("area", w * h)))
        g["crowd"].append(bool(a.get("iscrowd", 0)))
    for k, d in enumerate(detections):
        where = f"{dt_json}: detection {k}"
        if isinstance(d, dict) and not all(isinstance(d.get(k), (int, str)) for k in ("image_id", "category_id")):
            raise ValueError(f"{where}: image_id and category_id must be ids, got {d!r}")
        if isinstance(d, dict) and (d.get("image_id") not in index or d.get("category_id") not in class_of):
            raise ValueError(f"{where} names an image or category that {gt_json} does not have")
        x, y, w, h = coco_bbox(where, d, index, class_of)
        item = dts[index[d["image_id"]]]
        item["boxes"].append([x, y, x + w, y + h])
        item["scores"].append(_number(f"{where}: score", d.get("score")))
        item["classes"].append(class_of[d["category_id"]])
    return gts, dts, [str(c["name"]) for c in categories]


def _number(where: str, value: Any) -> float:
    """``value`` where it is a finite number; else a one-line ValueError at ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def coco_metrics_from_files(gt_json: str | Path, dt_json: str | Path) -> dict[str, Any]:
    """COCO metrics of a detections JSON against a ground-truth JSON."""
    gts, dts, names = load_coco_pair(gt_json, dt_json)
    return coco_metrics(gts, dts, len(names), names)
