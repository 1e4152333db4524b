"""The built-in dataset: scenes of shapes drawn with Pillow, generated from a seed.

Three classes (circle, square, triangle) in random colours, two to six per image, with
sizes from 12 to 110 pixels in a 256x256 image so every stride gets work (small objects
for stride 8, large for stride 32). Shapes may hide up to a third of earlier ones, and the
background is cluttered with unlabelled lines, dots and rings, so the detector must learn
shapes rather than "anything coloured". A box is the shape's full extent, as annotators
label partly hidden objects.

Why shapes rather than the handwritten digits bundled with scikit-learn: those are 8x8
pixels, so scaled up they are blocky and all of one size class, and they would add
scikit-learn as a dependency; drawn shapes are exact, any size, and need only Pillow.

The dataset is written once to a cache folder in YOLO txt format and then read with the
same reader users use (``read_yolo``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from yolov4.boxes import intersection, xyxy_to_xywh
from yolov4.data.dataset import DetectionDataset
from yolov4.data.yolo import read_yolo, write_yolo

CLASS_NAMES = ["circle", "square", "triangle"]
VERSION = 1  # bump when the generator changes, so old caches are not reused


def cache_root() -> Path:
    """Where generated datasets live: $YOLOV4_CACHE, else ~/.cache/yolov4."""
    return Path(os.environ.get("YOLOV4_CACHE", Path.home() / ".cache" / "yolov4"))


def _overlap_fraction(box: np.ndarray, others: list[np.ndarray]) -> float:
    """The largest fraction of ``box`` (x1, y1, x2, y2), or of any of ``others``, that the
    two cover in common."""
    worst = 0.0
    for other in others:
        common = intersection(box, other)
        if common > 0:
            worst = max(worst, common / _area(box), common / _area(other))
    return worst


def _area(box: np.ndarray) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _background(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(6, 14)):  # unlabelled clutter
        colour = tuple(int(v) for v in rng.integers(40, 200, 3))
        kind = rng.integers(3)
        x, y = rng.integers(0, size, 2)
        if kind == 0:
            x2, y2 = rng.integers(0, size, 2)
            draw.line([int(x), int(y), int(x2), int(y2)], fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            r = int(rng.integers(1, 4))
            draw.ellipse([int(x) - r, int(y) - r, int(x) + r, int(y) + r], fill=colour)
        else:
            r = int(rng.integers(6, 20))
            draw.ellipse([int(x) - r, int(y) - r, int(x) + r, int(y) + r], outline=colour, width=2)


def _shape(draw: ImageDraw.ImageDraw, cls: int, box: np.ndarray, colour: tuple, outline: tuple) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    if cls == 0:
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=colour, outline=outline, width=2)
    elif cls == 1:
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=colour, outline=outline, width=2)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=colour, outline=outline)


def draw_scene(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (image (3, size, size) in [0, 1], boxes (M, 5) [class, cx, cy, w, h])."""
    base = rng.uniform(0.25, 0.75, 3)
    gradient = np.linspace(-0.15, 0.15, size)[None, :, None] * rng.choice([-1, 1], 3)
    noise = rng.normal(0, 0.04, (size, size, 3))
    pixels = np.clip(base + gradient + noise, 0, 1)
    canvas = Image.fromarray((pixels * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    _background(draw, rng, size)
    placed: list[np.ndarray] = []
    labels = []
    for _ in range(rng.integers(2, 7)):
        for _attempt in range(20):
            side = float(np.exp(rng.uniform(np.log(12), np.log(110))))
            aspect = rng.uniform(0.8, 1.25)
            w, h = min(side * aspect, size - 2), min(side / aspect, size - 2)
            x1, y1 = rng.uniform(1, size - 1 - w), rng.uniform(1, size - 1 - h)
            box = np.round([x1, y1, x1 + w, y1 + h])
            if _overlap_fraction(box, placed) <= 1 / 3:
                break
        else:
            continue
        cls = int(rng.integers(len(CLASS_NAMES)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        outline = tuple(int(v * 0.5) for v in colour)
        _shape(draw, cls, box, colour, outline)
        placed.append(box)
        labels.append([cls, *xyxy_to_xywh(box)])
    image = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return image, np.array(labels, dtype=np.float64).reshape(-1, 5)


def ensure_shapes(
    root: str | Path | None = None, seed: int = 0, train: int = 240, val: int = 60, size: int = 256
) -> Path:
    """Generate the dataset once (atomically, as a whole folder) and return its root."""
    root = Path(root) if root is not None else cache_root() / f"shapes-v{VERSION}-seed{seed}-{train}-{val}-{size}"
    if (root / "data.yaml").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-"))
    try:
        rng = np.random.default_rng(seed)
        for split, count in (("train", train), ("val", val)):
            scenes = (draw_scene(rng, size) for _ in range(count))
            write_yolo(
                ((f"{i:05d}.png", image, boxes) for i, (image, boxes) in enumerate(scenes)), staging, CLASS_NAMES, split
            )
        try:
            staging.rename(root)  # another process may have won the race: then use its copy
        except OSError:
            if not (root / "data.yaml").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def shapes_dataset(
    split: str = "train",
    root: str | Path | None = None,
    seed: int = 0,
    train: int = 240,
    val: int = 60,
    size: int = 256,
) -> DetectionDataset:
    """The built-in dataset's ``split`` ("train" or "val"), generated on first use."""
    if split not in ("train", "val"):
        raise ValueError(f"shapes_dataset: split must be 'train' or 'val', got {split!r}")
    return read_yolo(ensure_shapes(root, seed, train, val, size), split)
