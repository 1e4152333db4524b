"""A strict stand-in for CuPy that runs on the CPU, so CI proves the GPU path without a GPU.

It wraps NumPy, but behaves as CuPy does wherever NumPy-minded code goes wrong on a GPU:

- ``ndarray`` is not a ``numpy.ndarray`` subclass, and ``numpy.asarray`` on it raises
  TypeError: device data reaches the host only through ``get``, ``asnumpy`` and friends.
- A host array with ndim > 0 meeting a device array, in an op or an assignment, raises
  TypeError. Python numbers, NumPy scalars and 0-d host arrays are scalars, as in CuPy.
- ``.data`` is a pointer-like object, not an array; reductions and integer indexing return
  0-d device arrays, never NumPy scalars; binary operators with NumPy arrays defer to us.
- Only names that CuPy 14 has exist (``cupy_api.json``, read off ``dir()`` of a real CuPy).

It counts what costs time on a GPU (``COUNTS``): host-to-device copies (``h2d``),
device-to-host copies (``d2h``, with their sizes) and blocking syncs (``syncs``: ``bool``,
``float``, ``int``, ``item``, ``tolist``, ``get``, ``asnumpy``, printing, and the calls whose
result size depends on the data: ``nonzero``, boolean-mask indexing, ``bincount``, ``unique``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy

API = json.loads((Path(__file__).parent / "cupy_api.json").read_text())
__version__ = f"{API['version']}-standin"


@dataclass
class Counts:
    """Transfers and syncs seen since the last ``reset``; ``events`` says where each came from."""

    h2d: int = 0
    d2h: int = 0
    syncs: int = 0
    d2h_bytes: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.h2d = self.d2h = self.syncs = 0
        self.d2h_bytes.clear()
        self.events.clear()

    def record(self, kind: str, what: str, nbytes: int = 0) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if kind == "d2h":
            self.d2h_bytes.append(nbytes)
        self.events.append(f"{kind}: {what}")


COUNTS = Counts()


@contextlib.contextmanager
def counting():
    """Count from zero inside the block; yields the live ``Counts``."""
    COUNTS.reset()
    yield COUNTS


class MemoryPointer:
    """What ``cupy.ndarray.data`` is: an address, not an array."""

    def __init__(self, array: numpy.ndarray) -> None:
        self.ptr = array.__array_interface__["data"][0]

    def __repr__(self) -> str:
        return f"<MemoryPointer 0x{self.ptr:x} (a device address, not an array)>"


class Device:
    id = 0

    def synchronize(self) -> None:
        pass


def _mixing_error(value: numpy.ndarray, where: str) -> TypeError:
    return TypeError(
        f"{where}: a host numpy.ndarray of shape {value.shape} met a device array "
        "(CuPy never copies implicitly; use cupy.asarray or minilucid.backend.to_device)"
    )


def _unwrap(value, where: str):
    """Device arrays to their NumPy payload, for calling NumPy; host arrays refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray):
        if value.ndim > 0:
            raise _mixing_error(value, where)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, where) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results back to device arrays; NumPy scalars become 0-d arrays, as in CuPy."""
    if isinstance(value, numpy.ndarray):
        return ndarray(value)
    if isinstance(value, numpy.generic):
        return ndarray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _check_elementwise(args, name: str) -> None:
    """CuPy's element-wise kernels take device arrays and scalars only."""
    for arg in args:
        if isinstance(arg, (list, tuple)):
            raise TypeError(f"cupy.{name}: unsupported type {type(arg).__name__} (CuPy takes no lists here)")


def _is_boolean_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, ndarray) and p.dtype == numpy.bool_ for p in parts)


