"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ... (lucid's names).

Every factory takes ``dtype`` (float32 by default), ``requires_grad`` and ``device``.
"""

from __future__ import annotations

from typing import Any

from minilucid import backend
from minilucid.tensor import DEFAULT_DTYPE, Tensor


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _make(array: Any, requires_grad: bool) -> Tensor:
    return Tensor._from_array(array, requires_grad)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: str = "cpu") -> Tensor:
    """A new tensor from a number, list, array or tensor."""
    return Tensor(data, requires_grad, dtype, device)


def zeros(*shape, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False, device: str = "cpu"):
    """A tensor of zeros; ``shape`` as separate ints or one tuple."""
    return _make(backend.xp_for(device).zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False, device: str = "cpu"):
    """A tensor of ones."""
    return _make(backend.xp_for(device).ones(_shape(shape), dtype=dtype), requires_grad)


def empty(*shape, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False, device: str = "cpu"):
    """An uninitialized tensor."""
    return _make(backend.xp_for(device).empty(_shape(shape), dtype=dtype), requires_grad)


def full(
    shape,
    fill_value: float,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
    device: str = "cpu",
):
    """A tensor filled with ``fill_value``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(backend.xp_for(device).full(shape, fill_value, dtype=dtype), requires_grad)


def zeros_like(x, dtype: Any = None, requires_grad: bool = False, device: str | None = None):
    """Zeros with the shape (and dtype, device) of ``x``."""
    return zeros(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad, device=device or _device(x))


def ones_like(x, dtype: Any = None, requires_grad: bool = False, device: str | None = None):
    """Ones with the shape (and dtype, device) of ``x``."""
    return ones(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad, device=device or _device(x))


def full_like(x, fill_value: float, dtype: Any = None, requires_grad: bool = False, device: str | None = None):
    """``fill_value`` with the shape (and dtype, device) of ``x``."""
    return full(
        x.shape,
        fill_value,
        dtype=dtype or x.dtype,
        requires_grad=requires_grad,
        device=device or _device(x),
    )


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
    device: str = "cpu",
):
    """Evenly spaced values in [start, stop), as ``numpy.arange``."""
    if stop is None:
        start, stop = 0, start
    return _make(backend.xp_for(device).arange(start, stop, step, dtype=dtype), requires_grad)


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
    device: str = "cpu",
):
    """``num`` evenly spaced values from start to stop inclusive."""
    return _make(backend.xp_for(device).linspace(start, stop, num, dtype=dtype), requires_grad)


def eye(
    n: int,
    m: int | None = None,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
    device: str = "cpu",
):
    """An identity matrix."""
    return _make(backend.xp_for(device).eye(n, m, dtype=dtype), requires_grad)


def _device(x: Any) -> str:
    return x.device if isinstance(x, Tensor) else backend.device_of(x)


__all__ = [
    "tensor",
    "zeros",
    "ones",
    "empty",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "linspace",
    "eye",
]
