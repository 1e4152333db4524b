"""Boxes drawn on images in class colours: detections labelled with name and score, and
label rows (ground truth, augmentations) with their class name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from minilucid.serialization import write_atomically
from yolov4.boxes import labels_to_xyxy
from yolov4.data.images import to_pil

PALETTE = [(255, 64, 64), (64, 220, 64), (80, 120, 255), (255, 200, 0), (255, 0, 255), (0, 220, 220)]


def draw_detections(
    image: np.ndarray | Image.Image,
    detections: list[dict[str, Any]],
    class_names: list[str] | None = None,
    width: int = 2,
) -> Image.Image:
    """A copy of ``image`` ((3, H, W) array or Pillow image) with each detection drawn."""
    picture = image.copy() if isinstance(image, Image.Image) else to_pil(image)
    draw = ImageDraw.Draw(picture)
    for d in detections:
        colour = PALETTE[d["class_id"] % len(PALETTE)]
        x1, y1, x2, y2 = d["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        name = class_names[d["class_id"]] if class_names else str(d["class_id"])
        label = f"{name} {d['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label)
        height = bottom - top + 2
        y = y1 - height if y1 >= height else y1  # above the box, or inside it at the image's top edge
        draw.rectangle([x1, y, x1 + right - left + 4, y + height], fill=colour)
        draw.text((x1 + 2, y), label, fill=(0, 0, 0))
    return picture


def draw_labels(image: np.ndarray, boxes: np.ndarray, names: list[str] | None = None) -> Image.Image:
    """A Pillow image of a (3, H, W) array with each (M, 5) label row [class, cx, cy, w, h]
    outlined in its class colour (and named)."""
    picture = to_pil(image)
    draw = ImageDraw.Draw(picture)
    for cls, x1, y1, x2, y2 in labels_to_xyxy(boxes):
        colour = PALETTE[int(cls) % len(PALETTE)]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        if names:
            draw.text((x1 + 2, y1 + 1), names[int(cls)], fill=colour)
    return picture


def save_grid(pictures: list[Image.Image], path: str | Path, columns: int = 3) -> Path:
    """Tile Pillow images (of one size) into one PNG."""
    w, h = pictures[0].size
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for k, picture in enumerate(pictures):
        sheet.paste(picture, ((k % columns) * w, (k // columns) * h))
    return save_picture(sheet, path)


def image_format(path: str | Path) -> str:
    """The Pillow format that writes ``path``, by its suffix (PNG for .png, JPEG for .jpg, ...);
    a one-line ValueError for a suffix that no format writes."""
    suffix = Path(path).suffix.lower()
    kind = Image.registered_extensions().get(suffix)
    if kind not in Image.SAVE:
        raise ValueError(
            f"{path}: {f'{suffix} is not an image type' if suffix else 'no suffix'}; name a .png or .jpg file"
        )
    return kind


def save_picture(picture: Image.Image, path: str | Path) -> Path:
    """Write a Pillow image to ``path`` atomically, in the format its suffix names."""
    path = Path(path)
    kind = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: picture.save(file, format=kind))
    return path
