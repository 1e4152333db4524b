"""``YOLO_V4``: backbone, neck and head, with lucid's API.

Shapes: x (N, 3, H, W) with H and W multiples of 32; ``forward`` returns one raw map per
stride, ascending: (N, A * V, H / s, W / s) for s in 8, 16, 32 (16, 32 for YOLOv4-tiny),
V = 5 + C values per anchor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minilucid as lucid
from minilucid import backend, nn
from yolov4.backbone import CSPDarknet53, CSPDarknet53Tiny
from yolov4.boxes import VIEWING, NMSSettings
from yolov4.darknet.cfg_format import DarknetGraph
from yolov4.detect import detect
from yolov4.head import YOLOHead
from yolov4.layers import ConvUnit
from yolov4.loss import LossTerms, PackedTargets, pack_targets, padded_truths, yolo_loss
from yolov4.model_config import YOLO_V4Config, tiny_config, zoo_config
from yolov4.neck import TinyNeck, YOLOv4Neck
from yolov4.regularize import use_cross_minibatch_norm
from yolov4.targets import encode_targets, truth_boxes


def is_encoded(targets: Any, levels: int) -> bool:
    """Whether ``targets`` is the encoded tuple (one 4-D array per stride)."""
    return isinstance(targets, tuple) and len(targets) == levels and all(getattr(t, "ndim", None) == 4 for t in targets)


DEFAULT_INPUT_SIZE = 416


def network_batch(x: Any, channels: int) -> Any:
    """A batch (N, C, H, W), or (N, H, W, C) as images are usually stacked, as float32 in
    [0, 1] by the rule of ``yolov4.data.images.unit_scale`` (uint8 is divided by 255, a float
    batch on the 0-255 scale is refused); a Tensor stays on its device."""
    from yolov4.data.images import unit_scale  # Pillow's module, imported only to predict

    data = x.data if isinstance(x, lucid.Tensor) else x
    if not backend.is_gpu_array(data):
        data = np.asarray(data)
    if data.ndim == 4 and data.shape[1] != channels and data.shape[-1] == channels:
        data = data.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    return lucid.Tensor(unit_scale(data, "predict: the batch"))


def nms_threshold(iou_thresh: float | None, diou_thresh: float | None) -> float:
    """The NMS threshold from our name (``iou_thresh``) or lucid's (``diou_thresh``)."""
    if iou_thresh is not None and diou_thresh is not None and iou_thresh != diou_thresh:
        raise ValueError(
            f"predict: iou_thresh={iou_thresh} and diou_thresh={diou_thresh} disagree; "
            "expected one NMS threshold (diou_thresh is lucid's name for iou_thresh)"
        )
    for given in (iou_thresh, diou_thresh):
        if given is not None:
            return given
    return VIEWING.iou_thresh  # darknet's 0.45


