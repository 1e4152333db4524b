"""Fine-tuning's starting point: a darknet ``.weights`` file or one of our ``.npz``
checkpoints, copied into a model layer by layer where it fits.

Both kinds of file are first read into one form, a ``Pretrained``: arrays named as the
model's ``state_dict`` names them, with the file's class names (a checkpoint carries them)
or only its class count (a darknet file names no classes; its size gives the count, see
``yolov4.darknet.weights.file_classes``). Then one rule decides each layer, a conv with its
BatchNorm: it is loaded when the file has all of its arrays in the model's shapes. The
output convs, whose channels are per class, are loaded only when the classes agree: by name
where the file names them (the same names in another order are remapped channel by
channel), else by count. Every other layer keeps the fresh initialization the model was
built with.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolov4.darknet.weights import conv_layers, read_darknet_arrays, unit_tensors
from yolov4.model import YOLO_V4
from yolov4.training.checkpoint import read_checkpoint, trained_weights


@dataclass
class Pretrained:
    """The weights of a file, named as a model's ``state_dict`` names them."""

    path: str
    arrays: dict[str, np.ndarray]
    class_names: list[str] | None  # None: the file names no classes (darknet's)
    num_classes: int


def read_pretrained(model: YOLO_V4, path: str | os.PathLike) -> Pretrained:
    """A ``.npz`` training checkpoint (its EMA weights where the run kept them), or else a darknet
    ``.weights`` file read against ``model``'s layers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".npz":
        state = read_checkpoint(path)
        names = json.loads(state["class_names"])
        return Pretrained(str(path), dict(trained_weights(state)), names, len(names))
    arrays, classes = read_darknet_arrays(model, path)
    return Pretrained(str(path), arrays, None, classes)


def class_channels(channels: int, values_per_anchor: int, order: list[int]) -> np.ndarray:
    """Indices that reorder an output conv's ``channels`` (A anchors x V values: box, objectness,
    then one per class) so that class k comes from the file's class ``order[k]``."""
    first_class = values_per_anchor - len(order)
    per_anchor = list(range(first_class)) + [first_class + k for k in order]
    return np.array([a * values_per_anchor + v for a in range(channels // values_per_anchor) for v in per_anchor])


def head_classes(source: Pretrained, names: list[str]) -> tuple[list[int] | None, str]:
    """How the file's output convs serve the data's class ``names``: (the file's class index of
    each data class, or None for fresh output convs; a note for the printed line)."""
    if source.class_names is None:  # darknet: by count
        if source.num_classes == len(names):
            return list(range(len(names))), ""
        return None, f"{source.num_classes} classes in the file, {len(names)} in the data"
    if source.class_names == names:
        return list(range(len(names))), ""
    if sorted(source.class_names) == sorted(names):
        order = [source.class_names.index(name) for name in names]
        return order, f"class channels reordered by name from the file's {source.class_names}"
    return None, f"the file's classes {source.class_names} are not the data's {names}"


def fitting_layers(model: YOLO_V4, source: Pretrained, order: list[int] | None) -> tuple[dict, dict[str, int]]:
    """(the arrays of every conv layer of ``source`` that fits ``model``, by state_dict name;
    the count of layers left fresh per reason). The output convs are taken only with an
    ``order`` (the file's class index of each of the model's classes)."""
    outputs = {id(head.output) for head in model.head}
    own = model.state_dict()
    chosen: dict[str, np.ndarray] = {}
    fresh = {"absent": 0, "reshaped": 0, "heads": 0}
    for _, prefix, unit in conv_layers(model):
        keys = [f"{prefix}.{name}" for name, _ in unit_tensors(unit)]
        if any(key not in source.arrays for key in keys):
            fresh["absent"] += 1
            continue
        arrays = [np.asarray(source.arrays[key]) for key in keys]
        if id(unit) in outputs:
            if order is None:
                fresh["heads"] += 1
                continue
            if order != sorted(order):  # (A * V, ...) channels into the model's class order
                pick = class_channels(len(arrays[0]), model.config.values_per_anchor, order)
                arrays = [a[pick] if len(a) == len(pick) else a for a in arrays]
        if any(a.shape != own[key].shape for a, key in zip(arrays, keys, strict=True)):
            fresh["reshaped"] += 1
            continue
        chosen.update(zip(keys, arrays, strict=True))
    return chosen, fresh


def load_pretrained(model: YOLO_V4, path: str | os.PathLike, names: list[str]) -> str:
    """Copy into ``model`` every conv layer of the file at ``path`` (darknet ``.weights`` or our
    ``.npz``) that fits it, the output convs only for the data's class ``names``; returns the
    line that says what was loaded and what was left fresh. A file that fits no layer is a
    one-line ValueError naming the file and the model."""
    return load_layers(model, path, names)[0]


def load_layers(model: YOLO_V4, path: str | os.PathLike, names: list[str]) -> tuple[str, list[str]]:
    """What ``load_pretrained`` does, returning also the ``state_dict`` names of every array it
    loaded: the trainer gives the layers it left fresh a learning rate of their own."""
    source = read_pretrained(model, path)
    order, note = head_classes(source, names)
    chosen, fresh = fitting_layers(model, source, order)
    c = model.config
    if not chosen:
        raise ValueError(
            f"{path} fits no layer of this model ({c.variant}, width_multiple {c.width_multiple}, "
            f"depth_multiple {c.depth_multiple}, {c.num_classes} classes); is it the weights of another model?"
        )
    model.load_state_dict(chosen, strict=False)
    total = len(conv_layers(model))
    trainable = {name for name, _ in model.named_parameters()}
    params = sum(a.size for key, a in chosen.items() if key in trainable)
    line = (
        f"loaded {total - sum(fresh.values())} of {total} layers "
        f"({params:,} of {model.count_parameters():,} parameters) from {path}"
    )
    reasons = {
        "absent": "layers the file does not have",
        "reshaped": "layers of another shape in the file",
        "heads": f"output convs ({note})",
    }
    left = [f"{count} {reasons[why]}" for why, count in fresh.items() if count]
    if left:
        line += f"; left fresh: {', '.join(left)}"
    if order is not None and note:
        line += f"; the output convs' {note}"
    return line, sorted(chosen)
