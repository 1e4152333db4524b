"""``python -m yolov4 evolve``: a genetic search for training settings (the YOLOv4 paper's GA).

The paper selected hyper-parameters with a genetic algorithm over short runs (Table 4's GA
column, after Ultralytics' ``--evolve``). Here a trial is a short training run (one epoch by
default) of the base settings with some of them changed, scored on the held-out split by

    fitness = 0.1 x mAP@0.5 + 0.9 x mAP@[.5:.95]     (Ultralytics' weighting)

Generation 0 is the base settings themselves (trial 0) and ``population - 1`` mutations of
them; each later generation mutates the fittest trial of the generations before it. A
mutation moves each setting (``Gene``) with probability 0.8, at least one of them, by a
gaussian step of ``sigma`` on the setting's range (a log scale for rates), clipped to the
range. Trial t draws from a generator seeded by (seed, generation, t), so the same seed, base
and keys give the same trials, and a rerun in the same folder skips the trials already in
``trials.jsonl``. After each trial: ``trials.jsonl`` and ``trials.csv`` (every trial) and
``best.yaml`` (the base settings with the fittest trial's values, for ``train --config``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from minilucid.serialization import write_text_atomically
from yolov4.files import read_json, read_text
from yolov4.model_config import zoo_config
from yolov4.training.settings import TrainConfig, merge_settings
from yolov4.training.trials import plain, resolved, time_left, train_and_score, write_json


@dataclass(frozen=True)
class Gene:
    """A setting the search may change: where it lives in the TrainConfig settings, its range,
    and whether it moves on a log scale (rates, weights)."""

    key: str
    path: tuple[str, ...]
    low: float
    high: float
    log: bool = False

    def to_unit(self, value: float) -> float:
        """``value`` as a position in [0, 1] along the range (clipped into it)."""
        low, high, value = self.low, self.high, min(max(value, self.low), self.high)
        if self.log:
            return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        return (value - low) / (high - low)

    def from_unit(self, unit: float) -> float:
        """The value at position ``unit`` of the range, to 6 significant digits."""
        unit = min(max(unit, 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + unit * (self.high - self.low)
        return min(max(float(f"{value:.6g}"), self.low), self.high)


# The settings evolve knows, by the name --keys takes. The ranges keep every value valid
# (AugmentConfig: jitter < 0.5, hue <= 0.5, saturation and exposure >= 1).
GENES = {
    gene.key: gene
    for gene in (
        Gene("lr", ("lr",), 1e-5, 0.05, log=True),
        Gene("momentum", ("momentum",), 0.6, 0.98),
        Gene("hue", ("augment", "hue"), 0.0, 0.5),
        Gene("saturation", ("augment", "saturation"), 1.0, 2.0),
        Gene("exposure", ("augment", "exposure"), 1.0, 2.0),
        Gene("jitter", ("augment", "jitter"), 0.0, 0.45),
        Gene("flip", ("augment", "flip"), 0.0, 1.0),
        Gene("mosaic", ("augment", "mosaic"), 0.0, 1.0),
        Gene("iou_normalizer", ("model_options", "iou_normalizer"), 0.02, 2.0, log=True),
    )
}
MUTATE_PROBABILITY = 0.8
SIGMA = 0.1


def fitness(metrics: dict[str, float]) -> float:
    """0.1 x mAP@0.5 + 0.9 x mAP@[.5:.95] of a trial."""
    return 0.1 * metrics["map50"] + 0.9 * metrics["map"]


def parse_keys(text: str | None, base: dict[str, Any]) -> list[str]:
    """The genes ``--keys`` names (comma-separated), or the default set: every gene, less
    ``momentum`` where the optimizer is not SGD (Adam has no momentum setting to tune)."""
    if text is None:
        optimizer = TrainConfig(**base).optimizer
        return [key for key in GENES if key != "momentum" or optimizer == "sgd"]
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in GENES]
    if unknown or not keys:
        raise ValueError(f"--keys: unknown settings {unknown or [text]}; known: {', '.join(GENES)}")
    return list(dict.fromkeys(keys))


def current_values(base: dict[str, Any], keys: list[str]) -> dict[str, float]:
    """The values the ``keys`` have in ``base`` (their defaults where ``base`` leaves them)."""
    config = TrainConfig(**base)
    owners = {
        "augment": config.augment_config(),
        "model_options": zoo_config(config.model, 1, **config.model_options),
    }
    values = {}
    for key in keys:
        path = GENES[key].path
        owner = owners[path[0]] if len(path) == 2 else config
        values[key] = float(getattr(owner, path[-1]))
    return values


def with_values(base: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """``base`` with each gene's value set where it lives."""
    overrides: dict[str, Any] = {}
    for key, value in values.items():
        path = GENES[key].path
        if len(path) == 1:
            overrides[path[0]] = value
        else:
            overrides.setdefault(path[0], {})[path[1]] = value
    return merge_settings(base, overrides)


