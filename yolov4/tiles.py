"""Tiles: a large image cut into overlapping squares, to train on small objects and to find
them again (sliced prediction).

One grid serves both (``tile_windows``): along each axis, tiles of ``size`` pixels start at 0
and end at the image's edge, evenly spaced and at most ``size * (1 - overlap)`` apart (one
pixel more where rounding says so); an axis no longer than a tile gets one tile as long as
the axis.

Training data (``cut_tile``, ``write_tiles``). A tile keeps each box of which at least
``min_visible`` of the area lies inside it, clipped to the tile. Any other box that the tile
shows part of is cut off, and the choice is the user's (``cut``):

- ``"grey"`` (default): the box is dropped and its visible part painted grey (pixels inside a
  kept box stay), so the tile holds no object without a label to be penalized for finding;
- ``"keep"``: the box is kept clipped, however little of it shows.

Either way a clipped box narrower or lower than ``yolov4.boxes.MIN_SIZE`` pixels is cut off.
The train/val split is made on whole images before any image is cut, so the tiles of one
image are all on one side of it.

Sliced prediction (``detect_tiled``). The model runs over every tile and over the whole image
scaled to the input (objects too large for a tile), each at ``input_size``. A tile's
detections move to the image's pixels; one that reaches within ``EDGE_MARGIN`` pixels of an
edge of its tile that lies inside the image is dropped, since the object is cut there: the
overlap shows it whole in a neighbouring tile (an object no larger than the overlap) or the
whole image shows it (a larger one). The rest are merged by the same NMS that ran on each
tile (``NMSSettings.keep``: its kind, else the model's ``config.nms_kind``), so an object
seen by two tiles and the whole image is reported once.

Boxes are label rows (M, 5) [class_id, cx, cy, w, h] in pixels; windows (x1, y1, x2, y2) in
the image's pixels, x2 and y2 exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolov4.boxes import MIN_SIZE, VIEWING, NMSSettings, labels_to_xywh, labels_to_xyxy
from yolov4.data.dataset import DetectionDataset
from yolov4.data.formats import has_split, read_dataset
from yolov4.data.images import as_image, read_image
from yolov4.data.splits import read_splits
from yolov4.data.yolo import write_yolo
from yolov4.inference import detect_images
from yolov4.letterbox import FILL

CUT_MODES = ("grey", "keep")
MIN_VISIBLE = 0.5  # a tile keeps a box with at least this share of its area inside
EDGE_MARGIN = 2.0  # pixels: a tile's detection this close to an inner edge of the tile is cut there


def check_tiling(size: int, overlap: float, where: str = "tiles") -> None:
    """A one-line ValueError unless ``size`` is a positive whole number of pixels and
    ``overlap`` a fraction in [0, 1)."""
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{where}: the tile size must be a positive number of pixels, got {size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"{where}: the overlap must be a fraction in [0, 1), got {overlap}")


def tile_origins(length: int, size: int, overlap: float) -> list[int]:
    """Where tiles start along an axis of ``length`` pixels: the first at 0, the last at
    ``length - size``, evenly spaced at most ``size * (1 - overlap)`` apart; [0] when the
    axis is no longer than a tile."""
    check_tiling(size, overlap)
    if length <= size:
        return [0]
    count = math.ceil((length - size) / (size * (1 - overlap))) + 1
    return [int(round(v)) for v in np.linspace(0, length - size, count)]


def tile_windows(height: int, width: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """The tiles of a (height, width) image as windows (x1, y1, x2, y2), row by row."""
    return [
        (x, y, min(x + size, width), min(y + size, height))
        for y in tile_origins(height, size, overlap)
        for x in tile_origins(width, size, overlap)
    ]


# ----------------------------------------------------------------------------- training tiles


def tile_labels(
    boxes: np.ndarray, window: tuple[int, int, int, int], min_visible: float = MIN_VISIBLE, cut: str = "grey"
) -> tuple[np.ndarray, np.ndarray]:
    """(kept (M, 5) label rows in the tile's pixels, clipped; cut-off (K, 4) xyxy rectangles of
    the boxes the tile shows part of but does not keep, in the tile's pixels), by the rule of
    the module's docstring."""
    if cut not in CUT_MODES:
        raise ValueError(f"tiles: cut must be one of {CUT_MODES}, got {cut!r}")
    if not 0 < min_visible <= 1:
        raise ValueError(f"tiles: min_visible must be a fraction in (0, 1], got {min_visible}")
    x1, y1, x2, y2 = window
    corners = labels_to_xyxy(np.asarray(boxes, dtype=np.float64).reshape(-1, 5))
    area = (corners[:, 3] - corners[:, 1]) * (corners[:, 4] - corners[:, 2])
    clipped = corners.copy()
    clipped[:, [1, 3]] = np.clip(corners[:, [1, 3]], x1, x2) - x1
    clipped[:, [2, 4]] = np.clip(corners[:, [2, 4]], y1, y2) - y1
    w, h = clipped[:, 3] - clipped[:, 1], clipped[:, 4] - clipped[:, 2]
    shown = (w > 0) & (h > 0)
    big_enough = (w >= MIN_SIZE) & (h >= MIN_SIZE)
    kept = big_enough & ((w * h >= min_visible * area) if cut == "grey" else shown)
    return labels_to_xywh(clipped[kept]), clipped[shown & ~kept, 1:5]


def cut_tile(
    image: np.ndarray,
    boxes: np.ndarray,
    window: tuple[int, int, int, int],
    min_visible: float = MIN_VISIBLE,
    cut: str = "grey",
) -> tuple[np.ndarray, np.ndarray]:
    """(tile (3, h, w), its (M, 5) boxes) of a (3, H, W) image at ``window``: the cut-off boxes'
    pixels painted grey, except those inside a kept box."""
    x1, y1, x2, y2 = window
    tile = image[:, y1:y2, x1:x2].copy()
    kept, dropped = tile_labels(boxes, window, min_visible, cut)
    if len(dropped):
        grey = _cover(dropped, tile.shape[1:]) & ~_cover(labels_to_xyxy(kept)[:, 1:5], tile.shape[1:])
        tile[:, grey] = FILL
    return tile, kept


def _cover(rectangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) mask of the pixels that (K, 4) xyxy rectangles touch, by more than a thousandth of
    a pixel (label files round coordinates: 230 comes back as 229.999998)."""
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in rectangles:
        top, bottom = math.floor(y1 + 1e-3), math.ceil(y2 - 1e-3)
        mask[top:bottom, math.floor(x1 + 1e-3) : math.ceil(x2 - 1e-3)] = True
    return mask


def image_tiles(
    dataset: DetectionDataset, size: int, overlap: float, min_visible: float = MIN_VISIBLE, cut: str = "grey"
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(file name, tile, boxes) of every tile of every image of ``dataset``, an image at a time;
    a tile is named ``<image stem>_x<x1>_y<y1>.png`` (the stem numbered where stems repeat)."""
    stems: set[str] = set()
    for path, boxes in dataset.items:
        stem, number = Path(path).stem, 2
        while stem in stems:
            stem, number = f"{Path(path).stem}_{number}", number + 1
        stems.add(stem)
        image = read_image(path)
        for window in tile_windows(*image.shape[1:], size, overlap):
            tile, kept = cut_tile(image, boxes, window, min_visible, cut)
            yield f"{stem}_x{window[0]}_y{window[1]}.png", tile, kept


def write_tiles(
    data: str | Path,
    out: str | Path,
    size: int,
    overlap: float = 0.2,
    min_visible: float = MIN_VISIBLE,
    cut: str = "grey",
    val: str | Path | None = None,
    val_fraction: float = 0.1,
) -> dict[str, tuple[int, int, int]]:
    """Cut every image of the dataset at ``data`` (YOLO, COCO or VOC) into tiles and write them
    as a YOLO dataset at ``out`` (a new folder), split as training would split the images
    (``yolov4.data.splits.read_splits``: the dataset's own val split, ``val``, or a seeded
    ``val_fraction`` of the images held out), plus its test split where it has one. Returns
    {split: (images, tiles, boxes)}."""
    check_tiling(size, overlap, "tile")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"tile: --out {out} exists and is not an empty folder; name a new one")
    train, held = read_splits(data, val, val_fraction)
    splits = {"train": train, "val": held}
    if val is None and has_split(data, "val") and has_split(data, "test"):  # else test is the val split
        splits["test"] = read_dataset(data, "test", class_names=train.class_names)
    counts = {}
    for name, dataset in splits.items():
        tally = [0, 0]  # tiles, boxes
        write_yolo(_counted(image_tiles(dataset, size, overlap, min_visible, cut), tally), out, train.class_names, name)
        counts[name] = (len(dataset), *tally)
    return counts