class YOLO_V4(nn.Module):  # noqa: N801  (lucid's name)
    """YOLOv4 (or YOLOv4-tiny) as darknet's cfg defines it.

    ``YOLO_V4(config)``, or ``YOLO_V4(num_classes=80)`` and other config fields as keywords.
    """

    def __init__(self, config: YOLO_V4Config | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = YOLO_V4Config(**overrides)
        elif overrides:
            config = YOLO_V4Config(**{**config.__dict__, **overrides})
        if not isinstance(config, YOLO_V4Config):
            raise TypeError(f"YOLO_V4 expects a YOLO_V4Config, got {type(config).__name__}")
        self.config = config
        tiny = config.variant == "yolov4-tiny"
        neck_in = tuple(config.channels(c) for c in config.in_channels)
        if config.backbone is not None:
            self.backbone = config.backbone
            self.adapters = nn.ModuleList(
                [
                    ConvUnit(c, n, 1, activation="leaky")
                    for c, n in zip(config.backbone_out_channels, neck_in, strict=True)
                ]
            )
        else:
            self.backbone = CSPDarknet53Tiny(config) if tiny else CSPDarknet53(config)
            neck_in = self.backbone.out_channels
            self.adapters = None
        self.neck = TinyNeck(neck_in) if tiny else YOLOv4Neck(neck_in)
        hidden = (config.channels(256), config.channels(512)) if tiny else tuple(2 * c for c in self.neck.out_channels)
        self.head = nn.ModuleList(
            [
                YOLOHead(c, h, len(anchors), config.values_per_anchor, config.num_classes)
                for c, h, anchors in zip(self.neck.out_channels, hidden, config.anchors, strict=True)
            ]
        )
        if config.cmbn:
            use_cross_minibatch_norm(self)

    # ------------------------------------------------------------------ forward
    def check_input(self, x: Any) -> lucid.Tensor:
        """A (N, C, H, W) Tensor on the model's device with H and W multiples of 32, or a
        clear ValueError. Arrays and Tensors on another device are moved (one copy)."""
        device = next(iter(self.parameters())).device
        if not isinstance(x, lucid.Tensor):
            x = lucid.Tensor(x if backend.is_gpu_array(x) else np.asarray(x, dtype=np.float32))
        if x.device != device:
            x = x.to(device)
        if x.ndim != 4:
            raise ValueError(f"YOLO_V4 expects images of shape (N, C, H, W), got {x.shape}")
        if x.shape[1] != self.config.image_channels:
            raise ValueError(
                f"YOLO_V4 expects {self.config.image_channels} image channels, got {x.shape[1]} ({x.shape})"
            )
        step = max(self.config.strides) if self.config.backbone is not None else 32
        if x.shape[2] % step or x.shape[3] % step:
            raise ValueError(
                f"YOLO_V4 input height and width must be multiples of {step}, got {x.shape[2]}x{x.shape[3]}; "
                "resize or letterbox the image first"
            )
        return x

    def forward(self, x: Any) -> tuple[lucid.Tensor, ...]:
        """Raw output maps, one per stride (ascending)."""
        features = self.backbone(self.check_input(x))
        if self.adapters is not None:
            features = tuple(adapt(f) for adapt, f in zip(self.adapters, features, strict=True))
        return tuple(head(n) for head, n in zip(self.head, self.neck(features), strict=True))

    # ------------------------------------------------------------------ loss
    def get_loss(self, x: Any, targets: Any, read_terms: bool = True) -> lucid.Tensor:
        """The YOLOv4 loss of a batch, a scalar Tensor (``get_loss_and_terms`` also gives its parts).

        Reading the parts to check them for NaN is the step's one host read; with
        ``read_terms=False`` it is skipped, for callers that only differentiate the loss
        (SAT's attack). ``targets`` are ``get_loss_and_terms``'s.
        """
        if not read_terms:
            return self._loss(x, targets, read=False)[0]
        return self.get_loss_and_terms(x, targets)[0]

    def get_loss_and_terms(self, x: Any, targets: Any) -> tuple[lucid.Tensor, LossTerms]:
        """(the loss of a batch, a scalar Tensor; its parts as floats, ``LossTerms``), the parts
        read from the device in one copy and checked for NaN.

        ``targets`` is either one (M, 5) array [class_id, cx, cy, w, h] (input pixels) per
        image, or the encoded tuple of one (N, Hs, Ws, A * (5 + C)) array per stride
        (``yolov4.targets.encode_targets``). Both give the same loss for the same boxes, except
        where a box lost every slot to a later box (two boxes in the same cells with the same
        anchors): the encoded grid no longer holds it, so the ignore mask, which then reads its
        truths from the grid, does not spare predictions that overlap only that box.
        """
        return self._loss(x, targets, read=True)

    def _loss(self, x: Any, targets: Any, read: bool) -> tuple[lucid.Tensor, LossTerms | None]:
        """``yolo_loss`` of the maps of ``x``: (loss, terms), the terms None unless ``read``."""
        x = self.check_input(x)
        maps = self.forward(x)
        truths = None  # for encoded targets: read back from the encoded grid
        if not isinstance(targets, PackedTargets) and not is_encoded(targets, len(maps)):
            targets, truths = self.encode(targets, x.shape)
        return yolo_loss(maps, targets, self.config, truths, read)

    def encode(self, boxes: list, shape: tuple[int, ...]) -> tuple[tuple, list]:
        """Per-image (M, 5) boxes for images of ``shape`` (N, C, H, W) -> (encoded targets,
        xyxy truths), on the host."""
        if len(boxes) != shape[0]:
            raise ValueError(f"get_loss: {shape[0]} images but ground truth for {len(boxes)}")
        size = tuple(shape[2:])
        encoded = encode_targets(list(boxes), self.config, size)  # checks the boxes first
        return encoded, truth_boxes(list(boxes))

    def pack_targets(self, boxes: list, shape: tuple[int, ...]) -> PackedTargets:
        """Per-image (M, 5) boxes as ``PackedTargets`` on the model's device (one copy)."""
        encoded, truths = self.encode(boxes, shape)
        device = next(iter(self.parameters())).device
        return pack_targets(encoded, padded_truths(truths), [len(a) for a in self.config.anchors], device)

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        x: Any,
        conf_thresh: float = 0.25,
        iou_thresh: float | None = None,
        max_det: int = 300,
        nms_kind: str | None = None,
        *,
        diou_thresh: float | None = None,
        input_size: int | tuple[int, int] | None = None,
        letterbox: bool = True,
    ) -> list[list[dict[str, Any]]]:
        """Detections per image: ``{"box": [x1, y1, x2, y2], "score", "class_id"}``, best first,
        with boxes in the pixels of the image given, clipped to it.

        ``x`` is either a batch, an array or Tensor (N, C, H, W) (or (N, H, W, C)) with H and W
        multiples of 32 that goes into the network as it is; or one image or a list of images
        in any form ``yolov4.data.images.as_image`` reads (a path, a Pillow image, an array
        (H, W, 3) or (3, H, W), uint8 or float in [0, 1], a Tensor), each placed in the
        network's input by ``yolov4.inference.detect_images``: letterboxed, or stretched with
        ``letterbox=False`` as darknet does. ``input_size`` (multiples of 32) is that input;
        by default an image's own size where it is a multiple of 32, else the darknet cfg's
        size for a model read from one, else 416.

        Score = objectness x class probability. NMS is the config's kind (DIoU-NMS by
        default) per class, suppressing above ``iou_thresh`` (0.45, darknet's;
        ``diou_thresh`` is lucid's name for it), and ``max_det`` keeps the best; together they
        make the ``yolov4.boxes.NMSSettings`` passed down, which checks them. The model's
        train/eval mode is left as it was. On the GPU a batch is decoded and thresholded
        there, with two blocking syncs (``yolov4.detect``).
        """
        settings = NMSSettings(conf_thresh, nms_threshold(iou_thresh, diou_thresh), max_det, nms_kind)
        if input_size is None and getattr(x, "ndim", None) == 4:
            return self._predict_batch(x, settings)
        from yolov4.data.images import as_image  # Pillow's module: the model itself does without it
        from yolov4.inference import detect_images  # it calls back here with a batch

        images = [as_image(image, f"predict: image {n}") for n, image in enumerate(x if isinstance(x, list) else [x])]
        if input_size is None:
            sizes = {image.shape[1:] for image in images}
            own = sizes.pop() if len(sizes) == 1 else (0, 0)
            input_size = own if all(s > 0 and s % 32 == 0 for s in own) else self.default_input_size()
        return detect_images(self, images, input_size, settings, letterbox=letterbox)

    def _predict_batch(self, x: Any, settings: NMSSettings) -> list[list[dict[str, Any]]]:
        """``predict`` of a batch that is the network's input as it is (``network_batch``)."""
        x = self.check_input(network_batch(x, self.config.image_channels))
        was_training = self.training
        self.eval()
        try:
            with lucid.no_grad():
                maps = self.forward(x)
        finally:
            self.train(was_training)
        return detect(self.config, maps, x.shape[2:], settings)

    def default_input_size(self) -> tuple[int, int]:
        """(height, width) that ``predict`` places an image in unless told: the darknet cfg's
        for a model read from one (``load_darknet``), else 416 x 416."""
        width, height = getattr(self, "darknet_input_size", (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE))
        return height, width

    # ------------------------------------------------------------------ darknet
    def yolo_options(self, level: int) -> dict[str, Any]:
        """The ``[yolo]`` section of output ``level``, from the config."""
        c = self.config
        flat = [a for anchors in c.anchors for a in anchors]
        start = sum(len(a) for a in c.anchors[:level])
        return {
            "mask": ",".join(str(i) for i in range(start, start + len(c.anchors[level]))),
            "anchors": ", ".join(f"{w:g},{h:g}" for w, h in flat),
            "classes": c.num_classes,
            "num": len(flat),
            "jitter": 0.3,
            "ignore_thresh": c.ignore_iou_thr,
            "truth_thresh": 1,
            "scale_x_y": c.scale_x_y[level],
            "iou_thresh": c.pos_iou_thr,
            "cls_normalizer": c.cls_normalizer,
            "iou_normalizer": c.iou_normalizer,
            "iou_loss": c.box_loss,
            "nms_kind": "diounms" if c.nms_kind == "diou" else "greedynms",
            "beta_nms": c.beta_nms,
        }

    def to_darknet(self) -> DarknetGraph:
        """This model as darknet layers: the cfg sections and the conv units in cfg order."""
        if self.config.backbone is not None:
            raise ValueError("a model with a custom backbone has no darknet form")
        graph = DarknetGraph()

        def write_head(level: int, source: int) -> None:
            self.head[level].to_darknet(graph, source, self.yolo_options(level))

        self.neck.to_darknet(graph, self.backbone.to_darknet(graph, -1), write_head)
        return graph

    def count_floats(self) -> int:
        """Parameters plus BatchNorm running statistics: the floats of a darknet .weights file."""
        return sum(t.size for t in self.parameters()) + sum(t.size for t in self.buffers())


def yolo_v4(num_classes: int = 80, **overrides: Any) -> YOLO_V4:
    """YOLOv4 of yolov4.cfg with ``num_classes`` classes; other config fields as keywords."""
    return YOLO_V4(YOLO_V4Config(num_classes=num_classes, **overrides))


def yolo_v4_tiny(num_classes: int = 80, **overrides: Any) -> YOLO_V4:
    """YOLOv4-tiny of yolov4-tiny.cfg with ``num_classes`` classes."""
    return YOLO_V4(tiny_config(num_classes=num_classes, **overrides))


def build_model(name: str, num_classes: int, **overrides: Any) -> YOLO_V4:
    """A zoo model by name: yolov4, yolov4-tiny, medium (width 0.5), small (width 0.25), tiny-small."""
    return YOLO_V4(zoo_config(name, num_classes, **overrides))
