"""Fine-tuning from darknet's released yolov4-tiny weights against training from scratch.

    python benchmarks/finetune.py --weights yolov4-tiny.weights --out runs/finetune
    python benchmarks/finetune.py --weights W --out O --epochs 3 --seeds 0 --start scratch --start released
    python benchmarks/finetune.py --weights W --out O --variant 'fresh3={"fresh_lr": 3}'
    python benchmarks/finetune.py --out runs/finetune --report      # the table and curves only

Every run is yolov4-tiny at 160 pixels, batch 8, Adam at 1e-3 with a cosine schedule and 10
burn-in updates (the reporter's settings), trained through the project's own ``Trainer`` on the real-photograph
dataset of ``benchmarks/real_photo.py`` (written into ``OUT/data`` on the first call), and
scored on its held-out tiles once, at the end. A run is one start x one length (1, 3, 8
epochs by default: each length is its own run, since the cosine schedule spans the run) x
one seed. The starts:

- ``scratch``: fresh weights;
- ``released``: the released weights, every layer trained alike from the first update (as
  ``train --weights`` did before ``configs/finetune.yaml``);
- ``finetune``: the released weights with ``yolov4/configs/finetune.yaml``'s settings in place
  of the reporter's (what ``train --weights`` does where the user's settings do not name them);
- ``--variant NAME=JSON``: the released weights with these TrainConfig settings on top.

Each finished run appends a line to ``OUT/results.jsonl`` and is not run again, so a stopped
measurement continues where it was. The table (mean and min-max over the seeds of mAP@0.5 and
mAP@[.5:.95]) goes to ``OUT/table.md`` and the curves to ``OUT/curves.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_line, markdown_table  # noqa: E402
from real_photo import write_real_photo  # noqa: E402

# The reporter's settings: every start's, but where finetune.yaml's settings replace them.
BASE = dict(
    model="yolov4-tiny",
    img=160,
    batch=8,
    optimizer="adam",
    lr=1e-3,
    schedule="cosine",
    burn_in=10,
    exist_ok=True,
)
AS_BEFORE = {"fresh_lr": 1.0}  # every layer at the same rate, as before configs/finetune.yaml
LABELS = {"released": "released, as before", "finetune": "released + finetune.yaml"}  # in tables and plots


def starts(weights: str | None, variants: list[str]) -> dict[str, dict]:
    """The runs' starting points by name: their TrainConfig settings on top of ``BASE``."""
    from yolov4.training.settings import FINETUNE

    named = {"scratch": {}, "released": {"weights": weights, **AS_BEFORE}, "finetune": {"weights": weights, **FINETUNE}}
    for variant in variants:
        name, _, settings = variant.partition("=")
        named[name] = {"weights": weights, **json.loads(settings)}
    return named


def dataset(out: Path) -> Path:
    """The real-photograph dataset's data.yaml under ``out``, written on the first call."""
    path = out / "data" / "data.yaml"
    if not path.is_file():
        write_real_photo(out / "data")
    return path


