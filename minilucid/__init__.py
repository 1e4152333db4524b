"""minilucid: a small autograd engine on NumPy (and CuPy), with lucid 2.x's API.

``import minilucid as lucid`` is meant to be enough for lucid-style code::

    import minilucid as lucid
    x = lucid.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # array([2., 4.], dtype=float32)

The fast kernels (conv, BatchNorm, max-pool, Mish, LeakyReLU) each keep their textbook
formula in a Function class above them; ``with minilucid.reference_kernels():`` (or
``MINILUCID_REFERENCE_KERNELS=1``) runs those instead (docs/architecture.md, "Reading the kernels").
"""

from minilucid import (  # noqa: E402
    autograd,
    backend,
    data,
    nn,
    optim,
    parallel,
    random,  # noqa: E402, I001  (after Tensor: it builds tensors)
)
from minilucid.autograd import enable_grad, grad_enabled, no_grad, reference_kernels, reference_kernels_enabled
from minilucid.backend import gpu_available
from minilucid.creation import (
    arange,
    empty,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    tensor,
    zeros,
    zeros_like,
)
from minilucid.ops import (
    abs,
    add,
    arctan,
    argmax,
    argmin,
    clip,
    concatenate,
    div,
    exp,
    expand_dims,
    flatten,
    log,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    power,
    reshape,
    sigmoid,
    softplus,
    split,
    sqrt,
    squeeze,
    stack,
    sub,
    sum,
    swapaxes,
    tanh,
    transpose,
    var,
    where,
)
from minilucid.parallel import get_num_threads, set_num_threads
from minilucid.serialization import load, save  # noqa: E402
from minilucid.tensor import Tensor

__version__ = "0.1.0"
