"""``python -m yolov4 demo``: train a small detector on the built-in dataset, measure it on
the held-out split, and draw its detections. Sized for a 2-core CPU: a few minutes."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

from minilucid.serialization import write_text_atomically
from yolov4.data.shapes import shapes_dataset
from yolov4.evaluation.draw import draw_detections, save_grid
from yolov4.evaluation.evaluate import evaluate_model
from yolov4.inference import detect_images
from yolov4.training.settings import TrainConfig, read_settings
from yolov4.training.trainer import Trainer

# The demo's settings live in a config file inside the package, so that
# ``python -m yolov4 train --config <DEMO_CONFIG>`` is the demo's run; why each was chosen is
# written beside it there.
DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"
DEMO = read_settings(DEMO_CONFIG)


def score_and_draw(model, class_names: list[str], input_size: int, out: Path) -> dict:
    """The held-out metrics (and their plots), six held-out images drawn, metrics.json."""
    val = shapes_dataset("val")
    metrics = evaluate_model(model, val, input_size, plots=out)
    images = [val[index][0] for index in range(min(6, len(val)))]
    found = detect_images(model, images, input_size)
    pictures = [
        draw_detections(image, detections, class_names) for image, detections in zip(images, found, strict=True)
    ]
    save_grid(pictures, out / "detections.png")
    keys = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "per_class")
    write_text_atomically(out / "metrics.json", json.dumps({k: metrics[k] for k in keys}, indent=2))
    return metrics


def run_demo(out: str | Path = "runs/demo", device: str | None = None, epochs: int | None = None) -> dict:
    """Train, evaluate and draw; prints where everything went and returns the metrics. ``device``
    and ``epochs`` replace the demo's settings where given."""
    out = Path(out)
    start = time.perf_counter()
    given = {k: v for k, v in {"device": device, "epochs": epochs}.items() if v is not None}
    settings = {**DEMO, "out": str(out), **given}
    config = TrainConfig(**settings)
    print(f"demo: training the {config.model} YOLOv4 on the built-in shapes dataset ({config.device})")
    trainer = Trainer(config)
    out = trainer.out  # runs/demo2, ... where runs/demo exists
    trainer.fit()
    # Scored and drawn with the weights the run is scored with: the EMA's where it keeps one.
    averaged = trainer.ema.applied(trainer.model) if trainer.ema else nullcontext(trainer.model)
    with averaged as model:
        metrics = score_and_draw(model.eval(), trainer.class_names, config.img, out)
    minutes = (time.perf_counter() - start) / 60
    print(f"held-out mAP@0.5 {metrics['map50']:.3f}, mAP@[.5:.95] {metrics['map']:.3f} after {minutes:.1f} minutes")
    print(f"detections on held-out images: {out / 'detections.png'}")
    print(
        f"metrics: {out / 'metrics.json'}; curves: {out / 'curves.png'}; PR curve and confusion matrix: "
        f"{out / 'pr_curve.png'}, {out / 'confusion_matrix.png'}; checkpoint: {out / 'last.npz'}"
    )
    return metrics
