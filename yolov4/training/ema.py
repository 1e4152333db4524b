"""``EMA``: an exponential moving average of a model's weights, which the trainer evaluates
and saves beside the weights it trains (``TrainConfig.ema``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from minilucid import backend, nn


class EMA:
    """An exponential moving average of the weights (and BatchNorm statistics), with the
    decay ramped up over the first updates: decay * (1 - exp(-updates / ramp)). The usual
    ramp of 2000 suits long runs: a run of 1000 updates ends with 0.39 x decay, an average
    over fewer than two updates, so a short run needs a shorter ramp."""

    def __init__(self, model: nn.Module, decay: float, ramp: int = 2000) -> None:
        self.decay, self.ramp, self.updates = decay, ramp, 0
        self.shadow = {k: v.copy() for k, v in model.state_dict().items()}

    def update(self, model: nn.Module) -> None:
        """Move the average one update towards ``model``'s current weights."""
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.ramp))
        for key, value in model.state_dict().items():
            if backend.device_of(self.shadow[key]) != backend.device_of(value):  # the model moved
                self.shadow[key] = backend.to_device(self.shadow[key], backend.device_of(value))
            self.shadow[key] *= d
            self.shadow[key] += (1 - d) * value

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block the model holds the averaged weights; afterwards its own again."""
        own = {k: v.copy() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        """The number of updates and the averaged arrays, for a checkpoint."""
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``state_dict()``, on the device the average is on."""
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key][...] = backend.to_device(value, backend.device_of(self.shadow[key]))