def mutate(values: dict[str, float], rng: np.random.Generator, sigma: float = SIGMA) -> dict[str, float]:
    """A child of ``values``: each gene moves with probability 0.8 (at least one does) by a
    gaussian step of ``sigma`` on its unit range, clipped to its bounds."""
    keys = list(values)
    moves = rng.random(len(keys)) < MUTATE_PROBABILITY
    if not moves.any():
        moves[rng.integers(len(keys))] = True
    steps = rng.normal(0.0, sigma, len(keys))
    child = {}
    for key, move, step in zip(keys, moves, steps, strict=True):
        gene = GENES[key]
        child[key] = gene.from_unit(gene.to_unit(values[key]) + step) if move else values[key]
    return child


def planned_values(
    trial: int, population: int, start: dict[str, float], done: list[dict[str, Any]], seed: int, sigma: float
) -> tuple[dict[str, float], int | None]:
    """(values, parent trial) of ``trial``: the start itself for trial 0, a mutation of the
    start in generation 0, else a mutation of the fittest trial of the earlier generations
    (``done`` must hold them)."""
    generation = trial // population
    if trial == 0:
        return dict(start), None
    rng = np.random.default_rng([seed, generation, trial])
    if generation == 0:
        return mutate(start, rng, sigma), None
    earlier = [r for r in done if r["generation"] < generation]
    parent = max(earlier, key=lambda r: (r["fitness"], -r["trial"]))
    return mutate(parent["values"], rng, sigma), parent["trial"]


