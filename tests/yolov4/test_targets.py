"""Target assignment, checked on hand-worked cases."""

import numpy as np
import pytest

from yolov4 import YOLO_V4Config
from yolov4.loss import ignore_mask
from yolov4.targets import decode_targets, encode_targets

CONFIG = YOLO_V4Config(num_classes=3)
SIZE = (128, 128)


def slot(encoded, level, row, col, anchor):
    return encoded[level].reshape(1, *encoded[level].shape[1:3], 3, 8)[0, row, col, anchor]


def test_a_box_positive_for_anchors_at_two_strides():
    # A 40x60 box: shape IoU with the nine anchors is 0.08, 0.285, 0.467 | 0.735, 0.502, 0.228 |
    # 0.154, ... so (36,75) is best and (19,36), (40,28), (76,55), (72,146) exceed 0.213.
    encoded = encode_targets([np.array([[1, 50, 70, 40, 60]])], CONFIG, SIZE)
    positive = [
        (lvl, *map(int, idx))
        for lvl, e in enumerate(encoded)
        for idx in zip(*np.nonzero(e.reshape(1, *e.shape[1:3], 3, 8)[0, ..., 4]), strict=True)
    ]
    assert positive == [(0, 8, 6, 1), (0, 8, 6, 2), (1, 4, 3, 0), (1, 4, 3, 1), (1, 4, 3, 2)]
    # stride 8: the centre (50, 70) is in cell column 6 (50 / 8 = 6.25), row 8 (70 / 8 = 8.75)
    np.testing.assert_allclose(slot(encoded, 0, 8, 6, 1)[:5], [0.25, 0.75, np.log(40 / 19), np.log(60 / 36), 1])
    np.testing.assert_allclose(slot(encoded, 0, 8, 6, 2)[:4], [0.25, 0.75, 0.0, np.log(60 / 28)], atol=1e-7)
    # stride 16: cell (3, 4), offsets 0.125 and 0.375
    np.testing.assert_allclose(
        slot(encoded, 1, 4, 3, 0)[:4], [0.125, 0.375, np.log(40 / 36), np.log(60 / 75)], rtol=1e-6
    )
    np.testing.assert_array_equal(slot(encoded, 1, 4, 3, 0)[5:], [0, 1, 0])  # one-hot class 1
    assert encoded[2].sum() == 0  # nothing at stride 32


def test_the_best_anchor_is_positive_even_below_the_threshold():
    # A 120x8 box fits no anchor well: its best, (40,28), has shape IoU 320/1760 = 0.18 < 0.213.
    encoded = encode_targets([np.array([[2, 64, 20, 120, 8]])], CONFIG, SIZE)
    counts = [int(e.reshape(-1, 8)[:, 4].sum()) for e in encoded]
    assert counts == [1, 0, 0]
    assert slot(encoded, 0, 2, 8, 2)[4] == 1
    # A 12x16 box is anchor (12,16) exactly, and (19,36) also passes: 192/684 = 0.28 > 0.213.
    encoded = encode_targets([np.array([[2, 100, 20, 12, 16]])], CONFIG, SIZE)
    assert slot(encoded, 0, 2, 12, 0)[4] == 1 and slot(encoded, 0, 2, 12, 1)[4] == 1
    assert int(encoded[0].reshape(-1, 8)[:, 4].sum()) == 2


def test_decoding_targets_gives_the_boxes_back():
    boxes = np.array([[0, 30, 40, 20, 24], [2, 90, 100, 50, 44]])
    truths = decode_targets(encode_targets([boxes, np.zeros((0, 5))], CONFIG, SIZE), CONFIG)
    expected = np.array([[20, 28, 40, 52], [65, 78, 115, 122]])
    found = {tuple(np.round(b, 4)) for b in truths[0]}
    assert found == {tuple(map(float, e)) for e in expected}
    assert truths[1].shape == (0, 4)


def test_ignore_mask_marks_predictions_that_already_overlap_a_truth():
    # Zero raw outputs decode to anchor-sized boxes centred in their cells.
    raw = np.zeros((1, 3 * 8, 16, 16), dtype=np.float32)
    truth = np.array([[52 - 20, 68 - 14, 52 + 20, 68 + 14]], dtype=np.float32)  # anchor (40,28) at cell (6, 8)
    mask = ignore_mask(raw, CONFIG.anchors[0], 8, 1.2, [truth], 0.7)
    assert mask[0, 8, 6, 2]  # IoU 1
    assert not mask[0, 8, 6, 0]  # the (12,16) anchor: IoU 0.17
    assert mask.sum() == 1


@pytest.mark.parametrize(
    "boxes,message",
    [
        (np.array([[3, 50, 50, 10, 10]]), r"image 0, box 0 .*class_id must be an integer in \[0, 3\), got 3"),
        (np.array([[0.5, 50, 50, 10, 10]]), "class_id must be an integer"),
        (np.array([[0, 125, 50, 20, 10]]), r"lies outside the 128x128 image"),
        (np.array([[0, 50, 50, 0, 10]]), "width and height must be positive"),
        (np.array([[0, 50, 50, 10]]), r"must be \(M, 5\)"),
        (np.array([[0, np.nan, 50, 10, 10]]), "must be finite"),
    ],
)
def test_bad_ground_truth_gets_a_clear_error(boxes, message):
    with pytest.raises(ValueError, match=message):
        encode_targets([boxes], CONFIG, SIZE)
