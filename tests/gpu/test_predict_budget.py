"""``predict`` on the GPU: the CPU's detections, for two blocking syncs and a small copy a batch."""

import numpy as np
import pytest

import minilucid as lucid
from minilucid import backend
from tests.gpu import standin
from tests.yolov4.conftest import calibrate, randomize
from tests.yolov4.test_loss_and_predict import scenes, small
from yolov4 import detect

IOU_AWARE = {"iou_branch_weight": 1.0, "iou_aware_alpha": 0.5}


def images() -> lucid.Tensor:
    """Three 128x128 scenes (N = 3)."""
    return lucid.Tensor(np.concatenate([scenes(0).numpy(), scenes(1).numpy()[:1]]))


def detector(**overrides):
    """A small model with random weights that give O(1) raw outputs, so scores spread over (0, 1)."""
    model = small(**overrides)
    randomize(model, output_gain=2.0)
    calibrate(model, images())
    return model.eval()


def columns(per_image):
    boxes = np.array([d["box"] for d in per_image]).reshape(-1, 4)
    return boxes, np.array([d["score"] for d in per_image]), [d["class_id"] for d in per_image]


@pytest.mark.gpu
@pytest.mark.parametrize("cap", [None, 7], ids=["all", "capped"])
@pytest.mark.parametrize("overrides", [{}, IOU_AWARE], ids=["plain", "iou-aware"])
def test_predictions_on_the_gpu_equal_those_on_the_cpu(overrides, cap, monkeypatch):
    if cap is not None:  # the per-image cap, done on the device, keeps each image's best
        monkeypatch.setattr(detect, "MAX_CANDIDATES", cap)
    on_cpu, on_gpu = detector(**overrides), detector(**overrides).to("gpu")
    x = images()
    expected = on_cpu.predict(x, conf_thresh=0.4)
    found = on_gpu.predict(x.to("gpu"), conf_thresh=0.4)
    assert len(found) == 3 and all(expected), [len(d) for d in expected]
    for n, (ours, theirs) in enumerate(zip(found, expected, strict=True)):
        assert len(ours) == len(theirs), f"image {n}"
        (boxes, scores, classes), (boxes0, scores0, classes0) = columns(ours), columns(theirs)
        assert classes == classes0, f"image {n}"
        np.testing.assert_allclose(boxes, boxes0, rtol=1e-4, atol=1e-4 * 128, err_msg=f"image {n} boxes")
        np.testing.assert_allclose(scores, scores0, rtol=1e-4, err_msg=f"image {n} scores")
        if cap is not None:
            assert len(ours) <= cap


@pytest.mark.gpu
def test_predict_syncs_twice_and_copies_only_the_candidates():
    if backend.cupy is not standin.cupy:
        pytest.skip("counting syncs and copies needs the CuPy stand-in; this run uses a real GPU")
    model = detector().to("gpu")
    x = images().to("gpu")
    maps = model.forward(x)
    smallest_map = min(m.data.nbytes for m in maps)
    model.predict(x, conf_thresh=0.6)  # warm-up: grids and anchors are cached on the device
    with standin.counting() as counts:
        found = model.predict(x, conf_thresh=0.6)
    assert any(found), "the threshold should leave some detections"
    assert counts.syncs <= 2, counts.events
    assert counts.h2d == 0, counts.events
    assert counts.d2h == 1 and max(counts.d2h_bytes) < smallest_map, (smallest_map, counts.events)
