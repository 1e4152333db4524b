"""The reference kernels: each fast kernel against the plain formula kept above it, and the switch.

Each op runs twice on the same inputs, through Tensors: with its fast kernel, and under
``minilucid.reference_kernels()``. The forward output and every gradient agree in float64 to
1e-12, and bit for bit where the docs say the fast kernel equals its reference to the bit:
BatchNorm in training (CmBN too), Mish and LeakyReLU, in float32 as in float64, and
max-pooling's values, winners and gradients. The shapes include batch 1, odd sizes and
arrays large enough for ``minilucid.parallel`` to cut them into blocks.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minilucid as lucid
from minilucid.autograd import Function
from minilucid.nn import functional as F
from minilucid.nn.functional import activation, conv, norm, pool
from tests.conftest import DEVICES

ROOT = Path(__file__).resolve().parents[2]


def wide(shape, seed, dtype=np.float64):
    """Values spread wide enough to reach Mish's clip (x > 20) and its far negative tail."""
    return (np.random.default_rng(seed).standard_normal(shape) * 12).astype(dtype)


def run(make_output, arrays, reference: bool, device: str = "cpu"):
    """``make_output`` on fresh Tensors of ``arrays``, its kernels fast or reference.

    Returns [output, gradient of each input] as NumPy arrays, and the Function that made the output.
    """
    tensors = [lucid.Tensor(a.copy(), requires_grad=True, device=device) for a in arrays]
    with lucid.reference_kernels(reference):
        y = make_output(*tensors)
        upstream = np.random.default_rng(99).standard_normal(y.shape).astype(y.dtype)
        (y * lucid.Tensor(upstream, device=device)).sum().backward()
    return [y.numpy(), *(lucid.backend.as_numpy(t.grad) for t in tensors)], y._creator


def assert_fast_equals_reference(make_output, arrays, bitwise: bool, name: str):
    """Runs both kernels; checks which ran, then their outputs and gradients.

    Returns the reference's [output, gradients...] and the two Functions (fast, reference).
    """
    fast, fast_function = run(make_output, arrays, reference=False)
    expected, reference_function = run(make_output, arrays, reference=True)
    assert type(fast_function).reference is type(reference_function), f"{name}: the reference did not run"
    for index, (got, want) in enumerate(zip(fast, expected, strict=True)):
        message = f"{name}: output {index} (0 is the forward)"
        if bitwise:
            np.testing.assert_array_equal(got, want, err_msg=message)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max(), err_msg=message)
    return expected, fast_function, reference_function


# ----------------------------------------------------------------------------- bit for bit

SHAPES = {
    "batch1_odd": (1, 3, 5, 7),
    "batch4": (4, 8, 12, 12),
    "odd": (3, 5, 19, 23),
    "blocks": (2, 16, 64, 65),  # 133K elements: over parallel.MIN_PARALLEL_SIZE, cut into blocks
}


def batch_norm_train(x, w, b):
    return F.batch_norm(x, None, None, w, b, training=True)


def cross_minibatch_norm(x, w, b):
    """CmBN's second mini-batch, joined to a first one's statistics."""
    first = lucid.Tensor(wide(x.shape, 7, x.dtype) / 4 + 1, device=x.device)
    _, earlier = F.cross_minibatch_norm(first, None, None, None)
    return F.cross_minibatch_norm(x, earlier, None, None, w, b)[0]


BITWISE_OPS = {
    "mish": (F.mish, 1),
    "leaky_relu_0.1": (lambda x: F.leaky_relu(x, 0.1), 1),
    "leaky_relu_0.01": (lambda x: F.leaky_relu(x, 0.01), 1),
    "batch_norm_train": (batch_norm_train, 3),
    "cross_minibatch_norm": (cross_minibatch_norm, 3),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(BITWISE_OPS))
def test_fast_kernels_equal_their_references_bit_for_bit(name, shape, dtype):
    make_output, inputs = BITWISE_OPS[name]
    x = wide(SHAPES[shape], 0, dtype)
    if name.endswith("norm") or name.endswith("train"):
        x = x / 4 + 1  # BatchNorm's input: off zero, a spread of a few units
    channels = x.shape[1]
    affine = [np.linspace(0.5, 1.5, channels).astype(dtype), np.linspace(-1, 1, channels).astype(dtype)]
    assert_fast_equals_reference(make_output, [x, *affine][:inputs], bitwise=True, name=f"{name} {shape}")