def write_tables(folder: Path, records: list[dict[str, Any]], keys: list[str]) -> None:
    """``trials.jsonl`` and ``trials.csv``: one line per finished trial, in trial order."""
    records = sorted(records, key=lambda r: r["trial"])
    write_text_atomically(folder / "trials.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    text = io.StringIO()
    columns = ["trial", "generation", "parent", "fitness", "map", "map50", "map75", "seconds", *keys]
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for r in records:
        writer.writerow([*(r[c] for c in columns[:8]), *(r["values"][k] for k in keys)])
    write_text_atomically(folder / "trials.csv", text.getvalue())


def write_best(folder: Path, base: dict[str, Any], best: dict[str, Any], trial_epochs: int) -> Path:
    """``best.yaml``: the base settings with the fittest trial's values, a TrainConfig file."""
    settings = plain(with_values(base, best["values"]))
    for key in ("out", "exist_ok"):
        settings.pop(key, None)
    header = (
        f"# python -m yolov4 evolve: trial {best['trial']} (generation {best['generation']}) of {folder}, the fittest\n"
        f"# of {trial_epochs}-epoch trials: 0.1 x mAP@0.5 + 0.9 x mAP@[.5:.95] = {best['fitness']:.4f}\n"
        f"# (mAP@0.5 {best['map50']:.4f}, mAP@[.5:.95] {best['map']:.4f}). Evolved: {', '.join(best['values'])}.\n"
        "# Train with it: python -m yolov4 train --config best.yaml\n"
    )
    path = folder / "best.yaml"
    write_text_atomically(path, header + yaml.safe_dump(settings, sort_keys=False))
    return path


def read_trials(folder: Path) -> list[dict[str, Any]]:
    """The trial records of ``trials.jsonl`` in ``folder`` (none where it is absent)."""
    path = folder / "trials.jsonl"
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not JSON ({error.msg})") from None
    return records


Run = Callable[[dict[str, Any], Path], dict[str, float]]


def evolve(
    base: dict[str, Any],
    keys: list[str],
    folder: str | Path,
    generations: int = 3,
    population: int = 4,
    trial_epochs: int = 1,
    seed: int = 0,
    sigma: float = SIGMA,
    run: Run | None = None,
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run the search into ``folder`` and return every trial's record (see the module's
    docstring). ``run(settings, out)`` trains one trial and returns its metrics
    (``train_and_score`` by default). A folder holding an earlier search of other settings
    (base, keys, seed, sigma, population) is refused; more generations continue it."""
    if generations < 1 or population < 1:
        raise ValueError(f"evolve needs at least 1 generation of 1 trial, got {generations} x {population}")
    if trial_epochs < 1:
        raise ValueError(f"--epochs = {trial_epochs} is invalid: expected a positive number of epochs per trial")
    for key in keys:
        if key not in GENES:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(GENES)}")
    folder = Path(folder)
    run = run or train_and_score
    resolved(base)  # a mistake in the base settings is a one-line error before any trial
    start = current_values(base, keys)
    search = {
        "base": plain(base),
        "keys": keys,
        "seed": seed,
        "sigma": sigma,
        "population": population,
        "trial_epochs": trial_epochs,
    }
    stored = folder / "evolve.json"
    if stored.is_file():
        earlier = read_json(stored)
        differ = [k for k in search if earlier.get(k) != search[k]]
        if differ:
            raise ValueError(
                f"{folder} holds a search with other {', '.join(differ)}; continue it with the same settings "
                "(only --generations may grow) or start one in a new --out"
            )
    write_json(stored, search)
    records = {r["trial"]: r for r in read_trials(folder)}
    total = generations * population
    say(f"evolve: {generations} generations x {population} trials of {trial_epochs} epoch(s) into {folder}")
    if records:
        say(f"evolve: {len([t for t in records if t < total])} trials already done, skipped")
    seconds: list[float] = []
    for trial in range(total):
        done = [records[t] for t in sorted(records) if t < trial]
        values, parent = planned_values(trial, population, start, done, seed, sigma)
        if trial in records:
            if records[trial]["values"] != values:
                raise ValueError(
                    f"{folder / 'trials.jsonl'}: trial {trial} holds other values than this search draws "
                    f"({records[trial]['values']} vs {values}); start a new --out"
                )
            continue
        settings = {**with_values(base, values), "epochs": trial_epochs}
        metrics = run(settings, folder / "trials" / f"{trial:03d}")
        record = {
            "trial": trial,
            "generation": trial // population,
            "parent": parent,
            "fitness": fitness(metrics),
            **{k: float(metrics[k]) for k in ("map", "map50", "map75")},
            "seconds": float(metrics.get("seconds", 0.0)),
            "values": values,
        }
        records[trial] = record
        seconds.append(record["seconds"])
        write_tables(folder, list(records.values()), keys)
        best = max(records.values(), key=lambda r: (r["fitness"], -r["trial"]))
        write_best(folder, base, best, trial_epochs)
        left = total - len([t for t in records if t < total])
        say(
            f"evolve: trial {trial + 1}/{total} (generation {record['generation']}): fitness {record['fitness']:.4f} "
            f"(mAP@0.5 {record['map50']:.3f}, mAP@[.5:.95] {record['map']:.3f}); best so far trial {best['trial']} "
            f"{best['fitness']:.4f}; {time_left(seconds, left)}"
        )
    finished = sorted(records.values(), key=lambda r: r["trial"])
    if finished:
        best = max(finished, key=lambda r: (r["fitness"], -r["trial"]))
        write_tables(folder, finished, keys)
        path = write_best(folder, base, best, trial_epochs)
        say(f"evolve: best trial {best['trial']}, fitness {best['fitness']:.4f}: {path}; every trial: trials.csv")
    return finished
