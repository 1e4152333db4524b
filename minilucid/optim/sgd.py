"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

The update is PyTorch's (and so darknet's with its momentum 0.949 and decay 0.0005):
    g = grad + weight_decay * p
    buf = g on the first step, then momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (Nesterov) or buf
    p = p - lr * g

The step runs as a kernel of ``minilucid.parallel``: on every core, in cache-sized blocks,
so each parameter is read and written once instead of once per line above.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from minilucid import parallel
from minilucid.backend import get_array_module
from minilucid.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            dampening=dampening,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, group, state) -> None:
        p = param.data
        buf = state.get("momentum_buffer")
        first = buf is None
        if group["momentum"] and first:
            dtype = get_array_module(p).result_type(grad, p) if group["weight_decay"] else grad.dtype
            buf = state["momentum_buffer"] = get_array_module(p).empty(p.shape, dtype=dtype)
        hyper = (group["lr"], group["momentum"], group["dampening"], group["weight_decay"], group["nesterov"])
        parallel.elementwise(functools.partial(_sgd_kernel, hyper=hyper, first=first), p, grad, buf)


def _sgd_kernel(p, grad, buf, hyper, first: bool) -> None:
    """One SGD step of p in place, the formula of the module's docstring (buf is None without momentum)."""
    lr, momentum, dampening, weight_decay, nesterov = hyper
    g = grad + weight_decay * p if weight_decay else grad
    if momentum:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g
