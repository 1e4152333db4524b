"""``YOLO_V4Config``: every setting of the detector in one validated dataclass.

Field names follow lucid's ``YOLO_V4Config``; the defaults come from darknet's
``cfg/yolov4.cfg`` (where lucid's differ, darknet's are used and the field says so).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

# Anchors in input pixels, one tuple of three (w, h) per stride (yolov4.cfg, masks 0-2, 3-5, 6-8).
YOLOV4_ANCHORS = (
    ((12, 16), (19, 36), (40, 28)),
    ((36, 75), (76, 55), (72, 146)),
    ((142, 110), (192, 243), (459, 401)),
)
# yolov4-tiny.cfg: stride 16 uses masks 1,2,3 and stride 32 masks 3,4,5 (anchor 0 is unused).
YOLOV4_TINY_ANCHORS = (
    ((23, 27), (37, 58), (81, 82)),
    ((81, 82), (135, 169), (344, 319)),
)
VARIANTS = ("yolov4", "yolov4-tiny")
BOX_LOSSES = ("ciou", "diou", "giou", "mse")
NMS_KINDS = ("diou", "greedy")


@dataclass
class YOLO_V4Config:  # noqa: N801  (lucid's name)
    """Settings of a YOLOv4 model.

    Args:
        num_classes: number of object classes C; each anchor predicts 5 + C values.
        anchors: per stride, the (w, h) of its anchors in input pixels.
        strides: the output strides, ascending (8, 16, 32 for YOLOv4).
        variant: ``"yolov4"`` (CSPDarknet53 + SPP + PANet) or ``"yolov4-tiny"``.
        backbone: a custom backbone Module returning one map per stride, or None.
        backbone_out_channels: channels of a custom backbone's maps (None for the built-in).
        in_channels: channels entering the neck per stride (CSPDarknet53's C3, C4, C5).
        image_channels: channels of the input image.
        pos_iou_thr: darknet's ``iou_thresh``: extra anchors whose shape IoU with a ground
            truth exceeds it are positive too (lucid: 0.25; darknet: 0.213).
        ignore_iou_thr: darknet's ``ignore_thresh``: no "no object" loss for predictions that
            overlap a ground truth more than this (lucid: 0.5; darknet: 0.7).
        obj_balance: objectness weight per stride (lucid: 4, 1, 0.4; darknet: 1, 1, 1).
        cls_label_smoothing: label smoothing eps of class targets, in [0, 1): the class's
            target becomes 1 - eps / 2 and the others' eps / 2, as darknet's ``label_smooth_eps``.
        iou_aware_alpha: IoU-aware objectness target mix, in [0, 1] (0: off, as darknet).
        iou_branch_weight: weight of the IoU-prediction branch; > 0 adds one channel per
            anchor (6 + C), as lucid (0: off, as darknet).
        scale_x_y: grid sensitivity per stride (1.2, 1.1, 1.05).
        iou_normalizer: weight of the box term (0.07).
        cls_normalizer, obj_normalizer: weights of the class and objectness terms (1.0).
        box_loss: ``"ciou"`` (default), ``"diou"``, ``"giou"`` or ``"mse"``.
        nms_kind: ``"diou"`` (default) or ``"greedy"``; beta_nms: DIoU-NMS's beta (0.6).
        width_multiple, depth_multiple: scale channels and residual blocks for small variants.
        drop_block: DropBlock's drop probability after backbone stages 3-5 (0: off).
        drop_block_size: DropBlock's block size (7, as the DropBlock paper).
        cmbn: Cross mini-Batch Normalization: BatchNorm statistics accumulated over the
            mini-batches of one update (with gradient accumulation), instead of per mini-batch.
    """

    num_classes: int = 80
    anchors: Any = YOLOV4_ANCHORS
    strides: Any = (8, 16, 32)
    variant: str = "yolov4"
    backbone: Any = None
    backbone_out_channels: Any = None
    in_channels: Any = (256, 512, 1024)
    image_channels: int = 3
    pos_iou_thr: float = 0.213
    ignore_iou_thr: float = 0.7
    obj_balance: Any = (1.0, 1.0, 1.0)
    cls_label_smoothing: float = 0.0
    iou_aware_alpha: float = 0.0
    iou_branch_weight: float = 0.0
    scale_x_y: Any = (1.2, 1.1, 1.05)
    iou_normalizer: float = 0.07
    cls_normalizer: float = 1.0
    obj_normalizer: float = 1.0
    box_loss: str = "ciou"
    nms_kind: str = "diou"
    beta_nms: float = 0.6
    width_multiple: float = 1.0
    depth_multiple: float = 1.0
    drop_block: float = 0.0
    drop_block_size: int = 7
    cmbn: bool = False

    def __post_init__(self) -> None:
        self.anchors = tuple(tuple((float(w), float(h)) for w, h in level) for level in _listed(self, "anchors"))
        self.strides = tuple(_listed(self, "strides"))
        self.in_channels = tuple(_listed(self, "in_channels"))
        self.obj_balance = tuple(float(v) for v in _listed(self, "obj_balance"))
        self.scale_x_y = tuple(float(v) for v in _listed(self, "scale_x_y"))
        self.check()

    @property
    def num_levels(self) -> int:
        """How many output maps (strides) the model has."""
        return len(self.strides)

    @property
    def has_iou_branch(self) -> bool:
        """Whether each anchor predicts an extra IoU logit (6 + C channels)."""
        return self.iou_branch_weight > 0

    @property
    def values_per_anchor(self) -> int:
        """5 + C, or 6 + C with the IoU branch."""
        return 5 + int(self.has_iou_branch) + self.num_classes

    def channels(self, width: int) -> int:
        """A layer width of the full model scaled by ``width_multiple``."""
        return max(1, round(width * self.width_multiple))

    def blocks(self, count: int) -> int:
        """A residual block count of the full model scaled by ``depth_multiple``."""
        return max(1, round(count * self.depth_multiple))

    def check(self) -> None:
        """Check every field; a ValueError names the first wrong one, its value and what is allowed."""
        levels = 2 if self.variant == "yolov4-tiny" else 3
        custom = self.backbone is not None
        positive_int = (lambda v: isinstance(v, int) and v > 0, "a positive int")
        in_unit = (lambda v: 0 <= v <= 1, "a number in [0, 1]")
        at_least_0 = (lambda v: v >= 0, "a number >= 0")
        multiple = (lambda v: 0 < v <= 4 and math.isfinite(v), "a number in (0, 4]")
        tiny_hint = " (yolov4-tiny has its own strides and anchors: build it with tiny_config())" if levels == 2 else ""
        check_settings(
            self,
            {
                "variant": (lambda v: v in VARIANTS, f"one of {VARIANTS}"),
                "num_classes": positive_int,
                "strides": (
                    lambda v: (
                        len(v) == levels and all(isinstance(s, int) and s > 0 for s in v) and list(v) == sorted(set(v))
                    ),
                    f"{levels} positive, ascending ints{tiny_hint}",
                ),
                "anchors": (
                    lambda v: (
                        len(v) == levels
                        and all(len(a) > 0 for a in v)
                        and all(w > 0 and h > 0 for a in v for w, h in a)
                    ),
                    f"{levels} lists (one per stride) of positive (w, h) pairs",
                ),
                "in_channels": (
                    lambda v: len(v) == levels and all(isinstance(c, int) and c > 0 for c in v),
                    f"{levels} positive ints",
                ),
                "backbone_out_channels": (
                    (lambda v: v is not None and len(v) == levels, f"{levels} ints, required with a custom backbone")
                    if custom
                    else (lambda v: v is None, "None for the built-in backbone")
                ),
                "image_channels": positive_int,
                "pos_iou_thr": in_unit,
                "ignore_iou_thr": in_unit,
                "iou_aware_alpha": in_unit,
                "obj_balance": (lambda v: len(v) == levels and all(b > 0 for b in v), f"{levels} positive numbers"),
                "cls_label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
                "iou_branch_weight": at_least_0,
                "scale_x_y": (lambda v: len(v) == levels and all(s >= 1 for s in v), f"{levels} numbers >= 1"),
                "iou_normalizer": at_least_0,
                "cls_normalizer": at_least_0,
                "obj_normalizer": at_least_0,
                "box_loss": (lambda v: v in BOX_LOSSES, f"one of {BOX_LOSSES}"),
                "nms_kind": (lambda v: v in NMS_KINDS, f"one of {NMS_KINDS}"),
                "beta_nms": (lambda v: v > 0, "a number > 0"),
                "drop_block": (lambda v: 0 <= v < 1, "a probability in [0, 1)"),
                "drop_block_size": positive_int,
                "width_multiple": multiple,
                "depth_multiple": multiple,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for checkpoints and logs); a custom backbone cannot be serialized."""
        if self.backbone is not None:
            raise ValueError("a config with a custom backbone Module cannot be turned into plain values")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "backbone"}


