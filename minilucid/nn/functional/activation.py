"""Activations: ReLU, LeakyReLU, Mish, SiLU (sigmoid, tanh and softplus are in ``minilucid.ops``).

Each saves only its input (which the graph holds anyway) and rebuilds what it needs in
backward, so an activation adds no memory to a training step.

Mish(x) = x * tanh(softplus(x)). With e = exp(x) and n = e * (e + 2),
tanh(softplus(x)) = n / (n + 2): one exponential, no log. For x >= 20 the ratio is 1 to
float precision, so x is clipped at 20 before the exponential, which also keeps e * e far
from overflow. The derivative is t + x * 4 e (e + 1) / (n + 2)^2 with t = n / (n + 2); for very
negative x every term goes to 0 and nothing becomes NaN.

Mish and LeakyReLU each keep their plain formula as a Function class directly above the
fast one (``MishReference``, ``LeakyReLUReference``), which runs instead under
``minilucid.reference_kernels()``. The fast ones run as in-place kernels of
``minilucid.parallel`` and equal their references bit for bit (docs/performance.md, "Mish and
LeakyReLU", says why they are written this way).
"""

from __future__ import annotations

from minilucid import parallel
from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.ops import stable_sigmoid
from minilucid.tensor import Tensor

MISH_CLIP = 20.0  # tanh(softplus(20)) == 1 - 8.5e-18: exactly 1 in float32 and float64


class ReLU(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        (x,) = self.saved
        return gy * (x > 0)


class LeakyReLUReference(Function):
    """x where x > 0, slope * x elsewhere; the gradient is gy where x > 0, slope * gy elsewhere."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).where(x > 0, x, x * self.slope)

    def backward(self, gy):
        (x,) = self.saved
        return get_array_module(gy).where(x > 0, gy, gy * self.slope)


class LeakyReLU(LeakyReLUReference):
    """max(x, slope * x), which for 0 <= slope <= 1 is ``LeakyReLUReference``'s x where x > 0 and
    slope * x elsewhere, without ``where`` (docs/performance.md), in blocks."""

    reference = LeakyReLUReference

    def forward(self, x):
        self.save_for_backward(x)
        y = get_array_module(x).empty(x.shape, dtype=x.dtype)
        return parallel.elementwise(_leaky_relu_kernel, y, x, self.slope)

    def backward(self, gy):
        (x,) = self.saved
        gx = get_array_module(gy).empty(x.shape, dtype=gy.dtype)
        return parallel.elementwise(_leaky_relu_grad_kernel, gx, x, gy, self.slope)


def _leaky_relu_kernel(y, x, slope) -> None:
    """Equals: y = maximum(x, x * slope) (``maximum``, not ``where``: see docs/performance.md)."""
    xp = get_array_module(x)
    xp.multiply(x, slope, out=y)
    xp.maximum(x, y, out=y)


def _leaky_relu_grad_kernel(gx, x, gy, slope) -> None:
    """Equals: gx = gy * ((x > 0) * (1 - slope) + slope): gy where x > 0, slope * gy elsewhere."""
    gx[...] = x > 0  # 1.0 or 0.0
    gx *= 1 - slope
    gx += slope
    gx *= gy


class MishReference(Function):
    """Mish(x) = x * tanh(softplus(x)) with one exponential, one new array per operation.

    With e = exp(x) and n = e (e + 2), tanh(softplus(x)) = tanh(log(1 + e)) = n / (n + 2), and
    the derivative is t + x * 4 e (e + 1) / (n + 2)^2 with t = n / (n + 2). x is clipped at 20
    before the exponential (the ratio is 1 there to float precision). ``Mish`` below equals
    this bit for bit.
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        e = xp.exp(xp.minimum(x, MISH_CLIP))
        n = e * (e + 2)
        return x * (n / (n + 2))

    def backward(self, gy):
        (x,) = self.saved
        xp = get_array_module(x)
        e = xp.exp(xp.minimum(x, MISH_CLIP))
        n = e * (e + 2)
        t = n / (n + 2)
        return ((e + 1) * e * 4 / ((n + 2) * (n + 2)) * x + t) * gy  # (x * 4 e (e + 1) / (n + 2)^2 + t) * gy


def _mish_parts(x):
    """(e, n) with e = exp(min(x, 20)), n = e * (e + 2)."""
    xp = get_array_module(x)
    e = xp.minimum(x, MISH_CLIP)
    xp.exp(e, out=e)
    n = e + 2
    n *= e
    return e, n


class Mish(MishReference):
    """``MishReference`` in place, in blocks, equal to it bit for bit."""

    reference = MishReference

    def forward(self, x):
        self.save_for_backward(x)
        y = get_array_module(x).empty(x.shape, dtype=x.dtype)
        return parallel.elementwise(_mish_kernel, y, x)

    def backward(self, gy):
        (x,) = self.saved
        gx = get_array_module(gy).empty(x.shape, dtype=x.dtype)
        return parallel.elementwise(_mish_grad_kernel, gx, x, gy)


def _mish_kernel(y, x) -> None:
    """Equals: y = x * tanh(softplus(x)), computed as x * n / (n + 2)."""
    xp = get_array_module(x)
    e, n = _mish_parts(x)
    n_plus_2 = xp.add(n, 2, out=e)  # written over e, which is not needed again
    xp.divide(n, n_plus_2, out=y)  # tanh(softplus(x))
    y *= x


def _mish_grad_kernel(gx, x, gy) -> None:
    """Equals: gx = gy * (t + x * 4 e (e + 1) / (n + 2)^2), with t = n / (n + 2) = tanh(softplus(x))."""
    xp = get_array_module(x)
    e, n = _mish_parts(x)
    denominator = n + 2
    t = xp.divide(n, denominator, out=n)  # written over n, which is not needed again
    denominator *= denominator  # (n + 2)^2
    xp.add(e, 1, out=gx)  # gx = 4 e (e + 1) / (n + 2)^2, then the rest of the formula
    gx *= e
    gx *= 4
    gx /= denominator
    gx *= x
    gx += t
    gx *= gy


class SiLU(Function):
    def forward(self, x):
        s = stable_sigmoid(x)
        self.save_for_backward(x, s)
        return x * s

    def backward(self, gy):
        x, s = self.saved
        return gy * s * (1 + x * (1 - s))


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return ReLU()(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise (YOLOv4's neck uses 0.1); slope in [0, 1]."""
    if not 0 <= negative_slope <= 1:
        raise ValueError(f"leaky_relu: negative_slope must be in [0, 1], got {negative_slope}")
    return LeakyReLU(negative_slope)(x)


def mish(x: Tensor) -> Tensor:
    """x * tanh(softplus(x)), with one exponential and a gradient finite everywhere."""
    return Mish()(x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return SiLU()(x)
