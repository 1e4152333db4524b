"""Tensor operations, each a ``Function`` (forward and backward on raw arrays) plus the
lower-case function that users call, as in lucid: ``minilucid.exp(x)``, ``x.exp()``.

Arrays are NumPy or CuPy; every op takes ``xp`` from its inputs.
"""

from __future__ import annotations

import builtins
import itertools
import math
from typing import Any

from minilucid import backend
from minilucid.autograd import Function
from minilucid.backend import get_array_module, is_scalar
from minilucid.tensor import Tensor, as_array

# ----------------------------------------------------------------------------- helpers


def _tensor_like(value: Any, like: Tensor) -> Tensor:
    """Wrap a number or array so it can meet ``like`` in an operation.

    A Python number becomes a NumPy scalar of ``like``'s float dtype, so ``x * 2`` stays
    float32 (or float64), and on the GPU it is a kernel argument, not an uploaded array.
    Arrays go to ``like``'s device.
    """
    if isinstance(value, Tensor):
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and like.dtype.kind == "f":
        return Tensor._from_array(like.dtype.type(value))
    return Tensor._from_array(as_array(value, None, like.device))


def _operands_as_tensors(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """The two operands of a binary op as Tensors, a number or array made like the Tensor beside it."""
    if isinstance(a, Tensor):
        return a, _tensor_like(b, a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    return _tensor_like(a, b), b


def stable_sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)) as exp(min(x, 0)) / (1 + exp(-|x|)): no exponential overflows, and
    tiny results (x << 0) keep their relative precision."""
    xp = get_array_module(x)
    denominator = xp.exp(-xp.abs(x))
    denominator += 1
    y = xp.exp(xp.minimum(x, 0))
    y /= denominator
    return y


def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


# ----------------------------------------------------------------------------- arithmetic


class Add(Function):
    broadcasts = True

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    broadcasts = True

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy


class Mul(Function):
    broadcasts = True

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        ga = gy * b if self.needs_input_grad[0] else None
        gb = gy * a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    broadcasts = True

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved
        ga = gy / b
        gb = -ga * a / b if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """x ** p for a constant exponent p."""

    def __init__(self, exponent: float) -> None:
        self.exponent = exponent

    def forward(self, x):
        self.save_for_backward(x)
        return x**self.exponent

    def backward(self, gy):
        (x,) = self.saved
        return gy * self.exponent * x ** (self.exponent - 1)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Maximum(Function):
    """Element-wise max; at ties each side gets half the gradient (as in PyTorch)."""

    broadcasts = True

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return get_array_module(a, b).maximum(a, b)

    def backward(self, gy):
        a, b = self.saved
        share = _winner_share(a > b, a == b, gy.dtype)  # 1 where a wins, 0.5 at a tie, 0 where b wins
        return gy * share, gy * (1 - share)


class Minimum(Function):
    """Element-wise min; at ties each side gets half the gradient (as in PyTorch)."""

    broadcasts = True

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return get_array_module(a, b).minimum(a, b)

    def backward(self, gy):
        a, b = self.saved
        share = _winner_share(a < b, a == b, gy.dtype)
        return gy * share, gy * (1 - share)


def _winner_share(wins, ties, dtype):
    """1 where a side wins, 0.5 at a tie, 0 where it loses, in the gradient's dtype."""
    share = wins.astype(dtype)
    share += ties.astype(dtype) * dtype.type(0.5)
    return share


def add(a, b) -> Tensor:
    """a + b with broadcasting."""
    return Add()(*_operands_as_tensors(a, b))


def sub(a, b) -> Tensor:
    """a - b with broadcasting."""
    return Sub()(*_operands_as_tensors(a, b))


def mul(a, b) -> Tensor:
    """a * b with broadcasting."""
    return Mul()(*_operands_as_tensors(a, b))


def div(a, b) -> Tensor:
    """a / b with broadcasting."""
    return Div()(*_operands_as_tensors(a, b))


def neg(x) -> Tensor:
    """-x."""
    return Neg()(x)


def power(base, exponent) -> Tensor:
    """base ** exponent; a tensor exponent goes through exp(exponent * log(base))."""
    if isinstance(exponent, Tensor):
        if isinstance(base, (int, float)):  # 2 ** x: a constant log, no tensor for the base
            return exp(mul(exponent, math.log(base)))
        return exp(mul(exponent, log(base)))
    return Pow(exponent)(base)


def maximum(a, b) -> Tensor:
    """Element-wise maximum with broadcasting."""
    return Maximum()(*_operands_as_tensors(a, b))


def minimum(a, b) -> Tensor:
    """Element-wise minimum with broadcasting."""
    return Minimum()(*_operands_as_tensors(a, b))


# ----------------------------------------------------------------------------- element-wise


class Exp(Function):
    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / x


