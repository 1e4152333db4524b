"""Layer Modules: thin owners of parameters around ``minilucid.nn.functional``.

Initialization follows PyTorch (uniform in +-1/sqrt(fan_in) for conv and linear weights
and biases), so models built here start from the same distribution as their PyTorch twins.
"""

from __future__ import annotations

import math

import numpy

from minilucid import random
from minilucid.nn import functional as F
from minilucid.nn.module import Module, Parameter
from minilucid.tensor import Tensor


def _uniform_parameter(shape: tuple[int, ...], bound: float) -> Parameter:
    return Parameter(random.uniform(-bound, bound, shape).data)


class Conv2d(Module):
    """2-D convolution; ``padding`` is an int or ``"same"``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = _uniform_parameter((out_channels, in_channels, kernel_size, kernel_size), bound)
        self.bias = _uniform_parameter((out_channels,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}"
        )


class BatchNorm2d(Module):
    """Batch normalization over channels with running statistics (eps 1e-5, momentum 0.1).

    ``unbiased_running_var=False`` keeps the variance each batch was normalized with, so eval
    mode reproduces training exactly even for batches with few values per channel (see
    ``functional.batch_norm``); the default is PyTorch's unbiased running variance.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, unbiased_running_var: bool = True
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.unbiased_running_var = unbiased_running_var
        self.weight = Parameter(numpy.ones(num_features, dtype=numpy.float32))
        self.bias = Parameter(numpy.zeros(num_features, dtype=numpy.float32))
        self.register_buffer("running_mean", numpy.zeros(num_features, dtype=numpy.float32))
        self.register_buffer("running_var", numpy.ones(num_features, dtype=numpy.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
            unbiased=self.unbiased_running_var,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class CrossMiniBatchNorm2d(BatchNorm2d):
    """Cross mini-batch normalization (CmBN, YOLOv4): in training, BatchNorm whose statistics
    span the mini-batches of one weight update.

    With gradient accumulation (darknet's subdivisions) one update sees several mini-batches;
    BatchNorm normalizes each with its own few values. CmBN normalizes mini-batch t with the
    statistics of mini-batches 1..t together (earlier ones as constants), so later ones see
    steadier statistics. Call ``reset()`` after each optimizer step. With one mini-batch per
    update, and in eval mode, it is ``BatchNorm2d(unbiased_running_var=False)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps, momentum, unbiased_running_var=False)
        self.reset()

    def reset(self) -> None:
        """Start a new update: forget the statistics of earlier mini-batches."""
        self.earlier = None  # the statistics of this update's mini-batches so far (F.cross_minibatch_norm)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        y, self.earlier = F.cross_minibatch_norm(
            x, self.earlier, self.running_mean, self.running_var, self.weight, self.bias, self.momentum, self.eps
        )
        return y


class Linear(Module):
    """y = x @ weight.T + bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform_parameter((out_features, in_features), bound)
        self.bias = _uniform_parameter((out_features,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding: int | str = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode: str = "nearest") -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"


class Dropout(Module):
    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)


class DropBlock2d(Module):
    """DropBlock: drops BxB squares of each feature map while training."""

    def __init__(self, block_size: int = 7, drop_prob: float = 0.1) -> None:
        super().__init__()
        self.block_size, self.drop_prob = block_size, drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return F.drop_block(x, self.block_size, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, drop_prob={self.drop_prob}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Mish(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.mish(x)


class SiLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on logits (stable for any logit)."""

    def __init__(self, weight=None, reduction="mean") -> None:
        super().__init__()
        self.weight, self.reduction = weight, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction)


class BCELoss(Module):
    """Binary cross-entropy on probabilities."""

    def __init__(self, weight=None, reduction="mean") -> None:
        super().__init__()
        self.weight, self.reduction = weight, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class MSELoss(Module):
    """Mean squared error."""

    def __init__(self, reduction="mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.mse_loss(input, target, self.reduction)
