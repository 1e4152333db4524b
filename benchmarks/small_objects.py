"""Small objects in a large image: the demo's settings against the small-object recipe, measured.

    python benchmarks/small_objects.py --out O --steps baseline tiles      # docs/small-objects.md's table
    python benchmarks/small_objects.py --out O --updates 150               # every step, seeds 0 1 2
    python benchmarks/small_objects.py --out O --steps baseline pretrained-whole pretrained
    python benchmarks/small_objects.py --out O --report                    # the table only

The photograph is scikit-image's ``immunohistochemistry()`` at its own scale (512 x 512),
labelled by ``benchmarks/real_photo.py``'s ``nucleus_boxes`` (a stain threshold and connected
components: about a hundred nuclei of 3 to 30 by 5 to 49 pixels, median 9 x 12). It is divided
at the column that no box crosses nearest 0.6 of its width (``real_photo.split_column``): the
part left of it is the one training image, the part right of it the one held-out image, whole
regions as a user has them, so no object (and no pixel) is in both splits.

Every run is the project's ``Trainer`` (its loader, augmentations and update step) for the
same number of updates (``--updates``, 300 by default, batches of 4), from scratch, then one
evaluation on the held-out image at its full size. The steps, each adding to the one before:

- ``baseline``: the demo's settings (``yolov4/configs/demo.yaml``: the small model, Adam at
  0.004 with a cosine schedule, batch 4, no jitter) at 192 px on the whole training image,
  evaluated on the whole held-out image at 192 px; the default anchors (autoanchor off);
- ``tiles``: trained on 128-px tiles of the training image (``python -m yolov4 tile``, overlap
  0.2) at 128 px, so objects keep their own size instead of shrinking 0.375 times; evaluated
  sliced (``eval --tile 128``: tiles and the whole image, each at 128 px);
- ``anchors``: anchors fitted to the tiles' boxes (autoanchor ``always``; the lines it prints,
  best possible recall of the default and fitted anchors, are in ``OUT/log.txt``);
- ``mosaic``: mosaic on half the samples;
- ``balance``: the stride-8 level's objectness weighted 4, stride 32's 0.4 (``obj_balance``).

Two steps start from darknet's released, COCO-trained ``yolov4-tiny.weights`` instead of
from scratch (``YOLOV4_TINY_WEIGHTS``, else ``~/.cache/minilucid-yolov4/``), fine-tuned as
``train --weights`` does (``configs/finetune.yaml``: no burn-in, fresh output convs at 10x the
rate) with Adam at 1e-3. YOLOv4-tiny's finest level has stride 16, so both enlarge the input
2x (the nuclei become 18 x 24 px):

- ``pretrained-whole``: the whole training image at 384 px (the baseline's 192, doubled);
- ``pretrained``: the 128-px tiles at 256 px, evaluated sliced (``eval --tile 128``).

Each finished run appends a line to ``OUT/results.jsonl`` and is not run again, so a stopped
measurement continues where it stopped; the table (mean and min-max over seeds of mAP@0.5,
mAP@[.5:.95] and mAP for small objects) goes to ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_line, markdown_table  # noqa: E402
from real_photo import nucleus_boxes, photograph, split_column  # noqa: E402

from yolov4.demo import DEMO as DEMO_SETTINGS  # noqa: E402

TRAIN_FRACTION = 0.6
TILE, OVERLAP = 128, 0.2
# The demo's settings (yolov4/configs/demo.yaml, its one home), less those each step sets itself,
# as they were when docs/small-objects.md was measured: the small YOLOv4 at Adam 0.004 with
# darknet's HSV jitter, in one process (the five-minute demo since trains tiny-small at 352 px).
MEASURED_WITH = {"model": "small", "lr": 0.004, "processes": 1, "augment": {"jitter": 0.0, "flip": 0.5}}
DEMO = {
    **{k: v for k, v in DEMO_SETTINGS.items() if k not in ("img", "epochs", "eval_every", "seed")},
    **MEASURED_WITH,
}
STEPS = {
    "baseline": dict(data="full", img=192, tile=None, autoanchor="off"),
    "tiles": dict(data="tiles", img=TILE, tile=TILE, autoanchor="off"),
    "anchors": dict(data="tiles", img=TILE, tile=TILE, autoanchor="always"),
    "mosaic": dict(data="tiles", img=TILE, tile=TILE, autoanchor="always", mosaic=0.5),
    "balance": dict(data="tiles", img=TILE, tile=TILE, autoanchor="always", mosaic=0.5, obj_balance=(4.0, 1.0, 0.4)),
    # darknet's released yolov4-tiny (COCO-trained) as the start, fine-tuned as ``train --weights``
    # does (configs/finetune.yaml); its finest level has stride 16, so the input is enlarged 2x:
    # 9 x 12 px nuclei become 18 x 24, a cell or more of that level.
    "pretrained-whole": dict(data="full", img=2 * 192, tile=None, autoanchor="off", pretrained=True),
    "pretrained": dict(data="tiles", img=2 * TILE, tile=TILE, autoanchor="off", pretrained=True),
}
PRETRAINED = dict(model="yolov4-tiny", lr=0.001)  # the rate benchmarks/finetune.py measured finetune.yaml at
WEIGHTS = Path(os.environ.get("YOLOV4_TINY_WEIGHTS") or Path.home() / ".cache/minilucid-yolov4/yolov4-tiny.weights")


def write_datasets(out: Path) -> tuple[Path, Path]:
    """(full-size dataset, its tiles), written under ``out`` on the first call."""
    from yolov4.boxes import labels_to_xywh
    from yolov4.data.yolo import write_yolo
    from yolov4.tiles import write_tiles

    full, tiles = out / "full", out / f"tiles{TILE}"
    if not (full / "data.yaml").is_file():
        photo = photograph()
        image = photo.transpose(2, 0, 1).astype("float32") / 255  # (3, 512, 512)
        corners = nucleus_boxes(photo)
        column = split_column(corners, photo.shape[1], TRAIN_FRACTION)
        left, right = corners[corners[:, 2] <= column], corners[corners[:, 0] >= column] - [column, 0, column, 0]
        for split, part, boxes in (("train", image[:, :, :column], left), ("val", image[:, :, column:], right)):
            rows = labels_to_xywh(np.concatenate([np.zeros((len(boxes), 1)), boxes], axis=1))
            write_yolo([(f"{split}.png", part, rows)], full, ["nucleus"], split)
    if not (tiles / "data.yaml").is_file():
        write_tiles(full / "data.yaml", tiles, TILE, OVERLAP)
    return full / "data.yaml", tiles / "data.yaml"


def train_once(data: dict[str, Path], out: Path, step: str, updates: int, seed: int) -> dict:
    """One run of ``step``: ``updates`` updates of the Trainer, then the held-out metrics."""
    from yolov4.data.formats import read_dataset
    from yolov4.data.splits import training_set
    from yolov4.evaluation.evaluate import evaluate_model, map_settings
    from yolov4.training.settings import TrainConfig
    from yolov4.training.trainer import Trainer

    s = STEPS[step]
    options = {**DEMO["model_options"], **({"obj_balance": s["obj_balance"]} if "obj_balance" in s else {})}
    augment = {**DEMO["augment"], **({"mosaic": s["mosaic"]} if "mosaic" in s else {})}
    settings = {**DEMO, "model_options": options, "augment": augment}
    if s.get("pretrained"):
        if not WEIGHTS.is_file():
            raise FileNotFoundError(f"step {step!r} needs yolov4-tiny.weights at {WEIGHTS} (or YOLOV4_TINY_WEIGHTS)")
        settings = {**settings, **PRETRAINED, "weights": str(WEIGHTS)}
    per_epoch = math.ceil(len(training_set(data[s["data"]])) / settings["batch"])
    config = TrainConfig(
        **settings,
        epochs=math.ceil(updates / per_epoch),  # the schedule spans the run
        data=str(data[s["data"]]),
        img=s["img"],
        autoanchor=s["autoanchor"],
        seed=seed,
        out=str(out / "runs" / f"{step}-{seed}"),
        exist_ok=True,
    )
    started = time.perf_counter()
    trainer = Trainer(config, progress=False)
    done, epoch = 0, 0
    while done < updates:
        trainer.model.train()
        trainer.loader.set_epoch(epoch)
        for images, targets in trainer.loader:
            trainer.train_batch(images, targets)
            done += 1
            if done == updates:
                break
        epoch += 1
    trained = time.perf_counter() - started
    held_out = read_dataset(data["full"], "val")
    sliced = {"tile": s["tile"], "overlap": OVERLAP} if s["tile"] else {}
    metrics = evaluate_model(trainer.model, held_out, s["img"], settings=map_settings(config.conf_thresh), **sliced)
    return {
        "step": step,
        "seed": seed,
        "updates": updates,
        "anchors": [list(a) for a in trainer.model.config.anchors],
        **{k: metrics[k] for k in ("map50", "map", "map_small", "map_medium", "map_large")},
        "train_s": round(trained, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }


def report(out: Path, updates: int) -> str:
    """The table of ``OUT/results.jsonl``'s runs of ``updates`` updates: mean and min-max over
    seeds, per step, in step order."""
    lines = (out / "results.jsonl").read_text().splitlines()
    results = [r for r in map(json.loads, filter(str.strip, lines)) if r["updates"] == updates]
    rows = []
    for step in STEPS:
        runs = [r for r in results if r["step"] == step]
        if not runs:
            continue
        cells = [step, str(len(runs))]
        for key in ("map50", "map", "map_small"):
            values = [r[key] for r in runs]
            cells.append(f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        cells.append(f"{statistics.mean(r['total_s'] for r in runs):.0f}")
        rows.append(cells)
    header = ["step", "seeds", "mAP@0.5", "mAP@[.5:.95]", "mAP small", "s per run"]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--report", action="store_true", help="print the table of the finished runs only")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        full, tiles = write_datasets(out)
        done = out / "results.jsonl"
        finished = [json.loads(line) for line in done.read_text().splitlines()] if done.is_file() else []
        for seed in args.seeds:
            for step in args.steps:
                if any(r["step"] == step and r["seed"] == seed and r["updates"] == args.updates for r in finished):
                    continue
                result = train_once({"full": full, "tiles": tiles}, out, step, args.updates, seed)
                print(json.dumps(result), flush=True)
                with done.open("a") as log:
                    log.write(json.dumps(result) + "\n")
    table = f"{machine_line()}\n\n{report(out, args.updates)}\n"
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
