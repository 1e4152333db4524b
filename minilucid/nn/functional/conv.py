"""2-D convolution as im2col + one matrix product (and linear layers).

Shapes: x (N, C, H, W), weight (O, C, KH, KW), y (N, O, OH, OW), L = OH * OW.

im2col turns every KHxKW window of the padded input into a column, so the convolution is
one BLAS product ``weight (O, C*KH*KW) @ cols (C*KH*KW, L)`` per image. The columns come
from a strided *view* of the input (no Python loop over pixels) copied once into contiguous
memory, ordered (C, KH, KW) to match the weight and (OH, OW) so the product lands straight
in NCHW. A 1x1 stride-1 convolution needs no columns: x itself, reshaped, is the matrix.

Backward: d weight = gy @ cols^T (a matrix product); d cols = weight^T @ gy, and col2im
adds each column back onto the window it came from. The columns are rebuilt in backward
rather than kept, because they are KH*KW times the size of the input.

``Conv2dReference`` is exactly that for the whole batch: one im2col and one matrix product,
and in backward one product per gradient and one col2im. The fast ``Conv2d`` below it handles
the batch by device: on a GPU it is the reference (memory is ample there and every launch
costs); on the CPU it works one image at a time through one columns buffer per call, forward
in slabs of output rows (docs/performance.md, "Convolution", says why). It equals the
reference to rounding: a BLAS may add a product's terms in another order for another shape.
``minilucid.reference_kernels()`` runs the reference on the CPU too.
"""

from __future__ import annotations

from minilucid import backend, parallel
from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.ops import matmul, transpose
from minilucid.tensor import Tensor


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Length of the output along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def pad2d(x, padding: int, value: float = 0.0):
    """x (N, C, H, W) with ``padding`` rows/columns of ``value`` on every side."""
    if padding == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * padding, w + 2 * padding), value, dtype=x.dtype)
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def window_view(x_padded, kernel: tuple[int, int], stride: int, out_hw: tuple[int, int]):
    """A read-only strided view (N, C, KH, KW, OH, OW) of every window; no copy."""
    n, c = x_padded.shape[:2]
    sn, sc, sh, sw = x_padded.strides
    shape = (n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])
    strides = (sn, sc, sh, sw, sh * stride, sw * stride)
    return backend.as_strided(x_padded, shape, strides)


def windows(x, kernel: tuple[int, int], stride: int, padding: int):
    """Every KHxKW window of x (N, C, H, W) padded with zeros: a view (N*C, KH, KW, OH, OW) of the padded copy."""
    n, c, h, w = x.shape
    oh = output_size(h, kernel[0], stride, padding)
    ow = output_size(w, kernel[1], stride, padding)
    padded = pad2d(x, padding)
    planes = padded.reshape(1, n * c, *padded.shape[2:])  # (1, N*C, HP, WP): every image's channels in a row
    return window_view(planes, kernel, stride, (oh, ow))[0]


def im2col(x, kernel: tuple[int, int], stride: int, padding: int, out=None):
    """Columns (N, C*KH*KW, OH*OW) of x (N, C, H, W): one contiguous copy of its ``windows``.

    ``out``, a contiguous array of that size, receives the columns instead of a new array.
    The copy is split by image and channel among ``minilucid.parallel``'s threads.
    """
    view = windows(x, kernel, stride, padding)  # (N*C, KH, KW, OH, OW), no copy
    if out is None:
        out = get_array_module(x).empty(view.shape, dtype=x.dtype)
    parallel.chunked(_copy_kernel, out.reshape(view.shape), view)
    n, c = x.shape[:2]
    return out.reshape(n, c * kernel[0] * kernel[1], -1)


def _copy_kernel(out, source) -> None:
    """Equals: out = source."""
    out[...] = source


