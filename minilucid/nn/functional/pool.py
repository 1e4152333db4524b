"""Pooling and resampling.

Shapes: x (N, C, H, W), y (N, C, OH, OW).

Max pooling copies each KHxKW window out of the same strided view that im2col uses and
takes the max; backward sends each output's gradient to the position that won (the first
maximum in row-major order, as PyTorch), by one flat scatter-add.

Nearest upsampling and adaptive average pooling are both *linear resamplings*: each output
row is a fixed mix of input rows, and likewise for columns, so y = Mh @ x @ Mw^T with small
matrices Mh (OH, H) and Mw (OW, W); backward is gx = Mh^T @ gy @ Mw. One mechanism, two ops.
"""

from __future__ import annotations

import math

import numpy

from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.nn.functional.conv import output_size, pad2d, window_view
from minilucid.tensor import Tensor


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class MaxPool2d(Function):
    def __init__(self, kernel: tuple[int, int], stride: int, padding: int) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        n, c, h, w = x.shape
        kh, kw = self.kernel
        oh = output_size(h, kh, self.stride, self.padding)
        ow = output_size(w, kw, self.stride, self.padding)
        view = window_view(pad2d(x, self.padding, -xp.inf), self.kernel, self.stride, (oh, ow))
        windows = view.transpose(0, 1, 4, 5, 2, 3).reshape(n, c, oh, ow, kh * kw)  # a copy
        winner = windows.argmax(axis=-1)  # (N, C, OH, OW), first maximum wins
        self.input_shape, self.winner = x.shape, winner
        return xp.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]

    def backward(self, gy):
        xp = get_array_module(gy)
        n, c, h, w = self.input_shape
        kh, kw = self.kernel
        _, _, oh, ow = gy.shape
        hp, wp = h + 2 * self.padding, w + 2 * self.padding
        # Flat index of each winner inside the padded input (N, C, HP, WP).
        rows = xp.arange(oh).reshape(oh, 1) * self.stride + self.winner // kw
        cols = xp.arange(ow).reshape(1, ow) * self.stride + self.winner % kw
        planes = xp.arange(n * c).reshape(n, c, 1, 1)
        flat = (planes * hp + rows) * wp + cols
        padded = xp.bincount(flat.ravel(), weights=gy.ravel(), minlength=n * c * hp * wp)
        padded = padded.astype(gy.dtype).reshape(n, c, hp, wp)
        return padded[:, :, self.padding : self.padding + h, self.padding : self.padding + w]


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Max over KHxKW windows; stride defaults to the kernel size.

    ``padding="same"`` with stride 1 keeps the size (SPP's 5, 9 and 13 pools).
    """
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects input of shape (N, C, H, W), got {x.shape}")
    kernel = _pair(kernel_size)
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
    xp = get_array_module(x.data)
    rows = xp.asarray(make_matrix(out_hw[0], x.shape[2], x.dtype))
    cols = xp.asarray(make_matrix(out_hw[1], x.shape[3], x.dtype))
    return Resample2d(rows, cols)(x)


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
    return _resample(x, _nearest_matrix, _pair(size))


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins so the output is ``output_size``."""
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d expects input (N, C, H, W), got {x.shape}")
    return _resample(x, _average_matrix, _pair(output_size))
