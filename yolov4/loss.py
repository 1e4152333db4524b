"""The YOLOv4 loss, darknet's yolo_layer.c written out with minilucid ops.

Per stride, with P the responsible (positive) predictions of the encoded targets:
    box = iou_normalizer * sum_P (1 - CIoU(predicted box, ground truth))    (or DIoU, GIoU, MSE)
    obj = obj_normalizer * balance_s * sum BCE(obj logit, target), the target being 1 on P
          (or a mix with the IoU, IoU-aware) and 0 elsewhere, except that predictions whose
          decoded box overlaps some ground truth by more than ``ignore_thresh`` are left out
    cls = cls_normalizer * sum_P BCE(class logits, one-hot smoothed to [eps / 2, 1 - eps / 2])
Each term is summed over the batch and divided by the batch size, so the learning rate
does not depend on it.

Every sum runs over *all* predictions, weighted by a mask (1 on P, 0 elsewhere), rather than
over gathered positives: the same numbers, but the whole loss is a few element-wise passes
that stay on the model's device. On a GPU the encoded targets and the truth boxes go up in
one copy (``pack_targets``), and the loss terms come back in one read, the step's only sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import minilucid as lucid
from minilucid import backend
from minilucid.nn import functional as F
from yolov4.boxes import iou
from yolov4.config import YOLO_V4Config
from yolov4.decode import cached_anchors, cached_grid, decode_boxes, split_anchors
from yolov4.targets import decode_targets


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


def check_encoded(targets: tuple, maps: tuple, config: YOLO_V4Config) -> None:
    """Check pre-encoded targets' shapes against the maps (one array per stride)."""
    if len(targets) != len(maps):
        raise ValueError(f"encoded targets: expected {len(maps)} arrays (one per stride), got {len(targets)}")
    for level, (target, raw) in enumerate(zip(targets, maps, strict=True)):
        n, _, h, w = raw.shape
        expected = (n, h, w, len(config.anchors[level]) * (5 + config.num_classes))
        if tuple(target.shape) != expected:
            raise ValueError(
                f"encoded targets for stride {config.strides[level]}: expected shape {expected}, got {target.shape}"
            )


def padded_truths(truths: list[np.ndarray]) -> np.ndarray:
    """Per-image xyxy truths as one (N, T, 4) float32 array, T the most boxes in an image.

    The padding is zero boxes, which overlap nothing (IoU 0), so they never count.
    """
    most = max((len(t) for t in truths), default=0)
    out = np.zeros((len(truths), max(most, 1), 4), dtype=np.float32)
    for image, truth in enumerate(truths):
        out[image, : len(truth)] = np.asarray(truth, dtype=np.float32).reshape(-1, 4)
    return out


@dataclass
class PackedTargets:
    """A batch's encoded targets (one array per stride) and truth boxes (N, T, 4), on the
    model's device. ``YOLO_V4.get_loss`` takes them in place of the boxes, so two passes over
    one batch (SAT's attack, then the step) copy the targets up once."""

    encoded: tuple
    truths: Any


def pack_targets(encoded: tuple, truths: np.ndarray, device: str) -> tuple[tuple, Any]:
    """Encoded targets (one array per stride) and truths (N, T, 4) on ``device`` in one copy.

    Host arrays are laid end to end in one float32 buffer, copied once and cut into views;
    arrays already on the device stay as they are.
    """
    arrays = [*encoded, truths]
    if all(backend.device_of(a) == device for a in arrays):
        return tuple(arrays[:-1]), arrays[-1]
    host = [backend.as_numpy(a).astype(np.float32, copy=False) for a in arrays]
    flat = backend.to_device(np.concatenate([a.ravel() for a in host]), device)
    views, start = [], 0
    for a in host:
        views.append(flat[start : start + a.size].reshape(a.shape))
        start += a.size
    return tuple(views[:-1]), views[-1]


