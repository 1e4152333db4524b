"""Fixtures for the detector's tests: darknet's reference cfgs and randomized weights."""

from pathlib import Path

import numpy as np
import pytest

# darknet's cfg files, kept by the project beside the checkout (../shared/darknet).
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "darknet"


@pytest.fixture
def reference_cfg():
    def path(name: str) -> Path:
        file = REFERENCE / name
        if not file.is_file():
            pytest.skip(f"darknet reference file {file} is not present")
        return file

    return path


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