def _listed(config: YOLO_V4Config, name: str) -> list:
    value = getattr(config, name)
    try:
        return list(value)
    except TypeError:
        raise ValueError(f"YOLO_V4Config.{name} must be a sequence, got {value!r}") from None


# A setting's check: (predicate on its value, what is expected, as the error says it).
Check = tuple[Callable[[Any], bool], str]


def check_settings(owner: object, checks: dict[str, Check]) -> None:
    """Each named setting of ``owner`` against its check, in order; a one-line ValueError
    ``Owner.name = value is invalid: expected ...`` for the first that fails (a predicate that
    raises, on a value of the wrong kind, fails too)."""
    for name, (ok, expected) in checks.items():
        value = getattr(owner, name)
        try:
            passed = bool(ok(value))
        except (TypeError, ValueError):
            passed = False
        if not passed:
            raise ValueError(f"{type(owner).__name__}.{name} = {value!r} is invalid: expected {expected}")


def tiny_config(**overrides: Any) -> YOLO_V4Config:
    """The settings of yolov4-tiny.cfg."""
    settings = dict(
        variant="yolov4-tiny",
        anchors=YOLOV4_TINY_ANCHORS,
        strides=(16, 32),
        in_channels=(256, 512),
        obj_balance=(1.0, 1.0),
        scale_x_y=(1.05, 1.05),
    )
    return YOLO_V4Config(**{**settings, **overrides})


# The model zoo: the models the trainer and the CLI know by name, as config settings
# (``yolov4.model.build_model`` builds one).
MODELS = {
    "yolov4": {},
    "yolov4-tiny": {"variant": "yolov4-tiny"},
    "medium": {"width_multiple": 0.5, "depth_multiple": 0.67},
    "small": {"width_multiple": 0.25, "depth_multiple": 0.33},
    "tiny-small": {"variant": "yolov4-tiny", "width_multiple": 0.5},
}


def zoo_config(name: str, num_classes: int = 80, **overrides: Any) -> YOLO_V4Config:
    """The config of the zoo model ``name`` (yolov4, yolov4-tiny, medium, small, tiny-small),
    with ``overrides`` on top; a one-line ValueError for a name the zoo does not have."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    settings = {**MODELS[name], "num_classes": num_classes, **overrides}
    if settings.pop("variant", None) == "yolov4-tiny":
        return tiny_config(**settings)
    return YOLO_V4Config(**settings)
