"""Images as the detector sees them: float32 RGB arrays (3, H, W) with values in [0, 1].

Decoding and encoding go through Pillow. Boxes everywhere in yolov4.data are (M, 5) float64
arrays [class_id, cx, cy, w, h] in the pixels of the image they belong to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]; a missing or unreadable file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            top = _integer_top(image)
            if top is None:
                rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)
            else:  # Pillow's RGB conversion would clip these to 255: a white image
                gray = np.clip(np.asarray(image, dtype=np.float64) / top, 0, 1).astype(np.float32)
                rgb = np.repeat(gray[:, :, None], 3, axis=2)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _integer_top(image: Image.Image) -> int | None:
    """The largest value of the format's integer range for a deeper-than-8-bit (single
    channel) image: 16-bit PNG and TIFF, TIFF's other depths from its BitsPerSample tag;
    None for the modes Pillow converts to RGB itself (8-bit, palette, 1-bit)."""
    if image.mode.startswith("I;16"):
        return 2**16 - 1
    if image.mode != "I":
        return None
    bits = getattr(image, "tag_v2", {}).get(258)  # TIFF BitsPerSample, per channel
    bits = bits[0] if isinstance(bits, tuple) else bits
    if bits is None:
        bits = 16 if image.format == "PNG" else 32  # PNG samples are at most 16 bits
    return 2 ** min(int(bits), 31) - 1  # mode "I" is int32


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Save a (3, H, W) [0, 1] image (PNG, JPEG, ... from the suffix)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(path)


def to_pil(image: np.ndarray) -> Image.Image:
    """A (3, H, W) [0, 1] array as an 8-bit Pillow image."""
    pixels = np.clip(np.asarray(image).transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (3, H, W) image to (height, width), channel by channel."""
    height, width = size
    if image.shape[1:] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(channel, "F").resize((width, height), Image.Resampling.BILINEAR))
        for channel in image.astype(np.float32)
    ]
    return np.stack(channels)
