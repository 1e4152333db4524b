"""``python -m yolov4 ablate``: the YOLOv4 paper's Table 4 (bag of freebies), measured here.

Rows are trained one after another, each ``seeds`` times (seed = base seed + i), and scored
on the held-out split: AP = mAP@[.5:.95], AP50, AP75. The base settings are the demo's
(``yolov4.demo.DEMO``), or a config file, with the command line's overrides on top. The
**baseline** is the base with every freebie the table studies turned off (``SWITCHES``, each
switch's ``off``), and the MSE box loss, the paper's baseline. A named row ``+x+y`` is the
baseline with switches x and y turned on: as the base has them where it has them on, else at
darknet's setting. A rows file (YAML: row name -> TrainConfig overrides) gives rows of any
settings, each on top of the same baseline.

The table marks a switch's column where the row's resolved settings have it on (so a rows
file's row is marked by what it does, not by its name), and compares every row's mean AP with
the reference row's (``baseline``, else the first): a difference no larger than the wider of
the two rows' min-max spreads over seeds is marked "within spread", and with one seed there is
no spread to compare with, which the table says.

Each (row, seed) result is written to ``results/`` as soon as its run ends, and the table
(``ablation.md``, ``ablation.json``, ``ablation.png``) is rewritten after each, so a rerun in
the same folder (``--resume FOLDER``, or ``--out FOLDER --exist-ok``) skips every finished run
and continues an unfinished one from its ``last.npz``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minilucid.serialization import write_text_atomically
from yolov4.evaluation.plots import plot_ablation
from yolov4.files import read_json, read_yaml
from yolov4.model_config import YOLO_V4Config, zoo_config
from yolov4.training.evolve import GENES
from yolov4.training.settings import TrainConfig, merge_settings, read_settings, unknown_keys
from yolov4.training.trials import METRICS, plain, read_result, resolved, time_left, train_and_score, write_json

# ----------------------------------------------------------------------------- the switches


def _config(base: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**base)


def _model(base: dict[str, Any]) -> YOLO_V4Config:
    config = _config(base)
    return zoo_config(config.model, 1, **config.model_options)


def _grid_on(base: dict[str, Any]) -> dict[str, Any]:
    ours = _model(base).scale_x_y
    if any(v > 1 for v in ours):
        return {"model_options": {"scale_x_y": list(ours)}}
    return {"model_options": {"scale_x_y": list(zoo_config(_config(base).model, 1).scale_x_y)}}


def _grid_off(base: dict[str, Any]) -> dict[str, Any]:
    return {"model_options": {"scale_x_y": [1.0] * _model(base).num_levels}}


def _smallest_split(base: dict[str, Any]) -> int:
    """The base's subdivisions where it splits the batch, else the smallest split of it."""
    config = _config(base)
    if config.subdivisions > 1:
        return config.subdivisions
    split = next((d for d in range(2, config.batch + 1) if config.batch % d == 0), None)
    if split is None:
        raise ValueError("the cbn and sd rows split the batch into mini-batches: they need --batch 2 or more")
    return split


def _mosaic_on(base: dict[str, Any]) -> dict[str, Any]:
    ours = _config(base).augment_config().mosaic
    return {"augment": {"mosaic": ours if ours > 0 else 1.0}}


def _iou_thresh_on(base: dict[str, Any]) -> dict[str, Any]:
    ours = _model(base).pos_iou_thr
    return {"model_options": {"pos_iou_thr": ours if ours < 1 else 0.213}}


def _smoothing_on(base: dict[str, Any]) -> dict[str, Any]:
    ours = _config(base).cls_label_smoothing
    return {"cls_label_smoothing": ours if ours > 0 else 0.1}


@dataclass(frozen=True)
class Switch:
    """A freebie the table turns on and off: its Table 4 column (``loss`` for the box losses,
    empty for switches the paper has no column for), what it is, and the overrides that turn it
    on and off, each a function of the base settings."""

    column: str
    what: str
    on: Callable[[dict[str, Any]], dict[str, Any]]
    off: Callable[[dict[str, Any]], dict[str, Any]]


