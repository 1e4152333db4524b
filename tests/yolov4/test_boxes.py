import math
import subprocess
import sys

import numpy as np
import pytest

import minilucid as lucid
from minilucid.testing import gradient_check
from yolov4.boxes import (
    MIN_SIZE,
    affine_labels,
    clip_labels,
    intersection,
    iou,
    labels_to_xywh,
    labels_to_xyxy,
    nms,
    pairwise_iou,
    size_iou,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def paper(a, b, kind):
    """IoU, GIoU, DIoU, CIoU of two xyxy boxes written out from the papers, scalar by scalar."""
    aw, ah, bw, bh = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    value = inter / union if union > 0 else 0.0
    cw, ch = max(a[2], b[2]) - min(a[0], b[0]), max(a[3], b[3]) - min(a[1], b[1])
    if kind == "giou":
        return value - (cw * ch - union) / (cw * ch) if cw * ch > 0 else value
    if kind in ("diou", "ciou"):
        rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
        value -= rho2 / (cw**2 + ch**2) if cw**2 + ch**2 > 0 else 0.0
    if kind == "ciou":
        v = 4 / math.pi**2 * (math.atan(bw / bh if bh else math.inf) - math.atan(aw / ah if ah else math.inf)) ** 2
        overlap = inter / union if union > 0 else 0.0
        alpha = v / ((1 - overlap) + v) if (1 - overlap) + v > 0 else 0.0
        value -= alpha * v
    return value


def random_pairs(rng, n):
    a = rng.uniform(0, 50, (n, 2))
    b = a + rng.uniform(-20, 20, (n, 2))
    a = np.concatenate([a, a + rng.uniform(1, 30, (n, 2))], axis=1)
    b = np.concatenate([b, b + rng.uniform(1, 30, (n, 2))], axis=1)
    special = [  # touching, nested, identical, disjoint, zero width, zero area
        ([0, 0, 10, 10], [10, 0, 20, 10]),
        ([0, 0, 10, 10], [2, 3, 5, 6]),
        ([1, 2, 3, 4], [1, 2, 3, 4]),
        ([0, 0, 1, 1], [5, 5, 6, 6]),
        ([0, 0, 0, 10], [0, 0, 5, 10]),
        ([3, 3, 3, 3], [0, 0, 5, 5]),
    ]
    return np.vstack([a, [s[0] for s in special]]), np.vstack([b, [s[1] for s in special]])


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_overlaps_agree_with_the_paper_formulas(kind):
    a, b = random_pairs(np.random.default_rng(0), 200)
    ours = iou(a, b, kind)
    expected = np.array([paper(x, y, kind) for x, y in zip(a, b, strict=True)])
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    tensor = iou(lucid.Tensor(a), lucid.Tensor(b), kind)
    np.testing.assert_allclose(tensor.numpy(), ours, atol=1e-12)
    np.testing.assert_allclose(pairwise_iou(a[:5], b[:7], kind), iou(a[:5, None], b[None, :7], kind))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_overlap_gradients(kind):
    rng = np.random.default_rng(1)
    a = np.array([[10.0, 12.0, 40.0, 35.0], [5.0, 5.0, 25.0, 30.0], [0.0, 0.0, 8.0, 9.0]])
    b = a + rng.uniform(-4, 4, a.shape)
    if kind == "ciou":
        _ciou_with_fixed_alpha(a, b)  # alpha is a constant in backward, as in the CIoU paper
    else:
        gradient_check(lambda x, y: iou(x, y, kind), a, b)


def _ciou_with_fixed_alpha(a, b):
    """d CIoU = d DIoU - alpha d v with alpha a constant: check against that formula."""
    ta, tb = lucid.Tensor(a, requires_grad=True), lucid.Tensor(b, requires_grad=True)
    iou(ta, tb, "ciou").sum().backward()
    overlap = iou(a, b, "iou")

    def v(x, y):  # the aspect-ratio term of CIoU
        aspect_y = lucid.arctan((y[..., 2] - y[..., 0]) / (y[..., 3] - y[..., 1] + 1e-9))
        aspect_x = lucid.arctan((x[..., 2] - x[..., 0]) / (x[..., 3] - x[..., 1] + 1e-9))
        return 4 / math.pi**2 * (aspect_y - aspect_x) ** 2

    alpha = v(a, b) / ((1 - overlap) + v(a, b) + 1e-9)
    gradient_check(lambda x, y: iou(x, y, "diou") - lucid.Tensor(alpha) * v(x, y), a, b)
    ra, rb = lucid.Tensor(a, requires_grad=True), lucid.Tensor(b, requires_grad=True)
    (iou(ra, rb, "diou") - lucid.Tensor(alpha) * v(ra, rb)).sum().backward()
    np.testing.assert_allclose(ta.grad, ra.grad, rtol=1e-10)


def test_conversions_round_trip():
    xywh = np.array([[10.0, 20.0, 4.0, 6.0], [0.5, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(xywh_to_xyxy(xywh), [[8, 17, 12, 23], [0, 0, 1, 1]])
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(xywh)), xywh)
    assert xywh_to_xyxy(lucid.Tensor(xywh)).shape == (2, 4)


def test_intersection_is_the_overlap_area():
    a, b = random_pairs(np.random.default_rng(2), 100)
    widths = np.maximum(0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
    heights = np.maximum(0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
    np.testing.assert_allclose(intersection(a, b), widths * heights)
    assert intersection(a[-3], b[-3]) == 0.0  # disjoint: nothing, not a negative area
    table = intersection(a[:5, None], b[None, :7])  # (5, 7) by broadcasting
    np.testing.assert_allclose(table[2, 4], intersection(a[2], b[4]))
    np.testing.assert_allclose(intersection(lucid.Tensor(a), lucid.Tensor(b)).numpy(), widths * heights)


def test_label_rows_convert_move_and_clip():
    rows = np.array([[2, 10.0, 20.0, 4.0, 6.0], [0, 50.0, 5.0, 20.0, 10.0]])  # [class, cx, cy, w, h]
    corners = labels_to_xyxy(rows)
    np.testing.assert_array_equal(corners, [[2, 8, 17, 12, 23], [0, 40, 0, 60, 10]])
    np.testing.assert_array_equal(labels_to_xywh(corners), rows)
    moved = affine_labels(rows, -2.0, 0.5, 100.0, 1.0)  # mirrored and scaled: sizes stay positive
    np.testing.assert_array_equal(moved, [[2, 80, 11, 8, 3], [0, 0, 3.5, 40, 5]])
    # In a 56 x 30 image: the first box stays; the second keeps 16 of its 20 pixels of width.
    np.testing.assert_array_equal(clip_labels(rows, 56, 30), [[2, 10, 20, 4, 6], [0, 48, 5, 16, 10]])
    assert len(clip_labels(rows, 41, 30)) == 1  # a sliver of 1 pixel < MIN_SIZE is dropped
    assert len(clip_labels(rows, 44, 30)) == 1  # 4 of 20 pixels wide: under MIN_VISIBLE of its area
    assert MIN_SIZE > 1 and clip_labels(np.zeros((0, 5)), 10, 10).shape == (0, 5)


def test_size_iou_compares_shapes_with_centres_aligned():
    fits = size_iou(np.array([[10.0, 10.0]]), np.array([[10.0, 10.0], [20.0, 5.0], [5.0, 5.0], [100.0, 100.0]]))
    np.testing.assert_allclose(fits, [[1.0, 50 / 150, 25 / 100, 100 / 10000]])


def test_the_model_imports_without_pillow():
    """size_iou lives with the boxes, not in the k-means tool that reads image files."""
    code = "import sys; sys.modules['PIL'] = None; import yolov4, yolov4.model, yolov4.loss, yolov4.detect"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def brute_force_nms(boxes, scores, threshold, kind, beta, classes):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        ok = True
        for k in kept:
            if classes[i] != classes[k]:
                continue
            overlap = paper(boxes[k], boxes[i], "iou")
            if kind == "diou":
                overlap -= (paper(boxes[k], boxes[i], "iou") - paper(boxes[k], boxes[i], "diou")) ** beta
            if overlap > threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@pytest.mark.parametrize("kind", ["greedy", "diou"])
@pytest.mark.parametrize("seed", range(5))
def test_nms_agrees_with_brute_force(kind, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (60, 2))], axis=1)
    scores = rng.uniform(0, 1, 60)
    classes = rng.integers(0, 3, 60)
    kept = nms(boxes, scores, 0.45, kind, 0.6, classes)
    assert kept.tolist() == brute_force_nms(boxes, scores, 0.45, kind, 0.6, classes)
    assert np.all(np.diff(scores[kept]) <= 0)  # best first
    assert nms(boxes, scores, 0.45, kind, 0.6, classes, max_det=4).tolist() == kept[:4].tolist()


def test_diou_nms_keeps_neighbours_that_greedy_nms_drops():
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10]], dtype=float)  # IoU 0.54, centres 3 apart
    scores = np.array([0.9, 0.8])
    assert nms(boxes, scores, 0.45, "greedy").tolist() == [0]
    assert nms(boxes, scores, 0.45, "diou").tolist() == [0, 1]