def ignore_mask(raw: Any, anchors, stride: int, scale_x_y: float, truths: Any, threshold: float) -> Any:
    """(N, H, W, A) True where a decoded prediction overlaps some ground truth > threshold.

    ``raw`` is one map's array (N, A * V, H, W); ``truths`` the raw xyxy truth boxes, an
    (N, T, 4) array on raw's device or a list of (M, 4) arrays (as darknet, not the boxes the
    encoded grid still holds: a box whose slots a later box took is still a truth here).
    """
    xp, device = backend.get_array_module(raw), backend.device_of(raw)
    if isinstance(truths, (list, tuple)):
        truths = backend.to_device(padded_truths(truths), device)
    values = split_anchors(raw, len(anchors))  # (N, H, W, A, V)
    n, h, w, a, _ = values.shape
    boxes = decode_boxes(
        values[..., :4],
        cached_grid(h, w, device, np.float32),
        cached_anchors(anchors, device, np.float32),
        stride,
        scale_x_y,
    )
    boxes = boxes.reshape(n, h * w * a, 1, 4)
    mask = xp.empty((n, h * w * a), dtype=bool)
    for image in range(n):  # one image at a time bounds the (H*W*A, T) IoU table's memory
        mask[image] = iou(boxes[image], truths[image][None]).max(axis=-1) > threshold
    return mask.reshape(n, h, w, a)


def yolo_loss(maps: tuple, targets: tuple, config: YOLO_V4Config, truths: list | None = None, read: bool = True):
    """The loss of raw ``maps`` against encoded ``targets``; returns (scalar Tensor, terms).

    ``truths``, the per-image xyxy boxes, feed the ignore mask; without them they are read
    back from the encoded grid. With ``read=False`` the terms stay on the device unread
    (and unchecked for NaN), and None is returned for them.
    """
    device = maps[0].device
    if isinstance(targets, PackedTargets):
        targets, truth_array = targets.encoded, targets.truths
        check_encoded(targets, maps, config)
    else:
        targets = [t.data if isinstance(t, lucid.Tensor) else t for t in targets]
        check_encoded(targets, maps, config)
        if truths is None:
            truths = decode_targets(targets, config)
        targets, truth_array = pack_targets(tuple(targets), padded_truths(truths), device)
    batch = maps[0].shape[0]
    box_sum = obj_sum = cls_sum = iou_sum = count = 0.0
    for level, (raw, target) in enumerate(zip(maps, targets, strict=True)):
        box, obj, cls, iou_branch, positives = level_loss(raw, target, truth_array, level, config)
        box_sum, obj_sum, cls_sum, iou_sum = box_sum + box, obj_sum + obj, cls_sum + cls, iou_sum + iou_branch
        count = count + positives
    parts = {"box": box_sum, "obj": obj_sum, "cls": cls_sum, "iou_branch": iou_sum}
    total = (box_sum + obj_sum + cls_sum + iou_sum) * (1.0 / batch)
    if not read:
        return total, None
    # The one host read of the step: every term and the positive count, at once.
    values = backend.as_numpy(lucid.stack([t.detach() for t in (*parts.values(), count)]).data).tolist()
    for name, value in zip(parts, values, strict=False):
        if not math.isfinite(value):
            raise FloatingPointError(
                f"YOLOv4 loss: the {name} term is {value}; check the learning rate, the input scaling "
                "(images in [0, 1]) and the labels"
            )
    terms = LossTerms(*(v / batch for v in values[:4]), num_positives=int(values[4]))
    return total, terms


