import numpy as np
import pytest

import minilucid as lucid
from minilucid.autograd import Function
from minilucid.testing import gradient_check


class WrongSquare(Function):
    """x^2 whose backward is off by one element: the check must point at that element."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        (x,) = self.saved
        g = 2 * x * gy
        g[1, 2] += 0.01
        return g


def test_gradient_check_finds_the_worst_element():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3, 4\)\): worst element \(1, 2\)"):
        gradient_check(lambda t: WrongSquare()(t), x)


def test_gradient_check_passes_a_correct_op_and_needs_float64():
    gradient_check(lambda t: t * t, np.random.default_rng(1).standard_normal((2, 3)))
    with pytest.raises(TypeError, match="float64"):
        gradient_check(lambda t: t * t, np.ones(3, dtype=np.float32))
    assert lucid.Tensor(1.0).dtype == np.float32


def test_gradient_check_works_on_non_contiguous_inputs():
    """A sliced input used to be nudged through a copy, so every numeric gradient read 0."""
    x = np.random.default_rng(0).standard_normal((2, 9, 8))[:, :5, :5]  # a view no flat view can cover
    assert not x.flags.c_contiguous
    gradient_check(lambda t: (t * t).sum(), lucid.Tensor(x))
    before = x.copy()
    gradient_check(lambda t: lucid.tanh(t), x)
    np.testing.assert_array_equal(x, before)  # the caller's array is left alone
