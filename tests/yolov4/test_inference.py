"""``detect_images``, the one inference pipeline: letterbox, predict in batches, map back."""

import numpy as np
import pytest

from tests.yolov4.conftest import calibrate, randomize
from tests.yolov4.test_loss_and_predict import scenes, small
from yolov4.boxes import NMSSettings
from yolov4.inference import detect_images
from yolov4.letterbox import letterbox_image, to_original

RED = np.array([1.0, 0.0, 0.0], np.float32)[:, None, None]


class RedFinder:
    """A perfect detector of one thing, to check the geometry around the network: it reports
    the pure-red pixels of each input image as one box, in the input's pixels, and records
    the batch shapes it was given."""

    def __init__(self):
        self.batches = []

    def predict(self, x, conf_thresh, iou_thresh, max_det):
        self.batches.append(x.shape)
        found = []
        for image in x:
            rows, cols = np.nonzero((image[0] > 0.75) & (image[1] < 0.25) & (image[2] < 0.25))
            box = [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]
            found.append([{"box": box, "score": 1.0, "class_id": 0}])
        return found


def picture(height, width, red_box):
    """A grey-noise (3, height, width) image with a red rectangle at red_box = (x1, y1, x2, y2)."""
    image = np.random.default_rng(height).uniform(0.3, 0.6, (3, height, width)).astype(np.float32)
    x1, y1, x2, y2 = red_box
    image[:, y1:y2, x1:x2] = RED
    return image


@pytest.mark.parametrize("input_size", [128, (96, 160)])
def test_a_box_comes_back_in_each_original_images_pixels(input_size):
    red_boxes = [(40, 20, 90, 60), (10, 200, 50, 280), (100, 100, 160, 130)]
    images = [picture(100, 250, red_boxes[0]), picture(300, 120, red_boxes[1]), picture(200, 200, red_boxes[2])]
    finder = RedFinder()
    found = detect_images(finder, images, input_size, batch_size=2)
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    assert finder.batches == [(2, 3, height, width), (1, 3, height, width)]
    for detections, red_box in zip(found, red_boxes, strict=True):
        # Bilinear resizing blurs the edges by about one input pixel: 2.5 original pixels here.
        np.testing.assert_allclose(detections[0]["box"], red_box, atol=3.0)


def test_batched_and_one_by_one_give_the_same_detections():
    model = small()
    randomize(model, output_gain=2.0)
    calibrate(model, scenes())
    model.eval()
    full = scenes().numpy()  # two 128x128 scenes, cut into images of other shapes
    images = [full[0], full[1, :, :80, :], full[0, :, 20:, 30:110], full[1, :, :, :64]]
    batched = detect_images(model, images, 96, NMSSettings(conf_thresh=0.3), batch_size=3)
    alone = detect_images(model, images, 96, NMSSettings(conf_thresh=0.3), batch_size=1)
    assert sum(len(d) for d in batched) > 4  # enough detections to compare
    for one, other in zip(batched, alone, strict=True):
        assert [d["class_id"] for d in one] == [d["class_id"] for d in other]
        np.testing.assert_allclose([d["box"] for d in one], [d["box"] for d in other], atol=1e-3)
        np.testing.assert_allclose([d["score"] for d in one], [d["score"] for d in other], atol=1e-5)
    # and each equals the three steps written out by hand for that image
    image = images[1]
    by_hand = to_original(model.predict(letterbox_image(image, (96, 96)), 0.3)[0], image.shape[1:], (96, 96))
    assert [d["box"] for d in alone[1]] == [d["box"] for d in by_hand]


def test_bad_input_is_a_clear_error():
    finder = RedFinder()
    with pytest.raises(ValueError, match=r"expected a list of images, got ndarray \(pass \[image\]\)"):
        detect_images(finder, picture(100, 250, (0, 0, 5, 5)), 128)
    with pytest.raises(ValueError, match=r"image 0: expected \(H, W, C\) or \(C, H, W\).*got shape \(100, 250, 7\)"):
        detect_images(finder, [np.zeros((100, 250, 7))], 128)
    with pytest.raises(ValueError, match="input size must be a positive multiple of 32 .*got 0"):
        detect_images(finder, [picture(100, 250, (0, 0, 5, 5))], 0)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        detect_images(finder, [picture(100, 250, (0, 0, 5, 5))], 128, batch_size=0)
    with pytest.raises(TypeError, match="settings must be an NMSSettings, got float"):
        detect_images(finder, [picture(100, 250, (0, 0, 5, 5))], 128, 0.3)  # the loose threshold of old
    assert detect_images(finder, [], 128) == [] and finder.batches == []
