"""Adam (Kingma & Ba) and AdamW (decoupled weight decay, Loshchilov & Hutter), as PyTorch:

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
    p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Adam adds weight_decay * p to g (L2); AdamW instead shrinks p by (1 - lr * weight_decay).
The step runs as a kernel of ``minilucid.parallel`` (every core, cache-sized blocks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

from minilucid import parallel
from minilucid.backend import get_array_module
from minilucid.optim.optimizer import Optimizer


class Adam(Optimizer):
    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def update(self, param, grad, group, state) -> None:
        xp = get_array_module(param.data)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        hyper = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], self.decoupled_weight_decay)
        kernel = functools.partial(_adam_kernel, hyper=hyper, t=state["step"])
        parallel.elementwise(kernel, param.data, grad, state["exp_avg"], state["exp_avg_sq"])


def _adam_kernel(p, grad, m, v, hyper, t: int) -> None:
    """One Adam step of p, m and v in place, the formula of the module's docstring."""
    lr, beta1, beta2, eps, decay, decoupled = hyper
    if decay and decoupled:
        p *= 1 - lr * decay
    elif decay:
        grad = grad + decay * p
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    denominator = get_array_module(v).sqrt(v) / math.sqrt(1 - beta2**t) + eps
    p -= (lr / (1 - beta1**t)) * m / denominator


class AdamW(Adam):
    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
