"""Every differentiable tensor op passes a float64 central-difference check on every element."""

import numpy as np
import pytest

import minilucid as lucid
from minilucid.testing import gradient_check
from tests.conftest import DEVICES

rng = np.random.default_rng(0)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def normal(*shape):
    return rng.standard_normal(shape)


W43, W423 = normal(4, 3), normal(4, 2, 3)

UNARY = {
    "neg": (lambda x: -x, normal(3, 4)),
    "exp": (lucid.exp, normal(3, 4)),
    "log": (lucid.log, positive(3, 4)),
    "sqrt": (lucid.sqrt, positive(3, 4)),
    "abs": (lucid.abs, normal(3, 4)),
    "sigmoid": (lucid.sigmoid, 5 * normal(3, 4)),
    "tanh": (lucid.tanh, normal(3, 4)),
    "softplus": (lucid.softplus, 5 * normal(3, 4)),
    "arctan": (lucid.arctan, 2 * normal(3, 4)),
    "clip": (lambda x: lucid.clip(x, -0.5, 0.7), normal(4, 5)),
    "pow": (lambda x: x**3, normal(3, 4)),
    "pow_fractional": (lambda x: x**0.5, positive(3, 4)),
    "sum_all": (lambda x: x.sum(), normal(3, 4)),
    "sum_axis": (lambda x: lucid.sum(x, axis=(0, 2), keepdims=True), normal(2, 3, 4)),
    "mean": (lambda x: x.mean(axis=1), normal(3, 4)),
    "var": (lambda x: x.var(axis=0), normal(5, 3)),
    "max": (lambda x: lucid.max(x, axis=1), normal(3, 5)),
    "min_all": (lambda x: x.min(), normal(3, 5)),
    "reshape": (lambda x: x.reshape(4, 3) * W43, normal(3, 4)),
    "transpose": (lambda x: x.transpose(2, 0, 1) * W423, normal(2, 3, 4)),
    "getitem_basic": (lambda x: x[1:, ::2, None, 1], normal(3, 4, 2)),
    "getitem_repeated": (lambda x: x[np.array([0, 2, 0, 0])], normal(3, 4)),
    "getitem_mask": (lambda x: x[np.array([True, False, True])], normal(3, 4)),
    "split": (
        lambda x: lucid.split(x, [1, 3], axis=1)[1] * 2 + lucid.split(x, [1, 3], axis=1)[0].sum(),
        normal(2, 5),
    ),
    "squeeze_expand": (lambda x: x.unsqueeze(0).squeeze(0).flatten(), normal(3, 4)),
}

BINARY = {
    "add_broadcast": (lambda a, b: a + b, normal(2, 3, 4), normal(3, 1)),
    "sub_broadcast": (lambda a, b: a - b, normal(3, 4), normal(4)),
    "mul_broadcast": (lambda a, b: a * b, normal(2, 1, 4), normal(3, 1)),
    "div": (lambda a, b: a / b, normal(3, 4), positive(3, 4)),
    "maximum": (lucid.maximum, normal(3, 4), normal(3, 4)),
    "minimum": (lucid.minimum, normal(3, 4), normal(1, 4)),
    "power_tensor": (lucid.power, positive(3, 4), normal(3, 4)),
    "where": (
        lambda a, b: lucid.where(np.array([True, False, True, False]), a, b),
        normal(3, 4),
        normal(4),
    ),
    "matmul": (lucid.matmul, normal(3, 4), normal(4, 5)),
    "matmul_batched_broadcast": (lucid.matmul, normal(2, 3, 4), normal(4, 5)),
    "matmul_vector_matrix": (lucid.matmul, normal(4), normal(4, 3)),
    "matmul_matrix_vector": (lucid.matmul, normal(3, 4), normal(4)),
    "concatenate": (lambda a, b: lucid.concatenate([a, b, a], axis=1), normal(2, 3), normal(2, 2)),
    "stack": (lambda a, b: lucid.stack([a, b], axis=1), normal(2, 3), normal(2, 3)),
}


def on(device, *arrays):
    return [lucid.Tensor(a, device=device) for a in arrays]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name, device):
    f, x = UNARY[name]
    gradient_check(f, *on(device, x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients(name, device):
    f, a, b = BINARY[name]
    gradient_check(f, *on(device, a, b))


def test_forward_values_match_numpy():
    a, b = normal(3, 4), positive(3, 4)
    ta, tb = lucid.Tensor(a), lucid.Tensor(b)
    np.testing.assert_allclose((ta / tb).numpy(), a / b)
    np.testing.assert_allclose(lucid.softplus(ta).numpy(), np.log1p(np.exp(a)))
    np.testing.assert_allclose(lucid.sigmoid(ta).numpy(), 1 / (1 + np.exp(-a)))
    np.testing.assert_allclose(lucid.arctan(ta).numpy(), np.arctan(a))
    np.testing.assert_allclose(ta.var(axis=0).numpy(), a.var(axis=0))
    np.testing.assert_allclose(lucid.matmul(ta, tb.T).numpy(), a @ b.T)


def test_sigmoid_and_softplus_are_stable_at_extremes():
    x = lucid.Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32), requires_grad=True)
    s = lucid.sigmoid(x)
    assert np.all(np.isfinite(s.numpy()))
    assert s.numpy()[1] == pytest.approx(np.exp(-50.0), rel=1e-5)  # tiny values keep precision
    sp = lucid.softplus(x)
    np.testing.assert_allclose(sp.numpy(), [0.0, np.exp(-50.0), np.log(2), 50.0, 1000.0], rtol=1e-6)
    (s.sum() + sp.sum()).backward()
    assert np.all(np.isfinite(x.grad))


def test_astype_casts_the_gradient_back():
    x = lucid.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_max_ties_share_the_gradient():
    x = lucid.Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.5, 0.5])


def test_matmul_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) do not align"):
        lucid.matmul(lucid.zeros(3, 4), lucid.zeros(5, 2))
    with pytest.raises(ValueError, match="at least 1-D"):
        lucid.matmul(lucid.Tensor(2.0), lucid.zeros(2))


def test_mixed_devices_are_refused(monkeypatch):
    from minilucid.autograd import Function

    a = lucid.zeros(2)
    b = lucid.zeros(2)
    monkeypatch.setattr(type(b), "device", property(lambda self: "gpu" if self is b else "cpu"))
    with pytest.raises(RuntimeError, match="different devices"):
        Function.__call__(lucid.ops.Add(), a, b)
