"""Reading a training checkpoint (``last.npz``, ``best.npz``) back.

The trainer writes one after every epoch (``Trainer.checkpoint`` lists what it holds: the
trained and the averaged weights, optimizer, scheduler, random state, both configs, class
names and history). Inference (``load_trained``), fine-tuning (``yolov4.training.pretrained``) and
resuming read it here.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

import minilucid as lucid
from yolov4.model import YOLO_V4
from yolov4.model_config import YOLO_V4Config

WEIGHTS_KEYS = ("model", "model_config", "class_names")  # what every reader of a checkpoint needs
RUN_KEYS = ("train_config", "optimizer", "scheduler", "epoch", "random", "history")  # and a resumed run


def read_checkpoint(path: str | os.PathLike, keys: tuple[str, ...] = WEIGHTS_KEYS) -> dict[str, Any]:
    """Everything a training checkpoint holds, as ``minilucid.load`` returns it; a one-line
    ValueError for a ``.npz`` that is not a training checkpoint, or lacks one of ``keys``."""
    state = lucid.load(path)
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(f"{path}: not a yolov4 training checkpoint (no {', '.join(missing)})")
    return state


def model_config(state: dict[str, Any], path: str | os.PathLike) -> YOLO_V4Config:
    """The YOLO_V4Config a checkpoint's model was built with; a one-line ValueError for settings
    that this version does not have (a checkpoint of a newer yolov4)."""
    settings = json.loads(state["model_config"])
    unknown = sorted(set(settings) - {f.name for f in fields(YOLO_V4Config)})
    if unknown:
        raise ValueError(f"{path}: its model has settings this version of yolov4 does not know: {unknown}")
    return YOLO_V4Config(**settings)


def trained_weights(state: dict[str, Any], use_ema: bool = True) -> dict[str, Any]:
    """The model weights of a checkpoint's ``state``: the EMA's where the run kept one (unless
    ``use_ema`` is False), else the weights it trained."""
    return state["ema"]["shadow"] if use_ema and state.get("ema") else state["model"]


def load_trained(
    path: str | os.PathLike, device: str = "cpu", use_ema: bool = True
) -> tuple[YOLO_V4, list[str], dict[str, Any]]:
    """(model in eval mode, class names, train settings) from a training checkpoint; the EMA
    weights when the run kept them."""
    state = read_checkpoint(path, (*WEIGHTS_KEYS, "train_config"))
    model = YOLO_V4(model_config(state, path)).to(device)
    load_weights(model, trained_weights(state, use_ema), path)
    return model.eval(), json.loads(state["class_names"]), json.loads(state["train_config"])


def load_weights(model: YOLO_V4, weights: dict[str, Any], path: str | os.PathLike) -> None:
    """``model.load_state_dict(weights)``; weights that do not fit the model (a checkpoint of
    another version, say) are a one-line ValueError naming the checkpoint."""
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: its weights do not fit its model ({error.args[0]})") from None
