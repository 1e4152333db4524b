"""``Tensor``: an array (NumPy or CuPy) with an optional gradient, as in lucid 2.x.

The arithmetic, shape and reduction methods are thin calls into ``minilucid.ops``, where
each operation's forward and backward live; this file is only the container.
"""

from __future__ import annotations

from typing import Any

import numpy

from minilucid import backend

DEFAULT_DTYPE = numpy.float32


def as_array(data: Any, dtype: Any = None, device: str | None = None) -> Any:
    """Turn ``data`` into an xp array on ``device`` with lucid's dtype rules.

    Python numbers and lists become float32 (bools stay bool); an existing NumPy or CuPy
    array keeps its dtype unless ``dtype`` is given, so float64 gradient checks stay float64.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, numpy.ndarray) or backend.is_gpu_array(data):
        array = data if dtype is None else data.astype(dtype, copy=False)
    else:
        array = numpy.asarray(data, dtype=dtype)
        if dtype is None and array.dtype.kind in "fiuc" and array.dtype != DEFAULT_DTYPE:
            array = array.astype(DEFAULT_DTYPE)
    if device is not None and backend.device_of(array) != device:
        array = backend.to_device(array, device)
    return array


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: a number, nested list, NumPy/CuPy array or Tensor.
        requires_grad: whether ``backward`` should compute ``.grad`` for this tensor.
        dtype: array dtype; float32 by default for Python data.
        device: ``"cpu"`` or ``"gpu"``; by default where ``data`` already is (the CPU for
            Python data), so ``Tensor(cupy_array)`` stays on the GPU.
    """

    __array_ufunc__ = None  # `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None) -> None:
        if device is not None:
            backend.check_device(device)
        self.data = as_array(data, dtype, device)
        self.requires_grad = bool(requires_grad)
        self.grad: Any = None
        self._creator = None  # the Function that made this tensor, None for a leaf
        self._generation = 0
        self._retains_grad = False

    @classmethod
    def _from_array(cls, array: Any, requires_grad: bool = False) -> Tensor:
        """Wrap an array that is already in the right place and dtype (no checks, no copy)."""
        tensor = cls.__new__(cls)
        tensor.data = array
        tensor.requires_grad = requires_grad
        tensor.grad = None
        tensor._creator = None
        tensor._generation = 0
        tensor._retains_grad = False
        return tensor

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """Whether no Function made this tensor (it was created, not computed)."""
        return self._creator is None

    @property
    def grad_fn(self) -> Any:
        """The Function that made this tensor (its ``inputs`` lead back through the graph), or
        None for a leaf; PyTorch's name."""
        return self._creator

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = ", device='gpu'" if self.device == "gpu" else ""
        return f"Tensor({backend.as_numpy(self.data)!r}{grad}{device})"

    # ------------------------------------------------------------------ autograd
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Compute gradients of this tensor with respect to the leaves that require them.

        ``grad`` defaults to ones (the gradient of ``sum(self)``).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        xp = backend.get_array_module(self.data)
        if grad is None:
            seed = xp.ones_like(self.data)
        else:
            seed = as_array(grad, self.dtype, self.device)
            if seed.shape != self.shape:
                raise ValueError(f"backward: grad has shape {seed.shape}, expected {self.shape}")
        _autograd.backward(self, seed, retain_graph)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor too."""
        self._retains_grad = True
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._from_array(self.data)

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> numpy.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.as_numpy(self.data)

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: str) -> Tensor:
        """This tensor on ``device``; gradients flow back to the original."""
        backend.check_device(device)
        return self if device == self.device else _ops.to_device(self, device)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def gpu(self) -> Tensor:
        return self.to("gpu")

    def astype(self, dtype: Any) -> Tensor:
        return _ops.astype(self, dtype)

    def float(self) -> Tensor:
        return _ops.astype(self, numpy.float32)

    def double(self) -> Tensor:
        return _ops.astype(self, numpy.float64)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, exponent):
        return _ops.power(self, exponent)

    def __rpow__(self, base):
        return _ops.power(base, self)

    def __neg__(self):
        return _ops.neg(self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __abs__(self):
        return _ops.abs(self)

    # Comparisons give boolean tensors without a gradient.
    def __eq__(self, other):  # type: ignore[override]
        return _ops.compare("equal", self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _ops.compare("not_equal", self, other)

    def __lt__(self, other):
        return _ops.compare("less", self, other)

    def __le__(self, other):
        return _ops.compare("less_equal", self, other)

    def __gt__(self, other):
        return _ops.compare("greater", self, other)

    def __ge__(self, other):
        return _ops.compare("greater_equal", self, other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is ambiguous")
        return bool(self.data)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        if self.requires_grad and _autograd.grad_enabled():
            raise RuntimeError(
                "in-place assignment into a tensor that requires grad would break backward; "
                "build a new tensor (e.g. with where) or assign under no_grad()"
            )
        self.data[_ops.raw_index(index, self.device)] = as_array(value, self.dtype, self.device)

    # ------------------------------------------------------------------ methods
    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    def transpose(self, *axes):
        return _ops.transpose(self, *axes)

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    def swapaxes(self, axis1: int, axis2: int):
        return _ops.swapaxes(self, axis1, axis2)

    def flatten(self, start_axis: int = 0, end_axis: int = -1):
        return _ops.flatten(self, start_axis, end_axis)

    def squeeze(self, axis=None):
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis: int):
        return _ops.expand_dims(self, axis)

    def expand_dims(self, axis: int):
        return _ops.expand_dims(self, axis)

    def sum(self, axis=None, keepdims: bool = False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _ops.mean(self, axis, keepdims)

    def var(self, axis=None, keepdims: bool = False):
        return _ops.var(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return _ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return _ops.min(self, axis, keepdims)

    def argmax(self, axis=None):
        return _ops.argmax(self, axis)

    def argmin(self, axis=None):
        return _ops.argmin(self, axis)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def tanh(self):
        return _ops.tanh(self)

    def clip(self, min_value=None, max_value=None):
        return _ops.clip(self, min_value, max_value)


from minilucid import autograd as _autograd  # noqa: E402  (they build Tensors: import last)
from minilucid import ops as _ops  # noqa: E402
