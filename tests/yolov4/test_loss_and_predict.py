"""get_loss and predict: both target forms, finite gradients, clear errors, can it learn."""

import numpy as np
import pytest

import minilucid as lucid
from tests.conftest import DEVICES
from yolov4 import YOLO_V4Config, yolo_v4
from yolov4.boxes import iou, xywh_to_xyxy
from yolov4.decode import split_anchors
from yolov4.letterbox import to_original
from yolov4.loss import yolo_loss
from yolov4.targets import decode_targets, encode_targets

GROUND_TRUTH = [
    np.array([[0, 40, 40, 30, 40], [1, 92, 60, 50, 30], [2, 64, 104, 20, 20]], dtype=float),
    np.array([[2, 30, 90, 40, 40], [0, 100, 30, 36, 50], [1, 70, 70, 44, 24]], dtype=float),
]
COLOURS = [(1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.2, 0.2, 1.0)]


def scenes(seed=0):
    """Two 128x128 images with three solid rectangles each, one colour per class, on noise."""
    rng = np.random.default_rng(seed)
    images = []
    for boxes in GROUND_TRUTH:
        image = rng.uniform(0.0, 0.3, (3, 128, 128)).astype(np.float32)
        for cls, cx, cy, w, h in boxes:
            x1, y1, x2, y2 = int(cx - w / 2), int(cy - h / 2), int(cx + w / 2), int(cy + h / 2)
            image[:, y1:y2, x1:x2] = np.array(COLOURS[int(cls)], np.float32)[:, None, None]
        images.append(image)
    return lucid.Tensor(np.stack(images))


def small(**overrides):
    lucid.random.seed(0)
    return yolo_v4(num_classes=3, width_multiple=0.25, depth_multiple=0.33, **overrides)


def test_both_target_forms_give_the_same_loss():
    model, x = small(), scenes()
    loss, terms = model.get_loss_and_terms(x, GROUND_TRUTH)
    from_boxes = loss.item()
    from_encoded = model.get_loss(x, encode_targets(GROUND_TRUTH, model.config, (128, 128))).item()
    assert from_boxes == from_encoded == model.get_loss(x, GROUND_TRUTH).item()
    assert terms.num_positives > 6 and terms.box > 0 and terms.obj > 0 and terms.cls > 0
    assert terms.total == pytest.approx(from_boxes, rel=1e-5)


def test_the_forms_differ_only_when_a_box_lost_all_its_slots():
    """Encoded targets hold no box that a later box displaced from every slot, so the ignore
    mask (which reads its truths back from the grid) misses it; the boxes keep it.

    Two 19x36 boxes; one prediction (stride 16, anchor (76, 55), not positive for them) is
    set to coincide with the first. Its objectness logit is 2, so if it is not ignored its
    "no object" loss is softplus(2)."""
    lucid.random.seed(0)
    model = yolo_v4(num_classes=1, width_multiple=0.25, depth_multiple=0.33)
    scale = model.config.scale_x_y[1]
    for head in model.head:  # every raw output is its bias: anchor-sized boxes at cell centres
        head.output.conv.weight.data[...] = 0
        head.output.conv.bias.data.reshape(3, -1)[:, :4] = 0
    bias = model.head[1].output.conv.bias.data.reshape(3, -1)  # stride 16: (A, 5 + C)
    for axis, centre in enumerate((25.0, 28.0)):  # cell (1, 1): offsets 9/16 and 12/16
        offset = (centre / 16 - 1 + (scale - 1) / 2) / scale
        bias[1, axis] = np.log(offset / (1 - offset))
    bias[1, 2:5] = [np.log(19 / 76), np.log(36 / 55), 2.0]
    x = lucid.zeros((1, 3, 64, 64))
    losses = {}
    for case, second_x in (("apart", 41.0), ("collide", 31.0)):  # 31: the same cells, every slot taken
        boxes = [np.array([[0, 25, 28, 19, 36], [0, second_x, 28, 19, 36]])]
        encoded = encode_targets(boxes, model.config, (64, 64))
        kept = {tuple(box) for box in np.round(decode_targets(encoded, model.config)[0], 3)}
        (from_boxes, boxes_terms), (from_encoded, encoded_terms) = (
            model.get_loss_and_terms(x, targets) for targets in (boxes, encoded)
        )
        losses[case] = from_boxes.item(), from_encoded.item()
        assert (boxes_terms.box, boxes_terms.cls) == (encoded_terms.box, encoded_terms.cls)
        assert len(kept) == (2 if case == "apart" else 1), kept
    assert losses["apart"][0] == losses["apart"][1]
    from_boxes, from_encoded = losses["collide"]
    assert from_encoded - from_boxes == pytest.approx(np.logaddexp(0, 2.0), rel=1e-4)


