"""Reading a training checkpoint (``last.npz``, ``best.npz``) back.

The trainer writes one after every epoch (``Trainer.checkpoint`` lists what it holds: the
trained and the averaged weights, optimizer, scheduler, random state, both configs, class
names and history). Inference (``load_trained``), fine-tuning (``yolov4.pretrained``) and
resuming read it here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import minilucid as lucid
from yolov4.config import YOLO_V4Config
from yolov4.model import YOLO_V4


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Everything a training checkpoint holds, as ``minilucid.load`` returns it; a one-line
    ValueError for a ``.npz`` that is not a training checkpoint."""
    state = lucid.load(path)
    if "model_config" not in state or "class_names" not in state:
        raise ValueError(f"{path}: not a yolov4 training checkpoint (no model_config or class_names)")
    return state


def trained_weights(state: dict[str, Any], use_ema: bool = True) -> dict[str, Any]:
    """The model weights of a checkpoint's ``state``: the EMA's where the run kept one (unless
    ``use_ema`` is False), else the weights it trained."""
    return state["ema"]["shadow"] if use_ema and state.get("ema") else state["model"]


def load_trained(
    path: str | os.PathLike, device: str = "cpu", use_ema: bool = True
) -> tuple[YOLO_V4, list[str], dict[str, Any]]:
    """(model in eval mode, class names, train settings) from a training checkpoint; the EMA
    weights when the run kept them."""
    state = read_checkpoint(path)
    model = YOLO_V4(YOLO_V4Config(**json.loads(state["model_config"]))).to(device)
    load_weights(model, trained_weights(state, use_ema), path)
    return model.eval(), json.loads(state["class_names"]), json.loads(state["train_config"])


def load_weights(model: YOLO_V4, weights: dict[str, Any], path: str | os.PathLike) -> None:
    """``model.load_state_dict(weights)``; weights that do not fit the model (a checkpoint of
    another version, say) are a one-line ValueError naming the checkpoint."""
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: its weights do not fit its model ({error.args[0]})") from None
