"""Letterbox geometry: how an image of one size sits inside a network input of another.

The image is scaled by one factor to fit, rounded to whole pixels, and centred with
padding; ``letterbox_geometry`` returns that placement so the forward map (data loading)
and the inverse (detections back to the original image) use the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


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
