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
from yolov4.config import MODELS, YOLO_V4Config
from yolov4.data.augment import AugmentConfig
from yolov4.files import read_json, read_yaml

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


def coerce(where: str, kind: Any, value: Any) -> Any:
    """``value`` as a value of the type ``kind`` (a field's type: bool, int, float, str, X | None,
    a tuple of floats, dict), or a one-line ValueError naming ``where``; any other type (Any, a
    union of two kinds) is left to the field's owner to check. YAML reads ``1e-3`` as a string,
    JSON ``2.0`` as a float."""
    if get_origin(kind) in (Union, UnionType):
        kinds = [k for k in get_args(kind) if k is not type(None)]
        if value is None and len(kinds) < len(get_args(kind)):
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


# YOLO_V4Config fields that TrainConfig sets itself, with what to set instead.
SET_BY_TRAIN_CONFIG = {
    "num_classes": "it comes from the dataset's class names",
    "variant": "choose it with model",
    "backbone": "a custom backbone is not a config value",
    "cls_label_smoothing": "a TrainConfig setting: set it outside model_options",
    "drop_block": "a TrainConfig setting: set it outside model_options",
    "cmbn": "a TrainConfig setting: set it outside model_options",
}


@dataclass
class TrainConfig:
    """Everything a training run depends on. Load it from YAML or JSON with ``from_file``."""

    data: str | None = None  # YOLO folder, COCO .json or VOC folder; None: the built-in shapes
    val: str | None = None  # a separate validation set (a COCO split is its own JSON); None: data's own
    val_fraction: float = 0.1  # held out (seeded, never trained on) where data has no validation split
    model: str = "small"
    img: int = 416
    epochs: int = 30
    batch: int = 8
    subdivisions: int = 1  # gradient accumulation: mini-batches per update
    optimizer: str = "sgd"  # sgd, adam, adamw
    lr: float = 0.0013
    momentum: float = 0.949
    weight_decay: float = 0.0005
    decay_on: str = "conv"  # conv: convolution weights only, as darknet; all: every parameter
    burn_in: int | None = None  # iterations of warm-up, lr * (i / burn_in)^4; None: 1000 (finetune.yaml's with weights)
    schedule: str = "steps"  # steps or cosine
    steps: tuple[float, ...] = (0.8, 0.9)  # fractions of the run where lr is multiplied by scale
    scale: float = 0.1
    multiscale: bool = False  # a new size (img +- 30%) every 10 batches
    # DM, dynamic mini-batch (darknet's dynamic_minibatch): with multiscale, images per batch scale
    # as (img / size)^2 so pixels per update stay batch x img x img; the schedule then counts images
    dynamic_minibatch: bool = False
    augment: dict = field(default_factory=dict)  # AugmentConfig fields
    sat: float = 0.0  # Self-Adversarial Training's epsilon (0: off)
    cls_label_smoothing: float = 0.0  # class targets 1 - eps / 2 and eps / 2 (darknet's label_smooth_eps)
    drop_block: float = 0.0
    cmbn: bool = False
    model_options: dict = field(default_factory=dict)  # any other YOLO_V4Config field, e.g. iou_normalizer
    autoanchor: str = "auto"  # auto: anchors fitted to data the defaults fit poorly; always; off (yolov4.anchors)
    ema: float = 0.0  # weight EMA decay (0: off; 0.9999 is usual)
    ema_ramp: int = 2000  # updates over which the EMA's decay ramps up (keep it well below the run's)
    device: str = "cpu"
    seed: int = 0
    out: str = "runs/train"  # each run gets a new folder: runs/train, runs/train2, ...
    exist_ok: bool = False  # reuse out as it is (its earlier run's files are replaced)
    eval_every: int = 1
    conf_thresh: float = 0.005
    weights: str | None = None  # start from a darknet .weights file or a .npz checkpoint (yolov4.pretrained)
    freeze: str | int | None = None  # "backbone", or N: darknet's first N layers; kept as loaded
    # The layers that weights leaves fresh (its output convs for other classes) learn at lr x fresh_lr;
    # None: configs/finetune.yaml's value where weights is set, else 1
    fresh_lr: float | None = None
    # (burn_in and fresh_lr are fine-tuning's settings: where they are not given, a run with weights
    # takes them from configs/finetune.yaml and any other run takes NOT_FINETUNING's.)

    def __post_init__(self) -> None:
        for f in fields(self):  # every value as its field's type, or a one-line error
            setattr(
                self, f.name, coerce(f"TrainConfig.{f.name}", field_types(TrainConfig)[f.name], getattr(self, f.name))
            )
        if isinstance(self.freeze, str) and self.freeze.isdigit():  # "137" from the command line
            self.freeze = int(self.freeze)
        for name, value in NOT_FINETUNING.items():  # fine-tuning's settings, where not given
            if getattr(self, name) is None:
                setattr(self, name, FINETUNE[name] if self.weights else value)
        checks = {
            "img": (self.img > 0 and self.img % 32 == 0, "a positive multiple of 32"),
            "epochs": (self.epochs > 0, "a positive number"),
            "batch": (self.batch > 0, "a positive number"),
            "subdivisions": (self.subdivisions > 0 and self.batch % self.subdivisions == 0, "a divisor of batch"),
            "optimizer": (self.optimizer in ("sgd", "adam", "adamw"), "sgd, adam or adamw"),
            "schedule": (self.schedule in ("steps", "cosine"), "steps or cosine"),
            "model": (self.model in MODELS, f"one of {', '.join(MODELS)}"),
            "device": (self.device in ("cpu", "gpu"), "cpu or gpu"),
            "ema": (0 <= self.ema < 1, "a decay in [0, 1)"),
            "ema_ramp": (self.ema_ramp > 0, "a positive number of updates"),
            "sat": (0 <= self.sat < 1, "an epsilon in [0, 1)"),
            "val_fraction": (0 < self.val_fraction < 1, "a fraction in (0, 1)"),
            "lr": (self.lr > 0, "a positive number"),
            "burn_in": (self.burn_in >= 0, "a number of updates, 0 or more"),
            "freeze": (
                self.freeze in (None, "backbone") or (type(self.freeze) is int and self.freeze > 0),
                "backbone or a positive number of layers",
            ),
            "decay_on": (self.decay_on in ("conv", "all"), "conv or all"),
            "eval_every": (self.eval_every > 0, "a positive number of epochs"),
            "seed": (self.seed >= 0, "a whole number >= 0"),
            "conf_thresh": (0 <= self.conf_thresh < 1, "a score threshold in [0, 1)"),
            "fresh_lr": (self.fresh_lr > 0, "a positive multiple of lr"),
            "autoanchor": (self.autoanchor in AUTOANCHOR_MODES, ", ".join(AUTOANCHOR_MODES)),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r} is invalid: expected {allowed}")
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
        self.augment = self._typed("augment", AugmentConfig)
        taken = [k for k in self.model_options if k in SET_BY_TRAIN_CONFIG]
        if taken:
            reasons = ", ".join(f"{k} ({SET_BY_TRAIN_CONFIG[k]})" for k in taken)
            raise ValueError(f"TrainConfig.model_options cannot set {reasons}")
        self.model_options = self._typed("model_options", YOLO_V4Config, exclude=SET_BY_TRAIN_CONFIG)
        self.augment_config()  # validates the augmentation values

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


# What a run with ``weights`` (``train --weights``) does where it is not told otherwise: the
# settings of configs/finetune.yaml, where the measurement behind each is written; and what any
# other run does. Each of these TrainConfig fields defaults to None, so a given value always wins.
FINETUNE_CONFIG = Path(__file__).parent / "configs" / "finetune.yaml"
FINETUNE = read_settings(FINETUNE_CONFIG)
NOT_FINETUNING = {"burn_in": 1000, "fresh_lr": 1.0}

# Settings a resumed run may change: how long it trains (the schedule stretches to the new
# length), where it runs, how often and how finely it is evaluated, and where its data now
# lies (the classes are checked by name). Everything else must be the checkpoint's.
CHANGEABLE_ON_RESUME = ("epochs", "device", "eval_every", "conf_thresh", "data", "val")


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