def test_gradients_are_finite_and_reach_every_parameter():
    model, x = small(), scenes()
    model.get_loss(x, GROUND_TRUTH).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad)), name
        assert np.abs(p.grad).sum() > 0, f"{name} has a zero gradient"


@pytest.mark.parametrize("box_loss", ["giou", "diou", "mse"])
def test_other_box_losses(box_loss):
    model, x = small(box_loss=box_loss), scenes()
    loss, terms = model.get_loss_and_terms(x, GROUND_TRUTH)
    loss.backward()
    assert np.isfinite(loss.item()) and terms.box > 0
    assert np.all(np.isfinite(model.head[0].output.conv.weight.grad))


def test_options_change_the_terms_they_should():
    x = scenes()
    _, base = small().get_loss_and_terms(x, GROUND_TRUTH)
    _, smooth = small(cls_label_smoothing=0.2).get_loss_and_terms(x, GROUND_TRUTH)
    assert smooth.cls != base.cls
    assert smooth.obj == pytest.approx(base.obj)
    _, balanced = small(obj_balance=(4.0, 1.0, 0.4)).get_loss_and_terms(x, GROUND_TRUTH)
    assert balanced.obj != pytest.approx(base.obj)
    assert base.iou_branch == 0  # no IoU branch: a constant zero term
    aware_loss, aware = small(iou_branch_weight=1.0, iou_aware_alpha=0.5).get_loss_and_terms(x, GROUND_TRUTH)
    aware_loss.backward()
    assert aware.iou_branch > 0


