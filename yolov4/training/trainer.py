"""Training: one config, a loop with gradient accumulation, checkpoints that resume exactly.

The loop, per batch: split into ``subdivisions`` mini-batches (darknet's gradient
accumulation), optionally attack each with SAT first, add up their gradients, take one
optimizer step, advance the learning-rate schedule (burn-in, then steps or cosine), update
the weight EMA and reset CmBN. With dynamic mini-batches (``dynamic_minibatch``, multi-scale
batches whose size keeps batch x height x width constant) the schedule counts images seen
instead of updates, so it is neither stretched nor cut short by the changing batch size.
After each epoch: the held-out mAP, ``last.npz`` (and
``best.npz``), then ``log.jsonl`` rewritten from the checkpoint's history and ``curves.png``,
all written atomically. Each run gets a new folder (``runs/train``, ``runs/train2``, ...)
unless ``exist_ok``; a resumed run continues in its checkpoint's folder. The held-out
set is never trained on (``yolov4.data.splits``); ``splits.txt`` says where both sets come
from and lists the validation images.

Fine-tuning: ``weights`` starts the model from a darknet ``.weights`` file or one of our
checkpoints, layer by layer where it fits (``yolov4.training.pretrained``), and ``freeze`` keeps the
backbone (or darknet's first N layers) as loaded, as darknet's ``stopbackward`` keeps the
layers before it: their parameters get no gradient and are not given to the optimizer, and
they run in inference mode, so their BatchNorms normalize with their running statistics and
never update them. (darknet parses the layers before a ``stopbackward`` layer with
``train = 0``, skips them in the update, and its GPU forward runs such a layer as at
inference time.) The layers the file leaves fresh (the output convs, for other classes) learn
at ``fresh_lr`` times the rate of the loaded ones, in parameter groups of their own that the
schedule scales alike; ``configs/finetune.yaml`` sets it for every run with ``weights`` and says
why. A checkpoint names the loaded arrays, so a resumed run rebuilds the same groups.

A checkpoint holds the model, optimizer, scheduler, EMA, epoch, random state, config and
history, so ``resume`` continues exactly: batches are drawn from generators seeded by
(seed, epoch, batch), and everything else that evolves is in the file.

The settings are ``yolov4.training.settings.TrainConfig``, the weight average ``yolov4.training.ema.EMA``,
the models by name ``yolov4.model.build_model``; ``yolov4.training.checkpoint`` reads a checkpoint back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import minilucid as lucid
from minilucid import backend
from minilucid.data_parallel import ForkedReplicas, can_fork, usable_cores
from minilucid.optim import lr_scheduler
from minilucid.serialization import write_text_atomically
from yolov4.anchors import fit_anchors
from yolov4.darknet.weights import conv_layers
from yolov4.data.loader import DetectionLoader
from yolov4.data.shapes import shapes_dataset
from yolov4.data.splits import describe, read_splits
from yolov4.evaluation.evaluate import evaluate_model, map_settings
from yolov4.evaluation.plots import plot_history
from yolov4.files import check_not_inputs, check_writable
from yolov4.model import YOLO_V4, build_model
from yolov4.model_config import YOLO_V4Config
from yolov4.regularize import reset_cross_minibatch_norm, self_adversarial_images
from yolov4.training.checkpoint import RUN_KEYS, WEIGHTS_KEYS, load_weights, read_checkpoint
from yolov4.training.ema import EMA
from yolov4.training.pretrained import load_layers
from yolov4.training.runs import run_folder
from yolov4.training.settings import MODEL_SETTINGS, TrainConfig, changes_on_resume, stored_config


def frozen_part(model: YOLO_V4, freeze: str | int | None) -> list[lucid.nn.Module]:
    """The modules that ``TrainConfig.freeze`` keeps as loaded: the backbone, or the conv layers
    among darknet's first N layers (``freeze=137`` is the part that ``yolov4.conv.137`` holds)."""
    if freeze is None:
        return []
    if freeze == "backbone":
        return [model.backbone]
    return [unit for index, _, unit in conv_layers(model) if index < freeze]