def test_batch_norm_on_two_axes_and_its_running_statistics_bit_for_bit():
    """(N, C) input, and the running statistics each kernel moves, from the same start."""
    x = wide((6, 4), 1) / 4 + 1
    results = []
    for reference in (False, True):
        running = [np.zeros(4), np.ones(4)]
        outputs, _ = run(lambda x, running=running: F.batch_norm(x, *running, training=True), [x], reference)
        results.append([*outputs, *running])
    for got, want in zip(*results, strict=True):
        np.testing.assert_array_equal(got, want)


POOLS = [(2, 2, 0), (3, 2, 1), (5, 1, 2), (9, 1, 4), (13, 1, 6), (3, 3, 0), ((3, 2), 1, 1)]


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("kernel, stride, padding", POOLS)
def test_max_pool_equals_its_reference_winners_included(kernel, stride, padding, batch):
    """Small integers make many ties: the same first maximum must win in both.

    Both share the reference's backward, so the gradient is also checked against an
    independent scatter (``numpy.add.at``) onto the reference's winners.
    """
    x = np.random.default_rng(batch).integers(0, 4, (batch, 3, 15, 14)).astype(np.float64)
    make_output = lambda x: F.max_pool2d(x, kernel, stride, padding)  # noqa: E731
    (y, gx), fast, reference = assert_fast_equals_reference(make_output, [x], bitwise=True, name=f"pool {kernel}")
    np.testing.assert_array_equal(fast.winner, reference.winner)
    gy = np.random.default_rng(99).standard_normal(y.shape)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    oh, ow = y.shape[2:]
    rows = np.arange(oh)[:, None] * stride + reference.winner // kw
    cols = np.arange(ow)[None, :] * stride + reference.winner % kw
    planes = np.indices((batch, 3))[..., None, None]  # (2, N, C, 1, 1): image and channel of each output
    expected = np.zeros((batch, 3, 15 + 2 * padding, 14 + 2 * padding))
    np.add.at(expected, (planes[0], planes[1], rows, cols), gy)
    np.testing.assert_array_equal(gx, expected[:, :, padding : padding + 15, padding : padding + 14])


# ----------------------------------------------------------------------------- to 1e-12

CONVS = {  # (x shape, weight shape, stride, padding)
    "1x1": ((2, 3, 5, 4), (4, 3, 1, 1), 1, 0),
    "1x1_stride2": ((1, 3, 5, 5), (2, 3, 1, 1), 2, 0),
    "3x3_same": ((3, 2, 5, 6), (3, 2, 3, 3), 1, 1),
    "3x3_stride2_pad1": ((1, 3, 7, 6), (2, 3, 3, 3), 2, 1),
    "3x3_no_pad": ((2, 2, 9, 7), (2, 2, 3, 3), 1, 0),
    "5x5_stride2_pad2": ((2, 2, 6, 7), (2, 2, 5, 5), 2, 2),
    "3x1_stride3": ((2, 3, 10, 8), (4, 3, 3, 1), 3, 1),
    "large": ((2, 8, 40, 37), (16, 8, 3, 3), 1, 1),  # copies cut into blocks
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("slab_elements", [conv.SLAB_ELEMENTS, 250, 1])
@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv2d_equals_its_reference(name, slab_elements, bias, monkeypatch):
    """The one-image-at-a-time forward in slabs of output rows (whole, a few uneven rows, or one),
    1x1 without columns, and backward image by image, against one im2col and one product for the batch."""
    monkeypatch.setattr(conv, "SLAB_ELEMENTS", slab_elements)
    x_shape, w_shape, stride, padding = CONVS[name]
    arrays = [wide(x_shape, 1) / 12, wide(w_shape, 2) / 12, wide(w_shape[:1], 3) / 12][: 3 if bias else 2]
    make_output = lambda *t: F.conv2d(*t, stride=stride, padding=padding)  # noqa: E731
    assert_fast_equals_reference(make_output, arrays, bitwise=False, name=name)


@pytest.mark.parametrize("reference", [False, True])
def test_conv2d_skips_the_input_gradient_nobody_needs(reference):
    x, w = wide((2, 3, 6, 5), 1), wide((4, 3, 3, 3), 2)
    weights = []
    for kernels in (False, True):
        wt = lucid.Tensor(w, requires_grad=True)
        with lucid.reference_kernels(kernels):
            F.conv2d(lucid.Tensor(x), wt, padding=1).sum().backward()
        weights.append(wt.grad)
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_batch_norm_eval_equals_its_reference(shape):
    """Eval folds the statistics into one scale and shift: equal to rounding, not to the bit."""
    x = wide(SHAPES[shape], 0) / 4 + 1
    channels = x.shape[1]
    stats = [np.linspace(-1, 1, channels), np.linspace(0.5, 2, channels)]

    def batch_norm_eval(x, w, b):
        return F.batch_norm(x, *stats, w, b, training=False)

    arrays = [x, np.linspace(0.5, 1.5, channels), np.linspace(-1, 1, channels)]
    assert_fast_equals_reference(batch_norm_eval, arrays, bitwise=False, name=shape)


GPU_CASES = {
    "mish": (F.mish, [(2, 3, 4, 5)]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), [(2, 3, 4, 5)]),
    "batch_norm_train": (batch_norm_train, [(2, 3, 4, 5), (3,), (3,)]),
    "batch_norm_eval": (
        lambda x: F.batch_norm(
            x, lucid.zeros(3, dtype=x.dtype, device=x.device), lucid.full((3,), 2.0, device=x.device)
        ),
        [(2, 3, 4, 5)],
    ),
    "max_pool": (lambda x: F.max_pool2d(x, 3, 1, 1), [(2, 3, 5, 4)]),
    "conv3x3": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(2, 3, 5, 4), (2, 3, 3, 3)]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(GPU_CASES))
