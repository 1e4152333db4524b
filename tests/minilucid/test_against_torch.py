"""minilucid against PyTorch CPU (a test-only oracle): forward values and gradients agree
to 1e-6 relative in float64 and 1e-4 in float32; optimizers follow the same trajectory."""

import numpy as np
import pytest

import minilucid as lucid
from minilucid.nn import functional as F
from tests.conftest import DEVICES, assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOLERANCE = {np.float64: 1e-6, np.float32: 1e-4}
DTYPES = [np.float64, np.float32]


def compare(ours_fn, theirs_fn, arrays, dtype, device="cpu"):
    """Run both on the same inputs and an upstream gradient; compare outputs and gradients."""
    rng = np.random.default_rng(0)
    arrays = [a.astype(dtype) for a in arrays]
    ours_in = [lucid.Tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_out, theirs_out = ours_fn(*ours_in), theirs_fn(*theirs_in)
    upstream = rng.standard_normal(theirs_out.shape).astype(dtype)
    ours_out.backward(upstream)
    theirs_out.backward(torch.tensor(upstream))
    rtol = TOLERANCE[dtype]
    assert_close(ours_out, theirs_out.detach().numpy(), rtol, "forward")
    for i, (a, b) in enumerate(zip(ours_in, theirs_in, strict=True)):
        assert_close(a.grad, b.grad.numpy(), rtol, f"gradient of input {i}")


CONVS = [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 1, 0), (3, 2, 1), (3, 2, 0), (5, 1, 2), (5, 2, 2)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", CONVS)
def test_conv2d(kernel, stride, padding, dtype, device):
    rng = np.random.default_rng(kernel * 10 + stride)
    x, w, b = (
        rng.standard_normal((2, 5, 11, 9)),
        rng.standard_normal((6, 5, kernel, kernel)),
        rng.standard_normal(6),
    )
    compare(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding),
        lambda x, w, b: TF.conv2d(x, w, b, stride, padding),
        [x, w, b],
        dtype,
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_train_and_eval_with_running_statistics(dtype, device):
    rng = np.random.default_rng(1)
    ours = lucid.nn.BatchNorm2d(4).to(device)
    theirs = torch.nn.BatchNorm2d(4).to(getattr(torch, np.dtype(dtype).name))
    if dtype == np.float64:
        for t in list(ours.parameters()) + list(ours.buffers()):
            t.data = t.data.astype(np.float64)
    for step in range(4):  # several training steps move the running statistics
        x = (rng.standard_normal((3, 4, 5, 6)) * (step + 1) + step).astype(dtype)
        compare(ours, theirs, [x], dtype, device)
    assert_close(ours.running_mean, theirs.running_mean.numpy(), TOLERANCE[dtype], "running_mean")
    assert_close(ours.running_var, theirs.running_var.numpy(), TOLERANCE[dtype], "running_var")
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    compare(ours, theirs, [x], dtype, device)
    ours_grad_w = ours.weight.grad
    assert ours_grad_w is not None


POOLS = {
    "max_pool_2": (lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    "max_pool_5_same": (lambda x: F.max_pool2d(x, 5, 1, 2), lambda x: TF.max_pool2d(x, 5, 1, 2)),
    "max_pool_9_same": (lambda x: F.max_pool2d(x, 9, 1, 4), lambda x: TF.max_pool2d(x, 9, 1, 4)),
    "max_pool_13_same": (lambda x: F.max_pool2d(x, 13, 1, 6), lambda x: TF.max_pool2d(x, 13, 1, 6)),
    "max_pool_3_s2": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    "upsample_2": (
        lambda x: F.interpolate(x, scale_factor=2),
        lambda x: TF.interpolate(x, scale_factor=2),
    ),
    "upsample_size": (
        lambda x: F.interpolate(x, size=(17, 12)),
        lambda x: TF.interpolate(x, size=(17, 12)),
    ),
    "adaptive_avg": (
        lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
        lambda x: TF.adaptive_avg_pool2d(x, (3, 4)),
    ),
    "mish": (F.mish, TF.mish),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1)),
    "relu": (F.relu, TF.relu),
    "silu": (F.silu, TF.silu),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(POOLS))
def test_pools_resampling_and_activations(name, dtype, device):
    x = np.random.default_rng(2).standard_normal((2, 3, 13, 10)) * 4
    compare(*POOLS[name], [x], dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(reduction, dtype, device):
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 7)) * 10, rng.uniform(0, 1, (4, 7))
    compare(
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=reduction),
        lambda z, y: TF.binary_cross_entropy_with_logits(z, y, reduction=reduction),
        [z, y],
        dtype,
        device,
    )


def _trajectories(make_ours, make_theirs, steps=10):
    """Train the same small tanh model in both libraries; return both parameter histories."""
    rng = np.random.default_rng(4)
    w0, x, y = rng.standard_normal((4, 3)), rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    ours_w = lucid.nn.Parameter(w0.copy())
    theirs_w = torch.tensor(w0.copy(), requires_grad=True)
    ours_opt, theirs_opt = make_ours([ours_w]), make_theirs([theirs_w])
    ours_hist, theirs_hist = [], []
    for _ in range(steps):
        ours_opt.zero_grad()
        ((lucid.tanh(lucid.Tensor(x) @ ours_w) - lucid.Tensor(y)) ** 2).mean().backward()
        ours_opt.step()
        theirs_opt.zero_grad()
        ((torch.tanh(torch.tensor(x) @ theirs_w) - torch.tensor(y)) ** 2).mean().backward()
        theirs_opt.step()
        ours_hist.append(ours_w.numpy().copy())
        theirs_hist.append(theirs_w.detach().numpy().copy())
    return np.array(ours_hist), np.array(theirs_hist)


OPTIMIZERS = {
    "sgd": (lambda p: lucid.optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum_decay": (
        lambda p: lucid.optim.SGD(p, lr=0.1, momentum=0.949, weight_decay=5e-4),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.949, weight_decay=5e-4),
    ),
    "sgd_nesterov": (
        lambda p: lucid.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
    ),
    "adam": (lambda p: lucid.optim.Adam(p, lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    "adam_l2": (
        lambda p: lucid.optim.Adam(p, lr=0.05, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1),
    ),
    "adamw": (
        lambda p: lucid.optim.AdamW(p, lr=0.05, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_trajectories_over_ten_steps(name):
    ours, theirs = _trajectories(*OPTIMIZERS[name])
    assert np.abs(theirs[-1] - theirs[0]).max() > 1e-2  # the parameters really moved
    assert_close(ours, theirs, 1e-6, name)


SCHEDULERS = {
    "step": (
        lambda o: lucid.optim.lr_scheduler.StepLR(o, 3, 0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5),
    ),
    "multistep": (
        lambda o: lucid.optim.lr_scheduler.MultiStepLR(o, [2, 5, 6], 0.1),
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 6], 0.1),
    ),
    "cosine": (
        lambda o: lucid.optim.lr_scheduler.CosineAnnealingLR(o, 8, 0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 8, 0.01),
    ),
    "lambda": (
        lambda o: lucid.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e),
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_schedulers_match(name):
    make_ours, make_theirs = SCHEDULERS[name]
    ours = make_ours(lucid.optim.SGD([lucid.nn.Parameter(np.zeros(1))], lr=0.5))
    theirs_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    theirs = make_theirs(theirs_opt)
    for _ in range(9):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], rel=1e-12)
        theirs_opt.step()
        ours.step()
        theirs.step()
