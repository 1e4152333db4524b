"""``minilucid.random``: seeded random tensors (``seed, rand, randn, randint, uniform``).

Numbers are drawn on the CPU from one NumPy ``Generator`` and then moved, so the same seed
gives the same values on the CPU and on the GPU. Ops that need noise on the device itself
(dropout masks) use ``generator(xp)``: on the GPU, a CuPy generator seeded by one draw of
the CPU generator. So the CPU generator's state is the whole random state, GPU included,
and a checkpoint that saves it (``get_state``) resumes a GPU run exactly.
"""

from __future__ import annotations

from typing import Any

import numpy

from minilucid.tensor import DEFAULT_DTYPE, Tensor

_generator = numpy.random.default_rng()


def seed(value: int) -> None:
    """Reseed minilucid's random state (which also drives every GPU draw)."""
    global _generator
    _generator = numpy.random.default_rng(value)


def generator(xp: Any = numpy) -> Any:
    """The generator to draw from for arrays of module ``xp`` (NumPy or CuPy).

    For CuPy it is a new device generator for each draw, seeded from the CPU generator:
    the draws land on the GPU (no copy) and depend on nothing but the CPU state.
    """
    if xp is numpy:
        return _generator
    return xp.random.default_rng(int(_generator.integers(2**63 - 1)))


def get_state() -> dict:
    """The random state (a dict of plain values) for checkpoints; it covers GPU draws too."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state from ``get_state``."""
    _generator.bit_generator.state = state


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _make(array: numpy.ndarray, dtype: Any, requires_grad: bool, device: str) -> Tensor:
    return Tensor(array.astype(dtype, copy=False), requires_grad, device=device)


def rand(*shape, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Uniform samples in [0, 1)."""
    return _make(_generator.random(_shape(shape)), dtype, requires_grad, device)


def randn(*shape, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Standard normal samples."""
    return _make(_generator.standard_normal(_shape(shape)), dtype, requires_grad, device)


def uniform(
    low: float = 0.0,
    high: float = 1.0,
    size: Any = None,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
    device: str = "cpu",
) -> Tensor:
    """Uniform samples in [low, high)."""
    return _make(_generator.uniform(low, high, size), dtype, requires_grad, device)


def randint(
    low: int,
    high: int | None = None,
    size: Any = None,
    dtype: Any = numpy.int64,
    device: str = "cpu",
) -> Tensor:
    """Integers in [low, high) (or [0, low) when high is None)."""
    return _make(numpy.asarray(_generator.integers(low, high, size)), dtype, False, device)


def permutation(n: int, device: str = "cpu") -> Tensor:
    """A random permutation of range(n)."""
    return _make(_generator.permutation(n), numpy.int64, False, device)
