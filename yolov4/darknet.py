"""darknet's formats in and out: ``load_darknet(cfg, weights)`` and ``save_darknet``.

A ``.weights`` file is a header (int32 major, minor, revision, then ``seen``: uint64 when
major * 10 + minor >= 2, else uint32) followed by float32 blobs, one group per
``[convolutional]`` section in cfg order: with batch normalization, its bias (beta), scale
(gamma), rolling mean and rolling variance, then the weights (out, in, kh, kw); without,
the bias then the weights.

A cfg is accepted when its layers are, one for one, the layers this project's model would
write for the same settings: the model describes itself (``YOLO_V4.to_darknet``) and the
two descriptions are compared, so a cfg it cannot represent is refused at its first
differing section, with that section's line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from minilucid import backend
from minilucid.serialization import write_atomically
from yolov4.cfg import Section, format_cfg, parse_cfg, structure
from yolov4.config import BOX_LOSSES, YOLO_V4Config, tiny_config
from yolov4.model import YOLO_V4

HEADER_VERSION = (0, 2, 5)  # major, minor, revision: minor >= 2 means a 64-bit `seen`
HEADER_NOTE = re.compile(r"#\s*minilucid:\s*width_multiple=([0-9.]+)\s+depth_multiple=([0-9.]+)")
NET_SETTINGS = {
    "batch": 64,
    "subdivisions": 8,
    "channels": 3,
    "momentum": 0.949,
    "decay": 0.0005,
    "angle": 0,
    "saturation": 1.5,
    "exposure": 1.5,
    "hue": 0.1,
    "learning_rate": 0.0013,
    "burn_in": 1000,
    "max_batches": 500500,
    "policy": "steps",
    "steps": "400000,450000",
    "scales": ".1,.1",
    "mosaic": 1,
}


# ----------------------------------------------------------------------------- cfg


def config_from_cfg(sections: list[Section], text: str = "", source: str = "cfg") -> YOLO_V4Config:
    """The YOLO_V4Config that a cfg describes (classes, anchors, thresholds, variant)."""
    yolos = [s for s in sections if s.kind == "yolo"]
    if len(yolos) not in (2, 3):
        raise ValueError(
            f"{source}: found {len(yolos)} [yolo] sections; this project reads YOLOv4 (3) and YOLOv4-tiny (2)"
        )
    tiny = len(yolos) == 2
    by_level = list(reversed(yolos)) if tiny else yolos  # tiny lists its stride-32 head first
    classes = {s.int("classes", 80) for s in yolos}
    if len(classes) != 1:
        raise ValueError(f"{source}: the [yolo] sections disagree on classes: {sorted(classes)}")
    anchors = []
    for s in by_level:
        flat = s.floats("anchors")
        if len(flat) % 2:
            raise ValueError(f"{source}: [yolo] at line {s.line}: anchors must be w,h pairs, got {len(flat)} numbers")
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        try:
            anchors.append(tuple(pairs[i] for i in s.ints("mask")))
        except IndexError:
            raise ValueError(
                f"{source}: [yolo] at line {s.line}: a mask index is past the {len(pairs)} anchors"
            ) from None
    first = by_level[0]
    box_loss = first.get("iou_loss", "ciou").lower()  # darknet also has iou_loss=iou, which we train as CIoU
    settings: dict[str, Any] = dict(
        num_classes=classes.pop(),
        anchors=anchors,
        image_channels=sections[0].int("channels", 3),
        scale_x_y=[s.floats("scale_x_y")[0] if s.get("scale_x_y") else 1.0 for s in by_level],
        ignore_iou_thr=float(first.get("ignore_thresh", 0.7)),
        pos_iou_thr=float(first.get("iou_thresh", 0.213)),
        iou_normalizer=float(first.get("iou_normalizer", 0.07)),
        cls_normalizer=float(first.get("cls_normalizer", 1.0)),
        box_loss=box_loss if box_loss in BOX_LOSSES else "ciou",
        nms_kind="diou" if "diou" in first.get("nms_kind", "diounms").lower() else "greedy",
        beta_nms=float(first.get("beta_nms", 0.6)),
    )
    note = HEADER_NOTE.search(text)
    if note:
        settings.update(width_multiple=float(note.group(1)), depth_multiple=float(note.group(2)))
    return tiny_config(**settings) if tiny else YOLO_V4Config(**settings)


def check_structure(expected: list[Section], given: list[Section], source: str) -> None:
    """Raise at the first layer of ``given`` that differs from ``expected`` in structure."""
    for index in range(max(len(expected), len(given)) - 1):
        if index + 1 >= len(given):
            raise ValueError(f"{source}: ends after {len(given) - 1} layers; this model has {len(expected) - 1}")
        section = given[index + 1]
        where = f"{source}: layer {index} ([{section.kind}] at line {section.line})"
        if index + 1 >= len(expected):
            raise ValueError(f"{where}: this model has only {len(expected) - 1} layers")
        want, have = structure(expected, index), structure(given, index)
        if expected[index + 1].kind != section.kind:
            raise ValueError(f"{where}: expected a [{expected[index + 1].kind}] section here")
        if want != have:
            differences = ", ".join(f"{k}={have.get(k)} (expected {v})" for k, v in want.items() if have.get(k) != v)
            raise ValueError(f"{where} cannot be represented: {differences or have}")


def cfg_text(model: YOLO_V4, width: int = 416, height: int = 416) -> str:
    """The darknet cfg of ``model``."""
    c = model.config
    net = Section(
        "net",
        {
            k: str(v)
            for k, v in {
                **NET_SETTINGS,
                "width": width,
                "height": height,
                "channels": c.image_channels,
            }.items()
        },
    )
    header = "written by minilucid's yolov4"
    if c.width_multiple != 1 or c.depth_multiple != 1:
        header += f"\nminilucid: width_multiple={c.width_multiple} depth_multiple={c.depth_multiple}"
    return format_cfg([net, *model.to_darknet().sections], header)


# ----------------------------------------------------------------------------- weights


def _blobs(model: YOLO_V4) -> list[Any]:
    """The tensors of a .weights file in file order."""
    tensors = []
    for unit in model.to_darknet().units:
        if unit.bn is not None:
            tensors += [unit.bn.bias, unit.bn.weight, unit.bn.running_mean, unit.bn.running_var]
        else:
            tensors.append(unit.conv.bias)
        tensors.append(unit.conv.weight)
    return tensors


def read_weights(model: YOLO_V4, path: str | os.PathLike) -> int:
    """Fill ``model`` from a darknet .weights file; returns the header's ``seen``."""
    raw = Path(path).read_bytes()
    if len(raw) < 16:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a darknet .weights header")
    major, minor, _ = np.frombuffer(raw[:12], dtype="<i4")
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    header = 20 if wide else 16
    seen = int(np.frombuffer(raw[12:header], dtype="<u8" if wide else "<u4")[0])
    tensors = _blobs(model)
    floats = sum(t.size for t in tensors)
    if len(raw) != header + 4 * floats:
        raise ValueError(
            f"{path}: expected {header + 4 * floats} bytes (a {header}-byte header and {floats} float32 "
            f"values for this cfg), got {len(raw)} bytes; the file does not belong to this cfg or is truncated"
        )
    values = np.frombuffer(raw[header:], dtype="<f4")
    offset = 0
    for tensor in tensors:
        block = values[offset : offset + tensor.size].reshape(tensor.shape)
        tensor.data[...] = backend.to_device(block.astype(tensor.dtype), tensor.device)
        offset += tensor.size
    return seen


