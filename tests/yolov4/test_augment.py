"""Every augmentation moves the boxes with the pixels: objects drawn as solid rectangles of
distinct colours are found where the augmented boxes say (IoU > 0.95 between each box and
the bounding box of its colour's pixels)."""

import numpy as np
import pytest

from yolov4.boxes import iou, labels_to_xyxy
from yolov4.data import augment
from yolov4.data.loader import DetectionLoader
from yolov4.letterbox import letterbox, to_original

COLOURS = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.5, 0.0],
        [0.5, 0.0, 1.0],
        [0.0, 0.5, 0.5],
        [0.6, 0.6, 0.6],
        [0.5, 1.0, 0.5],
        [1.0, 0.6, 0.8],
    ]
)


def scene(rects, size=(320, 320), first_colour=0):
    """A black image with solid rectangles; box class = colour index, so each box names its colour."""
    image = np.zeros((3, *size), dtype=np.float32)
    boxes = []
    for k, (x1, y1, x2, y2) in enumerate(rects):
        colour = first_colour + k
        image[:, y1:y2, x1:x2] = COLOURS[colour][:, None, None]
        boxes.append([colour, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return image, np.array(boxes, dtype=np.float64)


def found(image, colour, tolerance=0.12):
    """Bounding box (x1, y1, x2, y2) of the pixels at least half covered by ``colour``.

    On a black background a pixel resampled at an object's edge is coverage x colour; counting
    pixels with coverage >= 0.5 puts the found edge within half a pixel of the true one.
    """
    colour = np.asarray(colour, np.float32)[:, None, None]
    coverage = (image * colour).sum(axis=0) / float((colour**2).sum())
    residual = np.abs(image - coverage * colour).max(axis=0)
    close = (coverage >= 0.5) & (coverage <= 1.5) & (residual < tolerance)
    if close.sum() < 20:
        return None
    rows, cols = np.nonzero(close)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=float)


def assert_boxes_follow_pixels(image, boxes, colour_of=lambda c: COLOURS[int(c)], min_side=16):
    checked = 0
    for row in labels_to_xyxy(boxes):
        cls, box = row[0], row[1:]
        if min(box[2] - box[0], box[3] - box[1]) < min_side:
            continue
        pixels = found(image, colour_of(cls))
        assert pixels is not None, f"colour {int(cls)}: no pixels where box {box} says"
        overlap = float(iou(box, pixels))
        assert overlap > 0.95, f"colour {int(cls)}: box {np.round(box, 1)} vs pixels {pixels}: IoU {overlap:.3f}"
        checked += 1
    return checked


RECTS_A = [(20, 30, 110, 120), (150, 40, 280, 100), (60, 180, 170, 290), (210, 170, 300, 300)]
RECTS_B = [(30, 20, 120, 90), (180, 120, 300, 200), (40, 200, 140, 300)]


@pytest.mark.parametrize("seed", range(3))
def test_flip_letterbox_and_jitter(seed):
    rng = np.random.default_rng(seed)
    image, boxes = scene(RECTS_A)
    assert assert_boxes_follow_pixels(*augment.flip_horizontal(image, boxes)) == 4
    wide, wide_boxes = scene([(20, 30, 110, 120), (300, 40, 460, 150)], size=(200, 480))
    assert assert_boxes_follow_pixels(*letterbox(wide, wide_boxes, (320, 320))) == 2
    moved, moved_boxes = augment.random_crop(image, boxes, rng, jitter=0.3, size=(256, 256))
    assert moved.shape == (3, 256, 256)
    assert assert_boxes_follow_pixels(moved, moved_boxes) >= 2


def test_letterbox_and_its_inverse_recover_the_original_boxes():
    image, boxes = scene([(20, 30, 110, 120), (300, 40, 460, 150)], size=(200, 480))
    _, moved = letterbox(image, boxes, (320, 320))
    detections = [{"box": list(row[1:]), "score": 1.0, "class_id": int(row[0])} for row in labels_to_xyxy(moved)]
    back = to_original(detections, (200, 480), (320, 320))
    np.testing.assert_allclose([d["box"] for d in back], labels_to_xyxy(boxes)[:, 1:], atol=1e-9)


def test_hsv_changes_colours_not_places():
    image, boxes = scene(RECTS_A)
    image[:, :, :] += 0.05  # hue needs colour: avoid pure black/white saturating out
    np.clip(image, 0, 1, out=image)
    seed = np.random.default_rng(5)
    params = augment.draw_hsv(np.random.default_rng(5), 0.1, 1.5, 1.5)
    out, out_boxes = augment.hsv_jitter(image, boxes, seed, 0.1, 1.5, 1.5)
    np.testing.assert_array_equal(out_boxes, boxes)
    palette = augment.apply_hsv(np.clip(COLOURS[:4] + 0.05, 0, 1).T[:, :, None], *params)[:, :, 0].T
    assert assert_boxes_follow_pixels(out, out_boxes, lambda c: palette[int(c)]) == 4
    assert not np.allclose(out, image)


def test_hsv_round_trip():
    rgb = np.random.default_rng(0).uniform(0, 1, (3, 50))
    np.testing.assert_allclose(augment.hsv_to_rgb(augment.rgb_to_hsv(rgb)), rgb, atol=1e-6)


def test_blur():
    image, boxes = scene(RECTS_A)
    out, out_boxes = augment.gaussian_blur(image, boxes, np.random.default_rng(0), (0.8, 1.0))
    assert assert_boxes_follow_pixels(out, out_boxes, min_side=40) == 4
    assert not np.allclose(out, image)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic(seed):
    samples = [
        scene(RECTS_A[:2], first_colour=0),
        scene(RECTS_A[2:], first_colour=2),
        scene(RECTS_B[:2], first_colour=4),
        scene(RECTS_B[2:], first_colour=6),
    ]
    samples[2] = (samples[2][0], samples[2][1])
    image, boxes = augment.mosaic(samples, np.random.default_rng(seed), (320, 320))
    assert image.shape == (3, 320, 320)
    assert assert_boxes_follow_pixels(image, boxes, min_side=24) >= 1
    assert boxes[:, 0].min() >= 0


def test_mosaic_cut_point_is_in_the_middle_sixty_percent():
    for seed in range(20):
        samples = [(np.full((3, 64, 64), k / 4, np.float32), np.zeros((0, 5))) for k in range(4)]
        image, _ = augment.mosaic(samples, np.random.default_rng(seed), (100, 100))
        cut_x = int(np.argmax(image[0, 0] != image[0, 0, 0]))
        cut_y = int(np.argmax(image[0, :, 0] != image[0, 0, 0]))
        assert 20 <= cut_x <= 80 and 20 <= cut_y <= 80


@pytest.mark.parametrize("seed", [0, 7, 8])
def test_mosaic_where_rounding_makes_a_crop_a_hair_wider_than_its_image(seed):
    """At 416 these seeds cut a corner whose crop, scaled to cover it, comes out 416 + 6e-14
    pixels wide: the crop starts at 0 instead of failing with numpy's 'high - low < 0'."""
    samples = [(np.full((3, 416, 416), k / 4, np.float32), np.zeros((0, 5))) for k in range(4)]
    image, _ = augment.mosaic(samples, np.random.default_rng(seed), (416, 416))
    assert image.shape == (3, 416, 416)


def test_mixup():
    a = scene(RECTS_A[:2], first_colour=0)  # top half
    b = scene([(40, 200, 140, 300), (200, 190, 300, 290)], first_colour=2)  # bottom half
    lam = np.random.default_rng(3).beta(8.0, 8.0)
    image, boxes = augment.mixup(a, b, np.random.default_rng(3))
    assert len(boxes) == 4
    weight = lambda c: lam if c < 2 else 1 - lam  # noqa: E731
    assert assert_boxes_follow_pixels(image, boxes, lambda c: COLOURS[int(c)] * weight(int(c))) == 4


@pytest.mark.parametrize("seed", range(6))
def test_cutmix(seed):
    a = scene(RECTS_A, first_colour=0)
    b = scene(RECTS_B, first_colour=4)
    image, boxes = augment.cutmix(a, b, np.random.default_rng(seed))
    assert assert_boxes_follow_pixels(image, boxes, min_side=12) >= 1
    assert set(boxes[:, 0].astype(int)) <= set(range(7))


def test_dropped_boxes_are_the_ones_cut_away():
    image, boxes = scene([(0, 0, 40, 40), (150, 150, 250, 250)])
    out, kept = augment.crop_resize(image, boxes, (100, 100, 300, 300), (200, 200))
    assert kept[:, 0].tolist() == [1]  # the first box lies outside the crop


def test_augmented_batches_are_reproducible():
    class Dataset:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return scene([RECTS_A[i % 4]], first_colour=i % 4)

    config = augment.AugmentConfig(mosaic=1.0, mixup=0.5, cutmix=0.3, blur=0.3)
    first = DetectionLoader(Dataset(), batch_size=3, input_size=128, augment=config, seed=11)
    second = DetectionLoader(Dataset(), batch_size=3, input_size=128, augment=config, seed=11)
    (x1, b1), (x2, b2) = first.batch(0, 1), second.batch(0, 1)
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    for p, q in zip(b1, b2, strict=True):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(first.batch(1, 1)[0].numpy(), x1.numpy())
    assert x1.shape == (3, 3, 128, 128)


def test_multiscale_sizes_change_every_n_batches():
    class Dataset:
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return scene([RECTS_A[0]])

    loader = DetectionLoader(
        Dataset(), batch_size=1, input_size=128, input_sizes=[96, 128, 160, 192], multiscale_every=5, seed=0
    )
    sizes = [loader.input_size_at(step) for step in range(40)]
    assert all(s in (96, 128, 160, 192) for s in sizes)
    assert all(len(set(sizes[k : k + 5])) == 1 for k in range(0, 40, 5))
    assert len(set(sizes)) > 1
    assert loader.batch(0, 7)[0].shape[-1] == sizes[7]
    with pytest.raises(ValueError, match="multiples of 32"):
        DetectionLoader(Dataset(), input_size=100)


def test_augment_config_is_validated():
    with pytest.raises(ValueError, match=r"AugmentConfig.mosaic = 2: expected a probability"):
        augment.AugmentConfig(mosaic=2)