def test_references_run_on_either_device(name, device):
    """The references take ``xp`` from their inputs: on the GPU they give what they give on the CPU."""
    make_output, shapes = GPU_CASES[name]
    arrays = [wide(shape, seed) / 12 + 0.5 for seed, shape in enumerate(shapes)]
    on_device, function = run(make_output, arrays, reference=True, device=device)
    assert type(function).__name__.endswith("Reference")
    on_cpu, _ = run(make_output, arrays, reference=True)
    for got, want in zip(on_device, on_cpu, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- the switch


def made_by() -> str:
    """The class of the Function that makes ``mish`` of a small Tensor, with the kernels as set now."""
    return type(F.mish(lucid.ones(2, requires_grad=True))._creator).__name__


def test_the_context_manager_switches_nests_and_restores_after_an_error():
    assert not lucid.reference_kernels_enabled() and made_by() == "Mish"
    with pytest.raises(RuntimeError, match="inside"), lucid.reference_kernels():
        assert lucid.reference_kernels_enabled() and made_by() == "MishReference"
        with lucid.reference_kernels(False):  # off inside on
            assert made_by() == "Mish"
        assert made_by() == "MishReference"
        raise RuntimeError("inside")
    assert not lucid.reference_kernels_enabled() and made_by() == "Mish"


def test_the_decorator_form():
    @lucid.reference_kernels()
    def inside():
        return lucid.reference_kernels_enabled()

    assert inside() and not lucid.reference_kernels_enabled()


def test_backward_runs_the_kernels_forward_ran():
    """Forward under the references, backward after the block: the op is its reference throughout."""
    x = wide((2, 3, 6, 5), 4) / 4 + 1
    everything_reference, _ = run(batch_norm_train, [x, np.ones(3), np.zeros(3)], reference=True)
    tensors = [lucid.Tensor(a.copy(), requires_grad=True) for a in (x, np.ones(3), np.zeros(3))]
    with lucid.reference_kernels():
        y = batch_norm_train(*tensors)
    upstream = np.random.default_rng(99).standard_normal(y.shape)
    (y * lucid.Tensor(upstream)).sum().backward()
    assert type(y._creator) is norm.BatchNormTrainReference
    for got, want in zip([y.numpy(), *(t.grad for t in tensors)], everything_reference, strict=True):
        np.testing.assert_array_equal(got, want)


def test_every_fast_kernel_names_a_reference_it_derives_from():
    fast = [activation.Mish, activation.LeakyReLU, norm.BatchNormTrain, norm.BatchNormEval, pool.MaxPool2d, conv.Conv2d]
    for cls in fast:
        assert cls.reference is not None and cls.reference.__name__ == cls.__name__ + "Reference"
        assert cls.reference.__module__ == cls.__module__
    with pytest.raises(TypeError, match="Broken.reference must be a class it derives from, got MishReference"):
        type("Broken", (Function,), {"reference": activation.MishReference})


def python_with_environment(value: str) -> subprocess.CompletedProcess:
    code = (
        "import minilucid as lucid; from minilucid.nn import functional as F; "
        "print(lucid.reference_kernels_enabled(), type(F.mish(lucid.ones(2, requires_grad=True))._creator).__name__)"
    )
    environment = {**os.environ, "MINILUCID_REFERENCE_KERNELS": value, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT)


def test_the_environment_variable_is_read_at_import():
    assert python_with_environment("1").stdout.split() == ["True", "MishReference"]
    assert python_with_environment("0").stdout.split() == ["False", "Mish"]
    refused = python_with_environment("yes")
    assert refused.returncode != 0
    assert "MINILUCID_REFERENCE_KERNELS must be 0 or 1, got 'yes'" in refused.stderr


# ----------------------------------------------------------------------------- the demo's model


def graph_functions(root) -> set[str]:
    """The class names of every Function in the graph that made ``root``."""
    seen, names, stack = set(), set(), [root._creator]
    while stack:
        function = stack.pop()
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        names.add(type(function).__name__)
        stack.extend(x._creator for x in function.inputs)
    return names


def train_and_detect(reference: bool):
    """The small YOLOv4 (every kernel the references cover, Mish included) with Adam at 0.004 (the
    demo's recipe before the five-minute one): four updates on 64x64 built-in scenes, seed 0; then
    its BatchNorm statistics set from the training images and detections on four held-out ones."""
    from tests.yolov4.conftest import calibrate
    from yolov4.data.shapes import draw_scene
    from yolov4.model import build_model

    train_rng, held_out_rng = np.random.default_rng(0), np.random.default_rng(1)
    train = [draw_scene(train_rng, 64) for _ in range(8)]
    held_out = lucid.Tensor(np.stack([draw_scene(held_out_rng, 64)[0] for _ in range(4)]))
    lucid.random.seed(0)
    with lucid.reference_kernels(reference):
        model = build_model("small", 3)
        optimizer = lucid.optim.Adam(model.parameters(), lr=0.004)
        losses = []
        for step in range(4):
            batch = train[4 * (step % 2) : 4 * (step % 2) + 4]
            loss = model.get_loss(lucid.Tensor(np.stack([image for image, _ in batch])), [b for _, b in batch])
            if step == 0:
                kinds = graph_functions(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        # Four updates leave the running statistics near their start, which no layer's
        # activations are near yet: eval mode would normalize with the wrong scale.
        calibrate(model, lucid.Tensor(np.stack([image for image, _ in train])))
        detections = model.predict(held_out, conf_thresh=0.01)
    return losses, detections, kinds


def assert_same_detections(got: list[dict], want: list[dict], score_tolerance: float, box_tolerance: float) -> None:
    """The same number of detections, each matched to one of the same class with a box and score
    within the tolerances (matched by box: two scores closer than the rounding may swap places)."""
    assert len(got) == len(want), f"{len(got)} detections against {len(want)}"
    unmatched = list(want)
    for detection in got:
        same_class = [d for d in unmatched if d["class_id"] == detection["class_id"]]
        assert same_class, f"no detection of class {detection['class_id']} left to match {detection}"
        nearest = min(same_class, key=lambda d: np.abs(np.subtract(d["box"], detection["box"])).max())
        np.testing.assert_allclose(detection["box"], nearest["box"], rtol=0, atol=box_tolerance)
        np.testing.assert_allclose(detection["score"], nearest["score"], rtol=0, atol=score_tolerance)
        unmatched.remove(nearest)


def test_the_demo_model_trains_to_the_same_detections_under_the_reference_kernels():
    """Training's kernels equal their references to the bit, or make the same BLAS calls (each
    64x64 image's convolutions fit one slab), so the two runs train alike: measured, the same
    losses to the bit. Eval's BatchNorm rounds differently, so the 78 held-out detections' scores
    differed by up to 4e-7 and their boxes by up to 5e-5 px; the tolerances leave a margin of 20."""
    fast_losses, fast, fast_kinds = train_and_detect(reference=False)
    losses, expected, kinds = train_and_detect(reference=True)
    references = {"Conv2dReference", "BatchNormTrainReference", "MishReference", "LeakyReLUReference"}
    assert references | {"MaxPool2dReference"} <= kinds
    assert not kinds & {"Conv2d", "BatchNormTrain", "Mish", "LeakyReLU", "MaxPool2d"}
    assert {"Conv2d", "BatchNormTrain", "Mish", "LeakyReLU", "MaxPool2d"} <= fast_kinds
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-5)
    assert sum(len(image) for image in expected) >= 20, "too few detections to compare"
    for got, want in zip(fast, expected, strict=True):
        assert_same_detections(got, want, score_tolerance=1e-5, box_tolerance=1e-3)
