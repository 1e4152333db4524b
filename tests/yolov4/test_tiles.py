"""Tiles on real photographs: the grid, the tiled dataset (``tile``), sliced prediction
(``predict --tile``) and sliced evaluation (``eval --tile``).

The photographs are scikit-image's (a test-only dependency). Sliced prediction is checked
with a detector that reports pure-red blobs, painted on a photo that has none of its own, so
every box is known to the pixel: a red square cut by a tile edge, a red box larger than the
overlap that spans several tiles, and a red square too small to survive the whole image
scaled down to the input.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from yolov4.__main__ import main
from yolov4.boxes import labels_to_xyxy, pairwise_iou
from yolov4.data.coco import write_coco
from yolov4.data.formats import read_dataset
from yolov4.data.yolo import write_yolo
from yolov4.evaluation.evaluate import evaluate_model
from yolov4.inference import detect_images
from yolov4.tiles import detect_tiled, tile_labels, tile_origins, tile_windows

data = pytest.importorskip("skimage.data", reason="the tests' photographs come with scikit-image (dev extra)")


def photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(getattr(data, name)().transpose(2, 0, 1), dtype=np.float32) / 255


def rows(*corners) -> np.ndarray:
    """Label rows (class 0) of xyxy boxes."""
    xyxy = np.array(corners, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([np.zeros((len(xyxy), 1)), (xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1)


# ----------------------------------------------------------------------------- the grid


def test_the_grid_covers_an_axis_with_tiles_at_most_the_overlap_apart():
    assert tile_origins(451, 128, 0.25) == [0, 81, 162, 242, 323]  # 96 apart at most, the last ends at 451
    assert tile_origins(600, 256, 0.25) == [0, 172, 344]
    assert tile_origins(128, 128, 0.5) == [0] and tile_origins(100, 128, 0.2) == [0]
    for length in range(129, 700, 37):
        origins = tile_origins(length, 128, 0.2)
        assert origins[0] == 0 and origins[-1] == length - 128
        assert max(np.diff(origins)) <= 128 * 0.8 + 1  # neighbours overlap by 20%, a rounding pixel aside
    # an axis shorter than a tile gets one tile as long as the axis
    assert tile_windows(100, 300, 128, 0.2) == [(0, 0, 128, 100), (86, 0, 214, 100), (172, 0, 300, 100)]
    for size, overlap in ((0, 0.2), (128, 1.0), (128, -0.1)):
        with pytest.raises(ValueError, match="tile"):
            tile_origins(500, size, overlap)


def test_the_cut_off_rule_keeps_most_of_a_box_clipped_and_drops_less():
    boxes = rows((90, 10, 110, 30), (120, 10, 140, 30), (50, 50, 129, 51))  # 50%, 40% inside; a 1-px sliver
    kept, dropped = tile_labels(boxes, (0, 0, 100, 100), 0.5, "grey")
    np.testing.assert_allclose(labels_to_xyxy(kept)[:, 1:], [[90, 10, 100, 30]])
    np.testing.assert_allclose(dropped, [[50, 50, 100, 51]])  # 120..140 is not in the tile at all
    kept, dropped = tile_labels(rows((92, 10, 112, 30)), (0, 0, 100, 100), 0.5, "grey")  # 40% inside
    assert len(kept) == 0 and dropped.tolist() == [[92, 10, 100, 30]]
    kept, dropped = tile_labels(rows((92, 10, 112, 30)), (0, 0, 100, 100), 0.5, "keep")
    np.testing.assert_allclose(labels_to_xyxy(kept)[:, 1:], [[92, 10, 100, 30]])
    with pytest.raises(ValueError, match="cut must be one of"):
        tile_labels(boxes, (0, 0, 100, 100), 0.5, "drop")


# ----------------------------------------------------------------------------- the tile command

# coffee() is 400 x 600: 256-px tiles 25% apart start at x = 0, 172, 344 and y = 0, 144.
CUT = (230, 20, 290, 60)  # 26 of its 60 columns in the tile at x = 0: cut off there, whole in x = 172
INSIDE_CUT = (240, 30, 250, 50)  # a box inside that cut-off part: kept, and its pixels not greyed
SPANNING = (150, 300, 300, 340)  # across the tiles at x = 0 (71% of it) and x = 172 (85%)


@pytest.fixture(scope="module")
def photos_dataset(tmp_path_factory):
    """A YOLO dataset: coffee() to train on with three boxes, astronaut() held out with one."""
    root = tmp_path_factory.mktemp("photos")
    write_yolo([("coffee.png", photo("coffee"), rows(CUT, INSIDE_CUT, SPANNING))], root, ["thing"], "train")
    write_yolo([("astronaut.png", photo("astronaut"), rows((100, 100, 140, 140)))], root, ["thing"], "val")
    return root


def tiles_of(root, split):
    dataset = read_dataset(root, split)
    return {path.name: (path, labels_to_xyxy(boxes)[:, 1:]) for path, boxes in dataset.items}


def test_tile_writes_each_split_s_tiles_with_their_boxes(photos_dataset, tmp_path, capsys):
    out = tmp_path / "tiles"
    args = ["tile", "--data", str(photos_dataset), "--size", "256", "--overlap", "0.25", "--out", str(out)]
    assert main(args) == 0
    assert "train: 1 images -> 6 tiles of 256 px with 5 boxes" in capsys.readouterr().out
    train, val = tiles_of(out, "train"), tiles_of(out, "val")
    assert sorted(train) == sorted(f"coffee_x{x}_y{y}.png" for x in (0, 172, 344) for y in (0, 144))
    assert sorted(val) == sorted(f"astronaut_x{x}_y{y}.png" for x in (0, 128, 256) for y in (0, 128, 256))
    # a box cut by a tile edge: dropped where less than half of it shows, whole in its neighbour
    np.testing.assert_allclose(train["coffee_x0_y0.png"][1], [[240, 30, 250, 50]], atol=1e-4)
    np.testing.assert_allclose(train["coffee_x172_y0.png"][1], [[58, 20, 118, 60], [68, 30, 78, 50]], atol=1e-4)
    # a box spanning two tiles: clipped in each, where most of it shows
    np.testing.assert_allclose(train["coffee_x0_y144.png"][1], [[150, 156, 256, 196]], atol=1e-4)
    np.testing.assert_allclose(train["coffee_x172_y144.png"][1], [[0, 156, 128, 196]], atol=1e-4)
    assert len(train["coffee_x344_y144.png"][1]) == 0
    # the cut-off part is grey, except the kept box inside it; every other pixel is the photo's
    tile = read_dataset(out, "train")[sorted(train).index("coffee_x0_y0.png")][0]
    expected = photo("coffee")[:, :256, :256].copy()
    grey = np.zeros((256, 256), bool)
    grey[20:60, 230:256] = True
    grey[30:50, 240:250] = False
    expected[:, grey] = 0.5
    np.testing.assert_allclose(tile, expected, atol=0.6 / 255)  # 8-bit PNG: grey is 128/255


def test_tile_keep_keeps_a_cut_box_clipped(photos_dataset, tmp_path):
    out = tmp_path / "kept"
    args = ["tile", "--data", str(photos_dataset), "--size", "256", "--overlap", "0.25", "--cut", "keep"]
    assert main([*args, "--out", str(out)]) == 0
    train = tiles_of(out, "train")
    np.testing.assert_allclose(train["coffee_x0_y0.png"][1], [[230, 20, 256, 60], [240, 30, 250, 50]], atol=1e-4)
    tile = read_dataset(out, "train")[sorted(train).index("coffee_x0_y0.png")][0]
    np.testing.assert_allclose(tile, photo("coffee")[:, :256, :256], atol=0.6 / 255)  # nothing greyed


def test_tile_holds_out_whole_images_of_a_dataset_without_a_split(tmp_path, capsys):
    source = tmp_path / "coco" / "all.json"
    samples = [("coffee.png", photo("coffee"), rows(CUT)), ("astronaut.png", photo("astronaut"), rows(CUT))]
    write_coco(samples, source, ["thing"])
    out = tmp_path / "tiles"
    assert main(["tile", "--data", str(source), "--size", "256", "--out", str(out)]) == 0
    stems = {split: {name.split("_x")[0] for name in tiles_of(out, split)} for split in ("train", "val")}
    assert sorted([*stems["train"], *stems["val"]]) == ["astronaut", "coffee"]  # one image on each side
    assert main(["tile", "--data", str(source), "--size", "256", "--out", str(out)]) == 1  # never over old tiles
    assert "is not an empty folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sliced prediction


class RedSpots:
    """A perfect detector of red things: each 8-connected blob of pure-red pixels of an input
    is one box, in the input's pixels (``config`` carries the NMS kind that merges tiles)."""

    config = SimpleNamespace(num_classes=1, nms_kind="diou", beta_nms=0.6)

    def predict(self, x, conf_thresh, iou_thresh, max_det):
        from skimage.measure import label, regionprops

        found = []
        for image in x:
            red = (image[0] > 0.75) & (image[1] < 0.25) & (image[2] < 0.25)
            blobs = regionprops(label(red, connectivity=2))
            found.append(
                [{"box": [b.bbox[1], b.bbox[0], b.bbox[3], b.bbox[2]], "score": 1.0, "class_id": 0} for b in blobs]
            )
        return found


