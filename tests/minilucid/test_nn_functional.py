"""Layer functions: float64 gradient checks on every element, extremes, and clear errors."""

import numpy as np
import pytest

import minilucid as lucid
from minilucid.nn import functional as F
from minilucid.testing import gradient_check
from tests.conftest import DEVICES

rng = np.random.default_rng(42)


def normal(*shape):
    return rng.standard_normal(shape)


CONV_CASES = {
    "1x1": (dict(stride=1, padding=0), (2, 3, 5, 4), (4, 3, 1, 1)),
    "1x1_stride2": (dict(stride=2, padding=0), (1, 3, 5, 5), (2, 3, 1, 1)),
    "3x3_same": (dict(stride=1, padding="same"), (2, 2, 5, 6), (3, 2, 3, 3)),
    "3x3_stride2_pad1": (dict(stride=2, padding=1), (1, 3, 7, 6), (2, 3, 3, 3)),
    "3x3_no_pad": (dict(stride=1, padding=0), (1, 2, 5, 5), (2, 2, 3, 3)),
    "5x5_stride2_pad2": (dict(stride=2, padding=2), (1, 2, 6, 7), (2, 2, 5, 5)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv2d_gradients(name, device):
    kwargs, x_shape, w_shape = CONV_CASES[name]
    x, w, b = normal(*x_shape), normal(*w_shape), normal(w_shape[0])
    gradient_check(
        lambda x, w, b: F.conv2d(x, w, b, **kwargs),
        *(lucid.Tensor(a, device=device) for a in (x, w, b)),
    )


@pytest.mark.parametrize("reference", [False, True])
def test_conv2d_matches_a_naive_loop(reference):
    """The oracle: a direct six-loop convolution, independent of im2col, for the fast kernel and its reference."""
    x, w, b = normal(2, 3, 6, 5), normal(4, 3, 3, 3), normal(4)
    stride, pad = 2, 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (6 + 2 * pad - 3) // stride + 1, (5 + 2 * pad - 3) // stride + 1
    expected = np.zeros((2, 4, oh, ow))
    for n in range(2):
        for o in range(4):
            for i in range(oh):
                for j in range(ow):
                    window = xp[n, :, i * stride : i * stride + 3, j * stride : j * stride + 3]
                    expected[n, o, i, j] = (window * w[o]).sum() + b[o]
    with lucid.reference_kernels(reference):
        ours = F.conv2d(lucid.Tensor(x), lucid.Tensor(w), lucid.Tensor(b), stride, pad)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_im2col_and_col2im_are_adjoint():
    """<im2col(x), c> == <x, col2im(c)>: col2im is exactly im2col's transpose."""
    x, kernel, stride, pad = normal(2, 3, 7, 6), (3, 3), 2, 1
    cols = F.im2col(x, kernel, stride, pad)
    c = normal(*cols.shape)
    back = F.col2im(c, x.shape, kernel, stride, pad)
    assert np.isclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_norm_train_gradients(device):
    x, w, b = normal(3, 2, 2, 3), normal(2), normal(2)
    gradient_check(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        *(lucid.Tensor(a, device=device) for a in (x, w, b)),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_batch_norm_eval_gradients(device):
    x, w, b = normal(2, 3, 2, 2), normal(3), normal(3)
    mean = lucid.Tensor(normal(3), device=device)
    var = lucid.Tensor(rng.uniform(0.5, 2, 3), device=device)
    gradient_check(
        lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False),
        *(lucid.Tensor(a, device=device) for a in (x, w, b)),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_cross_minibatch_norm_gradients_over_two_mini_batches(device):
    """The second mini-batch of an update: its gradient flows through the statistics it shares
    with the first, whose values are constants."""
    first, second = normal(2, 3, 2, 3) * 2 + 1, normal(2, 3, 2, 3)
    _, earlier = F.cross_minibatch_norm(lucid.Tensor(first, device=device), None, None, None)
    assert earlier.count == 12
    gradient_check(
        lambda x, w, b: F.cross_minibatch_norm(x, earlier, None, None, w, b)[0],
        *(lucid.Tensor(a, device=device) for a in (second, normal(3), normal(3))),
    )


def test_cross_minibatch_norm_uses_the_statistics_of_the_whole_update():
    gen = np.random.default_rng(0)
    first, second = (gen.standard_normal((2, 3, 4, 4)) + k for k in (0, 3))
    norm = lucid.nn.CrossMiniBatchNorm2d(3, momentum=1.0)  # momentum 1: running = the statistics just used
    norm(lucid.Tensor(first))
    out = norm(lucid.Tensor(second)).numpy()
    both = np.concatenate([first, second])
    mean, var = both.mean(axis=(0, 2, 3)), both.var(axis=(0, 2, 3))
    expected = (second - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.running_mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(norm.running_var.numpy(), var, rtol=1e-6)  # biased, as normalized with
    norm.reset()  # a new update: the second mini-batch alone
    alone = norm(lucid.Tensor(second)).numpy()
    np.testing.assert_allclose(alone.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(alone.var(axis=(0, 2, 3)), 1, atol=1e-4)
    norm.eval()  # eval mode: normalized with the running statistics, which the last batch set
    running = (second - second.mean(axis=(0, 2, 3))[None, :, None, None]) / np.sqrt(
        second.var(axis=(0, 2, 3))[None, :, None, None] + 1e-5
    )
    np.testing.assert_allclose(norm(lucid.Tensor(second)).numpy(), running, rtol=1e-6, atol=1e-6)


LAYER_CASES = {
    "max_pool_2x2": (lambda x: F.max_pool2d(x, 2), (2, 2, 6, 4)),
    "max_pool_3_s1_same": (lambda x: F.max_pool2d(x, 3, 1, "same"), (1, 2, 5, 5)),
    "max_pool_5_s1_same": (lambda x: F.max_pool2d(x, 5, 1, 2), (1, 2, 6, 5)),
    "max_pool_3_s2": (lambda x: F.max_pool2d(x, 3, 2, 1), (1, 1, 7, 7)),
    "upsample_x2": (lambda x: F.interpolate(x, scale_factor=2), (2, 2, 3, 4)),
    "upsample_to_size": (lambda x: F.interpolate(x, size=(5, 7)), (1, 2, 3, 4)),
    "adaptive_avg_pool": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (2, 2, 5, 7)),
    "adaptive_avg_pool_global": (lambda x: F.adaptive_avg_pool2d(x, 1), (2, 3, 4, 4)),
    "relu": (F.relu, (3, 4)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), (3, 4)),
    "mish": (F.mish, (4, 5)),
    "mish_wide_range": (lambda x: F.mish(x * 12), (4, 5)),
    "silu": (F.silu, (3, 4)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_gradients(name, device):
    f, shape = LAYER_CASES[name]
    gradient_check(f, lucid.Tensor(normal(*shape), device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_loss_gradients(device):
    z, y = normal(3, 4) * 3, rng.uniform(0, 1, (3, 4))
    p = rng.uniform(0.05, 0.95, (3, 4))
    t = lambda a: lucid.Tensor(a, device=device)  # noqa: E731
    gradient_check(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=None), t(z), t(y))
    gradient_check(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum"), t(z), t(y))
    gradient_check(lambda p, y: F.binary_cross_entropy(p, y), t(p), t(y))
    gradient_check(lambda a, b: F.mse_loss(a, b), t(z), t(normal(3, 4)))
    gradient_check(lambda x, w, b: F.linear(x, w, b), t(normal(5, 3)), t(normal(4, 3)), t(normal(4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mish_gradient_is_finite_at_extremes(dtype):
    values = np.array([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1e4], dtype=dtype)
    x = lucid.Tensor(values, requires_grad=True)
    y = F.mish(x)
    y.sum().backward()
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad))
    assert y.numpy()[-1] == pytest.approx(1e4) and y.numpy()[0] == pytest.approx(0.0, abs=1e-30)
    assert x.grad[-1] == pytest.approx(1.0) and x.grad[0] == pytest.approx(0.0, abs=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_finite_for_large_logits(dtype):
    z = lucid.Tensor(np.array([-100.0, 100.0, -100.0, 100.0], dtype=dtype), requires_grad=True)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(z, y, reduction=None)
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 100.0, 100.0], atol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(z.grad, [0.0, 0.0, -1.0, 1.0], atol=1e-6)


def test_modules_wrap_the_functions():
    z, y = lucid.Tensor(normal(4)), lucid.Tensor(rng.uniform(0, 1, 4))
    assert lucid.nn.BCEWithLogitsLoss()(z, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(z, y).item())
    per_element = lucid.nn.BCEWithLogitsLoss(reduction=None)(z, y)
    assert per_element.shape == (4,)
    assert lucid.nn.MSELoss(reduction="sum")(z, y).item() == pytest.approx(((z.numpy() - y.numpy()) ** 2).sum())
    p = lucid.sigmoid(z)
    assert lucid.nn.BCELoss()(p, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(z, y).item(), rel=1e-5)


def test_dropout_zeroes_a_fraction_and_keeps_the_mean():
    lucid.random.seed(0)
    x = lucid.ones(200, 200)
    y = F.dropout(x, 0.3, training=True).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02
    assert F.dropout(x, 0.3, training=False) is x


def test_drop_block_drops_whole_squares():
    lucid.random.seed(3)
    x = lucid.ones(4, 8, 40, 40)
    y = F.drop_block(x, block_size=5, drop_prob=0.15, training=True).numpy()
    dropped = y == 0
    assert 0.10 < dropped.mean() < 0.20
    assert abs(y.mean() - 1.0) < 1e-5  # rescaled so the mean is kept
    # Every dropped value lies inside some fully dropped 5x5 square.
    windows = np.lib.stride_tricks.sliding_window_view(dropped, (5, 5), axis=(2, 3)).all(axis=(-2, -1))
    covered = np.zeros_like(dropped)
    for i in range(5):
        for j in range(5):
            covered[:, :, i : i + 36, j : j + 36] |= windows
    assert np.array_equal(covered, dropped)
    assert F.drop_block(x, 5, 0.15, training=False) is x


def test_one_hot():
    rows = F.one_hot(np.array([2, 0, 1]), 3).numpy()
    np.testing.assert_array_equal(rows, np.eye(3)[[2, 0, 1]])
    assert rows.dtype == np.float32
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values from 0 to 3"):
        F.one_hot(np.array([0, 3]), 3)


def test_bad_inputs_get_clear_errors():
    x = lucid.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"input has 3 channels but the weight \(4, 2, 3, 3\) expects 2"):
        F.conv2d(x, lucid.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, H, W\), got \(3, 8, 8\)"):
        F.conv2d(lucid.zeros(3, 8, 8), lucid.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        F.conv2d(lucid.zeros(1, 3, 2, 2), lucid.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="padding must be"):
        F.conv2d(x, lucid.zeros(4, 3, 3, 3), padding="valid")
    with pytest.raises(ValueError, match="input has 3 channels but weight/bias have shapes"):
        F.batch_norm(x, None, None, lucid.ones(4), lucid.zeros(4), training=True)
    _, earlier = F.cross_minibatch_norm(lucid.ones(2, 4, 2, 2), None, None, None)
    with pytest.raises(ValueError, match="input has 3 channels but the earlier statistics have 4"):
        F.cross_minibatch_norm(x, earlier, None, None)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match=r"input shape \(2,\) and target shape \(3,\) differ"):
        F.binary_cross_entropy_with_logits(lucid.zeros(2), lucid.zeros(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(lucid.zeros(2), lucid.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="linear: input has 3 features but the weight"):
        F.linear(lucid.zeros(2, 3), lucid.zeros(4, 5))
