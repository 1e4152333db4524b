"""Losses: binary cross-entropy (on probabilities and on logits) and mean squared error.

``reduction`` is ``"mean"``, ``"sum"`` or ``None``/``"none"`` (per-element losses), as lucid.

BCE with logits z and targets y is written in its stable form
max(z, 0) - z * y + log(1 + exp(-|z|)), finite for any z; its gradient is sigmoid(z) - y.
"""

from __future__ import annotations

from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.ops import _tensor_like, stable_sigmoid
from minilucid.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none", None)


def reduce(loss: Tensor, reduction) -> Tensor:
    """Apply a loss ``reduction`` to per-element losses."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_shapes(name: str, x: Tensor, target: Tensor) -> None:
    if x.shape != target.shape:
        raise ValueError(f"{name}: input shape {x.shape} and target shape {target.shape} differ")


class BCEWithLogits(Function):
    def forward(self, z, y):
        xp = get_array_module(z)
        self.save_for_backward(z, y)
        return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, gl):
        z, y = self.saved
        gz = gl * (stable_sigmoid(z) - y) if self.needs_input_grad[0] else None
        gy = -gl * z if self.needs_input_grad[1] else None
        return gz, gy


class BCE(Function):
    """-(y log p + (1 - y) log(1 - p)) with each log clamped at -100, as PyTorch."""

    def forward(self, p, y):
        xp = get_array_module(p)
        self.save_for_backward(p, y)
        log_p = xp.maximum(xp.log(p), -100)
        log_q = xp.maximum(xp.log1p(-p), -100)
        return -(y * log_p + (1 - y) * log_q)

    def backward(self, gl):
        p, y = self.saved
        xp = get_array_module(p)
        gp = gl * (p - y) / xp.maximum((1 - p) * p, 1e-12) if self.needs_input_grad[0] else None
        gy = None
        if self.needs_input_grad[1]:
            gy = -gl * (xp.maximum(xp.log(p), -100) - xp.maximum(xp.log1p(-p), -100))
        return gp, gy


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction="mean") -> Tensor:
    """BCE between sigmoid(input) and target, computed from the logits stably."""
    target = _tensor_like(target, input)
    _check_shapes("binary_cross_entropy_with_logits", input, target)
    loss = BCEWithLogits()(input, target)
    return reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction="mean") -> Tensor:
    """BCE between probabilities ``input`` in [0, 1] and ``target``."""
    target = _tensor_like(target, input)
    _check_shapes("binary_cross_entropy", input, target)
    loss = BCE()(input, target)
    return reduce(loss if weight is None else loss * weight, reduction)


def mse_loss(input: Tensor, target, reduction="mean") -> Tensor:
    """(input - target)^2."""
    target = _tensor_like(target, input)
    _check_shapes("mse_loss", input, target)
    diff = input - target
    return reduce(diff * diff, reduction)