def col2im(cols, input_shape, kernel: tuple[int, int], stride: int, padding: int):
    """The adjoint of im2col: add every column back onto its window; returns (N, C, H, W)."""
    xp = get_array_module(cols)
    n, c, h, w = input_shape
    kh, kw = kernel
    oh = output_size(h, kh, stride, padding)
    ow = output_size(w, kw, stride, padding)
    padded = xp.zeros((n * c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)  # (N*C, HP, WP)
    cols = cols.reshape(n * c, kh, kw, oh, ow)
    parallel.chunked(_add_windows_kernel, padded, cols, stride)  # split by image and channel
    padded = padded.reshape(n, c, h + 2 * padding, w + 2 * padding)
    return padded[:, :, padding : padding + h, padding : padding + w]


def _add_windows_kernel(padded, cols, stride: int) -> None:
    """Equals: padded (P, HP, WP) += each column of cols (P, KH, KW, OH, OW) on its window, in (i, j) order."""
    _, kh, kw, oh, ow = cols.shape
    for i in range(kh):  # KH*KW strided adds, each over a whole (P, OH, OW) block
        for j in range(kw):
            padded[:, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[:, i, j]


class Conv2dReference(Function):
    """y = weight @ im2col(x) + bias, the whole batch at once.

    Forward: cols = im2col(x), (N, C*KH*KW, L); y = W (O, C*KH*KW) @ cols + b, (N, O, L).
    Backward: d cols = W^T @ gy, added back onto the windows by col2im; d W = the sum over
    images of gy @ cols^T, with cols rebuilt; d b = the sum of gy over images and positions.
    """

    def __init__(self, stride: int, padding: int) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        n, _, h, w = x.shape
        o, _, kh, kw = weight.shape
        oh = output_size(h, kh, self.stride, self.padding)
        ow = output_size(w, kw, self.stride, self.padding)
        self.save_for_backward(x, weight)
        cols = im2col(x, (kh, kw), self.stride, self.padding)  # (N, C*KH*KW, L)
        y = weight.reshape(o, -1) @ cols  # (O, C*KH*KW) @ (N, C*KH*KW, L) -> (N, O, L)
        if bias is not None:
            y += bias.reshape(1, o, 1)
        return y.reshape(n, o, oh, ow)

    def backward(self, gy):
        x, weight = self.saved
        n, o, oh, ow = gy.shape
        kernel = weight.shape[2:]
        matrix = weight.reshape(o, -1)  # (O, C*KH*KW)
        gy = gy.reshape(n, o, oh * ow)  # (N, O, L)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = col2im(matrix.T @ gy, x.shape, kernel, self.stride, self.padding)  # (N, C*KH*KW, L) -> x
        if self.needs_input_grad[1]:
            cols = im2col(x, kernel, self.stride, self.padding)  # (N, C*KH*KW, L)
            gw = (gy @ cols.swapaxes(1, 2)).sum(axis=0).reshape(weight.shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2))
        return (gx, gw, gb)[: len(self.needs_input_grad)]


# Forward on the CPU multiplies the columns of a slab of output rows at a time: about this many
# elements (4 MB of float32), which stay in the cache between the copy and the product.
SLAB_ELEMENTS = 1 << 20


class Conv2d(Conv2dReference):
    """``Conv2dReference`` by device: on a GPU the reference itself, on the CPU one image at a time
    (forward in slabs); and on either, no columns for a 1x1 stride-1 convolution."""

    reference = Conv2dReference

    def _is_pointwise(self, kernel) -> bool:
        return tuple(kernel) == (1, 1) and self.stride == 1 and self.padding == 0

    def _columns_buffer(self, x, kernel, out_hw):
        """One image's columns (C*KH*KW, L), uninitialized, reused for every image."""
        xp = get_array_module(x)
        return xp.empty((x.shape[1] * kernel[0] * kernel[1], out_hw[0] * out_hw[1]), dtype=x.dtype)

    def _image_columns(self, x, i, kernel, buffer):
        """Image i's columns (C*KH*KW, L), written into ``buffer``."""
        return im2col(x[i : i + 1], kernel, self.stride, self.padding, out=buffer)[0]

    def _forward_in_slabs(self, x, matrix, kernel, out_hw, y) -> None:
        """y (N, O, L) = matrix @ columns, image by image and slab by slab of output rows.

        A slab's columns (about ``SLAB_ELEMENTS``) are copied and multiplied while they are
        still in the cache, instead of writing an image's columns to memory and reading them
        back. Each output is the same sum over the same C*KH*KW products as one product over
        all of L gives; only the columns that share a call change.
        """
        xp = get_array_module(x)
        n, c = x.shape[:2]
        (kh, kw), (oh, ow) = kernel, out_hw
        depth = matrix.shape[1]  # C*KH*KW
        rows = max(1, min(oh, SLAB_ELEMENTS // (depth * ow)))
        buffer = xp.empty(depth * rows * ow, dtype=x.dtype)
        for i in range(n):
            image_windows = windows(x[i : i + 1], kernel, self.stride, self.padding)  # (C, KH, KW, OH, OW), no copy
            for top in range(0, oh, rows):
                bottom = min(top + rows, oh)
                slab = buffer[: depth * (bottom - top) * ow]
                slab.reshape(c, kh, kw, bottom - top, ow)[...] = image_windows[..., top:bottom, :]
                xp.matmul(matrix, slab.reshape(depth, -1), out=y[i][:, top * ow : bottom * ow])  # (O, slab's L)

    def forward(self, x, weight, bias=None):
        if backend.is_gpu_array(x) and not self._is_pointwise(weight.shape[2:]):
            return super().forward(x, weight, bias)  # the whole batch at once: the reference itself
        xp = get_array_module(x)
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        oh = output_size(h, kh, self.stride, self.padding)
        ow = output_size(w, kw, self.stride, self.padding)
        self.save_for_backward(x, weight)
        matrix = weight.reshape(o, -1)  # (O, C*KH*KW)
        y = xp.empty((n, o, oh * ow), dtype=x.dtype)
        if self._is_pointwise((kh, kw)):
            xp.matmul(matrix, x.reshape(n, c, h * w), out=y)  # x is already the columns
        else:
            self._forward_in_slabs(x, matrix, (kh, kw), (oh, ow), y)
        if bias is not None:
            y += bias.reshape(1, o, 1)
        return y.reshape(n, o, oh, ow)

    def backward(self, gy):
        x, weight = self.saved
        kernel = weight.shape[2:]
        if backend.is_gpu_array(gy) and not self._is_pointwise(kernel):
            return super().backward(gy)  # the whole batch at once, as in forward
        xp = get_array_module(gy)
        n, o, oh, ow = gy.shape
        matrix = weight.reshape(o, -1)  # (O, C*KH*KW)
        gy = gy.reshape(n, o, oh * ow)  # (N, O, L)
        gx = gw = gb = None
        if self._is_pointwise(kernel):
            if self.needs_input_grad[0]:
                gx = (matrix.T @ gy).reshape(x.shape)
            if self.needs_input_grad[1]:
                gw = (gy @ x.reshape(n, x.shape[1], -1).swapaxes(1, 2)).sum(axis=0).reshape(weight.shape)
        else:
            buffer = self._columns_buffer(x, kernel, (oh, ow))
            if self.needs_input_grad[0]:
                gx = xp.empty_like(x)
                for i in range(n):
                    gcols = xp.matmul(matrix.T, gy[i], out=buffer)  # (C*KH*KW, L)
                    gx[i] = col2im(gcols[None], (1, *x.shape[1:]), kernel, self.stride, self.padding)[0]
            if self.needs_input_grad[1]:
                gw = xp.zeros_like(matrix)
                for i in range(n):
                    gw += gy[i] @ self._image_columns(x, i, kernel, buffer).T
                gw = gw.reshape(weight.shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2))
        return (gx, gw, gb)[: len(self.needs_input_grad)]


def _padding_amount(padding, kernel: tuple[int, int]) -> int:
    if padding == "same":
        if kernel[0] != kernel[1] or kernel[0] % 2 == 0:
            raise ValueError(f"padding='same' needs a square, odd kernel, got {kernel}")
        return kernel[0] // 2
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int or 'same', got {padding!r}")
    return padding


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding=0) -> Tensor:
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C, KH, KW).

    ``padding`` is an int or ``"same"`` (k // 2 zeros, darknet's ``pad=1``; with stride 1 the
    output keeps the input's size).
    """
    if x.ndim != 4:
        raise ValueError(f"conv2d expects input of shape (N, C, H, W), got {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects weight of shape (O, C, KH, KW), got {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: input has {x.shape[1]} channels but the weight {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"conv2d: stride must be a positive int, got {stride!r}")
    pad = _padding_amount(padding, weight.shape[2:])
    h, w = x.shape[2:]
    if output_size(h, weight.shape[2], stride, pad) < 1 or output_size(w, weight.shape[3], stride, pad) < 1:
        raise ValueError(f"conv2d: input {x.shape} is smaller than the kernel {weight.shape[2:]}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, pad)(*inputs)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight (out_features, in_features)."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features but the weight {weight.shape} expects {weight.shape[1]}"
        )
    y = matmul(x, transpose(weight))
    return y if bias is None else y + bias
