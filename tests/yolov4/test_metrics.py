"""Evaluation against pycocotools (a test-only oracle) on random ground truth and detections."""

import contextlib
import io
import json

import numpy as np
import pytest

from yolov4.evaluation.metrics import coco_metrics, coco_metrics_from_files, confusion_matrix

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def random_set(seed, images=12, classes=3):
    """COCO ground truth and detections: noisy copies of the truths, duplicates, false alarms,
    objects of every size, and images without objects."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": 10 + k, "name": f"c{k}"} for k in range(classes)]}
    dt = []
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "width": 640, "height": 480, "file_name": f"{image_id}.jpg"})
        count = 0 if image_id % 5 == 0 else int(rng.integers(1, 8))
        for _ in range(count):
            w, h = np.exp(rng.uniform(np.log(8), np.log(250), 2))
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = 10 + int(rng.integers(classes))
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            for _ in range(int(rng.integers(0, 3))):  # detections near it (or duplicates)
                jitter = rng.normal(0, 0.15, 4) * [w, h, w, h]
                wrong = rng.uniform() < 0.1
                dt.append(
                    {
                        "image_id": image_id,
                        "category_id": 10 + int(rng.integers(classes)) if wrong else cat,
                        "bbox": [x + jitter[0], y + jitter[1], max(w + jitter[2], 2), max(h + jitter[3], 2)],
                        "score": float(rng.uniform()),
                    }
                )
        for _ in range(int(rng.integers(0, 4))):  # false alarms
            w, h = rng.uniform(5, 200, 2)
            dt.append(
                {
                    "image_id": image_id,
                    "category_id": 10 + int(rng.integers(classes)),
                    "bbox": [rng.uniform(0, 500), rng.uniform(0, 400), w, h],
                    "score": float(rng.uniform()),
                }
            )
    return gt, dt


def pycocotools_stats(gt, dt, tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        evaluation = COCOeval(coco, coco.loadRes(dt), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_pycocotools(seed, tmp_path):
    gt, dt = random_set(seed)
    expected = pycocotools_stats(gt, dt, tmp_path)
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    ours = coco_metrics_from_files(tmp_path / "gt.json", tmp_path / "dt.json")
    names = ["map", "map50", "map75", "map_small", "map_medium", "map_large"]
    for k, name in enumerate(names):
        assert ours[name] == pytest.approx(expected[k], abs=1e-4), name
    assert 0.05 < ours["map"] < 0.95  # a non-trivial case
    assert set(ours["per_class"]) == {"c0", "c1", "c2"}


def test_perfect_and_empty_detections():
    truth = [{"boxes": [[10, 10, 50, 60], [100, 100, 300, 260]], "classes": [0, 1]}, {"boxes": [], "classes": []}]
    perfect = [
        {"boxes": [[10, 10, 50, 60], [100, 100, 300, 260]], "scores": [0.9, 0.8], "classes": [0, 1]},
        {"boxes": [], "scores": [], "classes": []},
    ]
    metrics = coco_metrics(truth, perfect, 2)
    assert metrics["map"] == pytest.approx(1.0) and metrics["voc_map50"] == pytest.approx(1.0)
    assert metrics["map_small"] == -1.0  # no small objects at all: undefined, as pycocotools says
    nothing = [{"boxes": [], "scores": [], "classes": []}] * 2
    assert coco_metrics(truth, nothing, 2)["map"] == 0.0


def test_voc_ap_by_hand():
    # one class, two truths; detections: hit (0.9), miss (0.8), hit (0.7)
    truth = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "classes": [0, 0]}]
    found = [
        {"boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], "scores": [0.9, 0.8, 0.7], "classes": [0, 0, 0]}
    ]
    metrics = coco_metrics(truth, found, 1)
    # precision 1, 0.5, 0.667 at recall 0.5, 0.5, 1: envelope 1 up to 0.5, 0.667 to 1
    assert metrics["voc_map50"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics["voc07_map50"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_confusion_matrix_counts_hits_confusions_misses_and_false_alarms():
    truths = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]), "classes": np.array([0, 1, 1])}]
    found = [
        {
            "boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 31], [60, 60, 70, 70], [40, 40, 50, 50]]),
            "scores": np.array([0.9, 0.8, 0.7, 0.1]),  # the last is under the 0.25 threshold
            "classes": np.array([0, 0, 1, 1]),
        }
    ]
    matrix = confusion_matrix(truths, found, num_classes=2)
    # rows: true class 0, 1, nothing; columns: predicted 0, 1, missed
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [1, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize(
    "detections,message",
    [
        (
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},
            r"dt.json: expected a list of detections",
        ),
        ([{"image_id": 1, "category_id": 10, "bbox": [0, 0, 5]}], r"dt.json: detection 0: bbox must be \[x, y, w, h\]"),
        ([{"image_id": 1, "category_id": 10, "bbox": [0, 0, 5, 5]}], r"dt.json: detection 0: score must be a finite"),
        ([{"image_id": 9, "category_id": 10, "bbox": [0, 0, 5, 5]}], r"detection 0 names an image or category that"),
        (["not a detection"], r"dt.json: detection 0: expected an object with image_id, category_id and bbox"),
        ([{"image_id": [1], "category_id": 10}], r"dt.json: detection 0: image_id and category_id must be ids"),
    ],
)
def test_a_detections_file_of_another_shape_is_a_one_line_error(detections, message, tmp_path):
    """A JSON object instead of a list used to be an AttributeError, a missing key a bare KeyError."""
    gt, _ = random_set(0, images=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(detections))
    with pytest.raises(ValueError, match=message):
        coco_metrics_from_files(tmp_path / "gt.json", tmp_path / "dt.json")


def test_a_ground_truth_file_of_another_shape_is_a_one_line_error(tmp_path):
    gt, dt = random_set(0, images=2)
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    for content, message in [
        (gt["images"], r"gt.json: expected a COCO object with images, annotations and categories, got list"),
        ({**gt, "categories": None}, r"gt.json: expected a list under 'categories'"),
        ({**gt, "annotations": [{**gt["annotations"][0], "image_id": 99}]}, r"annotations\[0\]: image_id 99 is not"),
    ]:
        (tmp_path / "gt.json").write_text(json.dumps(content))
        with pytest.raises(ValueError, match=message):
            coco_metrics_from_files(tmp_path / "gt.json", tmp_path / "dt.json")
