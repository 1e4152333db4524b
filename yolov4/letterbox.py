"""Letterbox: an image of any size placed in the network's input, and detections brought back.

The image is scaled by one factor to fit, rounded to whole pixels, and centred with grey
padding. ``letterbox_geometry`` computes that placement once, so the forward map
(``letterbox``, for training and inference alike) and its inverse (``to_original``,
detections back to the original image's pixels) use the very same numbers.

Sizes are (height, width); images (3, H, W) float32 in [0, 1]; boxes (M, 5) label rows
[class_id, cx, cy, w, h] in pixels (``yolov4.boxes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov4.boxes import affine_labels
from yolov4.data.images import resize

FILL = 0.5  # grey, darknet's padding value


@dataclass(frozen=True)
class Placement:
    """x_input = x_original * scale_x + pad_x (and likewise for y)."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    new_width: int
    new_height: int


def letterbox_geometry(
    original_size: tuple[int, int], input_size: tuple[int, int], letterbox: bool = True
) -> Placement:
    """Placement of an (h, w) image in an (H, W) input: letterboxed, or stretched to fill it."""
    (h0, w0), (h, w) = original_size, input_size
    if not letterbox:
        return Placement(w / w0, h / h0, 0, 0, w, h)
    scale = min(w / w0, h / h0)
    new_w, new_h = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    return Placement(new_w / w0, new_h / h0, (w - new_w) // 2, (h - new_h) // 2, new_w, new_h)


def letterbox_image(image: np.ndarray, input_size: tuple[int, int], letterbox: bool = True) -> np.ndarray:
    """A (3, H, W) image scaled to fit ``input_size`` keeping its aspect ratio, centred, padded
    grey; with ``letterbox=False``, stretched to fill it, as darknet's ``detector test`` does."""
    return _paste(image, letterbox_geometry(image.shape[1:], input_size, letterbox), input_size)


def letterbox(image: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``letterbox_image``, with the image's (M, 5) boxes moved along."""
    place = letterbox_geometry(image.shape[1:], input_size)
    moved = affine_labels(boxes, place.scale_x, place.scale_y, place.pad_x, place.pad_y)
    return _paste(image, place, input_size), moved


def _paste(image: np.ndarray, place: Placement, input_size: tuple[int, int]) -> np.ndarray:
    """The image resized as ``place`` says, on a grey (3, *input_size) canvas."""
    canvas = np.full((3, *input_size), FILL, dtype=np.float32)
    canvas[:, place.pad_y : place.pad_y + place.new_height, place.pad_x : place.pad_x + place.new_width] = resize(
        image, (place.new_height, place.new_width)
    )
    return canvas


def to_original(
    detections: list[dict[str, Any]],
    original_size: tuple[int, int],
    input_size: tuple[int, int],
    letterbox: bool = True,
) -> list[dict[str, Any]]:
    """Map detections from the network's input frame back to the original image, clipped to it.

    With ``letterbox`` the image was scaled by one factor and centred with padding
    (``letterbox``); otherwise it was stretched to the input size.
    """
    place = letterbox_geometry(original_size, input_size, letterbox)
    h0, w0 = original_size
    mapped = []
    for d in detections:
        x1, y1, x2, y2 = d["box"]
        box = [
            (x1 - place.pad_x) / place.scale_x,
            (y1 - place.pad_y) / place.scale_y,
            (x2 - place.pad_x) / place.scale_x,
            (y2 - place.pad_y) / place.scale_y,
        ]
        box = [min(max(v, 0.0), limit) for v, limit in zip(box, (w0, h0, w0, h0), strict=True)]
        mapped.append({**d, "box": box})
    return mapped
