"""Pooling and resampling.

Shapes: x (N, C, H, W), y (N, C, OH, OW).

Max pooling, plainly (``MaxPool2dReference``): copy every KHxKW window out of a strided view
and take its max; the winner is the window's first maximum in row-major order, as in
PyTorch, and backward adds each output's gradient onto its winner by one flat scatter-add.
The fast ``MaxPool2d`` below it changes only the forward, which is separable: the max over a
KHxKW window is the max over KH rows of the max over KW columns. So it takes KW shifted
slices along the width, then KH along the height, each an element-wise maximum over
output-sized arrays, and finds the same winners by arithmetic; the reference's backward then
serves both. It equals the reference, winners included (docs/performance.md, "Max pooling",
says why the reference is not the code); ``minilucid.reference_kernels()`` runs the reference.

Nearest upsampling and adaptive average pooling are both *linear resamplings*: each output
row is a fixed mix of input rows, and likewise for columns, so y = Mh @ x @ Mw^T with small
matrices Mh (OH, H) and Mw (OW, W); backward is gx = Mh^T @ gy @ Mw. One mechanism, two ops.
"""

from __future__ import annotations

import math

import numpy

from minilucid import backend
from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.nn.functional.conv import output_size, pad2d, window_view
from minilucid.tensor import Tensor


def _height_width(value) -> tuple[int, int]:
    """An int (the same along both axes) or a (height, width) pair, as a (height, width) tuple."""
    return (value, value) if isinstance(value, int) else tuple(value)


class MaxPool2dReference(Function):
    """y = the max of each KHxKW window of x padded with -inf; each output's gradient goes to
    its window's first maximum (row-major), and the gradients that land on one input add up."""

    def __init__(self, kernel: tuple[int, int], stride: int, padding: int) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        n, c, h, w = x.shape
        kh, kw = self.kernel
        oh = output_size(h, kh, self.stride, self.padding)
        ow = output_size(w, kw, self.stride, self.padding)
        padded = pad2d(x, self.padding, -get_array_module(x).inf)  # (N, C, HP, WP)
        windows = window_view(padded, self.kernel, self.stride, (oh, ow))  # (N, C, KH, KW, OH, OW), no copy
        windows = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c, oh, ow, kh * kw)  # a copy: one window a row
        self.input_shape, self.winner = x.shape, windows.argmax(axis=-1)  # (N, C, OH, OW): i * KW + j
        return windows.max(axis=-1)

    def backward(self, gy):
        xp = get_array_module(gy)
        n, c, h, w = self.input_shape
        kh, kw = self.kernel
        _, _, oh, ow = gy.shape
        hp, wp = h + 2 * self.padding, w + 2 * self.padding
        # Output (r, q)'s winner i * KW + j sits at row r * stride + i, column q * stride + j of
        # the padded input (N, C, HP, WP); as one flat index, the planes one after the other.
        rows = xp.arange(oh).reshape(oh, 1) * self.stride + self.winner // kw
        cols = xp.arange(ow).reshape(1, ow) * self.stride + self.winner % kw
        planes = xp.arange(n * c).reshape(n, c, 1, 1)
        flat = (planes * hp + rows) * wp + cols
        # gx[winner] += gy, the outputs that share a winner added up (NumPy's bincount, which adds in float64).
        padded = backend.bin_sums(flat.ravel(), gy.ravel(), n * c * hp * wp).reshape(n, c, hp, wp)
        return padded[:, :, self.padding : self.padding + h, self.padding : self.padding + w]


class MaxPool2d(MaxPool2dReference):
    """``MaxPool2dReference`` with a separable forward: the same values and winners, so the
    reference's backward serves both."""

    reference = MaxPool2dReference

    def forward(self, x):
        xp = get_array_module(x)
        h, w = x.shape[2:]
        kh, kw = self.kernel
        s = self.stride
        oh = output_size(h, kh, s, self.padding)
        ow = output_size(w, kw, s, self.padding)
        padded = pad2d(x, self.padding, -xp.inf)  # (N, C, HP, WP)
        # Along the width: row_max[..., r, q] = max over j of padded[..., r, q*s + j].
        in_row = [padded[..., j : j + s * ow : s] for j in range(kw)]
        row_max = _maximum(in_row, xp)  # (N, C, HP, OW)
        # Along the height: y[..., p, q] = max over i of row_max[..., p*s + i, q].
        rows = [row_max[..., i : i + s * oh : s, :] for i in range(kh)]
        y = _maximum(rows, xp)  # (N, C, OH, OW)
        if self.needs_input_grad[0]:
            # The winning row, then the first winning column inside that row.
            row = _first_equal(rows, y, xp)  # (N, C, OH, OW), in 0..KH-1
            column = _first_equal(in_row, row_max, xp)  # (N, C, HP, OW), for every padded row
            row = row.astype(xp.int64)
            padded_row = row + xp.arange(oh).reshape(oh, 1) * s
            won_column = xp.take_along_axis(column, padded_row, axis=2)
            self.input_shape, self.winner = x.shape, row * kw + won_column  # (N, C, OH, OW)
        return y


