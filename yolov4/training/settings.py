"""``TrainConfig``: every setting of a training run, read from YAML, JSON or the command
line, each value checked against its field's type with a one-line error naming the setting;
and which settings a resumed run may change (``changes_on_resume``).
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from yolov4.anchors import AUTOANCHOR_MODES
from yolov4.data.augment import AugmentConfig
from yolov4.files import read_json, read_yaml
from yolov4.model_config import MODELS, Check, YOLO_V4Config, check_settings

# What a value of each kind of field must be, as the one-line error says it.
EXPECTED = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    tuple: "a list of numbers",
    dict: "a mapping of settings",
}


@functools.cache
def field_types(owner: type) -> dict[str, Any]:
    """The type of each field of the dataclass ``owner``, as objects (``float``, ``int | None``,
    ``tuple[float, ...]``), not the strings ``from __future__ import annotations`` leaves."""
    return get_type_hints(owner)


def value_kinds(kind: Any) -> list[Any]:
    """The kinds a value of the type ``kind`` may take, None left out: ``[int]`` for
    ``int | None``, ``[str, int]`` for ``str | int | None``, ``[kind]`` for any other type."""
    if get_origin(kind) in (Union, UnionType):
        return [k for k in get_args(kind) if k is not type(None)]
    return [kind]


def coerce(where: str, kind: Any, value: Any) -> Any:
    """``value`` as a value of the type ``kind`` (a field's type: bool, int, float, str, X | None,
    a tuple of floats, dict), or a one-line ValueError naming ``where``; any other type (Any, a
    union of two kinds) is left to the field's owner to check. YAML reads ``1e-3`` as a string,
    JSON ``2.0`` as a float."""
    kinds = value_kinds(kind)
    if value is None and type(None) in get_args(kind):
        return None
    if len(kinds) != 1:
        return value  # str | int: left to the owner to check
    kind = kinds[0]
    base = get_origin(kind) or kind
    try:
        if base is bool and isinstance(value, bool):
            return value
        if base is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if base in (int, float) and not isinstance(value, (bool, list, tuple, dict)):
            number = float(value)
            if base is float:
                return number
            if number.is_integer():
                return int(number)
        if base is str and isinstance(value, str):
            return value
        if base is tuple and isinstance(value, (list, tuple)):
            return tuple(float(v) for v in value)  # every tuple setting here is of floats
        if base is dict and (value is None or isinstance(value, dict)):
            return dict(value or {})
    except (TypeError, ValueError):
        pass
    if base not in EXPECTED:
        return value  # Any: left to the owner to check
    raise ValueError(f"{where} = {value!r} is invalid: expected {EXPECTED[base]}")


def unknown_keys(where: str, given: Any, allowed: list[str]) -> None:
    """A one-line ValueError for keys of ``given`` not in ``allowed``, with the near misses."""
    unknown = [k for k in given if k not in allowed]
    if not unknown:
        return
    hints = [f"{near[0]} for {k}" for k in unknown if (near := difflib.get_close_matches(str(k), allowed, 1))]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    raise ValueError(f"{where}: unknown settings {sorted(map(str, unknown))}{hint}; allowed: {', '.join(allowed)}")


def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML or JSON config file, as written (not yet coerced); a mistake in
    the file is a one-line ValueError that names the file and the setting."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    content = read_json(path) if path.suffix == ".json" else read_yaml(path)
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of settings (name: value), got {type(content).__name__}")
    unknown_keys(str(path), content, [f.name for f in fields(TrainConfig)])
    return content


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, model: bool = False) -> Any:
    """A TrainConfig field: its default, what it means (``help``: the command line's help and
    the reader's), where it is one of a few words the words (``choices``), and whether it is a
    YOLO_V4Config field (``model``)."""
    metadata = {"help": help, **({"choices": choices} if choices else {}), **({"model": True} if model else {})}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def model_setting(name: str, help: str) -> Any:
    """A TrainConfig field that is the YOLO_V4Config field ``name`` set for the run, with that
    field's default (one source for it); ``model_options`` cannot set it as well."""
    return setting(
        YOLO_V4Config.__dataclass_fields__[name].default, f"YOLO_V4Config.{name} for the run: {help}", model=True
    )


def one_of(choices: tuple[str, ...]) -> Check:
    """The check of a setting that is one of ``choices``: (predicate, "a, b or c")."""
    return (lambda v: v in choices, ", ".join(choices[:-1]) + " or " + choices[-1])


OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("steps", "cosine")
DECAY_ON = ("conv", "all")
DEVICES = ("cpu", "gpu")
# What a run without ``weights`` does where burn_in and fresh_lr are not given (with weights:
# configs/finetune.yaml's values, FINETUNE below). Each of these fields defaults to None, so a
# given value always wins.
NOT_FINETUNING = {"burn_in": 1000, "fresh_lr": 1.0}


@dataclass
class TrainConfig:
    """Everything a training run depends on. Load it from YAML or JSON with ``from_file``; each
    field is also a ``python -m yolov4 train`` option (``--weight-decay`` for ``weight_decay``)."""

    data: str | None = setting(
        None, "the dataset: a YOLO folder or data.yaml, a COCO .json or a VOC folder; not given: the built-in shapes"
    )
    val: str | None = setting(
        None,
        "a separate validation set, e.g. a COCO split's own .json; not given: the dataset's val or test split, "
        "else val_fraction of its images held out",
    )
    val_fraction: float = setting(
        0.1, "the share of images held out (seeded, never trained on) where data has no validation split"
    )
    model: str = setting("small", f"the model: {', '.join(MODELS)}")
    img: int = setting(416, "input size, a multiple of 32")
    epochs: int = setting(30, "passes over the training set")
    batch: int = setting(8, "images per update")
    subdivisions: int = setting(1, "gradient accumulation: mini-batches per update, a divisor of batch")
    processes: int = setting(
        1,
        "CPU processes that share each mini-batch (forked replicas; BatchNorm's statistics are the whole "
        "mini-batch's), at most batch / subdivisions: the same update as one process's, sooner; fewer where the "
        "machine has fewer cores, one on a GPU, with cmbn and where the OS cannot fork (the run says so)",
    )
    optimizer: str = setting("sgd", "the optimizer", OPTIMIZERS)
    lr: float = setting(0.0013, "learning rate")
    momentum: float = setting(0.949, "SGD's momentum")
    weight_decay: float = setting(0.0005, "weight decay")
    decay_on: str = setting(
        "conv",
        "what weight_decay falls on: conv, convolution weights only (as darknet); all, every parameter",
        DECAY_ON,
    )
    burn_in: int | None = setting(
        None,
        f"updates of warm-up, lr x (i / burn_in)^4; not given: {NOT_FINETUNING['burn_in']}, or "
        "yolov4/configs/finetune.yaml's with weights",
    )
    schedule: str = setting("steps", "the learning-rate schedule after burn-in", SCHEDULES)
    steps: tuple[float, ...] = setting((0.8, 0.9), "fractions of the run where schedule steps multiplies lr by scale")
    scale: float = setting(0.1, "what schedule steps multiplies lr by at each of steps")
    multiscale: bool = setting(False, "a new input size (img +- 30%) every 10 batches")
    dynamic_minibatch: bool = setting(
        False,
        "DM, dynamic mini-batch (darknet's dynamic_minibatch), with multiscale: images per batch scale as "
        "(img / size)^2 so pixels per update stay batch x img x img; the schedule then counts images",
    )
    augment: dict = setting(
        {}, "AugmentConfig settings (mosaic, mixup, hue, flip, jitter, ...); one not given: AugmentConfig's default"
    )
    sat: float = setting(0.0, "Self-Adversarial Training's epsilon (0: off)")
    cls_label_smoothing: float = model_setting(
        "cls_label_smoothing",
        "class label smoothing eps: class targets 1 - eps / 2 and eps / 2, as darknet's label_smooth_eps; 0: off",
    )
    drop_block: float = model_setting("drop_block", "DropBlock's drop probability after backbone stages 3-5; 0: off")
    cmbn: bool = model_setting("cmbn", "Cross mini-Batch Normalization over an update's subdivisions")
    model_options: dict = setting({}, "any other YOLO_V4Config field, e.g. iou_normalizer")
    autoanchor: str = setting(
        "auto",
        "anchors fitted to the training boxes: auto (where the defaults' best possible recall is below 0.98), "
        "always, or off (yolov4.anchors)",
        AUTOANCHOR_MODES,
    )
    ema: float = setting(0.0, "weight EMA decay (0: off; 0.9999 is usual)")
    ema_ramp: int = setting(2000, "updates over which the EMA's decay ramps up (keep it well below the run's)")
    device: str = setting("cpu", "where to train", DEVICES)
    seed: int = setting(0, "random seed, which everything random derives from")
    out: str = setting("runs/train", "output folder; each run gets a new one where it exists: runs/train2, ...")
    exist_ok: bool = setting(
        False, "reuse out as it is instead of numbering a new one (its earlier run's files are replaced)"
    )
    eval_every: int = setting(1, "epochs between evaluations on the validation set")
    conf_thresh: float = setting(0.005, "score threshold of the evaluation's detections")
    weights: str | None = setting(
        None,
        "start from a darknet .weights file (yolov4.weights, yolov4.conv.137) or a .npz checkpoint: every layer "
        "that fits is loaded, the output convs only for the same classes; burn_in and fresh_lr then default to "
        "yolov4/configs/finetune.yaml's (no burn-in, the layers left fresh at 10 x lr)",
    )
    freeze: str | int | None = setting(
        None,
        "keep part of the model as loaded (no gradient, BatchNorm statistics kept), as darknet's stopbackward "
        "does: backbone, or N for darknet's first N layers (137: what yolov4.conv.137 holds); not given: none",
    )
    fresh_lr: float | None = setting(
        None,
        "with weights, the layers it leaves fresh (its output convs for other classes) learn at lr x fresh_lr; "
        f"not given: yolov4/configs/finetune.yaml's with weights, else {NOT_FINETUNING['fresh_lr']:g}",
    )

    def __post_init__(self) -> None:
        for name, kind in field_types(TrainConfig).items():  # every value as its field's type, or a one-line error
            setattr(self, name, coerce(f"TrainConfig.{name}", kind, getattr(self, name)))
        if isinstance(self.freeze, str) and self.freeze.isdigit():  # "137" from the command line
            self.freeze = int(self.freeze)
        for name, value in NOT_FINETUNING.items():  # fine-tuning's settings, where not given
            if getattr(self, name) is None:
                setattr(self, name, FINETUNE[name] if self.weights else value)
        self.check()
        self.augment = self._typed("augment", AugmentConfig)
        taken = [k for k in self.model_options if k in SET_BY_TRAIN_CONFIG]
        if taken:
            reasons = ", ".join(f"{k} ({SET_BY_TRAIN_CONFIG[k]})" for k in taken)
            raise ValueError(f"TrainConfig.model_options cannot set {reasons}")
        self.model_options = self._typed("model_options", YOLO_V4Config, exclude=SET_BY_TRAIN_CONFIG)
        self.augment_config()  # validates the augmentation values

    def check(self) -> None:
        """Check every setting against its range; a one-line ValueError names the first wrong one."""
        positive = (lambda v: v > 0, "a positive number")
        mini_batch = self.batch // self.subdivisions if self.subdivisions > 0 else 0
        check_settings(
            self,
            {
                "img": (lambda v: v > 0 and v % 32 == 0, "a positive multiple of 32"),
                "epochs": positive,
                "batch": positive,
                "subdivisions": (lambda v: v > 0 and self.batch % v == 0, "a divisor of batch"),
                "processes": (
                    lambda v: 0 < v <= mini_batch,
                    f"1 to the images of a mini-batch (batch / subdivisions = {mini_batch})",
                ),
                "model": (lambda v: v in MODELS, f"one of {', '.join(MODELS)}"),
                "ema": (lambda v: 0 <= v < 1, "a decay in [0, 1)"),
                "ema_ramp": (lambda v: v > 0, "a positive number of updates"),
                "sat": (lambda v: 0 <= v < 1, "an epsilon in [0, 1)"),
                "val_fraction": (lambda v: 0 < v < 1, "a fraction in (0, 1)"),
                "lr": positive,
                "burn_in": (lambda v: v >= 0, "a number of updates, 0 or more"),
                "freeze": (
                    lambda v: v in (None, "backbone") or (type(v) is int and v > 0),
                    "backbone or a positive number of layers",
                ),
                "eval_every": (lambda v: v > 0, "a positive number of epochs"),
                "seed": (lambda v: v >= 0, "a whole number >= 0"),
                "conf_thresh": (lambda v: 0 <= v < 1, "a score threshold in [0, 1)"),
                "fresh_lr": (lambda v: v > 0, "a positive multiple of lr"),
                # the settings that are one of a few words: their field's choices
                **{f.name: one_of(f.metadata["choices"]) for f in fields(self) if "choices" in f.metadata},
            },
        )
        if self.dynamic_minibatch and not self.multiscale:
            raise ValueError(
                "TrainConfig.dynamic_minibatch = True needs multiscale: true: it resizes the batch as the input "
                "size changes, and without multiscale the size never changes"
            )
        if self.fresh_lr != 1 and not self.weights:
            raise ValueError(
                f"TrainConfig.fresh_lr = {self.fresh_lr!r} needs weights: without them every layer is fresh "
                "(set lr instead)"
            )

    def _typed(self, name: str, owner: type, exclude: dict | tuple = ()) -> dict[str, Any]:
        """The settings dict ``name`` checked against the fields of ``owner`` and coerced to them."""
        kinds = {name: kind for name, kind in field_types(owner).items() if name not in exclude}
        settings = getattr(self, name)
        unknown_keys(f"TrainConfig.{name}", settings, list(kinds))
        return {k: coerce(f"TrainConfig.{name}.{k}", kinds[k], v) for k, v in settings.items()}

    def augment_config(self) -> AugmentConfig:
        """The augmentations the ``augment`` settings ask for."""
        return AugmentConfig(**self.augment)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A config from a YAML or JSON file, with ``overrides`` on top; a mistake in the file
        is a one-line ValueError that names the file and the setting."""
        return cls(**{**read_settings(path), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as ``config.yaml`` and a checkpoint store them."""
        return asdict(self)


# The YOLO_V4Config fields that are TrainConfig settings of their own (model_setting): the
# paper's regularizers, switched like the rest of the bag of freebies.
MODEL_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("model"))

