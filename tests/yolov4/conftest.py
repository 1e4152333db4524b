"""Helpers for the detector's tests: randomized weights and calibrated BatchNorm statistics."""

import numpy as np


def calibrate(model, images) -> None:
    """Set every BatchNorm's running statistics to those of ``images`` (one pass, momentum 1),
    so eval mode sees activations of unit scale, as in a trained network."""
    import minilucid as lucid

    norms = [m for m in model.modules() if isinstance(m, lucid.nn.BatchNorm2d)]
    mode = model.training
    for norm in norms:
        norm.momentum = 1.0
    with lucid.no_grad():
        model.train()(images)
    for norm in norms:
        norm.momentum = 0.1
    model.train(mode)


def randomize(model, seed: int = 0, output_gain: float = 8.0, leaky_shift: float = 0.0) -> None:
    """Give a model weights and BatchNorm statistics that keep activations O(1) through
    100+ layers, with output convs scaled up so raw outputs spread over several units.

    ``leaky_shift`` moves the BatchNorm shift of every LeakyReLU unit up, so that (after
    ``calibrate``) its inputs sit away from the kink at 0, where float32 rounding alone can
    flip the slope between 1 and 0.1 and scatter the gradients of two equal implementations.
    """
    rng = np.random.default_rng(seed)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if name.endswith("conv.weight"):
            value = rng.standard_normal(tensor.shape) / np.sqrt(np.prod(tensor.shape[1:]))
            if name.endswith("output.conv.weight"):
                value *= output_gain
        elif name.endswith("bn.weight"):
            value = rng.uniform(0.3, 0.6, tensor.shape)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, tensor.shape)
        else:
            value = rng.normal(0, 0.1, tensor.shape)
        tensor.data[...] = value.astype(tensor.dtype)
    if leaky_shift:
        for unit in model.modules():
            if getattr(unit, "activation", None) == "leaky" and unit.bn is not None:
                unit.bn.bias.data += leaky_shift
