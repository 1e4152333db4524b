"""Learning-rate schedules, each a closed form ``lr_at(base_lr, step)``.

Closed forms make resuming exact: a scheduler's whole state is its step count. ``step()``
advances it and writes the new rate into every parameter group.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

from minilucid.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``lr_at(base_lr, step)``."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, step: int) -> float:
        """The learning rate after ``step`` calls of ``step()``."""
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self) -> None:
        """Advance one step (an iteration or an epoch, as the caller counts)."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        self._apply()


class LambdaLR(LRScheduler):
    """base_lr * lr_lambda(step)."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.lr_lambda(step)


class StepLR(LRScheduler):
    """base_lr * gamma ** (step // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class MultiStepLR(LRScheduler):
    """base_lr * gamma ** (number of milestones passed): darknet's ``policy=steps``."""

    def __init__(self, optimizer: Optimizer, milestones: list[int], gamma: float = 0.1) -> None:
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, step)


class CosineAnnealingLR(LRScheduler):
    """eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class BurnIn(LRScheduler):
    """darknet's burn-in warm-up: base_lr * (step / burn_in) ** power for the first
    ``burn_in`` steps, then the schedule ``after`` (or a constant rate) from there on."""

    def __init__(
        self,
        optimizer: Optimizer,
        burn_in: int = 1000,
        power: float = 4.0,
        after: LRScheduler | None = None,
    ) -> None:
        if burn_in < 0:
            raise ValueError(f"BurnIn: burn_in must be >= 0, got {burn_in}")
        self.burn_in, self.power, self.after = burn_in, power, after
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        if step < self.burn_in:
            return base_lr * (step / self.burn_in) ** self.power
        return self.after.lr_at(base_lr, step) if self.after is not None else base_lr
