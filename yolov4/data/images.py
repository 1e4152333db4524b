"""Images as the detector sees them: float32 RGB arrays (3, H, W) with values in [0, 1].

Decoding and encoding go through Pillow. A file is read upright: a phone photo stores its
pixels as the sensor saw them and an EXIF orientation tag that says how to turn them, which
every viewer (and Roboflow's labels) applies, so ``read_image`` and ``image_size`` apply it too.
``as_image`` turns what people pass (a path, a Pillow image, an array in either layout, uint8
or float, a Tensor) into the detector's form, by the rule its docstring states. Boxes
everywhere in yolov4.data are (M, 5) float64 arrays [class_id, cx, cy, w, h] in the pixels
of the image they belong to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]; a missing or unreadable file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            return pil_to_array(image)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image, turned upright by its EXIF orientation, as (3, H, W) float32 in [0, 1]."""
    image = ImageOps.exif_transpose(image)
    top = _integer_top(image)
    if top is None:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)
    else:  # Pillow's RGB conversion would clip these to 255: a white image
        gray = np.clip(np.asarray(image, dtype=np.float64) / top, 0, 1).astype(np.float32)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


# EXIF orientations 5 to 8 turn the picture by a quarter: its width and height swap.
QUARTER_TURNS = (5, 6, 7, 8)
EXIF_ORIENTATION = 0x0112


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the image file as it is shown (EXIF orientation applied), from its
    header alone; a missing or unreadable file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error
    return (height, width) if turned else (width, height)


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


# ----------------------------------------------------------------------------- what users pass

# A float image is taken as [0, 1] unless a value lies past these bounds: above 1.5 it is
# plainly on the 0-255 scale; below -0.5 it was normalized (by a mean and std, say). Between
# them, values a little outside [0, 1] (a resampling filter's overshoot) are accepted as they are.
FLOAT_RANGE = (-0.5, 1.5)
CHANNEL_COUNTS = (1, 3, 4)  # gray, RGB, RGBA (alpha dropped)


def as_image(image: Any, name: str = "image") -> np.ndarray:
    """What people pass for an image, as the detector's (3, H, W) float32 in [0, 1].

    - a path (``str`` or ``Path``): the file, read upright (``read_image``);
    - a Pillow image: turned upright by its EXIF orientation, converted to RGB;
    - an array or a minilucid Tensor (a GPU one is copied to the host), in one of two layouts:
      (H, W, C) as Pillow, OpenCV (after its BGR -> RGB) and matplotlib give it, or (C, H, W)
      as this project uses it, with C = 1 (gray), 3 (RGB) or 4 (RGBA, alpha dropped); or
      (H, W) gray. The layout is read from where a channel count stands: first means (C, H, W),
      last means (H, W, C), and an image that has one in both places (3 pixels wide, say) is
      read as (C, H, W).
    - values by dtype: uint8 and other integers are 0-255 and divided by 255 (uint16 by
      65535); bool is 0 or 1; floats must be in [0, 1]: one past ``FLOAT_RANGE`` is a
      ValueError that names the values found and the fix.

    ``name`` ("image 2", say) starts every error message.
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return pil_to_array(image)
    array = _host_array(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(
            f"{name}: expected an image (H, W, 3) or (3, H, W), a path or a Pillow image, got shape {array.shape}"
        )
    if array.shape[0] not in CHANNEL_COUNTS:
        if array.shape[-1] not in CHANNEL_COUNTS:
            raise ValueError(
                f"{name}: expected (H, W, C) or (C, H, W) with C = 1, 3 or 4 channels, got shape {array.shape}"
            )
        array = array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    if 0 in array.shape:
        raise ValueError(f"{name}: an image needs at least one pixel, got shape {array.shape}")
    array = unit_scale(array, name)
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return np.ascontiguousarray(array[:3])


def _host_array(image: Any) -> np.ndarray:
    """The array of an array-like or a minilucid Tensor, on the host."""
    from minilucid import backend
    from minilucid.tensor import Tensor

    data = image.data if isinstance(image, Tensor) else image
    return backend.as_numpy(data) if backend.is_gpu_array(data) else np.asarray(data)


def unit_scale(array: Any, name: str = "image") -> Any:
    """Image values as float32 in [0, 1] by the rule of ``as_image``: integers are 0-255
    (uint16 0-65535), bool 0 or 1, and floats are checked against ``FLOAT_RANGE``. Works on
    NumPy and CuPy arrays alike; a GPU array's float values are not read (that would stop the
    GPU to wait for them), so on the GPU the range check is the caller's."""
    from minilucid import backend

    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float32)
    if kind in "ui":
        top = 65535 if array.dtype == np.uint16 else 255
        if not backend.is_gpu_array(array) and array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > top:
                raise ValueError(
                    f"{name}: integer values from {low} to {high}; expected 0-{top} ({array.dtype} pixels)"
                )
        return array.astype(np.float32) / np.float32(top)
    if kind != "f":
        raise ValueError(f"{name}: expected numbers for pixels, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not backend.is_gpu_array(array) and array.size:
        low, high = float(array.min()), float(array.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{name}: has NaN or infinite values")
        if high > FLOAT_RANGE[1]:
            raise ValueError(
                f"{name}: float values up to {high:g}, on the 0-255 scale; expected floats in [0, 1]: "
                "divide by 255, or pass the uint8 array as it is"
            )
        if low < FLOAT_RANGE[0]:
            raise ValueError(
                f"{name}: float values down to {low:g}; expected floats in [0, 1], not normalized "
                "(undo the mean and std, or pass the uint8 image)"
            )
    return array