# YOLO_V4Config fields that TrainConfig sets itself, with what to set instead.
SET_BY_TRAIN_CONFIG = {
    "num_classes": "it comes from the dataset's class names",
    "variant": "choose it with model",
    "backbone": "a custom backbone is not a config value",
    **{name: "a TrainConfig setting: set it outside model_options" for name in MODEL_SETTINGS},
}

# What a run with ``weights`` (``train --weights``) does where it is not told otherwise: the
# settings of configs/finetune.yaml, where the measurement behind each is written.
FINETUNE_CONFIG = Path(__file__).parents[1] / "configs" / "finetune.yaml"
FINETUNE = read_settings(FINETUNE_CONFIG)


def merge_settings(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top; the settings that hold settings of their own (``augment``
    and ``model_options``, the dict fields) are merged key by key, so an override of one
    augmentation keeps the others."""
    nested = [f.name for f in fields(TrainConfig) if field_types(TrainConfig)[f.name] is dict]
    merged = dict(base)
    for key, value in overrides.items():
        if key in nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# Settings a resumed run may change: how long it trains (the schedule stretches to the new
# length), where it runs, how often and how finely it is evaluated, and where its data now
# lies (the classes are checked by name). Everything else must be the checkpoint's.
CHANGEABLE_ON_RESUME = ("epochs", "device", "processes", "eval_every", "conf_thresh", "data", "val")


def stored_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings a training checkpoint (as ``read_checkpoint`` returns it) was
    made with. A checkpoint from before ``decay_on`` existed decayed every parameter; one from
    before ``cls_label_smoothing`` took YOLO_V4Config's name calls it ``label_smoothing``; one
    from before ``fresh_lr`` trained every layer at the same rate; one from before
    ``autoanchor`` kept the default anchors."""
    stored = {"decay_on": "all", "autoanchor": "off", **NOT_FINETUNING, **json.loads(checkpoint["train_config"])}
    if "label_smoothing" in stored:
        stored["cls_label_smoothing"] = stored.pop("label_smoothing")
    return stored


def changes_on_resume(config: TrainConfig, stored: dict[str, Any], checkpoint: str | Path) -> list[str]:
    """How ``config`` differs from the ``stored`` settings of ``checkpoint``'s run, as lines such
    as ``"epochs 18 -> 30"``; a one-line ValueError listing every setting that differs but is not
    in ``CHANGEABLE_ON_RESUME``. Where a resumed run writes (out, exist_ok) is not compared."""
    ours, theirs = config.to_dict(), TrainConfig(**stored).to_dict()
    changed = [k for k in ours if ours[k] != theirs[k] and k not in ("out", "exist_ok")]
    refused = [k for k in changed if k not in CHANGEABLE_ON_RESUME]
    if refused:
        listed = ", ".join(f"{k} {ours[k]!r} (the checkpoint's run has {theirs[k]!r})" for k in refused)
        raise ValueError(
            f"resume {checkpoint}: {listed}; only {', '.join(CHANGEABLE_ON_RESUME)} can change on resume "
            "(start a new run to change the others)"
        )
    return [f"{k} {theirs[k]!r} -> {ours[k]!r}" for k in changed]
