"""Training: one config, a loop with gradient accumulation, checkpoints that resume exactly.

The loop, per batch: split into ``subdivisions`` mini-batches (darknet's gradient
accumulation), optionally attack each with SAT first, add up their gradients, take one
optimizer step, advance the learning-rate schedule (burn-in, then steps or cosine), update
the weight EMA and reset CmBN. After each epoch: the held-out mAP, ``last.npz`` (and
``best.npz``), then ``log.jsonl`` rewritten from the checkpoint's history and ``curves.png``,
all written atomically. Each run gets a new folder (``runs/train``, ``runs/train2``, ...)
unless ``exist_ok``; a resumed run continues in its checkpoint's folder. The held-out
set is never trained on (``yolov4.data.splits``); ``splits.txt`` says where both sets come
from and lists the validation images.

Fine-tuning: ``weights`` starts the model from a darknet ``.weights`` file or one of our
checkpoints, layer by layer where it fits (``yolov4.pretrained``), and ``freeze`` keeps the
backbone (or darknet's first N layers) as loaded, as darknet's ``stopbackward`` keeps the
layers before it: their parameters get no gradient and are not given to the optimizer, and
they run in inference mode, so their BatchNorms normalize with their running statistics and
never update them. (darknet parses the layers before a ``stopbackward`` layer with
``train = 0``, skips them in the update, and its GPU forward runs such a layer as at
inference time.)

A checkpoint holds the model, optimizer, scheduler, EMA, epoch, random state, config and
history, so ``resume`` continues exactly: batches are drawn from generators seeded by
(seed, epoch, batch), and everything else that evolves is in the file.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import minilucid as lucid
from minilucid import backend
from minilucid.optim import lr_scheduler
from minilucid.serialization import write_text_atomically
from yolov4.config import YOLO_V4Config
from yolov4.darknet import conv_layers
from yolov4.data.augment import AugmentConfig
from yolov4.data.loader import DetectionLoader
from yolov4.data.shapes import shapes_dataset
from yolov4.data.splits import describe, read_splits
from yolov4.evaluate import evaluate_model
from yolov4.model import YOLO_V4, yolo_v4, yolo_v4_tiny
from yolov4.plots import plot_history
from yolov4.pretrained import load_pretrained
from yolov4.regularize import reset_cross_minibatch_norm, self_adversarial_images

MODELS = {
    "yolov4": {},
    "yolov4-tiny": {"variant": "yolov4-tiny"},
    "medium": {"width_multiple": 0.5, "depth_multiple": 0.67},
    "small": {"width_multiple": 0.25, "depth_multiple": 0.33},
    "tiny-small": {"variant": "yolov4-tiny", "width_multiple": 0.5},
}


def build_model(name: str, num_classes: int, **overrides: Any) -> YOLO_V4:
    """A model by name: yolov4, yolov4-tiny, medium (width 0.5), small (width 0.25), tiny-small."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    settings = {**MODELS[name], **overrides}
    if settings.pop("variant", None) == "yolov4-tiny":
        return yolo_v4_tiny(num_classes, **settings)
    return yolo_v4(num_classes, **settings)


def run_folder(path: str | Path, exist_ok: bool = False) -> Path:
    """``path`` if it is new (or ``exist_ok``), else the first free ``path2``, ``path3``, ...,
    as Ultralytics numbers its runs, so that a run never mixes its files with an earlier one's."""
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    number = 2
    while path.with_name(f"{path.name}{number}").exists():
        number += 1
    return path.with_name(f"{path.name}{number}")


def use_class_order(dataset: Any, names: list[str], what: str) -> None:
    """Relabel ``dataset`` in place to the weights' class ``names`` where both have the same
    classes in another order; a one-line ValueError listing both where the classes differ."""
    names, ours = list(names), list(dataset.class_names)
    if names == ours:
        return
    if sorted(names) != sorted(ours) or len(set(names)) != len(names):
        raise ValueError(f"{what}: the weights' classes {names} are not the data's {ours}")
    order = np.array([names.index(name) for name in ours])  # data class -> weights' class
    relabelled = []
    for path, boxes in dataset.items:
        boxes = boxes.copy()
        boxes[:, 0] = order[boxes[:, 0].astype(int)]
        relabelled.append((path, boxes))
    dataset.items, dataset.class_names = relabelled, names