def _maximum(candidates: list, xp):
    """Element-wise maximum of equally shaped arrays."""
    best = candidates[0].copy()
    for candidate in candidates[1:]:
        xp.maximum(best, candidate, out=best)
    return best


def _first_equal(candidates: list, best, xp):
    """Element-wise index of the first candidate equal to ``best``.

    Walks the candidates backwards, so the earliest match is written last. Whole-array
    arithmetic on small integers, not masked assignment (docs/performance.md, "Max pooling").
    """
    dtype = xp.int16 if len(candidates) <= xp.iinfo(xp.int16).max else xp.int64
    index = xp.zeros(best.shape, dtype=dtype)
    for k in range(len(candidates) - 1, -1, -1):
        index += (candidates[k] == best) * (dtype(k) - index)
    return index


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Max over KHxKW windows; stride defaults to the kernel size.

    ``padding="same"`` with stride 1 keeps the size (SPP's 5, 9 and 13 pools).
    """
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects input of shape (N, C, H, W), got {x.shape}")
    kernel = _height_width(kernel_size)
    stride = kernel[0] if stride is None else stride
    if padding == "same":
        if kernel[0] != kernel[1] or kernel[0] % 2 == 0:
            raise ValueError(f"padding='same' needs a square, odd kernel, got {kernel}")
        padding = kernel[0] // 2
    if padding > kernel[0] // 2 or padding > kernel[1] // 2:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel {kernel}")
    return MaxPool2d(kernel, stride, padding)(x)


class Resample2d(Function):
    """y = Mh @ x @ Mw^T over the last two axes, for fixed matrices Mh (OH, H), Mw (OW, W)."""

    def __init__(self, rows, cols) -> None:
        self.rows, self.cols = rows, cols

    def forward(self, x):
        return self.rows @ (x @ self.cols.T)

    def backward(self, gy):
        return self.rows.T @ (gy @ self.cols)


def _nearest_matrix(out_size: int, in_size: int, dtype):
    """(out, in) 0/1 matrix: output i copies input floor(i * in / out) (PyTorch's 'nearest')."""
    source = numpy.floor(numpy.arange(out_size) * (in_size / out_size)).astype(int)
    source = numpy.minimum(source, in_size - 1)
    matrix = numpy.zeros((out_size, in_size), dtype=dtype)
    matrix[numpy.arange(out_size), source] = 1
    return matrix


def _average_matrix(out_size: int, in_size: int, dtype):
    """(out, in) matrix averaging PyTorch's adaptive bins [floor(i*in/out), ceil((i+1)*in/out))."""
    matrix = numpy.zeros((out_size, in_size), dtype=dtype)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1 / (end - start)
    return matrix


def _resample(x: Tensor, make_matrix, out_hw: tuple[int, int]) -> Tensor:
    def matrix(out_size: int, in_size: int):  # made once per shape and device
        key = (make_matrix.__name__, out_size, in_size, x.dtype.str)
        return backend.constant(key, x.device, lambda: make_matrix(out_size, in_size, x.dtype))

    return Resample2d(matrix(out_hw[0], x.shape[2]), matrix(out_hw[1], x.shape[3]))(x)


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest") -> Tensor:
    """Resize x (N, C, H, W) to ``size`` or by ``scale_factor`` (mode ``"nearest"``)."""
    if x.ndim != 4:
        raise ValueError(f"interpolate expects input of shape (N, C, H, W), got {x.shape}")
    if mode != "nearest":
        raise ValueError(f"interpolate supports mode='nearest', got {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate needs exactly one of size and scale_factor")
    if size is None:
        sh, sw = (scale_factor, scale_factor) if numpy.isscalar(scale_factor) else scale_factor
        size = (math.floor(x.shape[2] * sh), math.floor(x.shape[3] * sw))
    return _resample(x, _nearest_matrix, _height_width(size))


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins so the output is ``output_size``."""
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d expects input (N, C, H, W), got {x.shape}")
    return _resample(x, _average_matrix, _height_width(output_size))
