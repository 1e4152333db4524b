import numpy as np
import pytest

import minilucid as lucid
import yolov4
from yolov4 import YOLO_V4, YOLO_V4Config, yolo_v4, yolo_v4_tiny
from yolov4.darknet.summary import count_flops, summary


@pytest.fixture(scope="module")
def full_model():
    return yolo_v4()


def test_parameter_counts_match_darknet(full_model):
    assert full_model.count_parameters() == 64_363_101
    assert full_model.count_floats() == 64_429_405
    assert yolo_v4_tiny().count_floats() == 6_062_814


def test_flops_match_darknet(full_model):
    assert round(count_flops(full_model, 416) / 1e9, 1) == 60.1
    assert round(count_flops(full_model, 608) / 1e9, 1) == 128.4
    assert round(count_flops(yolo_v4_tiny(), 416) / 1e9, 1) == 6.9
    table = summary(full_model, 416)
    assert "64,363,101 trainable parameters" in table and "60.1 BFLOPs" in table
    assert len(table.splitlines()) == 162 + 2


@pytest.mark.slow
@pytest.mark.parametrize("size", [320, 416, 608])
def test_output_shapes(full_model, size):
    with lucid.no_grad():
        maps = full_model.eval()(lucid.random.randn(1, 3, size, size))
    assert [m.shape for m in maps] == [(1, 255, size // s, size // s) for s in (8, 16, 32)]
    assert all(np.isfinite(m.numpy()).all() for m in maps)


def test_seed_example_and_lucid_names():
    model = YOLO_V4(num_classes=3, width_multiple=0.25, depth_multiple=0.33)
    assert model.config.num_classes == 3
    names = {name for name, _ in model.named_children()}
    assert names == {"backbone", "neck", "head"}
    assert [n for n, _ in model.backbone.named_children()] == [
        "stem",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
        "stage5",
    ]
    assert [n for n, _ in model.neck.named_children()] == ["spp", "pan"]
    maps = model(lucid.random.randn(2, 3, 64, 96))
    assert [m.shape for m in maps] == [(2, 24, 8, 12), (2, 24, 4, 6), (2, 24, 2, 3)]


def test_the_seed_predict_example_finds_nothing_before_training():
    # lucid's docs end with print(detections[0][0]): an IndexError on an untrained model,
    # whose scores start at the priors, objectness 0.01 times class 1 / C (docs/api.md)
    lucid.random.seed(0)
    model = YOLO_V4(num_classes=80, width_multiple=0.25, depth_multiple=0.33)
    x = lucid.random.rand(1, 3, 128, 128)
    assert model.predict(x) == [[]]
    scores = [d["score"] for d in model.predict(x, conf_thresh=0)[0]]
    assert scores and max(scores) == pytest.approx(0.01 / 80, rel=0.05)


def test_small_variant_scales_width_and_depth():
    small = yolo_v4(num_classes=3, width_multiple=0.25, depth_multiple=0.33)
    assert small.backbone.stem.out_channels == 8
    assert [len(s.blocks) for s in small.backbone.stages()] == [1, 1, 3, 3, 1]
    assert small.count_parameters() < 4_100_000


def test_tiny_outputs_two_maps():
    tiny = yolo_v4_tiny(num_classes=2)
    maps = tiny(lucid.random.randn(1, 3, 128, 160))
    assert [m.shape for m in maps] == [(1, 21, 8, 10), (1, 21, 4, 5)]


def test_iou_aware_branch_adds_one_channel_per_anchor():
    model = yolo_v4(
        num_classes=2,
        width_multiple=0.125,
        depth_multiple=0.33,
        iou_branch_weight=1.0,
        iou_aware_alpha=0.5,
    )
    assert [m.shape[1] for m in model(lucid.random.randn(1, 3, 64, 64))] == [3 * (6 + 2)] * 3


def test_input_sizes_must_be_multiples_of_32():
    model = yolo_v4(num_classes=1, width_multiple=0.125, depth_multiple=0.33)
    with pytest.raises(ValueError, match=r"multiples of 32, got 100x64"):
        model(lucid.zeros(1, 3, 100, 64))
    with pytest.raises(ValueError, match=r"expects 3 image channels, got 1"):
        model(lucid.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        model(lucid.zeros(3, 64, 64))


@pytest.mark.parametrize(
    "field,value,allowed",
    [
        ("num_classes", 0, "a positive int"),
        ("anchors", [[(10, 13)], [(30, 61)]], "3 lists"),
        ("strides", (8, 16), "3 positive, ascending ints"),
        ("pos_iou_thr", 1.5, r"\[0, 1\]"),
        ("cls_label_smoothing", 1.0, r"\[0, 1\)"),
        ("box_loss", "l1", "one of"),
        ("nms_kind", "soft", "one of"),
        ("width_multiple", 0, r"\(0, 4\]"),
        ("variant", "yolov5", "one of"),
        ("obj_balance", (1.0, -1.0, 1.0), "3 positive numbers"),
    ],
)
def test_invalid_config_fields_name_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ValueError, match=rf"YOLO_V4Config\.{field} = .* is invalid: expected .*{allowed}"):
        YOLO_V4Config(**{field: value})


def test_the_tiny_variant_alone_points_to_tiny_config():
    with pytest.raises(ValueError, match=r"strides = \(8, 16, 32\) is invalid: expected 2 .* tiny_config\(\)"):
        YOLO_V4Config(variant="yolov4-tiny")  # yolov4.cfg's three strides and anchors stay


def test_custom_backbone_as_lucid_allows():
    class Toy(lucid.nn.Module):
        def forward(self, x):
            return (
                lucid.nn.functional.max_pool2d(x, 8),
                lucid.nn.functional.max_pool2d(x, 16),
                lucid.nn.functional.max_pool2d(x, 32),
            )

    config = YOLO_V4Config(num_classes=3, backbone=Toy(), backbone_out_channels=(3, 3, 3), width_multiple=0.125)
    maps = YOLO_V4(config)(lucid.random.randn(1, 3, 64, 64))
    assert [m.shape for m in maps] == [(1, 24, 8, 8), (1, 24, 4, 4), (1, 24, 2, 2)]
    with pytest.raises(ValueError, match="required with a custom backbone"):
        YOLO_V4Config(backbone=Toy())


def test_package_exports():
    assert yolov4.YOLO_V4 is YOLO_V4 and callable(yolov4.yolo_v4_tiny)


def test_a_training_step_is_bit_identical_with_the_element_wise_pool_on_and_off(monkeypatch):
    """Every loss term, gradient and updated weight of a step equals, to the bit, the step with
    minilucid's element-wise pool off (blocks cut small so that every kernel is split)."""
    import minilucid as lucid
    from minilucid import parallel

    image = np.random.default_rng(0).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
    targets = [np.array([[1, 20, 24, 16, 20]], np.float32), np.array([[0, 40, 30, 30, 12]], np.float32)]

    def step(threads: int, min_parallel_size: int):
        parallel.set_num_threads(threads)
        monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", min_parallel_size)
        lucid.random.seed(0)
        model = yolo_v4(num_classes=3, width_multiple=0.125, depth_multiple=0.33)
        optimizer = lucid.optim.SGD(model.parameters(), lr=0.01, momentum=0.949, weight_decay=5e-4)
        loss = model.get_loss(lucid.Tensor(image), targets)
        loss.backward()
        grads = [p.grad.copy() for p in model.parameters()]
        optimizer.step()
        return [loss.numpy(), *grads, *(p.numpy() for p in model.parameters())]

    previous = parallel.get_num_threads()
    monkeypatch.setattr(parallel, "BLOCK_SIZE", 1000)
    try:
        threaded, whole = step(2, 64), step(1, 1 << 60)
    finally:
        parallel.set_num_threads(previous)
    for index, (a, b) in enumerate(zip(threaded, whole, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {index} (0 is the loss)")