def decay_groups(
    model: YOLO_V4, weight_decay: float, decay_on: str, lr: float, loaded: Collection[str] = (), fresh_lr: float = 1.0
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups. ``"conv"``: weight decay on convolution weights only,
    as darknet decays them (BatchNorm's scale and shift and the heads' biases are not); ``"all"``:
    every parameter decayed. Where some parameters were ``loaded`` from a file (their names), the
    others, left fresh, get groups of their own after those, at ``lr * fresh_lr``; the schedule
    scales every group's rate alike."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]  # not a frozen part's
    conv_weights = {id(module.weight) for module in model.modules() if isinstance(module, lucid.nn.Conv2d)}
    parts = [[p for _, p in params]]
    if loaded:
        parts = [[p for name, p in params if name in loaded], [p for name, p in params if name not in loaded]]
    groups = []
    for ours, rate in zip(parts, (lr, lr * fresh_lr), strict=False):
        if decay_on == "all":
            groups.append({"params": ours, "weight_decay": weight_decay, "lr": rate})
            continue
        groups.append({"params": [p for p in ours if id(p) in conv_weights], "weight_decay": weight_decay, "lr": rate})
        groups.append({"params": [p for p in ours if id(p) not in conv_weights], "weight_decay": 0.0, "lr": rate})
    return [group for group in groups if group["params"]]


# The loss terms a run logs, each with its format on the progress bar; the IoU branch's
# term only where the model has the branch (YOLO_V4Config.has_iou_branch).
TERM_FORMATS = {"loss": ".2f", "box": ".3f", "obj": ".2f", "cls": ".3f", "iou_branch": ".3f"}


# What a run writes into its folder (all of it replaced when a new run reuses the folder).
RUN_FILES = ("last.npz", "best.npz", "log.jsonl", "curves.png", "config.yaml", "splits.txt")

# What the line printed after each epoch shows: mAP@0.5, mAP@[.5:.95] and mAP by COCO's object
# sizes (small < 32^2 <= medium < 96^2 <= large pixels of area; -1 where the set has none).
LOGGED = ("loss", "map50", "map", "map_small", "map_medium", "map_large")


class Pace:
    """How long the rest of a run will take, judged from its first few updates.

    The first ``skip`` updates are left out (they allocate what later ones reuse); the next
    ``timed`` give the rate in images per second, and the images still to train divided by
    that rate is the estimate. Evaluation is not in it."""

    def __init__(self, images_to_train: int, skip: int = 2, timed: int = 8, clock=time.perf_counter) -> None:
        self.images_to_train, self.skip, self.timed, self.clock = images_to_train, skip, timed, clock
        self.updates, self.images, self.started, self.timed_images = 0, 0, None, 0

    def update(self, images: int) -> str | None:
        """Count one update of ``images``; once the timed updates are done, the estimate's line
        (returned once, then None)."""
        self.updates += 1
        self.images += images
        if self.updates == self.skip:
            self.started = self.clock()
        elif self.updates > self.skip:
            self.timed_images += images
        if self.updates != self.skip + self.timed or self.started is None:
            return None
        rate = self.timed_images / max(self.clock() - self.started, 1e-9)
        minutes = (self.images_to_train - self.images) / rate / 60
        return (
            f"expected: about {minutes:.1f} more minutes of training at {rate:.1f} img/s "
            f"(timed over updates {self.skip + 1} to {self.skip + self.timed} on this machine)"
        )


class TrainingError(RuntimeError):
    """Training stopped (a NaN loss, say); the message names why and the last good checkpoint."""


class Trainer:
    """Trains a model as a TrainConfig says; ``fit()`` runs the epochs (resumable)."""

    def __init__(
        self, config: TrainConfig, progress: bool = True, resuming: bool = False, inputs: tuple[str, ...] = ()
    ) -> None:
        """``resuming``: ``resume`` will load a checkpoint next, so ``config.weights`` (the start
        of the run that made it) is not read again; the file may be gone by now. ``inputs``: other
        files the run was made from (a config file), which it must not write over either."""
        self.config, self.progress = config, progress
        if Path(config.out).exists() and not Path(config.out).is_dir():
            raise ValueError(f"TrainConfig.out = {config.out!r} is a file; name a folder for the run")
        self.out = check_writable(run_folder(config.out, config.exist_ok), folder=True)  # resume() moves it
        read = [config.data, config.val, None if resuming else config.weights, *inputs]
        check_not_inputs([self.out / name for name in RUN_FILES], read)
        backend.check_device(config.device)
        lucid.random.seed(config.seed)
        if config.data is None:
            self.train_set, self.val_set = shapes_dataset("train"), shapes_dataset("val")
        else:
            self.train_set, self.val_set = read_splits(config.data, config.val, config.val_fraction)
        if not len(self.train_set):
            raise ValueError(f"the training set has no images: {describe(self.train_set)}")
        print(f"train: {describe(self.train_set)}", flush=True)
        print(f"val: {describe(self.val_set)}", flush=True)
        self.class_names = self.train_set.class_names
        anchors = {} if resuming else self._anchors()  # a resumed run takes the checkpoint's (resume)
        self.model = build_model(
            config.model,
            len(self.class_names),
            **{name: getattr(config, name) for name in MODEL_SETTINGS},  # cls_label_smoothing, drop_block, cmbn
            **anchors,
            **config.model_options,
        ).to(config.device)
        self.pretrained: list[str] = []  # the state_dict names loaded from config.weights (resume: the checkpoint's)
        if config.weights and not resuming:
            line, self.pretrained = load_layers(self.model, config.weights, self.class_names)
            print(line, flush=True)
        self.frozen = frozen_part(self.model, config.freeze)
        for module in self.frozen:  # no gradient, and not given to the optimizer
            for parameter in module.parameters():
                parameter.requires_grad = False
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError(f"TrainConfig.freeze = {config.freeze!r} freezes every layer: nothing would train")
        input_sizes = [s for s in range(32, 2 * config.img, 32) if 0.7 * config.img <= s <= 1.3 * config.img]
        self.loader = DetectionLoader(
            self.train_set,
            config.batch,
            config.img,
            config.augment_config(),
            shuffle=True,
            seed=config.seed,
            input_sizes=input_sizes if config.multiscale else None,
            device=config.device,
            dynamic_batch=config.dynamic_minibatch,
        )
        self._optimize()
        self.ema = EMA(self.model, config.ema, config.ema_ramp) if config.ema else None
        branch = self.model.config.has_iou_branch
        self.loss_terms = [key for key in TERM_FORMATS if key != "iou_branch" or branch]  # summed and logged
        self.epoch, self.history = 0, []
        self.replicas: ForkedReplicas | None = None  # while fit runs with processes > 1

    def _anchors(self) -> dict[str, Any]:
        """``{"anchors": ...}`` fitted to the training boxes where ``autoanchor`` asks for them
        (``yolov4.anchors.fit_anchors``, which says why in one printed line), else {}. Anchors
        given in ``model_options`` and a start from ``weights`` (whose output convs were trained for
        the default anchors) keep theirs, and so does the built-in data unless ``autoanchor`` is
        ``"always"``."""
        c = self.config
        builtin = c.data is None and c.autoanchor != "always"
        if c.autoanchor == "off" or "anchors" in c.model_options or c.weights or builtin:
            return {}
        fitted, line = fit_anchors(self.train_set, c.model, c.img, c.autoanchor)
        print(line, flush=True)
        return {"anchors": fitted} if fitted else {}

    def _optimize(self) -> None:
        """The optimizer and its schedule; the layers that ``self.pretrained`` does not name learn
        at ``fresh_lr`` times the others' rate."""
        c = self.config
        groups = decay_groups(self.model, c.weight_decay, c.decay_on, c.lr, set(self.pretrained), c.fresh_lr)
        if c.optimizer == "sgd":
            self.optimizer = lucid.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        else:
            make = lucid.optim.Adam if c.optimizer == "adam" else lucid.optim.AdamW
            self.optimizer = make(groups, lr=c.lr, weight_decay=c.weight_decay)
        # The schedule counts updates; with dynamic mini-batches, whose updates hold more or fewer
        # images, it counts images instead, so that it ends where the data does (burn_in then
        # counts updates of the configured batch: burn_in x batch images).
        per = c.batch if self.counts_images else 1
        total = c.epochs * (len(self.train_set) if self.counts_images else len(self.loader))
        if c.schedule == "cosine":
            after = lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total, eta_min=c.lr * 0.01)
        else:
            after = lr_scheduler.MultiStepLR(self.optimizer, [int(f * total) for f in c.steps], c.scale)
        self.scheduler = lr_scheduler.BurnIn(self.optimizer, min(c.burn_in * per, total), 4, after)

    @property
    def counts_images(self) -> bool:
        """Whether the schedule counts images seen rather than updates (dynamic mini-batches)."""
        return self.loader.dynamic_batch

    def advance_schedule(self, images: int) -> None:
        """Move the learning-rate schedule on by one update of ``images`` images: one step, or
        with dynamic mini-batches as many steps as images."""
        if self.counts_images:
            self.scheduler.last_epoch += images - 1
        self.scheduler.step()

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Everything ``resume`` needs to continue exactly (``yolov4.training.checkpoint`` reads it back)."""
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
            "pretrained": json.dumps(self.pretrained),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``checkpoint()`` to ``path`` atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lucid.save(self.checkpoint(), path)
        return path

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint of this same configuration, in the checkpoint's folder.
        Only the settings in ``CHANGEABLE_ON_RESUME`` may differ from the checkpoint's (each
        change is printed); any other difference is a one-line ValueError that lists them.
        Data with the checkpoint's classes in another order is relabelled to its order."""
        state = read_checkpoint(path, (*WEIGHTS_KEYS, *RUN_KEYS))
        for change in changes_on_resume(self.config, stored_config(state), path):
            print(f"resume: {change}", flush=True)
        names = json.loads(state["class_names"])
        for dataset in (self.train_set, self.val_set):
            dataset.use_class_order(names, f"resume {path}")
        self.class_names = names
        self.out = check_writable(Path(path).parent, folder=True)
        self.model.config.anchors = YOLO_V4Config(**json.loads(state["model_config"])).anchors  # fitted ones too
        self.pretrained = json.loads(state.get("pretrained", "[]"))  # none in a checkpoint from before
        self._optimize()  # the checkpoint's parameter groups
        load_weights(self.model, state["model"], path)
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
        """One update: the batch's ``subdivisions`` mini-batches forward and backward (with
        ``processes`` > 1, each mini-batch split between forked replicas, whose BatchNorms
        share its statistics), their gradients summed, one optimizer step; returns the loss terms."""
        c = self.config
        step = -(-len(targets) // c.subdivisions)  # at most `subdivisions` mini-batches, even of a smaller batch
        starts = range(0, len(targets), step)
        parts = [(images.data[start : start + step], targets[start : start + step]) for start in starts]
        self.optimizer.zero_grad()
        processes = 1 if self.replicas is None else self.replicas.count + 1
        # Here alone: in one process, or a last, smaller batch whose mini-batches hold fewer images than processes.
        if processes == 1 or min(len(part_targets) for _, part_targets in parts) < processes:
            sums = self.mini_batches(parts, len(targets))
        else:  # process p takes the p-th slice of every mini-batch; ours is the first
            shares = [[] for _ in range(processes)]
            for part_images, part_targets in parts:
                for share, cut in zip(shares, np.array_split(range(len(part_targets)), processes), strict=True):
                    share.append((part_images[cut[0] : cut[-1] + 1], part_targets[cut[0] : cut[-1] + 1]))
            seeds = lucid.random.generator().integers(2**63 - 1, size=processes - 1).tolist()
            replicas = [(seed, self.epoch, share, len(targets)) for seed, share in zip(seeds, shares[1:], strict=True)]
            results = self.replicas.run(lambda: self.mini_batches(shares[0], len(targets)), replicas)
            sums = {key: sum(result[key] for result in results) for key in self.loss_terms}
        self.optimizer.step()
        self.advance_schedule(len(targets))
        if self.ema:
            self.ema.update(self.model)
        if c.cmbn:
            reset_cross_minibatch_norm(self.model)
        return sums

    def mini_batches(self, parts: list[tuple[Any, list[np.ndarray]]], batch_size: int) -> dict[str, float]:
        """Forward and backward over mini-batches ``parts`` (images array, targets) of an update of
        ``batch_size`` images, each loss weighted by its share of the update, so the gradients
        add up to the update's; returns the loss terms, weighted alike and summed."""
        sums = dict.fromkeys(self.loss_terms, 0.0)
        for images, part_targets in parts:
            part = lucid.Tensor(images)
            if self.config.sat:  # two passes over the mini-batch: copy its targets to the device once
                part_targets = self.model.pack_targets(part_targets, part.shape)
                part = self_adversarial_images(self.model, part, part_targets, self.config.sat)
            for module in self.frozen:  # in inference mode, as darknet runs the layers before stopbackward
                module.eval()
            try:
                loss, terms = self.model.get_loss_and_terms(part, part_targets)
            except FloatingPointError as error:
                last = self.out / "last.npz"
                where = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
                raise TrainingError(f"training stopped at epoch {self.epoch}: {error}; {where}") from error
            weight = part.shape[0] / batch_size  # this mini-batch's share of the update
            (loss * weight).backward()
            values = {
                "loss": terms.total,
                "box": terms.box,
                "obj": terms.obj,
                "cls": terms.cls,
                "iou_branch": terms.iou_branch,
            }
            for key in sums:
                sums[key] += values[key] * weight
        return sums

    def replica_share(
        self, seed: int, epoch: int, parts: list[tuple[Any, list[np.ndarray]]], batch_size: int
    ) -> dict[str, float]:
        """What a forked replica runs for its share of an update of ``epoch``: ``mini_batches`` in
        training mode, its random draws (DropBlock's) seeded by the update."""
        lucid.random.seed(seed)
        self.epoch = epoch  # what an error names
        self.model.train()
        return self.mini_batches(parts, batch_size)

    @contextmanager
    def data_parallel(self) -> Iterator[None]:
        """With ``processes`` > 1, forked replicas of this trainer for the time inside (one
        fewer than the processes: this process is one), which ``train_batch`` hands a slice of
        each mini-batch to. ``processes`` is an upper bound, lowered (with a printed line) to
        what the run can use: no more than the cores this process may use (more would take
        turns on one core, and wait for each other at every BatchNorm), one on a GPU (one
        device), with CmBN (its statistics run from one mini-batch to the next) and where the
        OS cannot fork (Windows)."""
        asked = processes = self.config.processes
        if processes > 1 and self.config.device != "cpu":
            processes, why = 1, "a GPU trains in one process"
        elif processes > 1 and self.config.cmbn:
            processes, why = 1, "CmBN carries statistics from one mini-batch to the next, in one process"
        elif processes > 1 and not can_fork():
            processes, why = 1, "this platform cannot fork"
        elif processes > usable_cores():
            processes, why = usable_cores(), f"{usable_cores()} CPU cores usable"
        if processes < asked:
            print(f"processes: {asked} asked, {why}; training in {processes}")
        if processes == 1:
            yield
            return
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.replicas = ForkedReplicas(trained, processes - 1, self.replica_share)
        try:
            yield
        finally:
            self.replicas.close()
            self.replicas = None

    def held_out_metrics(self) -> dict[str, Any]:
        """The model's COCO metrics on the validation set, which it never trains on (with the
        EMA weights when the run keeps them)."""
        with self.ema.applied(self.model) if self.ema else nullcontext():
            settings = map_settings(self.config.conf_thresh)
            return evaluate_model(self.model, self.val_set, self.config.img, settings=settings)

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
        pace = Pace((target - self.epoch) * len(self.train_set))
        with self.data_parallel():
            while self.epoch < target:
                self.model.train()
                self.loader.set_epoch(self.epoch)
                start, seen = time.perf_counter(), 0
                totals = dict.fromkeys(self.loss_terms, 0.0)
                bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{target}", disable=not self.progress, leave=False)
                for images, targets in bar:
                    terms = self.train_batch(images, targets)
                    seen += len(targets)
                    estimate = pace.update(len(targets))
                    if estimate and self.progress:
                        bar.write(estimate)
                    for key in totals:
                        totals[key] += terms[key] * len(targets)
                    rate = seen / (time.perf_counter() - start)
                    shown = {k: format(terms[k], TERM_FORMATS[k]) for k in self.loss_terms}
                    bar.set_postfix(**shown, img_s=f"{rate:.1f}")
                self.epoch += 1
                record = {
                    "epoch": self.epoch,
                    **{k: v / max(seen, 1) for k, v in totals.items()},
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "images_per_s": seen / (time.perf_counter() - start),
                    "seconds": time.perf_counter() - start,
                }
                if self.epoch % c.eval_every == 0 or self.epoch == target:
                    metrics = self.held_out_metrics()
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
                    summary = ", ".join(f"{k} {record[k]:.3f}" for k in LOGGED if k in record)
                    print(f"epoch {self.epoch}/{target}: {summary} ({record['images_per_s']:.1f} img/s)", flush=True)
        return self.history