def weights_bytes(model: YOLO_V4, seen: int = 0) -> bytes:
    """The .weights file of ``model`` (64-bit ``seen`` header)."""
    header = np.array(HEADER_VERSION, dtype="<i4").tobytes() + np.array([seen], dtype="<u8").tobytes()
    body = [backend.as_numpy(t.data).astype("<f4").ravel() for t in _blobs(model)]
    return header + np.concatenate(body).tobytes()


# ----------------------------------------------------------------------------- public


def load_darknet(cfg_path: str | os.PathLike, weights_path: str | os.PathLike | None = None) -> YOLO_V4:
    """Build the model a darknet ``.cfg`` describes and load its ``.weights`` (if given)."""
    cfg_path = Path(cfg_path)
    if not cfg_path.is_file():
        raise FileNotFoundError(f"load_darknet: no cfg file at {cfg_path}")
    text = cfg_path.read_text()
    sections = parse_cfg(text, str(cfg_path))
    model = YOLO_V4(config_from_cfg(sections, text, str(cfg_path)))
    check_structure([Section("net"), *model.to_darknet().sections], sections, str(cfg_path))
    model.darknet_input_size = (sections[0].int("width", 416), sections[0].int("height", 416))
    if weights_path is not None:
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"load_darknet: no weights file at {weights_path}")
        model.seen = read_weights(model, weights_path)
    return model


def save_darknet(
    model: YOLO_V4,
    cfg_path: str | os.PathLike,
    weights_path: str | os.PathLike,
    width: int = 416,
    height: int = 416,
    seen: int = 0,
) -> None:
    """Write ``model`` as a darknet ``.cfg`` and ``.weights`` pair (each written atomically)."""
    if width % 32 or height % 32:
        raise ValueError(f"save_darknet: width and height must be multiples of 32, got {width}x{height}")
    text = cfg_text(model, width, height).encode()
    write_atomically(cfg_path, lambda file: file.write(text))
    payload = weights_bytes(model, seen)
    write_atomically(weights_path, lambda file: file.write(payload))
