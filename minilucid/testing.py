"""Checks for people who write ops: a float64 central-difference gradient check.

``gradient_check(f, *inputs)`` compares the gradient that ``backward`` computes with the
numerical one, (f(x + eps) - f(x - eps)) / (2 eps), for *every* element of every input,
and on failure names the worst element. f's output is contracted with fixed random weights
first, so every output element takes part (a plain sum would hide some errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from minilucid import backend
from minilucid.autograd import no_grad
from minilucid.tensor import Tensor


def numerical_gradient(f: Callable[..., Tensor], inputs: list[Tensor], weights: Any, eps: float) -> list[Any]:
    """Central differences of sum(f(*inputs) * weights) with respect to each input."""
    grads = []
    with no_grad():
        for x in inputs:
            grad = numpy.zeros(x.shape, dtype=numpy.float64)
            flat = x.data.reshape(-1)  # a view: nudging it nudges x
            for i in range(flat.size):
                original = flat[i].item()
                flat[i] = original + eps
                up = float((f(*inputs).data * weights).sum())
                flat[i] = original - eps
                down = float((f(*inputs).data * weights).sum())
                flat[i] = original
                grad.reshape(-1)[i] = (up - down) / (2 * eps)
            grads.append(grad)
    return grads


def gradient_check(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> None:
    """Assert that backward's gradients of ``f`` match central differences everywhere.

    Inputs are float64 arrays or Tensors (on any device); each becomes a leaf that requires
    grad. Raises AssertionError naming the input, the worst element, both values and the error.
    """
    tensors = [
        Tensor(
            # a contiguous copy: the finite differences nudge it through a flat view
            numpy.array(backend.as_numpy(x.data if isinstance(x, Tensor) else x), order="C"),
            requires_grad=True,
            device=x.device if isinstance(x, Tensor) else "cpu",
        )
        for x in inputs
    ]
    for index, t in enumerate(tensors):
        if t.dtype != numpy.float64:
            raise TypeError(f"gradient_check needs float64 inputs; input {index} is {t.dtype}")
    output = f(*tensors)
    rng = numpy.random.default_rng(seed)
    weights_cpu = rng.uniform(0.5, 1.5, output.shape) * rng.choice([-1.0, 1.0], output.shape)
    weights = backend.to_device(weights_cpu, output.device)
    output.backward(weights)
    numeric = numerical_gradient(f, tensors, weights, eps)
    for index, (t, expected) in enumerate(zip(tensors, numeric, strict=True)):
        analytic = numpy.zeros(t.shape) if t.grad is None else backend.as_numpy(t.grad)
        error = numpy.abs(analytic - expected) - (atol + rtol * numpy.abs(expected))
        worst = numpy.unravel_index(int(numpy.argmax(error)), t.shape) if t.size else ()
        if t.size and error[worst] > 0:
            raise AssertionError(
                f"gradient check failed for input {index} (shape {t.shape}): worst element "
                f"{tuple(int(i) for i in worst)} has analytic {analytic[worst]:.10g} vs numeric "
                f"{expected[worst]:.10g} (|diff| {abs(analytic[worst] - expected[worst]):.3g}, "
                f"rtol {rtol}, atol {atol})"
            )
