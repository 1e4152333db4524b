import numpy as np
import pytest

import minilucid as lucid
from tests.conftest import DEVICES


def test_python_data_becomes_float32_and_arrays_keep_their_dtype():
    assert lucid.Tensor([1, 2, 3]).dtype == np.float32
    assert lucid.Tensor(2.5).dtype == np.float32
    assert lucid.Tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64
    assert lucid.Tensor(np.zeros(2, dtype=np.int64)).dtype == np.int64
    assert lucid.Tensor([True, False]).dtype == np.bool_
    assert lucid.Tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_python_scalars_do_not_promote():
    x32 = lucid.Tensor(np.ones(2, dtype=np.float32))
    x64 = lucid.Tensor(np.ones(2, dtype=np.float64))
    assert (x32 * 2.5 + 1).dtype == np.float32
    assert (1 - x32 / 3).dtype == np.float32
    assert (x64 * 2.5).dtype == np.float64


def test_conversions():
    x = lucid.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and len(x) == 2
    assert isinstance(x.numpy(), np.ndarray)
    assert x.sum().item() == 10.0
    with pytest.raises(ValueError, match="one element"):
        x.item()
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    assert x.device == "cpu" and x.cpu() is x
    assert "requires_grad=True" in repr(x)


def test_factories():
    assert lucid.zeros(2, 3).shape == (2, 3)
    assert lucid.zeros((2, 3)).shape == (2, 3)
    assert lucid.ones(4).numpy().sum() == 4
    assert lucid.full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert lucid.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert lucid.arange(1, 7, 2).numpy().tolist() == [1, 3, 5]
    assert lucid.linspace(0, 1, 5).numpy()[-1] == 1.0
    assert lucid.eye(3).numpy().trace() == 3
    like = lucid.zeros_like(lucid.Tensor(np.ones((2, 5), dtype=np.float64)))
    assert like.shape == (2, 5) and like.dtype == np.float64
    assert lucid.ones_like(lucid.zeros(3)).numpy().tolist() == [1, 1, 1]
    assert lucid.full_like(lucid.zeros(2), 3.0).numpy().tolist() == [3.0, 3.0]
    assert lucid.zeros(2, requires_grad=True).requires_grad


def test_random_is_seeded():
    lucid.random.seed(7)
    a = lucid.random.randn(3, 4).numpy()
    b = lucid.random.rand(5).numpy()
    lucid.random.seed(7)
    np.testing.assert_array_equal(a, lucid.random.randn(3, 4).numpy())
    np.testing.assert_array_equal(b, lucid.random.rand(5).numpy())
    assert a.dtype == np.float32
    ints = lucid.random.randint(0, 5, (1000,)).numpy()
    assert ints.min() == 0 and ints.max() == 4
    u = lucid.random.uniform(-2, 3, (1000,)).numpy()
    assert u.min() >= -2 and u.max() < 3 and u.std() > 1


def test_axis_arguments():
    x = lucid.Tensor(np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    np.testing.assert_array_equal(lucid.sum(x, axis=1).numpy(), x.numpy().sum(axis=1))
    np.testing.assert_array_equal(
        x.mean(axis=(0, 2), keepdims=True).numpy(), x.numpy().mean(axis=(0, 2), keepdims=True)
    )
    np.testing.assert_array_equal(lucid.max(x, axis=-1).numpy(), x.numpy().max(axis=-1))
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), x.numpy().argmax(axis=1))
    parts = lucid.split(x, [1, 3], axis=2)
    assert [p.shape for p in parts] == [(2, 3, 1), (2, 3, 2), (2, 3, 1)]
    assert lucid.stack([x, x], axis=1).shape == (2, 2, 3, 4)
    assert lucid.concatenate([x, x], axis=2).shape == (2, 3, 8)


def test_comparisons_have_no_gradient():
    x = lucid.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad
    assert mask.numpy().tolist() == [True, False, True]


def test_setitem_is_refused_on_tensors_that_need_grad():
    x = lucid.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place assignment"):
        x[0] = 1.0
    with lucid.no_grad():
        x[0] = 1.0
    plain = lucid.zeros(3)
    plain[1:] = 5.0
    assert plain.numpy().tolist() == [0.0, 5.0, 5.0]


@pytest.mark.parametrize("device", DEVICES)
def test_to_device_keeps_values_and_gradient_flows_back(device):
    x = lucid.Tensor(np.arange(4.0), requires_grad=True)
    y = x.to(device)
    assert y.device == device
    (y * y).sum().backward()
    assert x.grad is not None and lucid.backend.device_of(x.grad) == "cpu"
    np.testing.assert_allclose(x.grad, 2 * np.arange(4.0))