def _host_index(index, where: str):
    """Index parts as NumPy sees them; host index arrays are refused like other host arrays."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for part in parts:
        if isinstance(part, list):
            COUNTS.record("h2d", f"{where}: a list index")
            part = numpy.asarray(part)
        elif isinstance(part, ndarray):
            part = part._a
        elif isinstance(part, numpy.ndarray) and part.ndim > 0:
            raise _mixing_error(part, where)
        out.append(part)
    return tuple(out) if isinstance(index, tuple) else out[0]


class ndarray:  # noqa: N801  (CuPy's name)
    """A device array: a NumPy array behind CuPy's rules."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, array: numpy.ndarray) -> None:
        if not isinstance(array, numpy.ndarray):
            raise TypeError(f"stand-in ndarray wraps a numpy.ndarray, got {type(array).__name__}")
        self._a = array

    # -- what a device array refuses
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
            "explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            return NotImplemented
        return getattr(_module, ufunc.__name__)(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if name not in API["cupy"]:
            return NotImplemented
        return getattr(_module, name)(*args, **kwargs)

    # -- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    data = property(lambda self: MemoryPointer(self._a))
    device = property(lambda self: Device())

    @property
    def base(self):
        return None if self._a.base is None else ndarray(numpy.asarray(self._a.base))

    # -- host reads: each one waits for the GPU
    def _sync(self, what: str) -> numpy.ndarray:
        COUNTS.record("syncs", what)
        return self._a

    def get(self, stream=None, order="C", out=None) -> numpy.ndarray:
        COUNTS.record("d2h", f"get {self.shape}", self.nbytes)
        return self._sync(f"get {self.shape}").copy()

    def item(self):
        return self._sync("item").item()

    def tolist(self):
        COUNTS.record("d2h", f"tolist {self.shape}", self.nbytes)
        return self._sync("tolist").tolist()

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self._sync("bool"))

    def __float__(self) -> float:
        return float(self._sync("float"))

    def __int__(self) -> int:
        return int(self._sync("int"))

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.ndim != 0:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._sync("index"))

    def __complex__(self) -> complex:
        return complex(self._sync("complex"))

    def __repr__(self) -> str:
        return repr(self._sync("repr")).replace("array(", "array(", 1)

    def __str__(self) -> str:
        return str(self._sync("str"))

    def __format__(self, spec: str) -> str:
        return format(self._sync("format").item() if self.ndim == 0 else self._a, spec)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray(numpy.asarray(self._a[i])) for i in range(len(self._a)))

    # -- indexing
    def __getitem__(self, index):
        if _is_boolean_mask(index):
            COUNTS.record("syncs", "boolean-mask indexing")
        result = self._a[_host_index(index, "indexing")]
        return _wrap(result)

    def __setitem__(self, index, value) -> None:
        if _is_boolean_mask(index):
            COUNTS.record("syncs", "boolean-mask assignment")
        if isinstance(value, numpy.ndarray) and value.ndim > 0:
            raise _mixing_error(value, "assignment into a device array")
        if isinstance(value, (list, tuple)):
            raise TypeError("assignment into a device array: a list value would need an implicit host copy")
        self._a[_host_index(index, "assignment")] = _unwrap(value, "assignment")

    # -- methods CuPy has: NumPy's, with results kept on the device
    def __getattr__(self, name: str):
        if name.startswith("_") or name not in API["ndarray"]:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name)

        def call(*args, **kwargs):
            args, kwargs = _unwrap(args, f"ndarray.{name}"), _unwrap(kwargs, f"ndarray.{name}")
            if name == "nonzero":
                COUNTS.record("syncs", "ndarray.nonzero")
            return _wrap(method(*args, **kwargs))

        return call

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return ndarray(self._a.astype(dtype, order=order, copy=copy))

    def reshape(self, *shape, order="C"):
        return ndarray(self._a.reshape(*shape, order=order))

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())


def _binary(name: str, reflected: bool = False, inplace: bool = False):
    ufunc_method = getattr(numpy.ndarray, name)

    def method(self, other):
        if isinstance(other, numpy.ndarray) and other.ndim > 0:
            raise _mixing_error(other, f"ndarray.{name}")
        if isinstance(other, (list, tuple)):
            raise TypeError(f"ndarray.{name}: unsupported type {type(other).__name__}")
        if not isinstance(other, (ndarray, numpy.ndarray, numpy.generic, int, float, bool, complex)):
            return NotImplemented
        result = ufunc_method(self._a, _unwrap(other, name))
        if result is NotImplemented:
            return result
        if inplace:
            return self
        return _wrap(result)

    method.__name__ = name
    return method


for _name in [
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
] + ["radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rmod", "rpow", "rmatmul", "rand", "ror", "rxor"]:
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor"]:
    setattr(ndarray, f"__i{_name}__", _binary(f"__i{_name}__", inplace=True))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda n: lambda self: ndarray(getattr(self._a, f"__{n}__")()))(_name))
ndarray.__hash__ = None


# ----------------------------------------------------------------------------- module functions

SYNCING = {"nonzero", "argwhere", "flatnonzero", "bincount", "unique"}
CONVERTERS = {"asarray", "array", "ascontiguousarray", "asfortranarray"}


