"""Batch normalization (Ioffe & Szegedy), with PyTorch's eps 1e-5 and momentum 0.1.

Shapes: x (N, C, ...) with channels on axis 1; statistics are per channel, over every
other axis; M = the number of values per channel.

Train mode: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and
biased variance, and the running statistics move toward the batch's. The running variance
takes the unbiased estimate, as PyTorch does, or with ``unbiased=False`` the biased one the
batch was normalized with, so that eval mode reproduces training (docs/api.md says when
that matters). Eval mode is an affine map per channel: y = x * scale + shift.

Cross mini-batch normalization (CmBN, from YOLOv4) is the same training formula with other
statistics: those of this batch joined to the earlier mini-batches of one weight update,
which enter as constants (``cross_minibatch_norm``). The two share one Function.

Data parallel (``minilucid.data_parallel``) splits a mini-batch between processes; while it
does, each BatchNorm swaps its per-channel statistics with the other processes' (forward) and
its two per-channel gradient sums (backward) through ``shared_batch``, so every process
normalizes with the whole mini-batch's statistics, as one process holding it all would.

Each fast Function has its reference directly above it: ``BatchNormTrainReference`` and
``BatchNormEvalReference`` are the formulas as the textbook writes them, one new array per
operation, and run instead under ``minilucid.reference_kernels()``. Training's fast version
works in place, in blocks run by ``minilucid.parallel``, and equals its reference bit for bit
(docs/performance.md, "BatchNorm", says why the code takes this shape and why the order of
every sum must not change). Eval's folds the statistics into one scale and shift per channel,
so it equals its reference to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from minilucid import parallel
from minilucid.autograd import Function
from minilucid.backend import get_array_module
from minilucid.tensor import Tensor


def _channel_shape(x) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)  # broadcasts a (C,) vector over x


def _reduce_axes(x) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


def _rows(x):
    """x (N, C, ...) as (N*C, M/N): one row per image and channel, for ``parallel.chunked``."""
    return x.reshape(x.shape[0] * x.shape[1], -1)


def _per_row(vector, images: int):
    """A (C,) vector as an (N*C, 1) column: row n*C + c holds vector[c], lined up with ``_rows``."""
    return get_array_module(vector).tile(vector, images).reshape(-1, 1)


class Moments(NamedTuple):
    """Per-channel statistics of ``count`` values per channel: their mean and biased variance, (C,) each."""

    count: int
    mean: Any
    variance: Any


# The processes that share the mini-batch now (``batch_shared_by``), or None: an object whose
# ``gather(arrays)`` returns every process's arrays, process 0's first, once all have called it.
shared_batch: Any = None


@contextmanager
def batch_shared_by(exchange: Any) -> Iterator[None]:
    """Inside, training BatchNorms normalize with the statistics of the mini-batch that the
    processes of ``exchange`` share (``minilucid.data_parallel``)."""
    global shared_batch
    before, shared_batch = shared_batch, exchange
    try:
        yield
    finally:
        shared_batch = before


def whole_batch_moments(ours: Moments) -> Moments:
    """The statistics of the whole shared mini-batch: every process's joined in process order
    (``ours`` where nothing is shared)."""
    if shared_batch is None:
        return ours
    joined = None
    for count, mean, variance in shared_batch.gather([np.array([ours.count]), ours.mean, ours.variance]):
        part = Moments(int(count[0]), mean, variance)
        joined = part if joined is None else join_moments(joined, part)
    return joined


def whole_batch_sums(*ours: Any) -> tuple[Any, ...]:
    """Per-channel sums over the whole shared mini-batch: every process's added in process
    order (``ours`` where nothing is shared)."""
    if shared_batch is None:
        return ours
    gathered = shared_batch.gather(list(ours))
    return tuple(sum(parts[1:], parts[0]) for parts in zip(*gathered, strict=True))


def join_moments(earlier: Moments, later: Moments) -> Moments:
    """The statistics of two sets of values together, by Chan et al.'s parallel formula.

    Their sums of squared deviations add, plus a term for the distance between their means;
    this avoids E[x^2] - E[x]^2, whose two terms cancel.
    """
    total = earlier.count + later.count
    delta = later.mean - earlier.mean
    mean = earlier.mean + delta * (later.count / total)
    squared_deviations = (
        earlier.variance * earlier.count
        + later.variance * later.count
        + delta * delta * (earlier.count * later.count / total)
    )
    return Moments(total, mean, squared_deviations / total)


class BatchNormTrainReference(Function):
    """Normalize with the batch's statistics, as the textbook writes it; updates the running statistics.

    Forward, per channel over the ``count`` values (N and the spatial axes):
        mean = sum(x) / count, var = sum((x - mean)^2) / count,
        y = (x - mean) * (weight / sqrt(var + eps)) + bias.
    Backward, with x_hat = (x - mean) / sqrt(var + eps) (each value of x moves the mean by
    1 / count and the variance by 2 (x - mean) / count):
        d bias = sum(gy), d weight = sum(gy * x_hat),
        d x = (gy - d bias / count - x_hat * d weight / count) * weight / sqrt(var + eps).
    With ``earlier`` statistics (CmBN) the mean and variance are those of the earlier values
    (constants) and x's together, and count spans both. ``self.moments`` is what x was
    normalized with, after forward. ``BatchNormTrain`` below equals this bit for bit.
    """

    def __init__(
        self,
        running_mean,
        running_var,
        momentum: float,
        eps: float,
        unbiased: bool = True,
        earlier: Moments | None = None,
    ) -> None:
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps, self.unbiased, self.earlier = momentum, eps, unbiased, earlier

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        axes, shape = _reduce_axes(x), _channel_shape(x)
        count = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        centered = x - mean.reshape(shape)
        var = (centered * centered).mean(axis=axes)
        ours = Moments(count, mean, var)
        moments = self.normalizing_moments(ours)
        if moments is not ours:
            count, mean, var = moments
            centered = x - mean.reshape(shape)
        self.moments = moments
        inv_std = 1 / xp.sqrt(var + self.eps)
        self._update_running_statistics()
        self.save_for_backward(x, mean, inv_std, weight)
        return centered * (inv_std * weight).reshape(shape) + bias.reshape(shape)

    def normalizing_moments(self, ours: Moments) -> Moments:
        """The statistics x is normalized with: ``ours`` (x's), joined to the other processes'
        part of the mini-batch where processes share it, then to the earlier mini-batches'
        (CmBN); ``ours`` itself where neither applies."""
        moments = whole_batch_moments(ours)
        if self.earlier is not None:
            moments = join_moments(self.earlier, moments)
        return moments

    def _update_running_statistics(self) -> None:
        """running = (1 - momentum) * running + momentum * batch, in place; the variance unbiased if asked."""
        if self.running_mean is None:
            return
        count, mean, var = self.moments
        m = self.momentum
        batch_var = var * (count / max(count - 1, 1)) if self.unbiased else var
        self.running_mean *= 1 - m
        self.running_mean += m * mean.astype(self.running_mean.dtype)
        self.running_var *= 1 - m
        self.running_var += m * batch_var.astype(self.running_var.dtype)

    def backward(self, gy):
        x, mean, inv_std, weight = self.saved
        axes, shape = _reduce_axes(x), _channel_shape(x)
        count = self.moments.count
        x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        g_bias = gy.sum(axis=axes)
        g_weight = (gy * x_hat).sum(axis=axes)
        whole_bias, whole_weight = whole_batch_sums(g_bias, g_weight)  # over the mini-batch's count values
        gx = gy - (whole_bias / count).reshape(shape) - x_hat * (whole_weight / count).reshape(shape)
        return gx * (weight * inv_std).reshape(shape), g_weight, g_bias


# The fast training pass, and the helpers and kernels it works with.


def _channel_sums(row_sums, images: int):
    """Per-channel sums (C,) from per-row sums (N*C,), adding the images in order.

    Equals: x.sum(axis=(0, 2, ...)) when row_sums[n*C + c] is the sum of x[n, c]; NumPy's
    reduction over those axes adds each row's values pairwise, then the rows image by image.
    """
    return row_sums.reshape(images, -1).sum(axis=0)


def _mean_of_sums(sums, count: int):
    """sums / count, divided as ``ndarray.mean`` divides its sum (by an intp count, in place)."""
    return get_array_module(sums).true_divide(sums, np.intp(count), out=sums, casting="unsafe")


# The kernels below run on rows of maps (``_rows``) with per-row columns (``_per_row``); a
# row's sum goes into a (rows,) vector. Each writes only into arrays it is given (its
# temporaries are one block in size) and equals the formula in its docstring, in that order.


def _center_kernel(centered, x, mean) -> None:
    """Equals: centered = x - mean."""
    get_array_module(x).subtract(x, mean, out=centered)


def _centered_square_sums_kernel(centered, x, mean, square_sums) -> None:
    """Equals: centered = x - mean; square_sums = (centered * centered).sum(axis=1)."""
    _center_kernel(centered, x, mean)
    squares = centered * centered
    squares.sum(axis=1, out=square_sums)


def _affine_kernel(y, scale, shift) -> None:
    """Equals: y = y * scale + shift, in place."""
    y *= scale
    y += shift


def _scale_shift_kernel(y, x, scale, shift) -> None:
    """Equals: y = x * scale + shift."""
    get_array_module(x).multiply(x, scale, out=y)
    y += shift


def _gradient_sums_kernel(x_hat, gy, x, mean, inv_std, gy_sums, gy_x_hat_sums) -> None:
    """Equals: x_hat = (x - mean) * inv_std; gy_sums = gy.sum(axis=1); gy_x_hat_sums = (gy * x_hat).sum(axis=1)."""
    get_array_module(x).subtract(x, mean, out=x_hat)
    x_hat *= inv_std
    products = x_hat * gy  # gy * x_hat: the product commutes exactly
    gy.sum(axis=1, out=gy_sums)
    products.sum(axis=1, out=gy_x_hat_sums)


def _input_grad_kernel(gx, gy, mean_gy, mean_gy_x_hat, scale) -> None:
    """Equals: gx = (gy - mean_gy - gx * mean_gy_x_hat) * scale, in place, where gx holds x_hat.

    With scale = weight * inv_std, this is BatchNorm's input gradient.
    """
    gx *= mean_gy_x_hat
    centered_gy = gy - mean_gy
    get_array_module(gy).subtract(centered_gy, gx, out=gx)
    gx *= scale


class BatchNormTrain(BatchNormTrainReference):
    """``BatchNormTrainReference`` in place and in blocks, equal to it bit for bit.

    Each direction makes one array, its result, and fills it in two block passes: the first
    writes there what both passes need (x - mean forward, x_hat backward) and sums per row what
    the statistics need; the second turns it into the result in place.
    """

    reference = BatchNormTrainReference

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        axes, n = _reduce_axes(x), x.shape[0]
        count = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        y = xp.empty(x.shape, x.dtype)  # holds x - mean until the statistics are known
        square_sums = xp.empty(n * x.shape[1], x.dtype)  # (N*C,): one per image and channel
        parallel.chunked(_centered_square_sums_kernel, _rows(y), _rows(x), _per_row(mean, n), square_sums)
        var = _mean_of_sums(_channel_sums(square_sums, n), count)
        ours = Moments(count, mean, var)
        moments = self.normalizing_moments(ours)
        if moments is not ours:
            count, mean, var = moments
            parallel.chunked(_center_kernel, _rows(y), _rows(x), _per_row(mean, n))  # x minus the joined mean
        self.moments = moments
        inv_std = 1 / xp.sqrt(var + self.eps)
        self._update_running_statistics()
        self.save_for_backward(x, mean, inv_std, weight)
        columns = [_per_row(v, n) for v in (inv_std * weight, bias)]
        parallel.chunked(_affine_kernel, _rows(y), *columns)  # y = (x - mean) * scale + shift
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        x, mean, inv_std, weight = self.saved
        n, channels = x.shape[:2]
        mean_row, inv_std_row = _per_row(mean, n), _per_row(inv_std, n)
        gy_sums, gy_x_hat_sums = xp.empty(n * channels, gy.dtype), xp.empty(n * channels, gy.dtype)  # (N*C,)
        gx = xp.empty(x.shape, gy.dtype)  # holds x_hat until the sums are known
        parallel.chunked(
            _gradient_sums_kernel, _rows(gx), _rows(gy), _rows(x), mean_row, inv_std_row, gy_sums, gy_x_hat_sums
        )
        g_bias = _channel_sums(gy_sums, n)
        g_weight = _channel_sums(gy_x_hat_sums, n)
        # The statistics span ``count`` values, x's, the other processes' and the earlier
        # constants': each value of x moves the mean by 1 / count and the variance by
        # 2 (x - mean) / count, so d x = gamma * inv_std * (gy - sum(gy) / count - x_hat * sum(gy * x_hat) / count),
        # the sums over the shared mini-batch (with x alone, the sums divided by count are means).
        count = self.moments.count
        whole_bias, whole_weight = whole_batch_sums(g_bias, g_weight)
        columns = [_per_row(v, n) for v in (whole_bias / count, whole_weight / count, weight * inv_std)]
        parallel.chunked(_input_grad_kernel, _rows(gx), _rows(gy), *columns)
        return gx, g_weight, g_bias


class BatchNormEvalReference(Function):
    """Normalize with the running statistics, as the textbook writes it.

    Forward: x_hat = (x - running_mean) / sqrt(running_var + eps), y = x_hat * weight + bias.
    Backward (the statistics are constants): d x = gy * weight / sqrt(running_var + eps),
    d weight = sum(gy * x_hat), d bias = sum(gy), the sums over every axis but channels.
    """

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def forward(self, x, running_mean, running_var, weight, bias):
        xp = get_array_module(x)
        shape = _channel_shape(x)
        std = xp.sqrt(running_var + self.eps)
        x_hat = (x - running_mean.reshape(shape)) / std.reshape(shape)
        self.save_for_backward(x_hat, std, weight)
        return x_hat * weight.reshape(shape) + bias.reshape(shape)

    def backward(self, gy):
        x_hat, std, weight = self.saved
        axes, shape = _reduce_axes(gy), _channel_shape(gy)
        return gy * (weight / std).reshape(shape), None, None, (gy * x_hat).sum(axis=axes), gy.sum(axis=axes)


class BatchNormEval(BatchNormEvalReference):
    """``BatchNormEvalReference`` folded into y = x * scale + shift per channel, one block pass.

    scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale: equal to the
    reference to rounding, not bit for bit.
    """

    reference = BatchNormEvalReference

    def forward(self, x, running_mean, running_var, weight, bias):
        xp = get_array_module(x)
        inv_std = 1 / xp.sqrt(running_var + self.eps)
        scale = weight * inv_std
        self.save_for_backward(x, running_mean, inv_std, scale)
        shift = bias - running_mean * scale
        y = xp.empty(x.shape, xp.result_type(x, scale, shift))
        n = x.shape[0]
        parallel.chunked(_scale_shift_kernel, _rows(y), _rows(x), _per_row(scale, n), _per_row(shift, n))
        return y

    def backward(self, gy):
        x, running_mean, inv_std, scale = self.saved
        axes, shape = _reduce_axes(x), _channel_shape(x)
        g_weight = None
        if self.needs_input_grad[3]:
            g_weight = (gy * (x - running_mean.reshape(shape))).sum(axis=axes) * inv_std
        g_bias = gy.sum(axis=axes) if self.needs_input_grad[4] else None
        return gy * scale.reshape(shape), None, None, g_weight, g_bias


def _checked_affine(x: Tensor, weight: Tensor | None, bias: Tensor | None, name: str) -> tuple[Tensor, Tensor]:
    """(weight, bias) for x (N, C, ...): ones and zeros where None; a clear error when they do not fit."""
    if x.ndim < 2:
        raise ValueError(f"{name} expects input of shape (N, C, ...), got {x.shape}")
    channels = x.shape[1]
    xp = get_array_module(x.data)
    weight = weight if weight is not None else Tensor._from_array(xp.ones(channels, x.dtype))
    bias = bias if bias is not None else Tensor._from_array(xp.zeros(channels, x.dtype))
    if weight.shape != (channels,) or bias.shape != (channels,):
        raise ValueError(
            f"{name}: input has {channels} channels but weight/bias have shapes {weight.shape}/{bias.shape}"
        )
    return weight, bias


def _check_training_values(x: Tensor, name: str) -> None:
    if math.prod(x.shape) // x.shape[1] < 2:
        raise ValueError(f"{name} in training needs more than one value per channel, got {x.shape}")


def _raw(statistic):
    return statistic.data if isinstance(statistic, Tensor) else statistic


def batch_norm(
    x: Tensor,
    running_mean,
    running_var,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    unbiased: bool = True,
) -> Tensor:
    """Batch normalization over axis 1 of x (N, C, ...), PyTorch's signature.

    ``running_mean`` and ``running_var`` are (C,) arrays or Tensors (or None in training to
    keep no statistics); in training they are updated in place, the variance unbiased
    (PyTorch) or, with ``unbiased=False``, exactly as the batch was normalized.
    """
    weight, bias = _checked_affine(x, weight, bias, "batch_norm")
    raw = [_raw(s) for s in (running_mean, running_var)]
    if training:
        _check_training_values(x, "batch_norm")
        return BatchNormTrain(raw[0], raw[1], momentum, eps, unbiased)(x, weight, bias)
    if raw[0] is None or raw[1] is None:
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    stats = [Tensor._from_array(a) for a in raw]
    return BatchNormEval(eps)(x, stats[0], stats[1], weight, bias)


def cross_minibatch_norm(
    x: Tensor,
    earlier: Moments | None,
    running_mean,
    running_var,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Tensor, Moments]:
    """CmBN in training: batch normalization of x (N, C, ...) with the statistics of ``earlier``
    mini-batches (constants; None for the first of an update) and x's together.

    Returns (y, the joined statistics): pass them as ``earlier`` with the next mini-batch of
    the same update. The running statistics (or None) move toward the joined statistics, the
    variance biased, as it was normalized with. In eval mode CmBN is ``batch_norm``.
    """
    weight, bias = _checked_affine(x, weight, bias, "cross_minibatch_norm")
    if earlier is not None and earlier.mean.shape != (x.shape[1],):
        raise ValueError(
            f"cross_minibatch_norm: input has {x.shape[1]} channels but the earlier statistics "
            f"have {earlier.mean.shape[0]}"
        )
    _check_training_values(x, "cross_minibatch_norm")
    function = BatchNormTrain(_raw(running_mean), _raw(running_var), momentum, eps, unbiased=False, earlier=earlier)
    return function(x, weight, bias), function.moments