class Sqrt(Function):
    def forward(self, x):
        y = get_array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy / (2 * y)


class Abs(Function):
    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(xp.sign(x))
        return xp.abs(x)

    def backward(self, gy):
        (sign,) = self.saved
        return gy * sign


class Sigmoid(Function):
    def forward(self, x):
        y = stable_sigmoid(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y * (1 - y)


class Tanh(Function):
    def forward(self, x):
        y = get_array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * (1 - y * y)


class Softplus(Function):
    """log(1 + exp(x)) in the stable form max(x, 0) + log1p(exp(-|x|))."""

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        (x,) = self.saved
        return gy * stable_sigmoid(x)


class Arctan(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).arctan(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / (1 + x * x)


class Clip(Function):
    """Clamp to [low, high]; the gradient passes where low <= x <= high (as in PyTorch)."""

    def __init__(self, low: float | None, high: float | None) -> None:
        self.low, self.high = low, high

    def forward(self, x):
        xp = get_array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        self.save_for_backward(inside)
        return xp.clip(x, self.low, self.high)

    def backward(self, gy):
        (inside,) = self.saved
        return gy * inside


class Where(Function):
    """condition ? a : b, broadcasting all three; the condition gets no gradient."""

    broadcasts = True

    def __init__(self, condition: Any) -> None:
        self.condition = condition

    def forward(self, a, b):
        return get_array_module(self.condition).where(self.condition, a, b)

    def backward(self, gy):
        xp = get_array_module(gy)
        shape = xp.broadcast_shapes(gy.shape, self.condition.shape)
        gy = xp.broadcast_to(gy, shape)
        zero = xp.zeros((), dtype=gy.dtype)
        return xp.where(self.condition, gy, zero), xp.where(self.condition, zero, gy)


def exp(x) -> Tensor:
    """e ** x."""
    return Exp()(x)


def log(x) -> Tensor:
    """Natural logarithm."""
    return Log()(x)


def sqrt(x) -> Tensor:
    """Square root."""
    return Sqrt()(x)


def abs(x) -> Tensor:  # noqa: A001  (lucid's name)
    """|x|; the gradient at 0 is 0."""
    return Abs()(x)


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), stable for any x."""
    return Sigmoid()(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(x)


def softplus(x) -> Tensor:
    """log(1 + exp(x)), stable for any x."""
    return Softplus()(x)


def arctan(x) -> Tensor:
    """Inverse tangent."""
    return Arctan()(x)


def clip(x, min_value=None, max_value=None) -> Tensor:
    """Clamp x to [min_value, max_value]; either bound may be None."""
    return Clip(min_value, max_value)(x)


def where(condition, a, b) -> Tensor:
    """Pick from ``a`` where ``condition`` holds, else from ``b`` (all broadcast)."""
    a, b = _operands_as_tensors(a, b)
    tensor = b if is_scalar(a.data) else a  # the operand that says where the data lives
    cond = as_array(condition, bool, tensor.device)
    return Where(cond)(a, b)


# ----------------------------------------------------------------------------- reductions


class Sum(Function):
    def __init__(self, axis: Any, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.input_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        gy = gy.reshape(_keepdims_shape(self.input_shape, self.axes))
        return xp.broadcast_to(gy, self.input_shape)


class Extreme(Function):
    """max or min over axes; ties share the gradient equally (PyTorch's amax/amin)."""

    def __init__(self, kind: str, axis: Any, keepdims: bool) -> None:
        self.kind, self.axis, self.keepdims = kind, axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        y = getattr(x, self.kind)(axis=self.axes, keepdims=True)
        self.save_for_backward(x == y)
        return y if self.keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in self.axes])

    def backward(self, gy):
        (is_extreme,) = self.saved
        gy = gy.reshape(_keepdims_shape(is_extreme.shape, self.axes))
        return gy * is_extreme / is_extreme.sum(axis=self.axes, keepdims=True)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    count = math.prod(x.shape[a] for a in _normalize_axis(axis, x.ndim))
    return sum(x, axis, keepdims) * (1.0 / count)


def var(x, axis=None, keepdims: bool = False) -> Tensor:
    """Biased variance over ``axis`` (divides by the count, as BatchNorm does)."""
    centered = x - mean(x, axis, keepdims=True)
    return mean(centered * centered, axis, keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``."""
    return Extreme("max", axis, keepdims)(x)


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis``."""
    return Extreme("min", axis, keepdims)(x)


def argmax(x, axis=None) -> Tensor:
    """Index of the maximum (no gradient)."""
    return Tensor._from_array(x.data.argmax(axis=axis))


def argmin(x, axis=None) -> Tensor:
    """Index of the minimum (no gradient)."""
    return Tensor._from_array(x.data.argmin(axis=axis))


# ----------------------------------------------------------------------------- shapes


class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        self.input_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.input_shape)