# chelsea() (300 x 451, no pure red of its own); 128-px tiles 25% apart start at x = 0, 81, 162,
# 242, 323 and y = 0, 86, 172; the whole image goes into a 128 input at 0.28x.
EDGE_CUT = (120, 20, 140, 40)  # 8 of its 20 columns in the tile x = 0 (cut there), whole in x = 81
LARGE = (180, 100, 330, 190)  # larger than the overlap: every tile cuts it; the whole image shows it
SMALL = (300, 240, 302, 242)  # 2 px: blurred away in the whole image, whole in the tile (242, 172)
RED_BOXES = (EDGE_CUT, LARGE, SMALL)


def red_photo() -> np.ndarray:
    image = photo("chelsea")
    for x1, y1, x2, y2 in RED_BOXES:
        image[:, y1:y2, x1:x2] = np.array([1.0, 0.0, 0.0], np.float32)[:, None, None]
    return image


def test_sliced_prediction_finds_each_object_once_in_the_image_s_pixels():
    image = red_photo()
    found = detect_tiled(RedSpots(), [image], 128, tile=128, overlap=0.25)[0]
    boxes = np.array([d["box"] for d in found])
    assert len(found) == 3, boxes  # the cut square and the large box are not counted twice
    ious = pairwise_iou(np.array(RED_BOXES, np.float64), boxes)
    matched = ious.argmax(axis=1)
    assert sorted(matched.tolist()) == [0, 1, 2]
    np.testing.assert_allclose(boxes[matched[0]], EDGE_CUT)  # whole, from the neighbouring tile
    np.testing.assert_allclose(boxes[matched[2]], SMALL)  # only a tile sees it
    assert ious[1, matched[1]] > 0.85  # from the whole image, at 0.28x: about a pixel of the input off
    # the small square is lost in the whole image scaled down: only the slices see it
    whole = np.array([d["box"] for d in detect_images(RedSpots(), [image], 128)[0]])
    assert len(whole) == 2 and pairwise_iou(np.array([SMALL], np.float64), whole).max() == 0
    # without the whole image, the large box (cut by every tile) is not found, nor its pieces
    tiles_only = np.array([d["box"] for d in detect_tiled(RedSpots(), [image], 128, 128, 0.25, whole=False)[0]])
    np.testing.assert_allclose(tiles_only[np.argsort(tiles_only[:, 0])], [EDGE_CUT, SMALL])