def _loss(kind: str) -> Switch:
    return Switch(
        "loss",
        f"box loss {kind.upper()} (model_options.box_loss: {kind})",
        lambda base: {"model_options": {"box_loss": kind}},
        lambda base: {"model_options": {"box_loss": "mse"}},
    )


SWITCHES: dict[str, Switch] = {
    "s": Switch(
        "S",
        "grid sensitivity: model_options.scale_x_y as the model has it (1.2, 1.1, 1.05); off: 1.0 at every stride",
        _grid_on,
        _grid_off,
    ),
    "m": Switch(
        "M",
        "mosaic: augment.mosaic as the base has it, else 1.0 (every sample, darknet's mosaic=1); off: 0",
        _mosaic_on,
        lambda b: {"augment": {"mosaic": 0.0}},
    ),
    "it": Switch(
        "IT",
        "IoU threshold: extra anchors above model_options.pos_iou_thr are positive (0.213, darknet's iou_thresh); "
        "off: 1.0, the best anchor only",
        _iou_thresh_on,
        lambda b: {"model_options": {"pos_iou_thr": 1.0}},
    ),
    "ga": Switch(
        "GA",
        "genetic algorithm: the evolved settings of --ga BEST.yaml (python -m yolov4 evolve)",
        lambda b: {},  # the settings come from the file (resolve_rows)
        lambda b: {},
    ),
    "ls": Switch(
        "LS",
        "class label smoothing: cls_label_smoothing as the base has it, else 0.1; off: 0",
        _smoothing_on,
        lambda b: {"cls_label_smoothing": 0.0},
    ),
    "cbn": Switch(
        "CBN",
        "CmBN: cmbn on, over the base's subdivisions, else the batch split in 2 (subdivisions); off: cmbn off",
        lambda b: {"cmbn": True, "subdivisions": _smallest_split(b)},
        lambda b: {"cmbn": False},
    ),
    "ca": Switch(
        "CA",
        "cosine annealing: schedule cosine; off: schedule steps (x scale at the steps fractions)",
        lambda b: {"schedule": "cosine"},
        lambda b: {"schedule": "steps"},
    ),
    "dm": Switch(
        "DM",
        "dynamic mini-batch: multiscale and dynamic_minibatch on (DM needs multi-scale); off: both off",
        lambda b: {"multiscale": True, "dynamic_minibatch": True},
        lambda b: {"multiscale": False, "dynamic_minibatch": False},
    ),
    "oa": Switch(
        "OA",
        "optimized anchors: autoanchor always (k-means anchors of the training boxes); off: autoanchor off",
        lambda b: {"autoanchor": "always"},
        lambda b: {"autoanchor": "off"},
    ),
    "mse": _loss("mse"),
    "giou": _loss("giou"),
    "diou": _loss("diou"),
    "ciou": _loss("ciou"),
    "ms": Switch(
        "",
        "multi-scale training alone: multiscale on, fixed batch (compare with +dm)",
        lambda b: {"multiscale": True},
        lambda b: {},
    ),
    "sd": Switch(
        "",
        "the batch split as +cbn splits it, with plain BatchNorm per mini-batch (compare with +cbn)",
        lambda b: {"subdivisions": _smallest_split(b)},
        lambda b: {},
    ),
}
# Longer names a row may use for a switch: +mosaic is +m.
ALIASES = {
    "grid": "s",
    "mosaic": "m",
    "iou-thresh": "it",
    "genetic": "ga",
    "smoothing": "ls",
    "label-smoothing": "ls",
    "cmbn": "cbn",
    "cosine": "ca",
    "dynamic-minibatch": "dm",
    "anchors": "oa",
    "multiscale": "ms",
    "subdivisions": "sd",
}
PAPER_COLUMNS = ("S", "M", "IT", "GA", "LS", "CBN", "CA", "DM", "OA")
LOSS_NAMES = {"mse": "MSE", "giou": "GIoU", "diou": "DIoU", "ciou": "CIoU"}