def train_once(data: Path, out: Path, start: str, settings: dict, epochs: int, seed: int) -> dict:
    """One run; its held-out metrics and what it took."""
    from yolov4.training.settings import TrainConfig
    from yolov4.training.trainer import Trainer

    run = dict(data=str(data), epochs=epochs, eval_every=epochs, seed=seed, out=str(out / "runs" / start))
    config = TrainConfig(**{**BASE, **settings, **run})
    begin = time.perf_counter()
    trainer = Trainer(config, progress=False)
    last = trainer.fit()[-1]
    return {
        "start": start,
        "epochs": epochs,
        "seed": seed,
        "map50": last["map50"],
        "map": last["map"],
        "updates": trainer.scheduler.last_epoch,
        "seconds": round(time.perf_counter() - begin, 1),
        "settings": {k: v for k, v in settings.items() if k != "weights"},
    }


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def spread(values: list[float]) -> str:
    """Mean and min-max of one cell."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def table(results: list[dict], names: list[str]) -> str:
    """Rows of lengths, columns of starts: mean (min-max) over the seeds of both mAPs."""
    lengths = sorted({r["epochs"] for r in results})
    header = ["epochs (updates)"] + [
        f"{LABELS.get(name, name)} {metric}" for name in names for metric in ("mAP@0.5", "mAP@[.5:.95]")
    ]
    rows = []
    for epochs in lengths:
        runs = {name: [r for r in results if r["start"] == name and r["epochs"] == epochs] for name in names}
        updates = next((r["updates"] for rs in runs.values() for r in rs), "?")
        cells = [f"{epochs} ({updates})"]
        for name in names:
            for metric in ("map50", "map"):
                values = [r[metric] for r in runs[name]]
                cells.append(spread(values) + (f" n={len(values)}" if values and len(values) != 3 else "") or "-")
        rows.append(cells)
    return markdown_table(header, rows)


def gaps(results: list[dict], names: list[str]) -> str:
    """Each start against scratch at each length: the difference of the means, and whether it is
    outside the seeds' spread (every seed of the one above every seed of the other)."""
    header = ["epochs"] + [
        f"{LABELS.get(name, name)} - scratch {metric}" for name in names[1:] for metric in ("mAP@0.5", "mAP@[.5:.95]")
    ]
    rows = []
    for epochs in sorted({r["epochs"] for r in results}):
        cells = [str(epochs)]
        for name in names[1:]:
            for metric in ("map50", "map"):
                ours = [r[metric] for r in results if r["start"] == name and r["epochs"] == epochs]
                base = [r[metric] for r in results if r["start"] == names[0] and r["epochs"] == epochs]
                if not ours or not base:
                    cells.append("-")
                    continue
                gap = statistics.mean(ours) - statistics.mean(base)
                outside = min(ours) > max(base) or max(ours) < min(base)
                cells.append(f"{gap:+.3f} ({'outside' if outside else 'within'} the spread)")
        rows.append(cells)
    return markdown_table(header, rows)


def plot(results: list[dict], names: list[str], path: Path) -> None:
    """mAP@0.5 and mAP@[.5:.95] against epochs: each start's mean, and every seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, (metric, label) in zip(axes, (("map50", "mAP@0.5"), ("map", "mAP@[.5:.95]")), strict=True):
        for name in names:
            ours = [r for r in results if r["start"] == name]
            lengths = sorted({r["epochs"] for r in ours})
            means = [statistics.mean(r[metric] for r in ours if r["epochs"] == e) for e in lengths]
            (line,) = axis.plot(lengths, means, marker="o", label=LABELS.get(name, name))
            axis.scatter(
                [r["epochs"] for r in ours], [r[metric] for r in ours], s=12, color=line.get_color(), alpha=0.5
            )
        axis.set_xlabel("epochs (each length its own run)")
        axis.set_ylabel(f"held-out {label}")
        axis.set_xticks(sorted({r["epochs"] for r in results}))
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("yolov4-tiny, real-photograph nuclei, 160 px: mean over seeds (dots: each seed)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(out: Path, names: list[str] | None = None) -> None:
    results = read_results(out / "results.jsonl")
    names = names or list(dict.fromkeys(r["start"] for r in results))
    text = table(results, names)
    if names[0] == "scratch" and len(names) > 1:
        text += "\n\n" + gaps(results, names)
    (out / "table.md").write_text(text + "\n")
    plot(results, names, out / "curves.png")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="darknet's yolov4-tiny.weights")
    parser.add_argument("--out", default="runs/finetune", help="dataset, runs, results.jsonl, table and curves")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--start", action="append", help="scratch, released, finetune (default: all three)")
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON settings on the released weights")
    parser.add_argument("--report", action="store_true", help="only write the table and curves of results.jsonl")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    named = starts(args.weights, args.variant)
    chosen = args.start or ["scratch", "released", "finetune"]
    chosen += [v.partition("=")[0] for v in args.variant if v.partition("=")[0] not in chosen]
    if not args.report:
        if any(named[name].get("weights") for name in chosen) and not args.weights:
            parser.error("--weights is needed for every start but scratch")
        data = dataset(out)
        print(machine_line(), flush=True)
        for epochs in args.epochs:
            for seed in args.seeds:
                for name in chosen:
                    done = read_results(out / "results.jsonl")
                    if any(r["start"] == name and r["epochs"] == epochs and r["seed"] == seed for r in done):
                        continue
                    result = train_once(data, out, name, named[name], epochs, seed)
                    with open(out / "results.jsonl", "a") as results:
                        results.write(json.dumps(result) + "\n")
                    print(json.dumps(result), flush=True)
    report(out, chosen)


if __name__ == "__main__":
    main()