@pytest.fixture(scope="module")
def red_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("red")
    write_yolo([("chelsea.png", red_photo(), rows(*RED_BOXES))], root, ["red"], "val")
    return root


def test_sliced_evaluation_scores_the_full_size_image(red_dataset):
    dataset = read_dataset(red_dataset, "val")
    sliced = evaluate_model(RedSpots(), dataset, 128, tile=128, overlap=0.25)
    assert sliced["map50"] == pytest.approx(1.0) and sliced["map_small"] == pytest.approx(1.0)
    whole = evaluate_model(RedSpots(), dataset, 128)
    assert whole["map50"] < 0.7  # the small square is missed


def test_eval_and_predict_tile_on_the_command_line(red_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("yolov4.__main__._model_from_args", lambda args: (RedSpots(), ["red"]))
    metrics = tmp_path / "metrics.json"
    args = ["eval", "--data", str(red_dataset), "--weights", "red.npz", "--img", "128", "--out", str(metrics)]
    assert main([*args, "--tile", "128", "--overlap", "0.25"]) == 0
    assert "sliced: 128-pixel tiles, overlap 0.25" in capsys.readouterr().out
    assert json.loads(metrics.read_text())["map50"] == pytest.approx(1.0)
    assert main(args) == 0
    assert json.loads(metrics.read_text())["map50"] < 0.7
    image = red_dataset / "images" / "val" / "chelsea.png"
    out = tmp_path / "predicted"
    args = ["predict", str(image), "--weights", "red.npz", "--img", "128", "--out", str(out), "--exist-ok"]
    assert main([*args, "--tile", "128", "--overlap", "0.25"]) == 0
    records = json.loads((out / "detections.json").read_text())
    corners = sorted([x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in records))
    assert len(corners) == 3
    np.testing.assert_allclose(corners[0], EDGE_CUT)
    np.testing.assert_allclose(corners[2], SMALL)