def _to_device(value, name: str):
    """cupy.asarray and friends: host data is copied up (counted), device data kept."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (list, tuple)) and any(isinstance(v, ndarray) for v in value):
        return numpy.asarray([v._a if isinstance(v, ndarray) else v for v in value])
    COUNTS.record("h2d", f"cupy.{name} of {type(value).__name__}")
    return value


def _converter(name: str):
    numpy_function = getattr(numpy, name)

    def convert(a, dtype=None, *args, **kwargs):
        return ndarray(numpy.asarray(numpy_function(_to_device(a, name), dtype, *args, **kwargs)))

    convert.__name__ = name
    return convert


def _function(name: str):
    numpy_function = getattr(numpy, name)
    is_ufunc = isinstance(numpy_function, numpy.ufunc)

    def call(*args, **kwargs):
        if is_ufunc:
            _check_elementwise(args, name)
        if name in SYNCING:
            COUNTS.record("syncs", f"cupy.{name}")
        result = numpy_function(*_unwrap(args, f"cupy.{name}"), **_unwrap(kwargs, f"cupy.{name}"))
        out = kwargs.get("out")
        if isinstance(out, ndarray):
            return out
        return _wrap(result)

    call.__name__ = name
    if is_ufunc:
        call.at = lambda target, index, values=None: numpy_function.at(
            _unwrap(target, name), _host_index(index, name), _unwrap(values, name)
        )
    return call


def asnumpy(a, stream=None, order="C", out=None) -> numpy.ndarray:
    """Device to host; host data passes through."""
    if isinstance(a, ndarray):
        return a.get()
    return numpy.asarray(a)


def get_array_module(*args):
    return _module if any(isinstance(a, ndarray) for a in args) else numpy


class _StandinModule(types.ModuleType):
    """``cupy``: CuPy's names only, NumPy's behaviour under CuPy's rules."""

    ndarray = ndarray
    asnumpy = staticmethod(asnumpy)
    get_array_module = staticmethod(get_array_module)
    __version__ = __version__

    def __getattr__(self, name: str):
        if name not in API["cupy"]:
            raise AttributeError(f"module 'cupy' has no attribute {name!r} (the stand-in knows CuPy's names)")
        value = getattr(numpy, name, None)
        if value is None:
            raise AttributeError(f"the CuPy stand-in does not implement cupy.{name}")
        if isinstance(value, type) or not callable(value):  # dtypes, finfo/iinfo, constants
            result = value
        elif name in CONVERTERS:
            result = _converter(name)
        else:
            result = _function(name)
        setattr(self, name, result)  # looked up once
        return result


_module = _StandinModule("cupy")
_module.COUNTS = COUNTS
_module.counting = counting


# -- cupy.random: generators that draw straight onto the device


class Generator:
    """``cupy.random.Generator``: NumPy's draws, made on the device (no copy counted)."""

    def __init__(self, seed=None) -> None:
        self._numpy = numpy.random.default_rng(seed)

    def __getattr__(self, name: str):
        if name not in API["cupy.random.Generator"]:
            raise AttributeError(f"'cupy.random.Generator' has no attribute {name!r}")
        method = getattr(self._numpy, name)
        return lambda *args, **kwargs: _wrap(numpy.asarray(method(*_unwrap(args, name), **_unwrap(kwargs, name))))


_random = types.ModuleType("cupy.random")
_random.Generator = Generator
_random.default_rng = lambda seed=None: Generator(seed)
_module.random = _random

# -- cupy.lib.stride_tricks.as_strided
_lib = types.ModuleType("cupy.lib")
_lib.stride_tricks = types.SimpleNamespace(
    as_strided=lambda x, shape=None, strides=None: ndarray(
        numpy.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides)
    )
)
_module.lib = _lib

# -- cupy.cuda: one device that always answers


class _MemoryPool:
    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass


_pool = _MemoryPool()
_module.cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, deviceSynchronize=lambda: None),
    Device=lambda device_id=0: Device(),
    get_device_id=lambda: 0,
)
_module.get_default_memory_pool = lambda: _pool

# -- cupyx.scatter_add: an atomic add on the GPU, no sync
cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = lambda a, slices, value: numpy.add.at(
    _unwrap(a, "cupyx.scatter_add"), _host_index(slices, "cupyx.scatter_add"), _unwrap(value, "cupyx.scatter_add")
)


def install() -> types.ModuleType:
    """Make ``import cupy`` and ``import cupyx`` give the stand-in; returns it."""
    sys.modules["cupy"] = _module
    sys.modules["cupy.random"] = _random
    sys.modules["cupyx"] = cupyx
    return _module


cupy = _module