def frozen_part(model: YOLO_V4, freeze: str | int | None) -> list[lucid.nn.Module]:
    """The modules that ``TrainConfig.freeze`` keeps as loaded: the backbone, or the conv layers
    among darknet's first N layers (``freeze=137`` is the part that ``yolov4.conv.137`` holds)."""
    if freeze is None:
        return []
    if freeze == "backbone":
        return [model.backbone]
    return [unit for index, _, unit in conv_layers(model) if index < freeze]


def decay_groups(model: YOLO_V4, weight_decay: float, decay_on: str) -> list[dict[str, Any]]:
    """The optimizer's parameter groups. ``"conv"``: weight decay on convolution weights only,
    as darknet decays them (BatchNorm's scale and shift and the heads' biases are not); ``"all"``:
    one group, every parameter decayed."""
    params = [p for p in model.parameters() if p.requires_grad]  # not a frozen part's
    if decay_on == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    conv_weights = {id(module.weight) for module in model.modules() if isinstance(module, lucid.nn.Conv2d)}
    groups = [
        {"params": [p for p in params if id(p) in conv_weights], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in conv_weights], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


class TrainingError(RuntimeError):
    """Training stopped (a NaN loss, say); the message names why and the last good checkpoint."""


EXPECTED = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string"}


def coerce(where: str, kind: str, value: Any) -> Any:
    """``value`` as a field of type ``kind`` (its annotation, e.g. ``"float"``), or a one-line
    ValueError naming ``where``. YAML reads ``1e-3`` as a string, JSON ``2.0`` as a float."""
    if kind.endswith(" | None"):
        if value is None:
            return None
        kind = kind.removesuffix(" | None")
    try:
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind in ("int", "float") and not isinstance(value, (bool, list, tuple, dict)):
            number = float(value)
            if kind == "float":
                return number
            if number.is_integer():
                return int(number)
        if kind == "str" and isinstance(value, str):
            return value
        if kind.startswith("tuple[float") and isinstance(value, (list, tuple)):
            return tuple(float(v) for v in value)
        if kind == "dict" and (value is None or isinstance(value, dict)):
            return dict(value or {})
    except (TypeError, ValueError):
        pass
    if kind not in EXPECTED and not kind.startswith("tuple") and kind != "dict":
        return value  # Any: left to the owner to check
    expected = EXPECTED.get(kind) or ("a list of numbers" if kind.startswith("tuple") else "a mapping of settings")
    raise ValueError(f"{where} = {value!r} is invalid: expected {expected}")


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
    text = path.read_text()
    try:
        content = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: invalid YAML{where}: {getattr(error, 'problem', None) or error}") from None
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
    "cls_label_smoothing": "set label_smoothing",
    "drop_block": "set drop_block",
    "cmbn": "set cmbn",
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
    burn_in: int = 1000  # iterations of warm-up, lr * (i / burn_in)^4
    schedule: str = "steps"  # steps or cosine
    steps: tuple[float, ...] = (0.8, 0.9)  # fractions of the run where lr is multiplied by scale
    scale: float = 0.1
    multiscale: bool = False  # a new size (img +- 30%) every 10 batches
    augment: dict = field(default_factory=dict)  # AugmentConfig fields
    sat: float = 0.0  # Self-Adversarial Training's epsilon (0: off)
    label_smoothing: float = 0.0
    drop_block: float = 0.0
    cmbn: bool = False
    model_options: dict = field(default_factory=dict)  # any other YOLO_V4Config field, e.g. iou_normalizer
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

    def __post_init__(self) -> None:
        for f in fields(self):  # every value as its field's type, or a one-line error
            setattr(self, f.name, coerce(f"TrainConfig.{f.name}", f.type, getattr(self, f.name)))
        if isinstance(self.freeze, str) and self.freeze.isdigit():  # "137" from the command line
            self.freeze = int(self.freeze)
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
            "freeze": (
                self.freeze in (None, "backbone") or (type(self.freeze) is int and self.freeze > 0),
                "backbone or a positive number of layers",
            ),
            "decay_on": (self.decay_on in ("conv", "all"), "conv or all"),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r} is invalid: expected {allowed}")
        self.augment = self._typed("augment", AugmentConfig)
        taken = [k for k in self.model_options if k in SET_BY_TRAIN_CONFIG]
        if taken:
            reasons = ", ".join(f"{k} ({SET_BY_TRAIN_CONFIG[k]})" for k in taken)
            raise ValueError(f"TrainConfig.model_options cannot set {reasons}")
        self.model_options = self._typed("model_options", YOLO_V4Config, exclude=SET_BY_TRAIN_CONFIG)
        self.augment_config()  # validates the augmentation values

    def _typed(self, name: str, owner: type, exclude: dict | tuple = ()) -> dict[str, Any]:
        """The settings dict ``name`` checked against the fields of ``owner`` and coerced to them."""
        kinds = {f.name: f.type for f in fields(owner) if f.name not in exclude}
        settings = getattr(self, name)
        unknown_keys(f"TrainConfig.{name}", settings, list(kinds))
        return {k: coerce(f"TrainConfig.{name}.{k}", kinds[k], v) for k, v in settings.items()}

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(**self.augment)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A config from a YAML or JSON file, with ``overrides`` on top; a mistake in the file
        is a one-line ValueError that names the file and the setting."""
        return cls(**{**read_settings(path), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Settings a resumed run may change: how long it trains (the schedule stretches to the new
# length), where it runs, how often and how finely it is evaluated, and where its data now
# lies (the classes are checked by name). Everything else must be the checkpoint's.
CHANGEABLE_ON_RESUME = ("epochs", "device", "eval_every", "conf_thresh", "data", "val")


def stored_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings a training checkpoint (as ``lucid.load`` returns it) was made
    with. A checkpoint from before ``decay_on`` existed decayed every parameter."""
    return {"decay_on": "all", **json.loads(checkpoint["train_config"])}


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


