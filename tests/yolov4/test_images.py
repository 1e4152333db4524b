"""Images as users have them: phone photos read upright (EXIF orientation), and the rule by
which ``as_image`` reads arrays, Pillow images and Tensors."""

import numpy as np
import pytest
from PIL import Image

import minilucid as lucid
from yolov4.data.formats import read_dataset
from yolov4.data.images import EXIF_ORIENTATION, as_image, image_size, read_image
from yolov4.data.yolo import write_yolo

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (a dev extra) ships the test photographs")


def phone_photo(upright: np.ndarray, path, orientation: int = 6) -> None:
    """Save ``upright`` (H, W, 3) uint8 as a phone does: the sensor's pixels, turned a quarter
    to the left, and an EXIF tag saying to turn them a quarter to the right to show them."""
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # (W, H, 3)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif)


def test_a_phone_photo_is_read_upright(tmp_path):
    cat = skimage_data.chelsea()  # (300, 451, 3): wider than high
    phone_photo(cat, tmp_path / "cat.jpg")
    with Image.open(tmp_path / "cat.jpg") as stored:
        assert stored.size == (300, 451)  # as stored: higher than wide
    assert image_size(tmp_path / "cat.jpg") == (451, 300)  # (width, height) as shown
    image = read_image(tmp_path / "cat.jpg")
    assert image.shape == (3, 300, 451)
    assert np.abs(image - cat.transpose(2, 0, 1) / 255).mean() < 0.02  # the same picture, up to JPEG
    with Image.open(tmp_path / "cat.jpg") as opened:  # a Pillow image the user opened is turned too
        np.testing.assert_array_equal(as_image(opened), image)


def test_labels_of_a_phone_photo_sit_on_its_upright_pixels(tmp_path):
    """Roboflow labels a phone photo as it is shown. A box in its top-right corner, upright,
    is outside the stored (turned) picture's bounds: reading it as stored would misplace it."""
    upright = np.zeros((80, 120, 3), np.uint8)
    upright[5:25, 90:115] = 255  # a white box, top right
    phone_photo(upright, tmp_path / "p.jpg")
    box = np.array([[0, 102.5, 15, 25, 20]])  # [class, cx, cy, w, h] in upright pixels
    write_yolo([("p.jpg", upright.transpose(2, 0, 1) / 255, box)], tmp_path / "data", ["thing"], "train")
    phone_photo(upright, tmp_path / "data" / "images" / "train" / "p.jpg")  # the export's file is the phone's
    dataset = read_dataset(tmp_path / "data", "train")
    image, boxes = dataset[0]
    assert image.shape == (3, 80, 120)
    cx, cy, w, h = boxes[0, 1:]
    patch = image[:, int(cy - h / 2) : int(cy + h / 2), int(cx - w / 2) : int(cx + w / 2)]
    assert patch.mean() > 0.9  # the box sits on the white square


ROUTES = {
    "HWC uint8": lambda a: a,
    "CHW uint8": lambda a: a.transpose(2, 0, 1),
    "HWC float": lambda a: a / 255.0,
    "CHW float32": lambda a: (a / 255).astype(np.float32).transpose(2, 0, 1),
    "Tensor": lambda a: lucid.Tensor((a / 255).astype(np.float32).transpose(2, 0, 1)),
    "Pillow": lambda a: Image.fromarray(a),
    "int64 HWC": lambda a: a.astype(np.int64),
}


@pytest.mark.parametrize("route", ROUTES)
def test_every_layout_and_dtype_gives_the_same_image(route):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = pixels.transpose(2, 0, 1).astype(np.float32) / 255
    got = as_image(ROUTES[route](pixels))
    assert got.dtype == np.float32 and got.shape == (3, 20, 30)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_gray_rgba_and_sixteen_bit_images():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_allclose(as_image(gray), np.repeat(gray[None] / 255, 3, axis=0), atol=1e-6)
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 0] = 51
    assert as_image(rgba).shape == (3, 5, 6) and np.allclose(as_image(rgba)[0], 0.2)
    deep = np.full((4, 4, 3), 65535, np.uint16)
    np.testing.assert_allclose(as_image(deep), 1.0)
    # a channel count in both places (3 pixels wide): read as (C, H, W), the rule says so
    assert as_image(np.zeros((3, 10, 3), np.uint8)).shape == (3, 10, 3)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.full((3, 8, 8), 200.0), r"image: float values up to 200, on the 0-255 scale; expected floats in \[0, 1\]"),
        (np.full((8, 8, 3), -2.0), r"float values down to -2; expected floats in \[0, 1\], not normalized"),
        (np.full((8, 8, 3), np.nan), "NaN or infinite"),
        (np.full((8, 8, 3), 300, np.int32), "integer values from 300 to 300; expected 0-255"),
        (
            np.zeros((8, 8, 5)),
            r"expected \(H, W, C\) or \(C, H, W\) with C = 1, 3 or 4 channels, got shape \(8, 8, 5\)",
        ),
        (np.zeros((2, 3, 8, 8)), r"expected an image \(H, W, 3\) or \(3, H, W\).*got shape \(2, 3, 8, 8\)"),
        (np.array([["a"]]), "expected numbers for pixels"),
        (np.zeros((0, 0, 3), np.uint8), r"needs at least one pixel, got shape \(3, 0, 0\)"),
    ],
)
def test_an_image_that_cannot_be_read_rightly_is_a_one_line_error(image, message):
    with pytest.raises(ValueError, match=message):
        as_image(image)


def test_a_little_overshoot_of_a_resampled_float_image_is_accepted():
    image = np.linspace(-0.04, 1.04, 300).reshape(10, 10, 3)  # bicubic resampling overshoots so
    assert as_image(image).max() == pytest.approx(1.04, abs=1e-6)
