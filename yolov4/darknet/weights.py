"""darknet's formats in and out: ``load_darknet(cfg, weights)`` and ``save_darknet``.

A ``.weights`` file is a header (int32 major, minor, revision, then ``seen``: uint64 when
major * 10 + minor >= 2, else uint32) followed by float32 blobs, one group per
``[convolutional]`` section in cfg order: with batch normalization, its bias (beta), scale
(gamma), rolling mean and rolling variance, then the weights (out, in, kh, kw); without,
the bias then the weights. A cut file (``partial``, e.g. ``yolov4.conv.137``) holds the
blobs of the first layers only and just ends; ``read_darknet_arrays`` reads it, or a file
made for another class count, against a model's layers (the fine-tuning path).

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
from minilucid.serialization import write_atomically, write_text_atomically
from yolov4.darknet.cfg_format import Section, format_cfg, parse_cfg, structure
from yolov4.model import YOLO_V4
from yolov4.model_config import BOX_LOSSES, YOLO_V4Config, tiny_config

DARKNET_CFG_FOLDER = Path(__file__).with_name("files")  # files from darknet's cfg/ folder, shipped
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


def unit_tensors(unit: Any) -> list[tuple[str, Any]]:
    """A conv layer's tensors in .weights order, each with its name inside the ConvUnit."""
    if unit.bn is None:
        return [("conv.bias", unit.conv.bias), ("conv.weight", unit.conv.weight)]
    bn = unit.bn
    return [
        ("bn.bias", bn.bias),
        ("bn.weight", bn.weight),
        ("bn.running_mean", bn.running_mean),
        ("bn.running_var", bn.running_var),
        ("conv.weight", unit.conv.weight),
    ]


def conv_layers(model: YOLO_V4) -> list[tuple[int, str, Any]]:
    """(darknet layer index, state_dict prefix, ConvUnit) of every conv layer, in cfg order."""
    graph = model.to_darknet()
    indices = [i for i, section in enumerate(graph.sections) if section.kind == "convolutional"]
    names = {id(module): name for name, module in model.named_modules()}
    return [(index, names[id(unit)], unit) for index, unit in zip(indices, graph.units, strict=True)]


def _blobs(model: YOLO_V4) -> list[Any]:
    """The tensors of a .weights file in file order."""
    return [tensor for _, _, unit in conv_layers(model) for _, tensor in unit_tensors(unit)]


def header_length(raw: bytes, path: str | os.PathLike) -> int:
    """The length in bytes of a .weights file's header: three int32 version numbers, then
    ``seen`` (images trained on, which nothing here uses) in 64 bits from version 0.2 on, else 32."""
    if len(raw) < 16:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a darknet .weights header")
    major, minor, _ = np.frombuffer(raw[:12], dtype="<i4")
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    return 20 if wide else 16


def read_weights(model: YOLO_V4, path: str | os.PathLike) -> None:
    """Fill ``model`` from a darknet .weights file."""
    raw = Path(path).read_bytes()
    header = header_length(raw, path)
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


def _file_bytes(arrays: list[Any], seen: int) -> bytes:
    """A .weights file: the header (64-bit ``seen``), then ``arrays`` as float32."""
    header = np.array(HEADER_VERSION, dtype="<i4").tobytes() + np.array([seen], dtype="<u8").tobytes()
    return header + b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)


def weights_bytes(model: YOLO_V4, seen: int = 0) -> bytes:
    """The .weights file of ``model`` (64-bit ``seen`` header)."""
    return _file_bytes([backend.as_numpy(t.data) for t in _blobs(model)], seen)


# ----------------------------------------------------------------------------- cut files