class EMA:
    """An exponential moving average of the weights (and BatchNorm statistics), with the
    decay ramped up over the first updates: decay * (1 - exp(-updates / ramp)). The usual
    ramp of 2000 suits long runs: a run of 1000 updates ends with 0.39 x decay, an average
    over fewer than two updates, so a short run needs a shorter ramp."""

    def __init__(self, model: YOLO_V4, decay: float, ramp: int = 2000) -> None:
        self.decay, self.ramp, self.updates = decay, ramp, 0
        self.shadow = {k: v.copy() for k, v in model.state_dict().items()}

    def update(self, model: YOLO_V4) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.ramp))
        for key, value in model.state_dict().items():
            if backend.device_of(self.shadow[key]) != backend.device_of(value):  # the model moved
                self.shadow[key] = backend.to_device(self.shadow[key], backend.device_of(value))
            self.shadow[key] *= d
            self.shadow[key] += (1 - d) * value

    @contextmanager
    def applied(self, model: YOLO_V4):
        """Within the block the model holds the averaged weights; afterwards its own again."""
        own = {k: v.copy() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key][...] = backend.to_device(value, backend.device_of(self.shadow[key]))


class Trainer:
    """Trains a model as a TrainConfig says; ``fit()`` runs the epochs (resumable)."""

    def __init__(self, config: TrainConfig, progress: bool = True, resuming: bool = False) -> None:
        """``resuming``: ``resume`` will load a checkpoint next, so ``config.weights`` (the start
        of the run that made it) is not read again; the file may be gone by now."""
        self.config, self.progress = config, progress
        if Path(config.out).exists() and not Path(config.out).is_dir():
            raise ValueError(f"TrainConfig.out = {config.out!r} is a file; name a folder for the run")
        backend.check_device(config.device)
        lucid.random.seed(config.seed)
        if config.data is None:
            self.train_set, self.val_set = shapes_dataset("train"), shapes_dataset("val")
        else:
            self.train_set, self.val_set = read_splits(config.data, config.val, config.val_fraction)
        print(f"train: {describe(self.train_set)}", flush=True)
        print(f"val: {describe(self.val_set)}", flush=True)
        self.class_names = self.train_set.class_names
        self.model = build_model(
            config.model,
            len(self.class_names),
            cls_label_smoothing=config.label_smoothing,
            drop_block=config.drop_block,
            cmbn=config.cmbn,
            **config.model_options,
        ).to(config.device)
        if config.weights and not resuming:
            print(load_pretrained(self.model, config.weights, self.class_names), flush=True)
        self.frozen = frozen_part(self.model, config.freeze)
        for module in self.frozen:  # no gradient, and not given to the optimizer
            for parameter in module.parameters():
                parameter.requires_grad = False
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError(f"TrainConfig.freeze = {config.freeze!r} freezes every layer: nothing would train")
        sizes = [s for s in range(32, 2 * config.img, 32) if 0.7 * config.img <= s <= 1.3 * config.img]
        self.loader = DetectionLoader(
            self.train_set,
            config.batch,
            config.img,
            config.augment_config(),
            shuffle=True,
            seed=config.seed,
            sizes=sizes if config.multiscale else None,
            device=config.device,
        )
        self.optimizer = self._optimizer()
        total = config.epochs * len(self.loader)
        if config.schedule == "cosine":
            after = lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total, eta_min=config.lr * 0.01)
        else:
            after = lr_scheduler.MultiStepLR(self.optimizer, [int(f * total) for f in config.steps], config.scale)
        self.scheduler = lr_scheduler.BurnIn(self.optimizer, min(config.burn_in, total), 4, after)
        self.ema = EMA(self.model, config.ema, config.ema_ramp) if config.ema else None
        self.epoch, self.history = 0, []
        self.out = run_folder(config.out, config.exist_ok)  # resume() moves it to the checkpoint's

    def _optimizer(self):
        c = self.config
        groups = decay_groups(self.model, c.weight_decay, c.decay_on)
        if c.optimizer == "sgd":
            return lucid.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        make = lucid.optim.Adam if c.optimizer == "adam" else lucid.optim.AdamW
        return make(groups, lr=c.lr, weight_decay=c.weight_decay)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else {},
            "epoch": self.epoch,
            "random": json.dumps(lucid.random.get_state()),
            "train_config": json.dumps(self.config.to_dict()),
            "model_config": json.dumps(self.model.config.to_dict()),
            "class_names": json.dumps(self.class_names),
            "history": json.dumps(self.history),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lucid.save(self.checkpoint(), path)
        return path

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint of this same configuration, in the checkpoint's folder.
        Only the settings in ``CHANGEABLE_ON_RESUME`` may differ from the checkpoint's (each
        change is printed); any other difference is a one-line ValueError that lists them.
        Data with the checkpoint's classes in another order is relabelled to its order."""
        state = lucid.load(path)
        for change in changes_on_resume(self.config, stored_config(state), path):
            print(f"resume: {change}", flush=True)
        names = json.loads(state["class_names"])
        for dataset in (self.train_set, self.val_set):
            use_class_order(dataset, names, f"resume {path}")
        self.class_names = names
        self.out = Path(path).parent
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.epoch = int(state["epoch"])
        lucid.random.set_state(json.loads(state["random"]))
        self.history = json.loads(state["history"])

    def write_log(self) -> None:
        """``log.jsonl``: one JSON line per epoch of the history, replaced atomically."""
        if not self.history and not (self.out / "log.jsonl").exists():
            return
        write_text_atomically(self.out / "log.jsonl", "".join(json.dumps(record) + "\n" for record in self.history))

    # ------------------------------------------------------------------ the loop
    def train_batch(self, images: lucid.Tensor, targets: list[np.ndarray]) -> dict[str, float]:
        """One update: accumulated mini-batches, one optimizer step; returns the loss terms."""
        c = self.config
        step = len(targets) // c.subdivisions or 1
        sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
        self.optimizer.zero_grad()
        for start in range(0, len(targets), step):
            part, part_targets = images[start : start + step], targets[start : start + step]
            if c.sat:  # two passes over the mini-batch: copy its targets to the device once
                part_targets = self.model.pack_targets(part_targets, part.shape)
                part = self_adversarial_images(self.model, part, part_targets, c.sat)
            for module in self.frozen:  # in inference mode, as darknet runs the layers before stopbackward
                module.eval()
            try:
                loss = self.model.get_loss(part, part_targets)
            except FloatingPointError as error:
                last = self.out / "last.npz"
                where = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
                raise TrainingError(f"training stopped at epoch {self.epoch}: {error}; {where}") from error
            weight = part.shape[0] / len(targets)  # this mini-batch's share of the update
            (loss * weight).backward()
            terms = self.model.last_loss_terms
            for key, value in (("loss", terms.total), ("box", terms.box), ("obj", terms.obj), ("cls", terms.cls)):
                sums[key] += value * weight
        self.optimizer.step()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        if c.cmbn:
            reset_cross_minibatch_norm(self.model)
        return sums

    def evaluate(self) -> dict[str, Any]:
        """The held-out metrics (with the EMA weights when the run keeps them)."""
        if self.ema:
            with self.ema.applied(self.model):
                return evaluate_model(self.model, self.val_set, self.config.img, conf_thresh=self.config.conf_thresh)
        return evaluate_model(self.model, self.val_set, self.config.img, conf_thresh=self.config.conf_thresh)

    def fit(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train until ``epochs`` (default: the config's) are done; returns the history."""
        from tqdm import tqdm

        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(".*.tmp"):  # left by a run killed while it wrote a file
            stale.unlink()
        if self.epoch == 0:  # a new run in a reused folder (exist_ok): nothing of the old one stays
            for old in ("last.npz", "best.npz", "log.jsonl", "curves.png"):
                (self.out / old).unlink(missing_ok=True)
        self.write_log()  # on resume: the checkpoint's epochs, whatever the log had run ahead to
        write_text_atomically(self.out / "config.yaml", yaml.safe_dump(c.to_dict(), sort_keys=False))
        write_text_atomically(
            self.out / "splits.txt",
            f"train: {describe(self.train_set)}\nval: {describe(self.val_set)}\n"
            + "".join(f"{path}\n" for path, _ in self.val_set.items),
        )
        target = epochs or c.epochs
        while self.epoch < target:
            self.model.train()
            self.loader.set_epoch(self.epoch)
            start, seen = time.perf_counter(), 0
            totals = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
            bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{target}", disable=not self.progress, leave=False)
            for images, targets in bar:
                terms = self.train_batch(images, targets)
                seen += len(targets)
                for key in totals:
                    totals[key] += terms[key] * len(targets)
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(
                    loss=f"{terms['loss']:.2f}",
                    box=f"{terms['box']:.3f}",
                    obj=f"{terms['obj']:.2f}",
                    cls=f"{terms['cls']:.3f}",
                    img_s=f"{rate:.1f}",
                )
            self.epoch += 1
            record = {
                "epoch": self.epoch,
                **{k: v / max(seen, 1) for k, v in totals.items()},
                "lr": self.optimizer.param_groups[0]["lr"],
                "images_per_s": seen / (time.perf_counter() - start),
                "seconds": time.perf_counter() - start,
            }
            if self.epoch % c.eval_every == 0 or self.epoch == target:
                metrics = self.evaluate()
                record.update(
                    {k: metrics[k] for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large")}
                )
            self.history.append(record)
            # The checkpoint holds the history and is written first; the log is rewritten from
            # it, so a kill in between leaves the log one epoch behind, never ahead.
            self.save(self.out / "last.npz")
            best = max((h.get("map", -1) for h in self.history), default=-1)
            if record.get("map") is not None and record["map"] >= best:
                self.save(self.out / "best.npz")
            self.write_log()
            plot_history(self.history, self.out / "curves.png")
            if self.progress:
                summary = ", ".join(f"{k} {record[k]:.3f}" for k in ("loss", "map50", "map") if k in record)
                print(f"epoch {self.epoch}/{target}: {summary} ({record['images_per_s']:.1f} img/s)", flush=True)
        return self.history


def load_trained(path: str | Path, device: str = "cpu", use_ema: bool = True) -> tuple[YOLO_V4, list[str], dict]:
    """(model in eval mode, class names, train config) from a training checkpoint; the EMA
    weights when the run kept them."""
    state = lucid.load(path)
    if "model_config" not in state:
        raise ValueError(f"{path}: not a yolov4 training checkpoint (no model_config)")
    settings = json.loads(state["model_config"])
    model = YOLO_V4(YOLO_V4Config(**settings)).to(device)
    weights = state["ema"]["shadow"] if use_ema and state.get("ema") else state["model"]
    model.load_state_dict(weights)
    return model.eval(), json.loads(state["class_names"]), json.loads(state["train_config"])
