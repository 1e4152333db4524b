"""The bag of freebies: augmentations that move the boxes with the pixels.

Each is a small function of (image, boxes, rng) returning (image, boxes); images are
(3, H, W) float32 in [0, 1], boxes (M, 5) [class, cx, cy, w, h] in pixels. Geometric ones
clip boxes to what stays visible and drop boxes that end up too small (``boxes.clip_labels``).
``augment_sample`` chains them as one training config switches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from yolov4.boxes import MIN_SIZE, MIN_VISIBLE, affine_labels, clip_labels, intersection, labels_to_xywh, labels_to_xyxy
from yolov4.data.images import resize
from yolov4.letterbox import FILL, letterbox


@dataclass
class AugmentConfig:
    """Which augmentations run, and how strongly (defaults: yolov4.cfg, mosaic off).

    Probabilities are per sample; ``jitter`` is darknet's: each side of the crop moves by up to
    that fraction of the image, which scales and translates at once.
    """

    mosaic: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    flip: float = 0.5
    jitter: float = 0.3
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.5, 2.0)

    def __post_init__(self) -> None:
        for name in ("mosaic", "mixup", "cutmix", "flip", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"AugmentConfig.{name} = {getattr(self, name)!r}: expected a probability in [0, 1]")
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"AugmentConfig.jitter = {self.jitter!r}: expected a number in [0, 0.5)")
        if self.saturation < 1 or self.exposure < 1 or not 0 <= self.hue <= 0.5:
            raise ValueError("AugmentConfig: saturation and exposure must be >= 1 and hue in [0, 0.5]")


# ----------------------------------------------------------------------------- geometry


def crop_resize(
    image: np.ndarray, boxes: np.ndarray, crop: tuple[float, float, float, float], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the rectangle ``crop`` = (x1, y1, x2, y2) (it may reach outside: grey there) and
    resize it to (height, width)."""
    x1, y1, x2, y2 = (int(round(v)) for v in crop)
    _, h, w = image.shape
    patch = np.full((3, y2 - y1, x2 - x1), FILL, dtype=np.float32)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        patch[:, sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[:, sy1:sy2, sx1:sx2]
    out_h, out_w = size
    scale_x, scale_y = out_w / (x2 - x1), out_h / (y2 - y1)
    moved = affine_labels(boxes, scale_x, scale_y, -x1 * scale_x, -y1 * scale_y)
    visible = ((sx1 - x1) * scale_x, (sy1 - y1) * scale_y, (sx2 - x1) * scale_x, (sy2 - y1) * scale_y)
    return resize(patch, size), clip_labels(moved, out_w, out_h, region=visible)


def random_crop(
    image: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    jitter: float = 0.3,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """darknet's jitter: move each side of the crop by up to ``jitter`` x the image size, then
    resize the crop to ``size``: a random scale and translation in one."""
    _, h, w = image.shape
    dw, dh = jitter * w, jitter * h
    left, right = rng.uniform(-dw, dw, 2)
    top, bottom = rng.uniform(-dh, dh, 2)
    return crop_resize(image, boxes, (left, top, w - right, h - bottom), size or (h, w))


def flip_horizontal(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator | None = None, p: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right with probability ``p``."""
    if rng is not None and rng.uniform() >= p:
        return image, boxes
    flipped = boxes.copy()
    flipped[:, 1] = image.shape[2] - boxes[:, 1]
    return np.ascontiguousarray(image[:, :, ::-1]), flipped


# ----------------------------------------------------------------------------- photometric


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(3, ...) RGB in [0, 1] -> (3, ...) HSV with hue in [0, 1)."""
    r, g, b = rgb
    value = rgb.max(axis=0)
    chroma = value - rgb.min(axis=0)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-12), 0)
    safe = np.maximum(chroma, 1e-12)
    hue = np.where(value == r, ((g - b) / safe) % 6, np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.stack([np.where(chroma > 0, hue / 6, 0), saturation, value])


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(3, ...) HSV (hue in [0, 1)) -> (3, ...) RGB."""
    h, s, v = hsv
    sector = (h % 1.0) * 6
    i = np.floor(sector)
    f = sector - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(int) % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.stack([np.choose(i, [c[k] for c in choices]) for k in range(3)])


def draw_hsv(rng: np.random.Generator, hue: float, saturation: float, exposure: float) -> tuple[float, float, float]:
    """darknet's draw: a hue shift in [-hue, hue], saturation and exposure factors in [1/s, s]."""

    def factor(limit: float) -> float:
        value = rng.uniform(1, limit)
        return value if rng.uniform() < 0.5 else 1 / value

    return float(rng.uniform(-hue, hue)), factor(saturation), factor(exposure)


def apply_hsv(image: np.ndarray, shift: float, saturation: float, exposure: float) -> np.ndarray:
    """Shift the hue and scale saturation and value of every pixel."""
    h, s, v = rgb_to_hsv(image)
    hsv = np.stack([(h + shift) % 1.0, np.clip(s * saturation, 0, 1), np.clip(v * exposure, 0, 1)])
    return hsv_to_rgb(hsv).astype(np.float32)


def hsv_jitter(
    image: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    hue: float = 0.1,
    saturation: float = 1.5,
    exposure: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Random hue, saturation and exposure; the boxes do not move."""
    return apply_hsv(image, *draw_hsv(rng, hue, saturation, exposure)), boxes


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) rows of Gaussian weights, renormalized at the borders."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= 3 * sigma)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def gaussian_blur(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float] = (0.5, 2.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Blur with a random sigma: rows then columns, each a product with a banded Gaussian matrix."""
    s = rng.uniform(*sigma)
    _, h, w = image.shape
    return gaussian_matrix(h, s) @ image @ gaussian_matrix(w, s).T, boxes


# ----------------------------------------------------------------------------- several images


def mosaic(
    samples: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Four images in the four corners around a cut point drawn uniformly in [0.2, 0.8] of
    the size; each is scaled to cover its corner and randomly cropped to it."""
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    height, width = size
    cut_x, cut_y = int(rng.uniform(0.2, 0.8) * width), int(rng.uniform(0.2, 0.8) * height)
    regions = [(0, 0, cut_x, cut_y), (cut_x, 0, width, cut_y), (0, cut_y, cut_x, height), (cut_x, cut_y, width, height)]
    canvas = np.full((3, height, width), FILL, dtype=np.float32)
    all_boxes = []
    for (image, boxes), (x1, y1, x2, y2) in zip(samples, regions, strict=True):
        rw, rh = x2 - x1, y2 - y1
        _, h, w = image.shape
        scale = max(rw / w, rh / h)  # cover the region
        crop_w, crop_h = rw / scale, rh / scale  # one of them the whole side, give or take a rounding
        left, top = rng.uniform(0, max(w - crop_w, 0)), rng.uniform(0, max(h - crop_h, 0))
        piece, moved = crop_resize(image, boxes, (left, top, left + crop_w, top + crop_h), (rh, rw))
        canvas[:, y1:y2, x1:x2] = piece
        all_boxes.append(affine_labels(moved, 1, 1, x1, y1))
    return canvas, np.concatenate(all_boxes) if all_boxes else np.zeros((0, 5))


def mixup(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, alpha: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """lam * a + (1 - lam) * b with lam ~ Beta(alpha, alpha) (about 0.5); the boxes of both."""
    (image_a, boxes_a), (image_b, boxes_b) = a, b
    if image_a.shape != image_b.shape:
        raise ValueError(f"mixup needs images of one size, got {image_a.shape} and {image_b.shape}")
    lam = rng.beta(alpha, alpha)
    return (lam * image_a + (1 - lam) * image_b).astype(np.float32), np.concatenate([boxes_a, boxes_b])


def _visible_part(boxes: np.ndarray, hole: tuple[float, float, float, float]) -> np.ndarray:
    """Shrink each box to the bounding box of what a rectangular ``hole`` leaves visible,
    dropping boxes that lose too much."""
    hx1, hy1, hx2, hy2 = hole
    kept = []
    for row in labels_to_xyxy(boxes):
        cls, x1, y1, x2, y2 = row
        covers_x, covers_y = hx1 <= x1 and hx2 >= x2, hy1 <= y1 and hy2 >= y2
        if covers_y and hx1 < x2 and hx2 > x1:  # a vertical band cuts the box
            x1, x2 = (x1, hx1) if hx1 - x1 >= x2 - hx2 else (hx2, x2)
        elif covers_x and hy1 < y2 and hy2 > y1:  # a horizontal band cuts the box
            y1, y2 = (y1, hy1) if hy1 - y1 >= y2 - hy2 else (hy2, y2)
        area = (row[3] - row[1]) * (row[4] - row[2])
        hidden = intersection(row[1:5], np.asarray(hole))
        if x2 - x1 >= MIN_SIZE and y2 - y1 >= MIN_SIZE and area - hidden >= MIN_VISIBLE * area:
            kept.append([cls, x1, y1, x2, y2])
    return labels_to_xywh(np.array(kept, dtype=np.float64).reshape(-1, 5))


def cutmix(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a random rectangle of b (a fraction lam ~ U(0.2, 0.6) of the area) into a: a's
    boxes shrink to their visible part, b's are clipped to the rectangle."""
    (image_a, boxes_a), (image_b, boxes_b) = a, b
    if image_a.shape != image_b.shape:
        raise ValueError(f"cutmix needs images of one size, got {image_a.shape} and {image_b.shape}")
    _, h, w = image_a.shape
    lam = rng.uniform(0.2, 0.6)
    cw, ch = int(w * np.sqrt(lam)), int(h * np.sqrt(lam))
    x1, y1 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image_a.copy()
    image[:, y1 : y1 + ch, x1 : x1 + cw] = image_b[:, y1 : y1 + ch, x1 : x1 + cw]
    hole = (x1, y1, x1 + cw, y1 + ch)
    return image, np.concatenate([_visible_part(boxes_a, hole), clip_labels(boxes_b, w, h, region=hole)])


# ----------------------------------------------------------------------------- the chain


def augment_sample(
    load: Any,
    index: int,
    input_size: tuple[int, int],
    rng: np.random.Generator,
    config: AugmentConfig,
    count: int,
    allow_mixing: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample of ``input_size`` (height, width): mosaic or jitter-crop, then MixUp or CutMix, HSV,
    flip and blur, each as ``config`` switches it. ``load(i)`` returns sample i."""
    if rng.uniform() < config.mosaic:
        picks = [index, *rng.integers(0, count, 3)]
        image, boxes = mosaic([_jittered(load, int(i), input_size, rng, config) for i in picks], rng, input_size)
    else:
        image, boxes = _jittered(load, index, input_size, rng, config)
    if allow_mixing and (config.mixup or config.cutmix):
        roll = rng.uniform()
        if roll < config.mixup + config.cutmix:
            partner = int(rng.integers(0, count))
            other = augment_sample(load, partner, input_size, rng, config, count, allow_mixing=False)
            mix = mixup if roll < config.mixup else cutmix
            image, boxes = mix((image, boxes), other, rng)
    if config.hue or config.saturation > 1 or config.exposure > 1:
        image, boxes = hsv_jitter(image, boxes, rng, config.hue, config.saturation, config.exposure)
    if config.flip:
        image, boxes = flip_horizontal(image, boxes, rng, config.flip)
    if rng.uniform() < config.blur:
        image, boxes = gaussian_blur(image, boxes, rng, config.blur_sigma)
    return image, boxes


def _jittered(
    load: Any, index: int, input_size: tuple[int, int], rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    image, boxes = load(index)
    if config.jitter:
        image, boxes = letterbox(image, boxes, input_size)
        return random_crop(image, boxes, rng, config.jitter, input_size)
    return letterbox(image, boxes, input_size)
