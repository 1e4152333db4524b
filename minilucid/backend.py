"""The one place that knows about NumPy versus CuPy.

Every op asks this module for ``xp`` (the array module of its inputs) instead of calling
``numpy`` on data directly, so the same code runs on the CPU and, through CuPy, on an
NVIDIA GPU. Devices are the strings ``"cpu"`` and ``"gpu"``, as in lucid.

CuPy can be installed (any wheel: cupy-cuda12x, cupy-cuda13x, ...) on a machine with no
driver or no GPU; then ``import cupy`` works and the first array fails. So "is the GPU
usable" is answered by actually making an array, once, and the answer is cached.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy

try:  # CuPy is optional: the `gpu` extra.
    import cupy
except Exception as error:  # ImportError, or a broken CUDA install raising on import
    cupy = None
    _CUPY_IMPORT_ERROR: Exception | None = error
else:
    _CUPY_IMPORT_ERROR = None

DEVICES = ("cpu", "gpu")


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine cannot use; the message says what is missing."""


@functools.cache
def _gpu_status() -> tuple[bool, str]:
    """(usable, reason): try CuPy for real, once."""
    if cupy is None:
        return False, (
            f"CuPy is not importable ({_CUPY_IMPORT_ERROR}); install the gpu extra from the repository's "
            "folder (pip install -e '.[gpu]') or a CuPy wheel matching your CUDA (pip install cupy-cuda12x)"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "CuPy is installed but no NVIDIA GPU is visible"
        (cupy.arange(4, dtype=cupy.float32) * 2).sum().item()
    except Exception as error:
        return False, f"CuPy is installed but the GPU is not usable: {error}"
    return True, f"CuPy {cupy.__version__} on {count} GPU(s)"


def gpu_available() -> bool:
    """True when CuPy imports and a GPU really runs a kernel."""
    return _gpu_status()[0]


def gpu_status() -> str:
    """One line saying whether the GPU is usable, and why not if it is not."""
    return _gpu_status()[1]


def check_device(device: str) -> str:
    """Validate a device string; asking for ``"gpu"`` without one is a clear error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "gpu" and not gpu_available():
        raise DeviceUnavailableError(f"device 'gpu' was requested but is not available: {gpu_status()}")
    return device


def is_gpu_array(array: Any) -> bool:
    """True for a CuPy ndarray."""
    return cupy is not None and isinstance(array, cupy.ndarray)


def is_scalar(value: Any) -> bool:
    """True for a NumPy scalar (``numpy.float32(2)``): CuPy takes it as a kernel argument."""
    return isinstance(value, numpy.generic)


def get_array_module(*arrays: Any):
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (as DeZero and Chainer do)."""
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    return numpy


def device_of(array: Any) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "gpu" if is_gpu_array(array) else "cpu"


def xp_for(device: str):
    """The array module that holds data on ``device``."""
    return cupy if check_device(device) == "gpu" else numpy


def as_numpy(array: Any) -> numpy.ndarray:
    """A NumPy array with the same values (a copy from the GPU, or the array itself)."""
    if is_gpu_array(array):
        return cupy.asnumpy(array)
    return numpy.asarray(array)


def as_cupy(array: Any):
    """A CuPy array with the same values; a clear error when there is no usable GPU."""
    check_device("gpu")
    return cupy.asarray(array)


def to_device(array: Any, device: str):
    """Move ``array`` to ``device``; returns the array itself when it is already there."""
    return as_cupy(array) if check_device(device) == "gpu" else as_numpy(array)


def as_strided(array: Any, shape: tuple[int, ...], strides: tuple[int, ...]):
    """A strided view of ``array`` (NumPy's or CuPy's ``as_strided``); writes are not allowed."""
    if is_gpu_array(array):
        return cupy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return numpy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides, writeable=False)


def bin_sums(index: Any, values: Any, size: int) -> Any:
    """A length-``size`` array whose element k is the sum of ``values`` where ``index == k``.

    NumPy's ``bincount`` is the fastest way on the CPU; CuPy's syncs with the host to learn the
    largest index, so on the GPU it is an atomic scatter-add into zeros instead.
    """
    if is_gpu_array(values):
        import cupyx

        sums = cupy.zeros(size, dtype=values.dtype)
        cupyx.scatter_add(sums, index, values)
        return sums
    return numpy.bincount(index, weights=values, minlength=size).astype(values.dtype, copy=False)


_CONSTANTS: dict[tuple, Any] = {}


def constant(key: tuple, device: str, make: Any) -> Any:
    """``make()`` (a NumPy array) on ``device``, made and copied there once per ``key``.

    For arrays that depend only on shapes (grids, anchors, resampling matrices): on the GPU
    each would otherwise be a host-to-device copy in every step.
    """
    full_key = (*key, device)
    if full_key not in _CONSTANTS:
        _CONSTANTS[full_key] = to_device(make(), device)
    return _CONSTANTS[full_key]


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices summed (``numpy.add.at``), in place."""
    if is_gpu_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        numpy.add.at(target, index, values)