def _file_shapes(model: YOLO_V4, classes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Per conv layer, (state_dict name, shape) of its arrays in a file made for ``classes``
    classes: the model's own shapes, except the output convs' A * (V - C + classes) filters."""
    per_anchor, own = model.config.values_per_anchor, model.config.num_classes
    outputs = {id(head.output) for head in model.head}
    layers = []
    for _, prefix, unit in conv_layers(model):
        shapes = []
        for name, tensor in unit_tensors(unit):
            shape = tuple(tensor.shape)
            if id(unit) in outputs:  # (A * V, ...) -> (A * (V - C + classes), ...)
                shape = (shape[0] // per_anchor * (per_anchor - own + classes), *shape[1:])
            shapes.append((f"{prefix}.{name}", shape))
        layers.append(shapes)
    return layers


def _layer_ends(layers: list[list[tuple[str, tuple[int, ...]]]]) -> list[int]:
    """The float offset at which each layer of a file ends."""
    return np.cumsum([sum(int(np.prod(shape)) for _, shape in layer) for layer in layers]).tolist()


def file_classes(model: YOLO_V4, floats: int, path: str | os.PathLike) -> int:
    """The class count of a .weights file for ``model``'s layers with ``floats`` values after
    its header: the file holds the first k layers for some k (a cut file such as
    ``yolov4.conv.137`` simply ends), and the output convs' sizes depend on the classes.
    A full file's size gives them: ``floats`` = (the floats at 0 classes) + C x (per class).
    A cut file that ends before the first output conv fits any count: the model's is returned."""
    own = model.config.num_classes
    at_zero, at_one = (_layer_ends(_file_shapes(model, c))[-1] for c in (0, 1))
    per_class = at_one - at_zero
    candidates = [own]
    if floats > at_zero and (floats - at_zero) % per_class == 0:
        candidates.insert(0, (floats - at_zero) // per_class)
    for classes in candidates:
        if floats in _layer_ends(_file_shapes(model, classes)):
            return classes
    c = model.config
    raise ValueError(
        f"{path}: {floats:,} float32 values fit no darknet file of this model ({c.variant}, width_multiple "
        f"{c.width_multiple}, depth_multiple {c.depth_multiple}): not its first layers (a cut file), nor all of "
        f"them ({at_zero:,} + {per_class:,} per class); is it the weights of another model?"
    )


def read_darknet_arrays(model: YOLO_V4, path: str | os.PathLike) -> tuple[dict[str, np.ndarray], int]:
    """(the arrays a .weights file holds for ``model``'s layers, by state_dict name; the file's
    class count). A cut file holds only its first layers; the output convs have the file's
    class count (``file_classes``), which may differ from the model's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    raw = path.read_bytes()
    header = header_length(raw, path)
    if (len(raw) - header) % 4:
        raise ValueError(f"{path}: {len(raw) - header} bytes after the header are not whole float32 values")
    values = np.frombuffer(raw[header:], dtype="<f4")
    classes = file_classes(model, values.size, path)
    arrays, offset = {}, 0
    for layer in _file_shapes(model, classes):
        if offset == values.size:
            break
        for name, shape in layer:
            size = int(np.prod(shape))
            arrays[name] = values[offset : offset + size].reshape(shape)
            offset += size
    return arrays, classes


# ----------------------------------------------------------------------------- public


def darknet_file(name: str) -> Path:
    """The path of a file of darknet's that ships with this package (``yolov4/darknet/files/``):
    ``"yolov4.cfg"``, ``"yolov4-tiny.cfg"`` or ``"coco.names"``, byte for byte as in darknet's
    ``cfg/`` folder. E.g. ``load_darknet(darknet_file("yolov4.cfg"), "yolov4.weights")``."""
    shipped = sorted(p.name for p in DARKNET_CFG_FOLDER.iterdir() if p.name != "README.md")
    if name not in shipped:
        raise ValueError(f"darknet_file: expected one of {shipped}, got {name!r}")
    return DARKNET_CFG_FOLDER / name


# darknet's released COCO-trained files, by size in bytes (a 20-byte header, then 4 bytes per
# float: 64,429,405 floats for yolov4.cfg, 6,062,814 for yolov4-tiny.cfg), with the cfg each
# belongs to; ``load_darknet`` picks the cfg by the file's size when it is given only weights.
RELEASED_WEIGHTS = {257_717_640: "yolov4.cfg", 24_251_276: "yolov4-tiny.cfg"}


def released_cfg(weights_path: str | os.PathLike) -> Path:
    """The shipped cfg of one of darknet's released weights files, told by its size."""
    size = Path(weights_path).stat().st_size
    if size not in RELEASED_WEIGHTS:
        known = ", ".join(f"{name.removesuffix('.cfg')}.weights ({n:,} bytes)" for n, name in RELEASED_WEIGHTS.items())
        raise ValueError(
            f"load_darknet: {weights_path} ({size:,} bytes) is not one of darknet's released files ({known}); "
            "give its cfg too: load_darknet(cfg, weights)"
        )
    return darknet_file(RELEASED_WEIGHTS[size])


def load_darknet(cfg_path: str | os.PathLike, weights_path: str | os.PathLike | None = None) -> YOLO_V4:
    """Build the model a darknet ``.cfg`` describes and load its ``.weights`` (if given).

    ``load_darknet("yolov4.weights")`` (or ``yolov4-tiny.weights``), a ``.weights`` file
    alone, loads one of darknet's released files with its cfg from this package, told by the
    file's size (``RELEASED_WEIGHTS``)."""
    if weights_path is None and Path(cfg_path).suffix == ".weights":
        if not Path(cfg_path).is_file():
            raise FileNotFoundError(f"load_darknet: no weights file at {cfg_path}")
        cfg_path, weights_path = released_cfg(cfg_path), cfg_path
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
        read_weights(model, weights_path)
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
    write_text_atomically(cfg_path, cfg_text(model, width, height))
    payload = weights_bytes(model, seen)
    write_atomically(weights_path, lambda file: file.write(payload))


def partial(
    cfg_path: str | os.PathLike, weights_path: str | os.PathLike, out_path: str | os.PathLike, layers: int
) -> int:
    """Cut a .weights file as ``darknet partial`` does: the weights of the conv layers among
    the cfg's first ``layers`` layers, under a new header whose ``seen`` is 0 (darknet resets
    it, so training from the cut file starts with burn-in). ``yolov4.conv.137`` is
    ``partial("yolov4.cfg", "yolov4.weights", "yolov4.conv.137", 137)``. Returns the number of
    conv layers written; the file is written atomically (its folder made where missing)."""
    if layers < 1:
        raise ValueError(f"partial: the number of layers to keep must be positive, got {layers}")
    model = load_darknet(cfg_path)
    arrays, classes = read_darknet_arrays(model, weights_path)
    own = model.state_dict()
    kept = [(index, prefix, unit) for index, prefix, unit in conv_layers(model) if index < layers]
    blocks = []
    for index, prefix, unit in kept:
        for name, _ in unit_tensors(unit):
            key = f"{prefix}.{name}"
            if key not in arrays:
                raise ValueError(f"partial: {weights_path} ends before layer {index}, one of the first {layers}")
            if arrays[key].shape != own[key].shape:
                raise ValueError(
                    f"partial: layer {index} of {weights_path} is an output conv for {classes} classes; "
                    f"{cfg_path} has {model.config.num_classes}"
                )
            blocks.append(arrays[key])
    payload = _file_bytes(blocks, seen=0)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out_path, lambda file: file.write(payload))
    return len(kept)