# Table 4's rows as single switches on the baseline, its box losses as rows of their own, and
# its best row (S, M, IT, GA, OA with CIoU); +ga and the ga in the last row only with --ga.
DEFAULT_ROWS = (
    "baseline",
    "+s",
    "+m",
    "+it",
    "+ga",
    "+ls",
    "+cbn",
    "+ca",
    "+dm",
    "+oa",
    "+giou",
    "+diou",
    "+ciou",
    "+s+m+it+ga+oa+ciou",
)


def baseline_settings(base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every switch of the table off."""
    settings = dict(base)
    for switch in SWITCHES.values():
        settings = merge_settings(settings, switch.off(base))
    return settings


def ga_settings(path: str | Path) -> dict[str, Any]:
    """The evolved settings of an ``evolve`` result (its ``best.yaml``), where they live
    (``lr``, ``augment.hue``, ...): those the search evolved, as the ``evolve.json`` beside the
    file names them, else every setting of ``GENES`` the file holds."""
    content = read_settings(path)
    beside = Path(path).parent / "evolve.json"
    keys = read_json(beside).get("keys", list(GENES)) if beside.is_file() else list(GENES)
    overrides: dict[str, Any] = {}
    for gene in (GENES[k] for k in keys if k in GENES):
        where = content.get(gene.path[0]) if len(gene.path) == 2 else content
        if isinstance(where, dict) and gene.path[-1] in where:
            if len(gene.path) == 1:
                overrides[gene.path[0]] = where[gene.path[0]]
            else:
                overrides.setdefault(gene.path[0], {})[gene.path[1]] = where[gene.path[1]]
    if not overrides:
        raise ValueError(f"--ga {path}: holds none of the settings evolve tunes ({', '.join(GENES)})")
    return overrides


# ----------------------------------------------------------------------------- the rows


@dataclass
class Row:
    """A row of the table: its name, the switches it turns on (named rows) and its settings."""

    name: str
    switches: tuple[str, ...]
    settings: dict[str, Any]


def parse_switches(name: str) -> tuple[str, ...]:
    """The switches of a named row: ``baseline`` -> (), ``+m+ls`` (or ``m+ls``, ``baseline+m+ls``)
    -> ("m", "ls"); a one-line ValueError naming an unknown switch, its nearest known one, and
    every known one."""
    text = name.strip().lower()
    if text == "baseline":
        return ()
    parts = [p.strip() for p in text.split("+")]
    parts = [ALIASES.get(p, p) for p in (parts[1:] if parts[0] == "baseline" else parts) if p]
    known = ", ".join(f"{k} ({s.column or 'extra'})" for k, s in SWITCHES.items())
    if not parts:
        raise ValueError(f"row {name!r} names no switch; rows are baseline or +switch+...; known: {known}")
    for part in parts:
        if part not in SWITCHES:
            near = difflib.get_close_matches(part, [*SWITCHES, *ALIASES], 1, 0.5)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ValueError(f"unknown switch {part!r} in row {name!r}{hint}; known: baseline, {known}")
    losses = list(dict.fromkeys(p for p in parts if SWITCHES[p].column == "loss"))
    if len(losses) > 1:
        raise ValueError(f"row {name!r} names {len(losses)} box losses ({', '.join(losses)}); a row has one")
    return tuple(dict.fromkeys(parts))


def row_name(switches: tuple[str, ...]) -> str:
    """The canonical name of a named row: ``baseline`` or ``+m+ls``."""
    return "".join(f"+{s}" for s in switches) or "baseline"


def row_settings(switches: tuple[str, ...], base: dict[str, Any], ga: dict[str, Any] | None) -> dict[str, Any]:
    """The settings of the row that turns ``switches`` on: the baseline, then the evolved
    settings ``ga`` where the row has ``ga``, then each other switch's ``on``."""
    settings = baseline_settings(base)
    if "ga" in switches:
        if ga is None:
            name = row_name(switches)
            raise ValueError(f"row {name!r} needs --ga BEST.yaml (the best.yaml of python -m yolov4 evolve)")
        settings = merge_settings(settings, ga)
    for switch in switches:
        settings = merge_settings(settings, SWITCHES[switch].on(base))
    return settings


def named_rows(text: str | None, base: dict[str, Any], ga: dict[str, Any] | None) -> list[Row]:
    """The rows of ``--rows baseline,+m,+m+ls``; None: ``DEFAULT_ROWS``, whose GA is left out
    unless ``ga`` settings are given."""
    names = [n.strip() for n in text.split(",") if n.strip()] if text is not None else list(DEFAULT_ROWS)
    if not names:
        raise ValueError("--rows names no row; give e.g. baseline,+m,+ls or a rows .yaml file")
    rows: dict[str, Row] = {}
    for name in names:
        switches = parse_switches(name)
        if text is None and ga is None:
            switches = tuple(s for s in switches if s != "ga")
        canonical = row_name(switches)
        if canonical in rows:
            if text is not None:
                raise ValueError(f"--rows names the row {canonical!r} twice")
            continue  # +ga without a GA result is the baseline
        rows[canonical] = Row(canonical, switches, row_settings(switches, base, ga))
    return list(rows.values())


def file_rows(path: str | Path, base: dict[str, Any]) -> list[Row]:
    """The rows of a rows file: YAML, row name -> TrainConfig overrides on top of the baseline
    (an empty entry is the baseline itself)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no rows file at {path}")
    content = read_yaml(path)
    if not isinstance(content, dict) or not content:
        kind = "nothing" if not content else type(content).__name__
        raise ValueError(f"{path}: expected a mapping of row name -> TrainConfig settings, got {kind}")
    baseline = baseline_settings(base)
    allowed = list(TrainConfig.__dataclass_fields__)
    rows = []
    for name, overrides in content.items():
        overrides = overrides or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: row {name!r}: expected a mapping of settings, got {overrides!r}")
        unknown_keys(f"{path}: row {name!r}", overrides, allowed)
        settings = merge_settings(baseline, overrides)
        try:
            TrainConfig(**settings)
        except ValueError as error:
            raise ValueError(f"{path}: row {name!r}: {error}") from None
        rows.append(Row(str(name), (), settings))
    return rows


def columns_of(row: Row) -> dict[str, str]:
    """The table's cells for ``row``'s switches: a check mark in each paper column that its
    resolved settings turn on, its box loss, and its switches that have no paper column."""
    config = TrainConfig(**row.settings)
    model = zoo_config(config.model, 1, **config.model_options)
    on = {
        "S": any(v > 1 for v in model.scale_x_y),
        "M": config.augment_config().mosaic > 0,
        "IT": model.pos_iou_thr < 1,
        "GA": "ga" in row.switches,
        "LS": config.cls_label_smoothing > 0,
        "CBN": config.cmbn and config.subdivisions > 1,
        "CA": config.schedule == "cosine",
        "DM": config.dynamic_minibatch and config.multiscale,
        "OA": config.autoanchor == "always",
    }
    cells = {column: "✓" if on[column] else "" for column in PAPER_COLUMNS}
    if config.autoanchor == "auto" and config.data is not None:
        cells["OA"] = "auto"
    cells["loss"] = LOSS_NAMES[model.box_loss]
    cells["other"] = ", ".join(s for s in row.switches if not SWITCHES[s].column)
    return cells


# ----------------------------------------------------------------------------- the table


def summary(values: list[float]) -> dict[str, float]:
    """Mean, min, max and (population) standard deviation of a metric over seeds."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": mean, "min": min(values), "max": max(values), "std": std}