def level_loss(raw: lucid.Tensor, target: Any, truths: Any, level: int, config: YOLO_V4Config):
    """One stride's (box, obj, cls, iou_branch, number of positives), each a 0-d Tensor."""
    device, num_anchors = raw.device, len(config.anchors[level])
    stride, scale = config.strides[level], config.scale_x_y[level]
    values = split_anchors(raw, num_anchors)  # (N, H, W, A, V) Tensor
    n, h, w, a, _ = values.shape
    target = target.reshape(n, h, w, a, -1)  # (N, H, W, A, 5 + C) array
    cells, anchors = cached_grid(h, w, device, np.float32), cached_anchors(config.anchors[level], device, np.float32)
    positive = target[..., 4]  # (N, H, W, A): 1 where a slot is responsible, else 0
    on_positives = lucid.Tensor(positive[..., None])  # (N, H, W, A, 1), broadcasts over values

    # Box: every slot's truth, decoded from its encoding (an anchor-sized box where empty, so
    # every value stays finite), against every prediction, kept on the positives.
    truth = decode_truth_slots(target, cells, anchors, stride)  # (N, H, W, A, 4) array
    predicted = decode_boxes(values[..., :4], cells, anchors, stride, scale)  # (N, H, W, A, 4) Tensor
    if config.box_loss == "mse":
        box = mse_box_term(values, target, scale, truth, h * w * stride * stride, on_positives)
    else:
        overlap = iou(predicted, lucid.Tensor(truth), config.box_loss)
        # where, not a product with the mask: a NaN elsewhere must not reach the box term
        box = lucid.where(positive > 0.5, 1 - overlap, 0.0).sum() * config.iou_normalizer

    # Objectness over every cell: 1 on positives (or the IoU mix), 0 elsewhere, and no loss
    # where a prediction already overlaps some truth well (the ignore mask) unless positive.
    xp = backend.get_array_module(target)
    ignored = ignore_mask(raw.data, config.anchors[level], stride, scale, truths, config.ignore_iou_thr)
    weight = xp.maximum(1 - ignored.astype(target.dtype), positive)
    obj_target = positive
    fit = None
    if config.iou_aware_alpha > 0 or config.iou_aware:  # only the IoU-aware options need the plain IoU
        fit = xp.clip(iou(predicted.data, truth), 0, 1)
    if config.iou_aware_alpha > 0:
        alpha = config.iou_aware_alpha
        obj_target = positive * ((1 - alpha) + alpha * fit)
    obj = F.binary_cross_entropy_with_logits(
        values[..., 4], lucid.Tensor(obj_target), weight=lucid.Tensor(weight), reduction="sum"
    )
    obj = obj * (config.obj_normalizer * config.obj_balance[level])

    # Classes on the positives, against one-hot targets smoothed to [eps / 2, 1 - eps / 2].
    eps = config.cls_label_smoothing
    first_class = 6 if config.iou_aware else 5
    classes = target[..., 5:] * (1 - eps) + eps / 2
    cls = F.binary_cross_entropy_with_logits(
        values[..., first_class:], lucid.Tensor(classes), weight=on_positives, reduction="sum"
    )
    cls = cls * config.cls_normalizer
    iou_branch = lucid.zeros((), device=device)
    if config.iou_aware:
        iou_branch = F.binary_cross_entropy_with_logits(
            values[..., 5], lucid.Tensor(fit), weight=on_positives[..., 0], reduction="sum"
        )
        iou_branch = iou_branch * config.iou_branch_weight
    return box, obj, cls, iou_branch, on_positives.sum()


def decode_truth_slots(target: Any, cells: Any, anchors: Any, stride: int) -> Any:
    """xyxy boxes (N, H, W, A, 4) in pixels held by every slot of an encoded level (N, H, W,
    A, 5 + C): the inverse of ``encode_targets`` (an empty slot gives an anchor-sized box)."""
    xp = backend.get_array_module(target)
    centre = (cells + target[..., 0:2]) * stride
    size = anchors * xp.exp(target[..., 2:4])
    return xp.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def mse_box_term(values, target, scale: float, truth, image_area: float, on_positives):
    """darknet's MSE box loss: squared error of the decoded offsets and log sizes, weighted
    by (2 - box area / image area) so small boxes count more."""
    offset = lucid.sigmoid(values[..., 0:2]) * scale - (scale - 1) / 2
    area = (truth[..., 2:3] - truth[..., 0:1]) * (truth[..., 3:4] - truth[..., 1:2])  # (N, H, W, A, 1)
    weight = lucid.Tensor(2 - area / image_area) * on_positives
    diff_xy = offset - lucid.Tensor(target[..., 0:2])
    diff_wh = values[..., 2:4] - lucid.Tensor(target[..., 2:4])
    return ((diff_xy * diff_xy + diff_wh * diff_wh) * weight).sum()
