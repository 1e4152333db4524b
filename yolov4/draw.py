"""Detections drawn on images: boxes in class colours, labelled with name and score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from minilucid.serialization import write_atomically
from yolov4.data.gallery import PALETTE
from yolov4.data.images import to_pil


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


def save_grid(pictures: list[Image.Image], path: str | Path, columns: int = 3) -> Path:
    """Tile Pillow images (of one size) into one PNG."""
    w, h = pictures[0].size
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for k, picture in enumerate(pictures):
        sheet.paste(picture, ((k % columns) * w, (k // columns) * h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    write_atomically(path, lambda file: sheet.save(file, format=kind))
    return path
