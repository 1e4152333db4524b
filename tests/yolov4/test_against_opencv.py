"""Against an independent implementation: OpenCV's darknet reader (test-only).

OpenCV loads darknet's reference cfgs (shipped in yolov4/darknet/files/) with random weights
written in darknet format; this project loads the same two files; both run on the same
image, and the decoded outputs agree: boxes [cx, cy, w, h] normalized, objectness, class
scores times objectness.
"""

import numpy as np
import pytest

import minilucid as lucid
from tests.yolov4.conftest import randomize
from yolov4.darknet.weights import darknet_file, load_darknet, weights_bytes
from yolov4.decode import decode_level

cv2 = pytest.importorskip("cv2")


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("yolov4-tiny.cfg", 416), ("yolov4.cfg", 608)])
def test_decoded_outputs_agree_with_opencv(name, size, tmp_path):
    cfg = darknet_file(name)
    donor = load_darknet(cfg)
    randomize(donor, seed=11, output_gain=20.0)
    (tmp_path / "random.weights").write_bytes(weights_bytes(donor))
    ours = load_darknet(cfg, tmp_path / "random.weights").eval()
    image = np.random.default_rng(2).uniform(0, 1, (1, 3, size, size)).astype(np.float32)

    net = cv2.dnn.readNetFromDarknet(str(cfg), str(tmp_path / "random.weights"))
    net.setInput(image)
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    with lucid.no_grad():
        raw = ours(image)

    config = ours.config
    levels = list(range(config.num_levels))
    if config.variant == "yolov4-tiny":
        levels.reverse()  # OpenCV follows the cfg, where tiny lists stride 32 first
    assert len(theirs) == len(levels)
    for rows, level in zip(theirs, levels, strict=True):
        decoded = decode_level(raw[level].data, config.anchors[level], config.strides[level], config.scale_x_y[level])
        assert np.abs(raw[level].numpy()).max() > 3  # outputs spread, so the check has teeth
        boxes = decoded["boxes"].reshape(-1, 4) / size
        objectness = decoded["objectness"].reshape(-1)
        scores = decoded["class_probs"].reshape(-1, config.num_classes) * objectness[:, None]
        assert rows.shape == (boxes.shape[0], 5 + config.num_classes)
        np.testing.assert_allclose(rows[:, :4], boxes, atol=1e-3)
        np.testing.assert_allclose(rows[:, 4], objectness, atol=1e-3)
        kept = rows[:, 5:] > 0  # OpenCV zeroes scores below its threshold
        assert kept.mean() > 0.2
        np.testing.assert_allclose(rows[:, 5:][kept], scores[kept], atol=1e-3)