def verdict(row: dict[str, Any], reference: dict[str, Any]) -> tuple[float | None, str]:
    """(AP difference of ``row`` from ``reference``, what may be said of it). Each is a dict
    with ``runs`` (a list of results). The difference of the mean APs is "within spread" where
    it is no larger than the wider of the two rows' min-max spreads over seeds; with fewer than
    two seeds on either side no spread was measured, and the difference claims nothing."""
    if not row["runs"] or not reference["runs"]:
        return None, "not run yet"
    ours = summary([r["map"] for r in row["runs"]])
    theirs = summary([r["map"] for r in reference["runs"]])
    delta = ours["mean"] - theirs["mean"]
    if row is reference:
        return 0.0, "reference"
    if len(row["runs"]) < 2 or len(reference["runs"]) < 2:
        return delta, "one seed: no spread measured"
    spread = max(ours["max"] - ours["min"], theirs["max"] - theirs["min"])
    if abs(delta) <= spread:
        return delta, "within spread"
    return delta, "above spread" if delta > 0 else "below spread"


def build_table(rows: list[dict[str, Any]], reference: str) -> dict[str, Any]:
    """The table's content: for each row (a dict with ``name``, ``cells``, ``settings`` and
    ``runs``, the results so far), the mean, min, max and std of AP, AP50 and AP75 over its
    seeds and its verdict against the ``reference`` row."""
    by_name = {row["name"]: row for row in rows}
    if reference not in by_name:
        raise ValueError(f"the reference row {reference!r} is not among the rows {list(by_name)}")
    table = []
    for row in rows:
        stats = {k: summary([r[k] for r in row["runs"]]) for k in METRICS} if row["runs"] else {}
        delta, said = verdict(row, by_name[reference])
        table.append({**row, "stats": stats, "delta_ap": delta, "verdict": said})
    return {
        "reference": reference,
        "metrics": {"map": "AP, mAP@[.5:.95]", "map50": "AP50, mAP@0.5", "map75": "AP75, mAP@0.75"},
        "spread": "min-max over seeds (std also given)",
        "rows": table,
    }


