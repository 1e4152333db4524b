"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

The update is PyTorch's (and so darknet's with its momentum 0.949 and decay 0.0005):
    g = grad + weight_decay * p
    buf = g on the first step, then momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (Nesterov) or buf
    p = p - lr * g
"""

from __future__ import annotations

from collections.abc import Iterable

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
        g = grad + group["weight_decay"] * p if group["weight_decay"] else grad
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * g
