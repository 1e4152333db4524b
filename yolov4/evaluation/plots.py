"""PNG plots: training curves, precision-recall curves, confusion matrices (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from minilucid.serialization import write_atomically


def _figure(**options: Any):
    """A matplotlib Figure that only writes files.

    Not pyplot: switching pyplot's backend to write files would turn off the plots of
    the notebook or window the caller is in, and pyplot keeps every figure until closed.
    """
    from matplotlib.figure import Figure

    return Figure(**options)


def _save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names (PNG by default)."""
    kind = Path(path).suffix[1:].lower() or "png"
    write_atomically(path, lambda file: figure.savefig(file, dpi=90, format=kind))
    return Path(path)


def plot_history(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss terms per epoch (left) and mAP per epoch (right)."""
    epochs = [h["epoch"] for h in history]
    figure = _figure(figsize=(10, 3.6))
    left, right = figure.subplots(1, 2)
    for key in ("loss", "box", "obj", "cls", "iou_branch"):
        if all(key in h for h in history):
            left.plot(epochs, [h[key] for h in history], marker="o", label=key)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_title("training loss (per image)")
    left.legend()
    for key, label in (("map50", "mAP@0.5"), ("map", "mAP@[.5:.95]")):
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=label)
    right.set_ylim(0, 1)
    right.set_xlabel("epoch")
    right.set_title("held-out mAP")
    if right.lines:
        right.legend()
    figure.tight_layout()
    return _save(figure, path)


def plot_pr_curves(curves: dict[str, list[float]], path: str | Path) -> Path:
    """Precision against recall at IoU 0.5, one line per class."""
    figure = _figure(figsize=(5, 4))
    axis = figure.subplots()
    recall = np.linspace(0, 1, 101)
    for name, precision in curves.items():
        axis.plot(recall, precision, label=f"{name} (AP50 {np.mean(precision):.2f})")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title("precision-recall at IoU 0.5")
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion(matrix: np.ndarray, names: list[str], path: str | Path) -> Path:
    """Rows: true class (+ "background" for false alarms); columns: predicted (+ "missed")."""
    figure = _figure(figsize=(1.2 * len(names) + 2.5, 1.1 * len(names) + 2))
    axis = figure.subplots()
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(names) + 1), [*names, "missed"], rotation=45)
    axis.set_yticks(range(len(names) + 1), [*names, "background"])
    for (i, j), value in np.ndenumerate(matrix):
        axis.text(
            j, i, str(int(value)), ha="center", va="center", color="black" if value < matrix.max() / 2 else "white"
        )
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("confusion at IoU 0.5")
    figure.tight_layout()
    return _save(figure, path)


def plot_ablation(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """AP, AP50 and AP75 per row of an ablation table (``yolov4.training.ablation``): bars at the mean
    over seeds, error bars from the min to the max; rows not run yet are left empty."""
    keys = (("map", "AP"), ("map50", "AP50"), ("map75", "AP75"))
    figure = _figure(figsize=(max(6.0, 0.75 * len(rows) + 2), 4))
    axis = figure.subplots()
    x = np.arange(len(rows))
    width = 0.27
    for k, (key, label) in enumerate(keys):
        mean = np.array([row["stats"][key]["mean"] if row["stats"] else np.nan for row in rows])
        low = np.array([row["stats"][key]["min"] if row["stats"] else np.nan for row in rows])
        high = np.array([row["stats"][key]["max"] if row["stats"] else np.nan for row in rows])
        errors = np.nan_to_num(np.stack([mean - low, high - mean]))  # (2, rows): below and above the mean
        axis.bar(x + (k - 1) * width, np.nan_to_num(mean), width, yerr=errors, capsize=3, label=label)
    axis.set_xticks(x, [row["name"] for row in rows], rotation=45, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("held-out mAP")
    axis.set_title("ablation: mean over seeds, bars from min to max")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
