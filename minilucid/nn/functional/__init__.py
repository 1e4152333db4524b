"""``minilucid.nn.functional``: the layer operations as functions (lucid's lower-case names)."""

from minilucid.nn.functional.activation import leaky_relu, mish, relu, silu
from minilucid.nn.functional.conv import col2im, conv2d, im2col, linear
from minilucid.nn.functional.dropout import drop_block, dropout, one_hot
from minilucid.nn.functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
)
from minilucid.nn.functional.norm import batch_norm, cross_minibatch_norm
from minilucid.nn.functional.pool import adaptive_avg_pool2d, interpolate, max_pool2d
from minilucid.ops import sigmoid, softplus, tanh

__all__ = [
    "adaptive_avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "col2im",
    "conv2d",
    "cross_minibatch_norm",
    "drop_block",
    "dropout",
    "im2col",
    "interpolate",
    "leaky_relu",
    "linear",
    "max_pool2d",
    "mish",
    "mse_loss",
    "one_hot",
    "relu",
    "sigmoid",
    "silu",
    "softplus",
    "tanh",
]
