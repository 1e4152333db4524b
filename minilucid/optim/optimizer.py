"""``Optimizer``: parameter groups, per-parameter state and ``state_dict``.

State is keyed by a parameter's position in the optimizer's parameter list, never by object
id, so a saved state loads into a freshly built model. Updates work on raw arrays in place
(``p.data``); gradients are read, never modified, since one gradient array may be shared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from minilucid import backend
from minilucid.nn.module import Parameter


class Optimizer:
    """Base class: subclasses implement ``update(param, grad, group, state)``."""

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Parameter) and not getattr(p, "requires_grad", False):
                    raise TypeError(f"{type(self).__name__} can only optimize tensors that require grad")
            self.param_groups.append(group)
        self.state: dict[int, dict[str, Any]] = {}

    def _indexed_params(self):
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield index, p, group
                index += 1

    def zero_grad(self) -> None:
        """Forget the gradients of every parameter."""
        for _, p, _ in self._indexed_params():
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient.

        A parameter's state (momentum, Adam's moments) follows it to its device, so a model
        moved with ``.to(device)`` after some steps keeps training with its state.
        """
        for index, p, group in self._indexed_params():
            if p.grad is not None:
                state = self.state.setdefault(index, {})
                device = p.device
                for key, value in state.items():
                    if hasattr(value, "shape") and backend.device_of(value) != device:
                        state[key] = backend.to_device(value, device)
                self.update(p, p.grad, group, state)

    def update(self, param: Parameter, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Apply one step to ``param.data`` in place."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: value}}, "param_groups": [hyperparameters, ...]}."""
        groups = []
        start = 0
        for group in self.param_groups:
            count = len(group["params"])
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + count))})
            start += count
        state = {
            i: {k: backend.as_numpy(v) if hasattr(v, "shape") else v for k, v in s.items()}
            for i, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict`` (also after ``load``)."""
        groups = list(state_dict["param_groups"])
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: {len(groups)} parameter groups saved, optimizer has {len(self.param_groups)}"
            )
        for saved, group in zip(groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: a group saved with {len(saved['params'])} parameters "
                    f"does not fit one with {len(group['params'])}"
                )
            for key, value in saved.items():
                if key != "params":
                    group[key] = _plain(value)
        params = [p for _, p, _ in self._indexed_params()]
        self.state = {}
        # An optimizer that has not stepped has no state, and save() keeps no empty dict.
        for index, values in state_dict.get("state", {}).items():
            p = params[int(index)]
            self.state[int(index)] = {
                k: backend.to_device(v, p.device) if getattr(v, "ndim", 0) > 0 else _plain(v) for k, v in values.items()
            }


def _plain(value: Any) -> Any:
    """A 0-d array (as ``minilucid.load`` returns scalars) back to a Python value."""
    if hasattr(value, "ndim") and value.ndim == 0:
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value
