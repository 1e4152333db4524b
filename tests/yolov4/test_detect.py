"""``detect`` on a whole batch equals the per-image detection it replaced, to the bit; and the
grid-sensitive offset that decoding and the loss share."""

import numpy as np
import pytest

import minilucid as lucid
from tests.yolov4.conftest import calibrate, randomize
from tests.yolov4.test_loss_and_predict import scenes, small
from yolov4 import detect
from yolov4.boxes import NMSSettings, nms
from yolov4.decode import cell_offset, decode_level


def detect_one_image(config, maps, input_size, conf_thresh, iou_thresh=0.45, max_det=300):
    """The oracle: the former per-image ``detect`` (host NumPy, maps (1, A * V, H, W))."""
    boxes, scores, classes = [], [], []
    for level, raw in enumerate(maps):
        decoded = decode_level(
            raw, config.anchors[level], config.strides[level], config.scale_x_y[level], config.has_iou_branch
        )
        confidence = decoded["objectness"].reshape(-1)
        if config.has_iou_branch:
            alpha = config.iou_aware_alpha
            confidence = confidence ** (1 - alpha) * decoded["iou"].reshape(-1) ** alpha
        level_scores = confidence[:, None] * decoded["class_probs"].reshape(-1, config.num_classes)
        index, cls = np.nonzero(level_scores > conf_thresh)
        boxes.append(decoded["xyxy"].reshape(-1, 4)[index])
        scores.append(level_scores[index, cls])
        classes.append(cls)
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    if len(scores) > detect.MAX_CANDIDATES:
        best = np.argsort(-scores, kind="stable")[: detect.MAX_CANDIDATES]
        boxes, scores, classes = boxes[best], scores[best], classes[best]
    height, width = input_size
    boxes = np.clip(boxes, 0, [width, height, width, height])
    keep = nms(boxes, scores, iou_thresh, config.nms_kind, config.beta_nms, classes, max_det)
    return [{"box": [float(v) for v in boxes[k]], "score": float(scores[k]), "class_id": int(classes[k])} for k in keep]


@pytest.mark.parametrize("cap", [None, 5], ids=["all", "capped"])
@pytest.mark.parametrize("iou_branch", [False, True], ids=["plain", "iou-aware"])
@pytest.mark.parametrize("conf_thresh", [0.0, 0.3, 0.9])
def test_batch_detect_equals_the_per_image_oracle(conf_thresh, iou_branch, cap, monkeypatch):
    if cap is not None:
        monkeypatch.setattr(detect, "MAX_CANDIDATES", cap)
    model = small(**({"iou_branch_weight": 1.0, "iou_aware_alpha": 0.5} if iou_branch else {}))
    x = scenes()
    randomize(model, output_gain=2.0)
    calibrate(model, x)
    maps = [m.data for m in model.eval().forward(x)]
    found = detect.detect(model.config, maps, (128, 128), NMSSettings(conf_thresh))
    expected = [detect_one_image(model.config, [m[n : n + 1] for m in maps], (128, 128), conf_thresh) for n in range(2)]
    assert found == expected
    if conf_thresh == 0.9:
        assert found == [[], []]
    else:
        assert all(found)


def test_an_empty_batch_of_candidates_gives_empty_lists():
    model = small()
    maps = [m.data for m in model.eval().forward(scenes())]
    assert detect.detect(model.config, maps, (128, 128), NMSSettings(conf_thresh=0.999)) == [[], []]
    with pytest.raises(TypeError, match="settings must be an NMSSettings, got float"):
        detect.detect(model.config, maps, (128, 128), 0.3)  # the loose threshold of old


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"conf_thresh": 1.0}, r"conf_thresh must be a score in \[0, 1\), got 1.0"),
        ({"conf_thresh": float("nan")}, r"conf_thresh must be a score in \[0, 1\), got nan"),
        ({"iou_thresh": -0.1}, r"iou_thresh must be an overlap in \[0, 1\], got -0.1"),
        ({"iou_thresh": "0.5"}, r"iou_thresh must be an overlap in \[0, 1\], got '0.5'"),
        ({"max_det": 0}, r"max_det must be a whole number, at least 1, got 0"),
        ({"max_det": 2.5}, r"max_det must be a whole number, at least 1, got 2.5"),
        ({"nms_kind": "soft"}, r"nms_kind must be None or one of \('diou', 'greedy'\), got 'soft'"),
    ],
)
def test_nms_settings_refuse_values_out_of_range_in_one_line(given, message):
    with pytest.raises(ValueError, match=f"^NMS settings: {message}$"):
        NMSSettings(**given)
    with pytest.raises(ValueError, match=message):  # predict's keywords build the same object
        small().predict(np.zeros((1, 3, 64, 64), np.float32), **given)


def test_nms_settings_kind_overrides_the_models_and_none_keeps_it():
    """Two boxes of one class, IoU 0.6 with their centres 3.35 px apart: plain IoU suppresses
    the weaker at 0.5; DIoU-NMS (the model's kind) subtracts (rho^2 / c^2)^0.6 = 0.12 and keeps
    both."""
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 16.7]])
    scores, classes = np.array([0.9, 0.8]), np.array([0, 0])
    config = small().config
    assert config.nms_kind == "diou"
    assert NMSSettings(iou_thresh=0.5).keep(boxes, scores, classes, config).tolist() == [0, 1]
    assert NMSSettings(iou_thresh=0.5, nms_kind="greedy").keep(boxes, scores, classes, config).tolist() == [0]


def test_grid_sensitivity_lets_the_centre_reach_the_cell_borders():
    """sigmoid(t) * s - (s - 1) / 2: s = 1 is the plain sigmoid, which only approaches 0 and 1;
    s = 1.2 reaches them at finite t and stops 0.1 beyond. Arrays and Tensors agree."""
    t = np.array([-40.0, -np.log(11.0), 0.0, np.log(11.0), 40.0])  # sigmoid: ~0, 1/12, 1/2, 11/12, ~1
    np.testing.assert_allclose(cell_offset(t, 1.0), 1 / (1 + np.exp(-t)))
    np.testing.assert_allclose(cell_offset(t, 1.2), [-0.1, 0.0, 0.5, 1.0, 1.1], atol=1e-12)
    np.testing.assert_array_equal(cell_offset(lucid.Tensor(t), 1.2).numpy(), cell_offset(t, 1.2))
