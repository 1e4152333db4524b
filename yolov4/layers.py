"""The building block of every YOLOv4 layer: convolution, BatchNorm, activation.

darknet calls it a ``[convolutional]`` section; YOLOv4's paper writes CBM (Conv-BN-Mish)
in the backbone and CBL (Conv-BN-Leaky) in the neck. A conv followed by BatchNorm has no
bias (BatchNorm's shift replaces it); the three output convs have a bias and no activation.

BatchNorm here keeps, as running variance, the variance each batch was normalized with
(not PyTorch's unbiased estimate), so a detector trained on small images in small batches
detects in eval mode exactly as it did in training; see minilucid's ``batch_norm``.
"""

from __future__ import annotations

import minilucid as lucid
from minilucid import nn
from minilucid.nn import functional as F

ACTIVATIONS = ("mish", "leaky", "linear")


class ConvUnit(nn.Module):
    """Conv2d (+ BatchNorm2d) + activation, with darknet's "same" padding (k // 2).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        activation: str = "mish",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"ConvUnit: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            bias=not batch_norm,
        )
        self.bn = nn.BatchNorm2d(out_channels, unbiased_running_var=False) if batch_norm else None

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activation == "mish":
            return F.mish(x)
        if self.activation == "leaky":
            return F.leaky_relu(x, 0.1)
        return x

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def extra_repr(self) -> str:
        c = self.conv
        return f"{c.in_channels}, {c.out_channels}, k={c.kernel_size}, s={c.stride}, {self.activation}"
