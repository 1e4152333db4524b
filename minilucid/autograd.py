"""Reverse-mode automatic differentiation: grad mode, ``Function`` and ``backward``.

A ``Function`` is one operation: ``forward`` maps raw arrays to raw arrays and keeps (with
``save_for_backward``) only what ``backward`` needs; ``backward`` maps the gradients of the
outputs to the gradients of the inputs, again on raw arrays. Calling a Function on Tensors
runs ``forward`` and, when a gradient is wanted, links the outputs to the Function and the
Function to its inputs. That chain of links is the graph.

A fast Function may keep a plain twin: a Function class it derives from, named in its
``reference`` attribute, whose forward and backward are the textbook formula. Under
``reference_kernels()`` (or ``MINILUCID_REFERENCE_KERNELS=1``) every call runs the twin.

``backward`` walks the graph without recursion (YOLOv4's graph is over a thousand nodes
deep), always taking the Function of highest *generation* next. A Function's generation is
one more than the newest of its inputs, so every consumer of a tensor runs before the
producer of that tensor, and the producer sees the full, accumulated gradient. Among Functions
of one generation the one made last runs first (PyTorch orders ready nodes by their sequence
number alike), so the order depends on the forward's code alone, not on the shape of the graph
elsewhere: processes that share a mini-batch (``minilucid.data_parallel``) reach their
BatchNorms' backward in the same order, whatever their losses' graphs look like.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import weakref
from typing import Any, ClassVar

from minilucid.backend import get_array_module, is_scalar

# ----------------------------------------------------------------------------- grad mode

_grad_enabled = True


def grad_enabled() -> bool:
    """Whether operations record a graph for ``backward``."""
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns graph recording off inside it."""

    def __enter__(self) -> no_grad:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._previous


class enable_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns graph recording back on inside it."""

    def __enter__(self) -> enable_grad:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._previous


# ----------------------------------------------------------------------------- reference kernels


def _reference_kernels_from_environment() -> bool:
    """MINILUCID_REFERENCE_KERNELS, read once at import: "1" runs the references, "0" or unset the fast kernels."""
    value = os.environ.get("MINILUCID_REFERENCE_KERNELS", "")
    if value not in ("", "0", "1"):
        raise ValueError(f"MINILUCID_REFERENCE_KERNELS must be 0 or 1, got {value!r}")
    return value == "1"


_reference_kernels = _reference_kernels_from_environment()


def reference_kernels_enabled() -> bool:
    """Whether ops that keep a plain reference of themselves run it instead of their fast kernels."""
    return _reference_kernels


class reference_kernels(contextlib.ContextDecorator):
    """Context manager and decorator: inside it every op with a reference runs that instead.

    BatchNorm (train and eval), Mish, LeakyReLU, max-pooling and convolution each keep their
    textbook formula as a Function class directly above the fast one, in the same module.
    ``reference_kernels(False)`` turns them off inside (where the environment turned them on).
    An op's backward runs the kernels its forward ran, wherever ``backward()`` is called.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> reference_kernels:
        global _reference_kernels
        self._previous = _reference_kernels
        _reference_kernels = self.enabled
        return self

    def __exit__(self, *exc: Any) -> None:
        global _reference_kernels
        _reference_kernels = self._previous


# ----------------------------------------------------------------------------- broadcasting


