"""The YOLOv4 loss, darknet's yolo_layer.c written out with minilucid ops.

Per stride, with P the responsible (positive) predictions of the encoded targets:
    box = iou_normalizer * sum_P (1 - CIoU(predicted box, ground truth))    (or DIoU, GIoU, MSE)
    obj = obj_normalizer * balance_s * sum BCE(obj logit, target), the target being 1 on P
          (or a mix with the IoU, IoU-aware) and 0 elsewhere, except that predictions whose
          decoded box overlaps some ground truth by more than ``ignore_thresh`` are left out
    cls = cls_normalizer * sum_P BCE(class logits, one-hot smoothed to [eps / 2, 1 - eps / 2])
Each term is summed over the batch and divided by the batch size, so the learning rate
does not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import minilucid as lucid
from minilucid.backend import as_numpy, to_device
from minilucid.nn import functional as F
from yolov4.boxes import iou, pairwise_iou
from yolov4.config import YOLO_V4Config
from yolov4.decode import decode_boxes, grid, split_anchors
from yolov4.targets import decode_targets, positives, slot_boxes


@dataclass
class LossTerms:
    """The parts of the last loss, as floats, for logging."""

    box: float
    obj: float
    cls: float
    iou_branch: float
    num_positives: int

    @property
    def total(self) -> float:
        return self.box + self.obj + self.cls + self.iou_branch


def check_encoded(targets: tuple, maps: tuple, config: YOLO_V4Config) -> list[np.ndarray]:
    """Pre-encoded targets as arrays, with their shapes checked against the maps."""
    if len(targets) != len(maps):
        raise ValueError(f"encoded targets: expected {len(maps)} arrays (one per stride), got {len(targets)}")
    arrays = []
    for level, (target, raw) in enumerate(zip(targets, maps, strict=True)):
        array = as_numpy(target.data if isinstance(target, lucid.Tensor) else target)
        n, _, h, w = raw.shape
        expected = (n, h, w, len(config.anchors[level]) * (5 + config.num_classes))
        if array.shape != expected:
            raise ValueError(
                f"encoded targets for stride {config.strides[level]}: expected shape {expected}, got {array.shape}"
            )
        arrays.append(array.astype(np.float32, copy=False))
    return arrays


def ignore_mask(
    raw: Any, anchors, stride: int, scale_x_y: float, truths: list[np.ndarray], threshold: float
) -> np.ndarray:
    """(N, H, W, A) True where a decoded prediction overlaps some ground truth > threshold."""
    values = split_anchors(as_numpy(raw), len(anchors))  # (N, H, W, A, V)
    n, h, w, a, _ = values.shape
    boxes = decode_boxes(
        values[..., :4], grid(h, w, np, values.dtype), np.asarray(anchors, values.dtype), stride, scale_x_y
    )
    mask = np.zeros((n, h, w, a), dtype=bool)
    for image, truth in enumerate(truths):
        if len(truth):
            mask[image] = pairwise_iou(boxes[image].reshape(-1, 4), truth).max(axis=1).reshape(h, w, a) > threshold
    return mask


def yolo_loss(maps: tuple, targets: tuple, config: YOLO_V4Config) -> tuple[lucid.Tensor, LossTerms]:
    """The loss of raw ``maps`` against encoded ``targets``; returns (scalar Tensor, terms)."""
    targets = check_encoded(targets, maps, config)
    truths = decode_targets(targets, config)
    batch = maps[0].shape[0]
    device = maps[0].device
    first_class = 6 if config.iou_aware else 5
    eps = config.cls_label_smoothing
    zero = lucid.zeros((), device=device)
    box_sum, obj_sum, cls_sum, iou_sum, count = zero, zero, zero, zero, 0
    for level, (raw, target) in enumerate(zip(maps, targets, strict=True)):
        anchors = np.asarray(config.anchors[level], dtype=np.float32)
        stride, scale = config.strides[level], config.scale_x_y[level]
        values = split_anchors(raw, len(anchors))  # (N, H, W, A, V) Tensor
        pos = positives(target, len(anchors))
        target = target.reshape(*target.shape[:3], len(anchors), -1)  # (N, H, W, A, 5 + C)
        count += len(pos[0])

        # Objectness everywhere: 1 on positives, 0 on the rest but the ignored.
        obj_target = target[..., 4].copy()
        weight = (~ignore_mask(raw.data, anchors, stride, scale, truths, config.ignore_iou_thr)).astype(np.float32)
        weight[pos] = 1.0
        if len(pos[0]):
            picked = values[pos]  # (P, V)
            cells = np.stack([pos[2], pos[1]], axis=-1).astype(np.float32)
            predicted = decode_boxes(
                picked[:, :4], to_device(cells, device), to_device(anchors[pos[3]], device), stride, scale
            )
            t = target[pos]
            truth = slot_boxes(t, cells, anchors[pos[3]], stride)
            if config.box_loss == "mse":
                image_area = raw.shape[2] * raw.shape[3] * stride * stride
                box_sum = box_sum + mse_box_term(picked, t, scale, truth, image_area)
            else:
                overlap = iou(predicted, lucid.Tensor(truth, device=device), config.box_loss)
                box_sum = box_sum + (1 - overlap).sum() * config.iou_normalizer
            if config.iou_aware_alpha > 0 or config.iou_aware:  # only the IoU-aware options need the plain IoU
                fit = np.clip(as_numpy(iou(predicted.data, to_device(truth, device))), 0, 1)
            if config.iou_aware_alpha > 0:
                obj_target[pos] = (1 - config.iou_aware_alpha) + config.iou_aware_alpha * fit
            classes = t[:, 5:] * (1 - eps) + eps / 2
            cls_sum = (
                cls_sum
                + F.binary_cross_entropy_with_logits(
                    picked[:, first_class:], lucid.Tensor(classes, device=device), reduction="sum"
                )
                * config.cls_normalizer
            )
            if config.iou_aware:
                iou_sum = (
                    iou_sum
                    + F.binary_cross_entropy_with_logits(
                        picked[:, 5], lucid.Tensor(fit.astype(np.float32), device=device), reduction="sum"
                    )
                    * config.iou_branch_weight
                )
        obj = F.binary_cross_entropy_with_logits(
            values[..., 4],
            lucid.Tensor(obj_target, device=device),
            weight=lucid.Tensor(weight, device=device),
            reduction="sum",
        )
        obj_sum = obj_sum + obj * (config.obj_normalizer * config.obj_balance[level])
    parts = {"box": box_sum, "obj": obj_sum, "cls": cls_sum, "iou_branch": iou_sum}
    for name, part in parts.items():
        value = part.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"YOLOv4 loss: the {name} term is {value}; check the learning rate, the input scaling "
                "(images in [0, 1]) and the labels"
            )
    total = (box_sum + obj_sum + cls_sum + iou_sum) * (1.0 / batch)
    terms = LossTerms(*(parts[k].item() / batch for k in ("box", "obj", "cls", "iou_branch")), num_positives=count)
    return total, terms


def mse_box_term(picked: lucid.Tensor, t: np.ndarray, scale: float, truth: np.ndarray, image_area: float):
    """darknet's MSE box loss: squared error of the decoded offsets and log sizes, weighted
    by (2 - box area / image area) so small boxes count more."""
    device = picked.device
    offset = lucid.sigmoid(picked[:, 0:2]) * scale - (scale - 1) / 2
    area = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    weight = (2 - area / image_area).astype(np.float32)[:, None]
    diff_xy = offset - lucid.Tensor(t[:, 0:2], device=device)
    diff_wh = picked[:, 2:4] - lucid.Tensor(t[:, 2:4], device=device)
    weight = lucid.Tensor(weight, device=device)
    return ((diff_xy * diff_xy + diff_wh * diff_wh) * weight).sum()