def test_label_smoothing_targets_are_darknets():
    """darknet's delta_yolo_class: y * (1 - eps) + 0.5 * eps, so 1 - eps / 2 and eps / 2.

    Read from the loss itself: at a zero logit the class BCE's gradient is
    cls_normalizer * (sigmoid(0) - target) / batch, so each positive slot's gradient gives
    back the target the loss used.
    """
    eps, batch = 0.2, len(GROUND_TRUTH)
    config = YOLO_V4Config(num_classes=3, cls_label_smoothing=eps, cls_normalizer=2.0)
    encoded = encode_targets(GROUND_TRUTH, config, (128, 128))
    width = len(config.anchors[0]) * config.values_per_anchor
    maps = tuple(lucid.zeros((batch, width, 128 // s, 128 // s), requires_grad=True) for s in config.strides)
    loss, _ = yolo_loss(maps, encoded, config)
    loss.backward()
    for raw, target in zip(maps, encoded, strict=True):
        slots = split_anchors(raw.grad, 3)  # (N, H, W, A, 5 + C)
        target = target.reshape(slots.shape)
        positive = target[..., 4] > 0.5
        one_hot = target[..., 5:][positive]  # (P, C)
        used = 0.5 - slots[..., 5:][positive] * batch / config.cls_normalizer  # (P, C)
        np.testing.assert_allclose(used[one_hot == 1], 1 - eps / 2, atol=1e-6)
        np.testing.assert_allclose(used[one_hot == 0], eps / 2, atol=1e-6)
        assert np.all(slots[..., 5:][~positive] == 0)  # classes are learnt on positives only
    assert sum(int((t.reshape(*t.shape[:3], 3, -1)[..., 4] > 0.5).sum()) for t in encoded) > 6


def test_images_without_boxes_are_valid():
    model, x = small(), scenes()
    loss = model.get_loss(x, [np.zeros((0, 5)), GROUND_TRUTH[1]])
    loss.backward()
    assert np.isfinite(loss.item())
    empty, terms = model.get_loss_and_terms(x, [np.zeros((0, 5)), np.zeros((0, 5))])
    assert terms.num_positives == 0 and terms.box == terms.cls == 0 and terms.obj > 0
    assert empty.item() == pytest.approx(terms.total, rel=1e-6)


def test_nan_names_the_term_and_bad_targets_are_refused():
    model = small()
    x = np.full((2, 3, 128, 128), np.nan, dtype=np.float32)
    with pytest.raises(FloatingPointError, match="the box term is nan"):
        model.get_loss(x, GROUND_TRUTH)
    with pytest.raises(FloatingPointError, match="the obj term is nan"):
        model.get_loss(x, [np.zeros((0, 5))] * 2)
    with pytest.raises(ValueError, match=r"class_id must be an integer in \[0, 3\)"):
        model.get_loss(scenes(), [np.array([[5, 40, 40, 10, 10]]), GROUND_TRUTH[1]])
    with pytest.raises(ValueError, match="outside the 128x128 image"):
        model.get_loss(scenes(), [np.array([[0, 400, 40, 10, 10]]), GROUND_TRUTH[1]])
    with pytest.raises(ValueError, match="2 images but ground truth for 1"):
        model.get_loss(scenes(), GROUND_TRUTH[:1])
    with pytest.raises(ValueError, match=r"expected shape \(2, 16, 16, 24\)"):
        model.get_loss(scenes(), tuple(np.zeros((2, 4, 4, 24)) for _ in range(3)))


def test_predict_output_format_and_mode():
    model = small()
    model.train()
    x = scenes()
    detections = model.predict(x.numpy(), conf_thresh=0.3)
    assert model.training  # restored, unlike lucid
    assert len(detections) == 2
    for per_image in detections:
        scores = [d["score"] for d in per_image]
        assert scores == sorted(scores, reverse=True)
        for d in per_image:
            assert set(d) == {"box", "score", "class_id"}
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 128
            assert 0 <= d["class_id"] < 3 and 0.3 < d["score"] <= 1
    model.eval()
    single = model.predict(x[0], conf_thresh=0.3, max_det=5)
    assert not model.training and len(single) == 1 and len(single[0]) <= 5


def test_predict_takes_lucids_diou_thresh_for_the_nms_threshold():
    model, x = small(), scenes().numpy()[:1, :, :64, :64]  # small, so that NMS has few boxes to sort

    def found(*args, **kwargs):  # untrained: a low score bar and no max_det keep overlapping boxes
        return model.predict(x, 0.001, *args, max_det=10_000, **kwargs)

    loose, tight = found(iou_thresh=0.9), found(iou_thresh=0.1)
    assert sum(map(len, loose)) > sum(map(len, tight)) > 0  # the threshold matters for these maps
    assert found(diou_thresh=0.9) == loose
    assert found(diou_thresh=0.1) == tight
    assert found(0.1) == tight  # positional, as lucid's predict(x, conf_thresh, diou_thresh)
    assert found(iou_thresh=0.1, diou_thresh=0.1) == tight
    assert found() == found(iou_thresh=0.45) != loose  # darknet's default
    with pytest.raises(ValueError, match=r"iou_thresh=0.1 and diou_thresh=0.9 disagree"):
        found(iou_thresh=0.1, diou_thresh=0.9)


def test_detections_map_back_to_the_original_image():
    # a 200x100 (w x h) image letterboxed into 128x128: scale 0.64, vertical padding 32
    detection = [{"box": [0.0, 32.0, 64.0, 64.0], "score": 0.9, "class_id": 1}]
    back = to_original(detection, original_size=(100, 200), input_size=(128, 128))
    np.testing.assert_allclose(back[0]["box"], [0, 0, 100, 50])
    stretched = to_original(detection, original_size=(100, 200), input_size=(128, 128), letterbox=False)
    np.testing.assert_allclose(stretched[0]["box"], [0, 25, 100, 50])


@pytest.mark.slow
def test_it_learns_two_images_and_finds_every_box():
    model, x = small(), scenes()
    optimizer = lucid.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        loss = model.get_loss(x, GROUND_TRUTH)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    for detections, truth in zip(model.predict(x), GROUND_TRUTH, strict=True):
        for cls, *xywh in truth:
            same_class = [d["box"] for d in detections if d["class_id"] == cls]
            best = max((float(iou(np.array(b), xywh_to_xyxy(np.array(xywh)))) for b in same_class), default=0.0)
            assert best > 0.7, f"class {cls:g} box {xywh}: best IoU {best:.3f}"


@pytest.mark.parametrize("device", DEVICES)
def test_loss_gradients_and_predict_agree_across_devices(device):
    reference, moved = small(), small()
    moved.to(device)
    x = scenes()
    expected = reference.get_loss(x, GROUND_TRUTH)
    expected.backward()
    loss = moved.get_loss(x.numpy(), GROUND_TRUTH)  # a NumPy input goes to the model's device
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    for (name, p), (_, q) in zip(reference.named_parameters(), moved.named_parameters(), strict=True):
        np.testing.assert_allclose(
            lucid.backend.as_numpy(q.grad), p.grad, rtol=1e-3, atol=1e-3 * np.abs(p.grad).max(), err_msg=name
        )
    found, on_device = reference.predict(x, conf_thresh=0.3), moved.predict(x, conf_thresh=0.3)
    assert [len(d) for d in found] == [len(d) for d in on_device]