def _cell(stats: dict[str, dict[str, float]], key: str) -> str:
    if not stats:
        return "-"
    s = stats[key]
    if s["min"] == s["max"]:
        return f"{100 * s['mean']:.1f}"
    return f"{100 * s['mean']:.1f} ({100 * s['min']:.1f}-{100 * s['max']:.1f})"


def markdown(table: dict[str, Any], note: str = "") -> str:
    """The table in the paper's layout, as Markdown: a column per switch, a check mark where on;
    AP, AP50, AP75 in percent, mean over seeds with the min-max in brackets; the AP difference
    from the reference row and whether it is outside the seeds' spread."""
    head = ["row", *PAPER_COLUMNS, "loss", "other", "AP", "AP50", "AP75", "seeds", "ΔAP", "vs " + table["reference"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in table["rows"]:
        delta = "" if row["delta_ap"] is None else f"{100 * row['delta_ap']:+.1f}"
        cells = [
            row["name"],
            *(row["cells"][c] for c in PAPER_COLUMNS),
            row["cells"]["loss"],
            row["cells"]["other"],
            *(_cell(row["stats"], k) for k in METRICS),
            str(len(row["runs"])),
            delta,
            row["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = (
        "AP = COCO mAP@[.5:.95], AP50 = mAP@0.5, AP75 = mAP@0.75 on the held-out split, in percent: the mean "
        "over seeds, with the min-max over seeds in brackets. ΔAP is the difference of mean AP from the "
        f'{table["reference"]} row; it is "within spread" where it is no larger than the wider of the two rows\' '
        "min-max spreads, and with one seed no spread was measured.\n"
    )
    return (note + "\n\n" if note else "") + text + "\n" + "\n".join(lines) + "\n"


def slug(name: str) -> str:
    """A file name for a row name."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name).strip(".") or "row"


Run = Callable[[dict[str, Any], Path], dict[str, float]]


def ablate(
    rows: list[Row],
    folder: str | Path,
    seeds: int = 3,
    base_seed: int = 0,
    run: Run | None = None,
    say: Callable[[str], None] = print,
    note: str = "",
) -> dict[str, Any]:
    """Train every row ``seeds`` times into ``folder`` and write the table; returns it. A result
    already in ``folder/results`` is kept where it was made with the same settings (a rerun
    continues), and refused where not. ``run(settings, out)`` trains one run and returns its
    metrics (``train_and_score`` by default)."""
    if seeds < 1:
        raise ValueError(f"--seeds = {seeds} is invalid: expected 1 or more runs per row")
    folder = Path(folder)
    run = run or train_and_score
    files = {}
    for row in rows:
        resolved(row.settings)  # every row's settings checked before the first run
        files.setdefault(slug(row.name), []).append(row.name)
    clashes = [names for names in files.values() if len(names) > 1]
    if clashes:
        raise ValueError(f"rows {clashes[0]} would share a results file; rename one")
    reference = next((row.name for row in rows if row.name == "baseline"), rows[0].name)
    plan = [(row, base_seed + i) for row in rows for i in range(seeds)]
    results: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
    todo = []
    for row, seed in plan:
        settings = {**row.settings, "seed": seed}
        path = folder / "results" / f"{slug(row.name)}-seed{seed}.json"
        stored = read_result(path)
        if stored is None:
            todo.append((row, seed, settings, path))
            continue
        ours, theirs = without_device(resolved(settings)), without_device(stored.get("settings", {}))
        if ours != theirs:
            differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ValueError(
                f"{path} was made with other settings ({', '.join(differ)}); continue with the same options, "
                "or write to a new --out"
            )
        results[row.name].append(stored)
    say(
        f"ablate: {len(rows)} rows x {seeds} seed(s) = {len(plan)} runs into {folder}"
        + (f" ({len(plan) - len(todo)} already done, skipped)" if len(todo) < len(plan) else "")
    )
    table = write_table(folder, rows, results, reference, note)
    seconds: list[float] = []
    for number, (row, seed, settings, path) in enumerate(todo, 1):
        metrics = run(settings, folder / "runs" / f"{slug(row.name)}-seed{seed}")
        result = {
            "row": row.name,
            "seed": seed,
            **{k: float(metrics[k]) for k in METRICS},
            "seconds": float(metrics.get("seconds", 0.0)),
            "settings": resolved(settings),
        }
        write_json(path, result)
        results[row.name].append(result)
        seconds.append(result["seconds"])
        table = write_table(folder, rows, results, reference, note)
        say(
            f"ablate: [{number}/{len(todo)}] {row.name} seed {seed}: AP {result['map']:.3f}, "
            f"AP50 {result['map50']:.3f}, AP75 {result['map75']:.3f} in {result['seconds'] / 60:.1f} min; "
            f"{time_left(seconds, len(todo) - number)}"
        )
    say(f"ablate: table in {folder / 'ablation.md'}, {folder / 'ablation.json'}, {folder / 'ablation.png'}")
    return table


def without_device(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings less ``device``: a run continued on another device is the same run."""
    return {k: v for k, v in settings.items() if k != "device"}


def write_table(
    folder: Path, rows: list[Row], results: dict[str, list[dict[str, Any]]], reference: str, note: str
) -> dict[str, Any]:
    """``ablation.json``, ``ablation.md`` and ``ablation.png`` from the results so far."""
    entries = [
        {
            "name": row.name,
            "switches": list(row.switches),
            "cells": columns_of(row),
            "settings": plain(row.settings),
            "runs": sorted(results[row.name], key=lambda r: r["seed"]),
        }
        for row in rows
    ]
    table = build_table(entries, reference)
    write_json(folder / "ablation.json", table)
    write_text_atomically(folder / "ablation.md", markdown(table, note))
    plot_ablation(table["rows"], folder / "ablation.png")
    return table