def sum_to(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` down to ``shape``: the gradient of broadcasting ``shape`` up to grad's shape.

    This is the only place broadcast gradients are reduced.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    # Axes that broadcasting added in front, and axes that were 1 and got stretched.
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


# ----------------------------------------------------------------------------- Function

_made = itertools.count()  # numbers the Functions a forward records, in the order it makes them


class Function:
    """One differentiable operation; subclasses define ``forward`` and ``backward``.

    ``broadcasts = True`` marks operations whose inputs broadcast against each other: the
    engine sums their input gradients back to each input's shape (see ``sum_to``). For all
    other operations a gradient of the wrong shape is a bug and raises.

    ``reference`` names, on a fast Function, the class it derives from that computes the same
    thing by the plain formula (same constructor, its own forward and backward). Under
    ``reference_kernels()`` a call becomes an instance of that class, so its forward and its
    backward are the reference's.
    """

    broadcasts = False
    reference: ClassVar[type[Function] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.reference is not None and not issubclass(cls, cls.reference):
            raise TypeError(f"{cls.__name__}.reference must be a class it derives from, got {cls.reference.__name__}")

    inputs: tuple | None = None
    saved: tuple = ()
    needs_input_grad: tuple[bool, ...] = ()

    def __call__(self, *inputs: Any):
        from_array = Tensor._from_array
        # Raw inputs (numbers, arrays) join as constants and stay on the device they are on.
        inputs = tuple(x if isinstance(x, Tensor) else from_array(as_array(x)) for x in inputs)
        # A scalar constant (a NumPy scalar, see ops._tensor_like) goes to CuPy as a kernel
        # argument, not as an uploaded array, so it belongs to no device.
        devices = [x.device for x in inputs if not is_scalar(x.data)]
        device = devices[0] if devices else "cpu"
        for x in inputs:
            if not is_scalar(x.data) and x.device != device:
                raise RuntimeError(
                    f"{type(self).__name__}: inputs are on different devices "
                    f"({device!r} and {x.device!r}); move them with .to(device) first"
                )
        if _reference_kernels and self.reference is not None:
            self.__class__ = self.reference  # this call and its backward run the plain formula
        record = _grad_enabled and any(x.requires_grad for x in inputs)
        self.needs_input_grad = tuple(record and x.requires_grad for x in inputs)
        outputs = self.forward(*(x.data for x in inputs))
        single = not isinstance(outputs, tuple)
        outputs = tuple(from_array(y, record) for y in ((outputs,) if single else outputs))
        if record:
            self.inputs = inputs
            self.generation = max(x._generation for x in inputs)
            self.sequence = next(_made)  # the order Functions were made in: backward's tie-break
            for y in outputs:
                y._creator = self
                y._generation = self.generation + 1
            # Outputs are held weakly, so a tensor nobody uses frees itself.
            self.outputs = tuple(weakref.ref(y) for y in outputs)
            self.output_meta = tuple((y.shape, y.dtype) for y in outputs)
        return outputs[0] if single else outputs

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep what ``backward`` needs, and nothing else."""
        self.saved = arrays

    def forward(self, *xs: Any) -> Any:
        """Raw arrays in, raw array (or tuple of them) out."""
        raise NotImplementedError

    def backward(self, *grads: Any) -> Any:
        """Gradients of the outputs in, gradients of the inputs out (None where not needed)."""
        raise NotImplementedError

    def release(self) -> None:
        """Free what the graph holds; a second backward through here then raises."""
        self.inputs = None
        self.saved = ()


# ----------------------------------------------------------------------------- backward


def backward(root: Tensor, grad: Any, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) * grad into ``.grad`` of every leaf that requires it."""
    if root._creator is None:  # a leaf: its gradient is the seed itself
        _accumulate_into_leaf(root, grad)
        return
    pending: dict[int, Any] = {id(root): grad}  # gradients waiting for their producer
    alive: dict[int, Tensor] = {id(root): root}  # keeps ids in `pending` unambiguous
    # Highest generation first, then the last made; sequences differ, so no Function is compared.
    heap = [(-root._creator.generation, -root._creator.sequence, root._creator)]
    queued = {id(root._creator)}
    while heap:
        _, _, function = heapq.heappop(heap)
        if function.inputs is None:
            raise RuntimeError(
                f"backward through {type(function).__name__} a second time: its graph was "
                "freed by the first backward; pass retain_graph=True to keep it"
            )
        grads_out = []
        for ref, (shape, dtype) in zip(function.outputs, function.output_meta, strict=True):
            output = ref()
            g = None
            if output is not None:
                g = pending.pop(id(output), None)
                alive.pop(id(output), None)
            if g is None:  # an output nobody used: its gradient is zero
                xp = get_array_module(*(x.data for x in function.inputs))
                g = xp.zeros(shape, dtype=dtype)
            grads_out.append(g)
        grads_in = function.backward(*grads_out)
        if not isinstance(grads_in, tuple):
            grads_in = (grads_in,)
        for x, needed, g in zip(function.inputs, function.needs_input_grad, grads_in, strict=True):
            if not needed or g is None:
                continue
            if function.broadcasts:
                g = sum_to(g, x.shape)
            if g.shape != x.shape:
                raise RuntimeError(
                    f"{type(function).__name__}.backward returned a gradient of shape "
                    f"{g.shape} for an input of shape {x.shape}"
                )
            if x._creator is None or x._retains_grad:
                _accumulate_into_leaf(x, g)
            if x._creator is not None:
                key = id(x)
                pending[key] = g if key not in pending else pending[key] + g
                alive[key] = x
                if id(x._creator) not in queued:
                    queued.add(id(x._creator))
                    heapq.heappush(heap, (-x._creator.generation, -x._creator.sequence, x._creator))
        if not retain_graph:
            function.release()


def _accumulate_into_leaf(x: Tensor, grad: Any) -> None:
    # Never in place: the same array may be the gradient of several tensors.
    x.grad = grad if x.grad is None else x.grad + grad


from minilucid.tensor import Tensor, as_array  # noqa: E402  (Tensor and Function refer to each other)
