"""The YOLOv4 loss, darknet's yolo_layer.c written out with minilucid ops.

Per stride, with P the responsible (positive) predictions of the encoded targets:
    box = iou_normalizer * sum_P (1 - CIoU(predicted box, ground truth))    (or DIoU, GIoU, MSE)
    obj = obj_normalizer * balance_s * sum BCE(obj logit, target), the target being 1 on P
          (or a mix with the IoU, IoU-aware) and 0 elsewhere, except that predictions whose
          decoded box overlaps some ground truth by more than ``ignore_thresh`` are left out
    cls = cls_normalizer * sum_P BCE(class logits, one-hot smoothed to [eps / 2, 1 - eps / 2])
Each term is summed over the batch and divided by the batch size, so the learning rate
does not depend on it.

All of it runs on the model's device. On a GPU the encoded targets and the truth boxes go up
in one copy (``pack_targets``), which also counts each stride's positives on the host, so
the positives are gathered on the device without a data-dependent ``nonzero``
(``sync_free.first_true``); the ignore mask compares the decoded predictions with the truth
boxes there; and the loss terms come back in one read (``sync_free.read_together``), the
step's only sync.
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
from yolov4.decode import cached_anchors, cached_grid, cell_offset, decode_boxes, split_anchors
from yolov4.model_config import YOLO_V4Config
from yolov4.sync_free import first_true, read_together
from yolov4.targets import decode_targets, slot_boxes


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
    """A batch's targets on the model's device: the encoded arrays (one per stride), the truth
    boxes (N, T, 4), and each stride's number of positives (counted on the host, so the loss
    can gather the positives without asking the device). ``YOLO_V4.get_loss`` takes them in
    place of the boxes, so two passes over one batch (SAT's attack, then the step) copy the
    targets up once."""

    encoded: tuple
    truths: Any
    counts: tuple[int, ...] | None


def pack_targets(encoded: tuple, truths: np.ndarray, num_anchors: list[int], device: str) -> PackedTargets:
    """Encoded targets (one array per stride) and truths (N, T, 4) on ``device`` in one copy.

    Host arrays are laid end to end in one float32 buffer, copied once and cut into views.
    Arrays already on the device stay there; their positives are then counted there (a sync).
    """
    arrays = [*encoded, truths]
    if all(backend.device_of(a) == device for a in arrays):
        return PackedTargets(tuple(arrays[:-1]), arrays[-1], None)
    host = [backend.as_numpy(a).astype(np.float32, copy=False) for a in arrays]
    counts = tuple(
        int((t.reshape(*t.shape[:3], a, -1)[..., 4] > 0.5).sum()) for t, a in zip(host[:-1], num_anchors, strict=True)
    )
    flat = backend.to_device(np.concatenate([a.ravel() for a in host]), device)
    views, start = [], 0
    for a in host:
        views.append(flat[start : start + a.size].reshape(a.shape))
        start += a.size
    return PackedTargets(tuple(views[:-1]), views[-1], counts)


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


def yolo_loss(maps: tuple, targets: Any, config: YOLO_V4Config, truths: list | None = None, read: bool = True):
    """The loss of raw ``maps`` against ``targets``; returns (scalar Tensor, terms).

    ``targets`` is the encoded tuple (one array per stride) or ``PackedTargets``.
    ``truths``, the per-image xyxy boxes, feed the ignore mask; without them they are read
    back from the encoded grid. With ``read=False`` the terms stay on the device unread
    (and unchecked for NaN), and None is returned for them.
    """
    if isinstance(targets, PackedTargets):
        check_encoded(targets.encoded, maps, config)
    else:
        targets = [t.data if isinstance(t, lucid.Tensor) else t for t in targets]
        check_encoded(targets, maps, config)
        if truths is None:
            truths = decode_targets(targets, config)
        anchors = [len(a) for a in config.anchors]
        targets = pack_targets(tuple(targets), padded_truths(truths), anchors, maps[0].device)
    batch = maps[0].shape[0]
    box_sum = obj_sum = cls_sum = iou_sum = 0.0
    positives = 0
    counts = targets.counts or [None] * len(maps)
    for level, (raw, target, count) in enumerate(zip(maps, targets.encoded, counts, strict=True)):
        box, obj, cls, iou_branch, count = level_loss(raw, target, targets.truths, count, level, config)
        box_sum, obj_sum, cls_sum, iou_sum = box_sum + box, obj_sum + obj, cls_sum + cls, iou_sum + iou_branch
        positives += count
    parts = {"box": box_sum, "obj": obj_sum, "cls": cls_sum, "iou_branch": iou_sum}
    total = (box_sum + obj_sum + cls_sum + iou_sum) * (1.0 / batch)
    if not read:
        return total, None
    values = dict(zip(parts, read_together(list(parts.values())), strict=True))  # the step's one host read
    for name, value in values.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"YOLOv4 loss: the {name} term is {value}; check the learning rate, the input scaling "
                "(images in [0, 1]) and the labels"
            )
    return total, LossTerms(**{name: value / batch for name, value in values.items()}, num_positives=positives)


def level_loss(raw: lucid.Tensor, target: Any, truths: Any, count: int | None, level: int, config: YOLO_V4Config):
    """One stride's (box, obj, cls, iou_branch) terms, 0-d Tensors (a constant 0 for a term
    that has no positives to measure, or that the config turns off), and the number of positives.

    ``count`` is the number of positive slots, counted on the host by ``pack_targets`` (None:
    counted here, a sync), so the positives are gathered on the device without one
    (``first_true``).
    """
    device, num_anchors = raw.device, len(config.anchors[level])
    stride, scale = config.strides[level], config.scale_x_y[level]
    values = split_anchors(raw, num_anchors)  # (N, H, W, A, V) Tensor
    n, h, w, a, v = values.shape
    xp = backend.get_array_module(target)
    target = target.reshape(n, h, w, a, -1)  # (N, H, W, A, 5 + C) array
    positive = target[..., 4]  # (N, H, W, A): 1 where a slot is responsible, else 0
    if count is None:
        count = int((positive > 0.5).sum())  # targets encoded on the device: one sync to count them

    # Objectness over every cell: 1 on positives (or the IoU mix), 0 elsewhere, and no loss
    # where a prediction already overlaps some truth well (the ignore mask) unless positive.
    ignored = ignore_mask(raw.data, config.anchors[level], stride, scale, truths, config.ignore_iou_thr)
    weight = xp.maximum(1 - ignored.astype(target.dtype), positive)
    obj_target = positive
    box = cls = iou_branch = lucid.zeros((), dtype=raw.dtype, device=device)
    if count:
        index = first_true(positive > 0.5, count)  # (P,) flat slot indices of the positives, in order
        picked = values.reshape(-1, v)[index]  # (P, V) Tensor
        slots = target.reshape(n * h * w * a, -1)[index]  # (P, 5 + C) array
        cells = xp.stack([(index // a) % w, (index // (a * w)) % h], axis=-1).astype(target.dtype)  # [col, row]
        anchor_wh = cached_anchors(config.anchors[level], device, np.float32)[index % a]  # (P, 2)
        truth = slot_boxes(slots, cells, anchor_wh, stride)  # (P, 4) array
        predicted = decode_boxes(picked[:, :4], cells, anchor_wh, stride, scale)  # (P, 4) Tensor
        if config.box_loss == "mse":
            box = mse_box_term(picked, slots, scale, truth, h * w * stride * stride)
        else:
            box = (1 - iou(predicted, lucid.Tensor(truth), config.box_loss)).sum() * config.iou_normalizer
        fit = None
        if config.iou_aware_alpha > 0 or config.has_iou_branch:  # only the IoU-aware options need the plain IoU
            fit = xp.clip(iou(predicted.data, truth), 0, 1)  # (P,)
        if config.iou_aware_alpha > 0:
            alpha = config.iou_aware_alpha
            obj_target = positive.copy()
            obj_target.reshape(-1)[index] = (1 - alpha) + alpha * fit
        first_class = 6 if config.has_iou_branch else 5
        classes = smoothed_class_targets(slots[:, 5:], config.cls_label_smoothing)
        cls = F.binary_cross_entropy_with_logits(picked[:, first_class:], lucid.Tensor(classes), reduction="sum")
        cls = cls * config.cls_normalizer
        if config.has_iou_branch:
            iou_branch = F.binary_cross_entropy_with_logits(picked[:, 5], lucid.Tensor(fit), reduction="sum")
            iou_branch = iou_branch * config.iou_branch_weight
    obj = F.binary_cross_entropy_with_logits(
        values[..., 4], lucid.Tensor(obj_target), weight=lucid.Tensor(weight), reduction="sum"
    )
    obj = obj * (config.obj_normalizer * config.obj_balance[level])
    return box, obj, cls, iou_branch, count


def smoothed_class_targets(one_hot: Any, eps: float) -> Any:
    """Class label smoothing, as darknet's delta_yolo_class does: y * (1 - eps) + eps / 2, so
    1 - eps / 2 for the true class and eps / 2 for the others (eps = 0: the one-hot itself)."""
    return one_hot * (1 - eps) + eps / 2


def mse_box_term(picked: lucid.Tensor, slots: Any, scale: float, truth: Any, image_area: float):
    """darknet's MSE box loss: squared error of the decoded offsets and log sizes, weighted
    by (2 - box area / image area) so small boxes count more."""
    offset = cell_offset(picked[:, 0:2], scale)
    area = (truth[:, 2:3] - truth[:, 0:1]) * (truth[:, 3:4] - truth[:, 1:2])  # (P, 1)
    diff_xy = offset - lucid.Tensor(slots[:, 0:2])
    diff_wh = picked[:, 2:4] - lucid.Tensor(slots[:, 2:4])
    return ((diff_xy * diff_xy + diff_wh * diff_wh) * lucid.Tensor(2 - area / image_area)).sum()