class Transpose(Function):
    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, x):
        self.axes = self.axes or tuple(reversed(range(x.ndim)))
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for position, axis in enumerate(self.axes):
            inverse[axis] = position
        return gy.transpose(inverse)


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


def raw_index(index: Any, device: str | None = None) -> Any:
    """An index with Tensors replaced by their arrays, and index arrays moved to ``device``."""

    def raw(part: Any) -> Any:
        part = part.data if isinstance(part, Tensor) else part
        if device is not None and hasattr(part, "shape") and backend.device_of(part) != device:
            part = backend.to_device(part, device)
        return part

    return tuple(raw(p) for p in index) if isinstance(index, tuple) else raw(index)


class GetItem(Function):
    """x[index]. Basic indexing (ints, slices) writes the gradient back directly; advanced
    indexing (integer or boolean arrays) may repeat elements, so it scatter-adds."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x):
        self.input_shape, self.input_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.input_shape, dtype=self.input_dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy
        else:
            backend.scatter_add(gx, self.index, gy)
        return gx


class Concatenate(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        offsets = list(itertools.accumulate(self.sizes[:-1]))
        return tuple(get_array_module(gy).split(gy, offsets, axis=self.axis))


class Split(Function):
    def __init__(self, indices_or_sections: Any, axis: int) -> None:
        self.indices_or_sections, self.axis = indices_or_sections, axis

    def forward(self, x):
        return tuple(get_array_module(x).split(x, self.indices_or_sections, axis=self.axis))

    def backward(self, *gys):
        return get_array_module(gys[0]).concatenate(gys, axis=self.axis)


class MatMul(Function):
    broadcasts = True  # leading (batch) axes broadcast

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved
        ga = gy @ b.swapaxes(-1, -2) if self.needs_input_grad[0] else None
        gb = a.swapaxes(-1, -2) @ gy if self.needs_input_grad[1] else None
        return ga, gb


def _shape_args(shape: tuple) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def reshape(x, *shape) -> Tensor:
    """The same elements in a new shape (one axis may be -1)."""
    return Reshape(_shape_args(shape))(x)


def transpose(x, *axes) -> Tensor:
    """Permute axes; no axes reverses them."""
    axes = _shape_args(axes)
    return Transpose(tuple(axes) if axes else None)(x)


def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def flatten(x, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one."""
    start, end = start_axis % x.ndim, end_axis % x.ndim
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1 :])


def squeeze(x, axis=None) -> Tensor:
    """Drop axes of length 1 (all of them, or those in ``axis``)."""
    axes = _normalize_axis(axis, x.ndim) if axis is not None else None
    shape = [n for i, n in enumerate(x.shape) if not (n == 1 and (axes is None or i in axes))]
    return reshape(x, tuple(shape))


def expand_dims(x, axis: int) -> Tensor:
    """Insert an axis of length 1 at ``axis``."""
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def getitem(x, index) -> Tensor:
    """x[index] with a gradient."""
    return GetItem(raw_index(index, x.device))(x)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    return Concatenate(axis)(*tensors)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    return concatenate([expand_dims(t if isinstance(t, Tensor) else Tensor(t), axis) for t in tensors], axis)


def split(x, indices_or_sections, axis: int = 0) -> tuple[Tensor, ...]:
    """Split into equal sections (an int) or at the given indices (a list), as NumPy does."""
    return Split(indices_or_sections, axis)(x)


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: batched over leading axes, 1-D operands promoted."""
    a, b = _operands_as_tensors(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs at least 1-D operands, got shapes {a.shape} and {b.shape}")
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if a.shape[-1] != inner_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align "
            f"(a's last axis {a.shape[-1]} != b's {'second-to-last' if b.ndim > 1 else 'only'} "
            f"axis {inner_b})"
        )
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    y = MatMul()(a.reshape(1, -1) if vector_a else a, b.reshape(-1, 1) if vector_b else b)
    if vector_b:
        y = squeeze(y, -1)
    if vector_a:
        y = squeeze(y, -1 if vector_b else -2)
    return y


# ----------------------------------------------------------------------------- devices, dtypes


class ToDevice(Function):
    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


class AsType(Function):
    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.source)


def to_device(x, device: str) -> Tensor:
    """Copy to ``"cpu"`` or ``"gpu"``; the gradient comes back to the original device."""
    return ToDevice(device)(x)


def astype(x, dtype: Any) -> Tensor:
    """Cast to ``dtype``; the gradient is cast back."""
    return AsType(dtype)(x)


def compare(name: str, a, b) -> Tensor:
    """An element-wise comparison (``numpy.<name>``) as a boolean tensor without gradient."""
    a, b = _operands_as_tensors(a, b)
    return Tensor._from_array(getattr(get_array_module(a.data, b.data), name)(a.data, b.data))
