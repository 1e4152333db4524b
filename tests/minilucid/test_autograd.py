import gc
import weakref

import numpy as np
import pytest

import minilucid as lucid
from minilucid.autograd import Function, sum_to


def test_reused_tensor_accumulates():
    x = lucid.Tensor(3.0, requires_grad=True)
    y = x * x + x  # x used three times
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_diamond_graph():
    x = lucid.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = x.exp()
    b = a * 2
    c = a * 3
    (b + c).sum().backward()
    np.testing.assert_allclose(x.grad, 5 * np.exp([1.0, 2.0]))


def test_grad_accumulates_across_backward_calls_until_zeroed():
    x = lucid.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


def test_broadcast_gradients_are_reduced_to_each_input():
    a = lucid.Tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = lucid.Tensor(np.ones((3, 1)), requires_grad=True)
    c = lucid.Tensor(np.ones(()), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3, 1) and np.all(b.grad == 8)
    assert c.grad.shape == () and c.grad == 24
    assert a.grad.shape == (2, 3, 4)


def test_sum_to():
    g = np.ones((2, 3, 4))
    assert sum_to(g, (3, 1)).shape == (3, 1)
    assert sum_to(g, (3, 1))[0, 0] == 8
    assert sum_to(g, ()).item() == 24
    assert sum_to(g, (2, 3, 4)) is g


def test_a_wrong_gradient_shape_is_caught():
    class Broken(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum(axis=0)  # forgot the shape

    x = lucid.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(
        RuntimeError,
        match=r"Broken.backward returned a gradient of shape \(3,\) for an input of shape \(2, 3\)",
    ):
        Broken()(x).sum().backward()


def test_no_grad_context_and_decorator():
    x = lucid.Tensor([1.0], requires_grad=True)
    with lucid.no_grad():
        assert not lucid.grad_enabled()
        y = x * 2
    assert lucid.grad_enabled()
    assert not y.requires_grad and y.is_leaf

    @lucid.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert (x * 2).requires_grad


def test_only_leaves_keep_grad_unless_asked():
    x = lucid.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    k = (x * 4).retain_grad()
    (h + k).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad, [1.0, 1.0])


def test_graph_is_freed_after_backward_unless_retained():
    x = lucid.Tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [8.0])
    with pytest.raises(RuntimeError, match="a second time"):
        y.backward()


def test_unused_output_of_multi_output_op_gets_zero_gradient():
    x = lucid.Tensor(np.arange(6.0), requires_grad=True)
    first, _second = lucid.split(x, 2)
    (first * 2).sum().backward()
    np.testing.assert_allclose(x.grad, [2, 2, 2, 0, 0, 0])


def test_a_chain_of_ten_thousand_ops_backprops_without_recursion():
    x = lucid.Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**10_000], rtol=1e-9)


def test_graph_memory_is_released_after_backward():
    x = lucid.Tensor(np.ones(1000), requires_grad=True)
    y = x
    middle = None
    for i in range(10_000):
        y = y + 1.0
        if i == 5_000:
            middle = weakref.ref(y)
    gc.collect()
    assert middle() is not None  # the graph holds it
    y.sum().backward()
    gc.collect()
    assert middle() is None  # released with the graph
    np.testing.assert_allclose(x.grad, np.ones(1000))


def test_a_deep_graph_that_is_dropped_unused_is_collected():
    x = lucid.Tensor(np.ones(10), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    probe = weakref.ref(y._creator)
    del y
    gc.collect()
    assert probe() is None


def test_grad_fn_leads_back_through_the_graph():
    x = lucid.Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = y + x
    assert x.grad_fn is None and x.is_leaf
    assert type(z.grad_fn).__name__ == "Add"
    assert z.grad_fn.inputs[0] is y and z.grad_fn.inputs[1] is x
    assert type(y.grad_fn).__name__ == "Mul" and y.grad_fn.inputs[0] is x
    with lucid.no_grad():
        assert (x * 3).grad_fn is None  # nothing recorded, nothing to lead back to


def test_backward_takes_one_generation_in_the_order_the_forward_made_it():
    """Among Functions of one generation the last made runs its backward first, whatever order
    the loss reaches them in: processes that share a batch (minilucid.data_parallel) must reach
    their BatchNorms in the same order although their losses' graphs differ."""
    calls = []

    class Recorded(Function):
        def __init__(self, name):
            self.name = name

        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            calls.append(self.name)
            return gy

    orders = []
    for b_first in (False, True):
        calls.clear()
        x = lucid.Tensor(np.ones(3), requires_grad=True)
        a, b = Recorded("a")(x), Recorded("b")(x)  # one generation, a made first
        loss = b.sum() + a.sum() if b_first else a.sum() + b.sum()
        loss.backward()
        orders.append(list(calls))
    assert orders == [["b", "a"], ["b", "a"]]