def _counted(samples: Iterator[tuple[str, np.ndarray, np.ndarray]], tally: list[int]) -> Iterator:
    """The samples as they pass, adding each to ``tally`` = [samples, boxes]."""
    for sample in samples:
        tally[0], tally[1] = tally[0] + 1, tally[1] + len(sample[2])
        yield sample


# ----------------------------------------------------------------------------- sliced prediction


def detect_tiled(
    model: Any,
    images: Sequence[Any],
    input_size: int | tuple[int, int],
    tile: int,
    overlap: float = 0.2,
    settings: NMSSettings = VIEWING,
    batch_size: int = 8,
    letterbox: bool = True,
    whole: bool = True,
) -> list[list[dict[str, Any]]]:
    """``yolov4.inference.detect_images``, sliced: per image, the detections of its ``tile``-pixel
    tiles (``overlap`` apart, as ``tile_windows`` places them) and, with ``whole``, of the whole
    image, each run at ``input_size``, in the image's pixels, cut ones dropped and the rest
    merged by the NMS of ``settings`` (the module's docstring); best first, at most
    ``settings.max_det``."""
    check_tiling(tile, overlap, "detect_tiled")
    if not isinstance(images, (list, tuple)):
        raise ValueError(f"detect_tiled: expected a list of images, got {type(images).__name__} (pass [image])")
    found = []
    for index, image in enumerate(images):
        image = as_image(image, f"detect_tiled: image {index}")
        height, width = image.shape[1:]
        windows: list[tuple[int, int, int, int] | None] = list(tile_windows(height, width, tile, overlap))
        if whole and windows != [(0, 0, width, height)]:
            windows.append(None)  # the whole image, after its tiles
        crops = [image if w is None else image[:, w[1] : w[3], w[0] : w[2]] for w in windows]
        detected = detect_images(model, crops, input_size, settings, batch_size, letterbox)
        rows = [
            [d["class_id"], d["score"], *box]
            for window, detections in zip(windows, detected, strict=True)
            for d in detections
            if not _cut((box := _shifted(d["box"], window)), window, height, width)
        ]
        rows = np.array(rows, dtype=np.float64).reshape(-1, 6)
        keep = settings.keep(rows[:, 2:], rows[:, 1], rows[:, 0], model.config)
        found.append(
            [
                {"box": [float(v) for v in rows[k, 2:]], "score": float(rows[k, 1]), "class_id": int(rows[k, 0])}
                for k in keep
            ]
        )
    return found


def _shifted(box: list[float], window: tuple[int, int, int, int] | None) -> list[float]:
    """A tile's xyxy box in the image's pixels."""
    if window is None:
        return list(box)
    x, y = window[0], window[1]
    return [box[0] + x, box[1] + y, box[2] + x, box[3] + y]


def _cut(box: list[float], window: tuple[int, int, int, int] | None, height: int, width: int) -> bool:
    """Whether a detection (image pixels) reaches an edge of its tile that lies inside the image."""
    if window is None:
        return False
    x1, y1, x2, y2 = window
    return (
        (x1 > 0 and box[0] <= x1 + EDGE_MARGIN)
        or (y1 > 0 and box[1] <= y1 + EDGE_MARGIN)
        or (x2 < width and box[2] >= x2 - EDGE_MARGIN)
        or (y2 < height and box[3] >= y2 - EDGE_MARGIN)
    )
