"""A picture of every augmentation with its boxes drawn: for the docs and the notebooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from yolov4.data import augment
from yolov4.evaluation.draw import draw_labels, image_format, save_picture
from yolov4.letterbox import letterbox


def gallery_tiles(dataset, seed: int = 0, size: int = 256) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, image, boxes) for the original and each augmentation, on dataset images."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    first = letterbox(*dataset[0], shape)
    second = letterbox(*dataset[1 % len(dataset)], shape)
    four = [letterbox(*dataset[i % len(dataset)], shape) for i in range(4)]
    return [
        ("original", *first),
        ("flip", *augment.flip_horizontal(*first)),
        ("HSV", *augment.hsv_jitter(*first, rng, 0.1, 1.5, 1.5)),
        ("scale + translate (jitter 0.3)", *augment.random_crop(*first, rng, 0.3)),
        ("Gaussian blur", *augment.gaussian_blur(*first, rng, (1.5, 2.5))),
        ("mosaic", *augment.mosaic(four, rng, shape)),
        ("MixUp", *augment.mixup(first, second, rng)),
        ("CutMix", *augment.cutmix(first, second, rng)),
    ]


MIN_TILE = 16  # pixels: smaller tiles show little (and under 5 a mosaic corner gets no pixels at all)


def augment_gallery(path: str | Path, dataset=None, seed: int = 0, size: int = 256, columns: int = 4) -> Path:
    """Write a PNG grid of every augmentation on ``dataset`` (default: built-in images), boxes
    drawn, with tiles ``size`` pixels a side; returns the path."""
    if size < MIN_TILE:
        raise ValueError(f"augment_gallery: the tile size must be at least {MIN_TILE} pixels, got {size}")
    image_format(path)
    if dataset is None:
        from yolov4.data.shapes import shapes_dataset

        dataset = shapes_dataset("train")
    tiles = gallery_tiles(dataset, seed, size)
    rows = -(-len(tiles) // columns)
    margin = 18
    sheet = Image.new("RGB", (columns * size, rows * (size + margin)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (title, image, boxes) in enumerate(tiles):
        x, y = (k % columns) * size, (k // columns) * (size + margin)
        draw.text((x + 4, y + 3), title, fill=(0, 0, 0))
        sheet.paste(draw_labels(image, boxes, getattr(dataset, "class_names", None)), (x, y + margin))
    return save_picture(sheet, path)
