"""The element-wise thread pool: threaded kernels equal the unthreaded ones to the bit.

Each threaded op is run twice on the same inputs: once with the pool on, its parts cut
small and uneven so that every kernel runs on many blocks and both threads, and once with
the pool off and every kernel run whole. Forward outputs and every gradient must be equal
bit for bit (docs/performance.md, "A lesson about order", says why a last bit matters).
"""

import threading
import time

import numpy as np
import pytest

import minilucid as lucid
from minilucid import parallel
from minilucid.nn import functional as F
from tests.conftest import DEVICES


@pytest.fixture
def pool(monkeypatch):
    """A function switching between 'threaded' (2 threads, tiny uneven blocks) and 'whole'."""

    def use(mode: str) -> None:
        if mode == "threaded":
            parallel.set_num_threads(2)
            monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 16)
            monkeypatch.setattr(parallel, "BLOCK_SIZE", 997)  # a prime: blocks end mid-row
        else:
            parallel.set_num_threads(1)
            monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 1 << 60)

    previous = parallel.get_num_threads()
    yield use
    parallel.set_num_threads(previous)


def inputs(shape, seed=0):
    """Values spread wide enough to reach Mish's clip (x > 20) and its far negative tail."""
    gen = np.random.default_rng(seed)
    return (gen.standard_normal(shape) * 12).astype(np.float32)


def forward_and_grads(make_output, arrays):
    """Run ``make_output`` on fresh tensors of ``arrays``; return its output and every gradient."""
    tensors = [lucid.Tensor(a.copy(), requires_grad=True) for a in arrays]
    y = make_output(*tensors)
    upstream = inputs(y.shape, seed=1)
    (y * lucid.Tensor(upstream)).sum().backward()
    return [y.numpy(), *(t.grad for t in tensors)]


SHAPE = (3, 5, 19, 23)  # no axis a multiple of 2, 4 or 16


def batch_norm_train(x, w, b):
    return F.batch_norm(x, np.zeros(5, np.float32), np.ones(5, np.float32), w, b, training=True)


def batch_norm_eval(x, w, b):
    stats = np.linspace(-1, 1, 5).astype(np.float32), np.linspace(0.5, 2, 5).astype(np.float32)
    return F.batch_norm(x, *stats, w, b, training=False)


OPS = {
    "mish": (F.mish, [SHAPE]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), [SHAPE]),
    "batch_norm_train": (batch_norm_train, [SHAPE, (5,), (5,)]),
    "batch_norm_train_one_image": (batch_norm_train, [(1, *SHAPE[1:]), (5,), (5,)]),
    "batch_norm_eval": (batch_norm_eval, [SHAPE, (5,), (5,)]),
    "conv3x3": (lambda x, w: F.conv2d(x, w, None, 1, 1), [SHAPE, (4, 5, 3, 3)]),
    "conv3x3_stride2": (lambda x, w: F.conv2d(x, w, None, 2, 1), [SHAPE, (4, 5, 3, 3)]),
    "conv5x5_no_pad": (lambda x, w: F.conv2d(x, w, None, 1, 0), [SHAPE, (2, 5, 5, 5)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_threaded_ops_equal_unthreaded_to_the_bit(name, pool):
    make_output, shapes = OPS[name]
    arrays = [inputs(shape, seed=i + 2) for i, shape in enumerate(shapes)]
    pool("whole")
    expected = forward_and_grads(make_output, arrays)
    pool("threaded")
    got = forward_and_grads(make_output, arrays)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: output {index} (0 is the forward)")


def test_threaded_kernels_equal_their_references(pool):
    """The threaded BatchNorm and Mish against the textbook formulas kept above them, bit for bit."""
    from minilucid.nn.functional.activation import Mish, MishReference
    from minilucid.nn.functional.norm import BatchNormTrain, BatchNormTrainReference

    pool("threaded")
    x, gy = inputs(SHAPE, 3) / 4, inputs(SHAPE, 4)
    weight, bias = np.linspace(0.5, 1.5, 5).astype(np.float32), np.linspace(-1, 1, 5).astype(np.float32)
    norms = [kind(None, None, 0.1, 1e-5) for kind in (BatchNormTrain, BatchNormTrainReference)]
    ours, expected = ((n.forward(x, weight, bias), *n.backward(gy)) for n in norms)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    mishes = [kind() for kind in (Mish, MishReference)]
    ours, expected = ((m.forward(x * 4), m.backward(gy)) for m in mishes)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(got, want)


OPTIMIZERS = {
    "sgd": lambda p: lucid.optim.SGD(p, lr=0.01, momentum=0.949, weight_decay=5e-4),
    "sgd_nesterov": lambda p: lucid.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "sgd_plain": lambda p: lucid.optim.SGD(p, lr=0.01),
    "adam": lambda p: lucid.optim.Adam(p, lr=0.01, weight_decay=5e-4),
    "adamw": lambda p: lucid.optim.AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_threaded_optimizer_steps_equal_unthreaded_to_the_bit(name, pool):
    def trajectory():
        param = lucid.nn.Parameter(inputs((7, 301), 5))
        optimizer = OPTIMIZERS[name]([param])
        for step in range(3):
            param.grad = inputs((7, 301), 6 + step)
            optimizer.step()
        state = [v.copy() for v in optimizer.state[0].values() if hasattr(v, "shape")]
        return [param.numpy().copy(), *state]

    pool("whole")
    expected = trajectory()
    pool("threaded")
    got = trajectory()
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def calls_of(kernel_size: int, seconds_per_call: float = 0.0):
    """Run a recording kernel on ``kernel_size`` elements; return (thread name, block size) per call."""
    calls = []

    def record(out, x):
        calls.append((threading.current_thread().name, out.size))
        np.multiply(x, 2, out=out)
        time.sleep(seconds_per_call)  # lets the other thread take the next block

    x = np.arange(kernel_size, dtype=np.float32)
    out = parallel.chunked(record, np.empty_like(x), x)
    np.testing.assert_array_equal(out, x * 2)
    return calls


def test_large_arrays_run_on_the_pool_threads_and_the_switch_turns_it_off():
    previous = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        calls = calls_of(8 * parallel.BLOCK_SIZE, seconds_per_call=0.05)
        # The caller's thread and the pool's one thread share the blocks.
        assert {name.split("_")[0] for name, _ in calls} == {threading.current_thread().name, "minilucid"}
        assert sum(size for _, size in calls) == 8 * parallel.BLOCK_SIZE
        assert max(size for _, size in calls) <= parallel.BLOCK_SIZE
        parallel.set_num_threads(1)
        calls = calls_of(4 * parallel.BLOCK_SIZE)
        assert {name for name, _ in calls} == {threading.current_thread().name}
    finally:
        parallel.set_num_threads(previous)


def test_small_arrays_run_whole_on_the_callers_thread():
    previous = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        below = parallel.MIN_PARALLEL_SIZE - 1
        assert calls_of(below) == [(threading.current_thread().name, below)]
        assert len(calls_of(parallel.MIN_PARALLEL_SIZE)) > 1
    finally:
        parallel.set_num_threads(previous)


def test_the_environment_variable_sets_the_threads_and_bad_values_are_refused(monkeypatch):
    monkeypatch.delenv("MINILUCID_NUM_THREADS", raising=False)
    assert parallel._default_threads() == 1  # the pool is off unless asked for (measured: docs/performance.md)
    monkeypatch.setenv("MINILUCID_NUM_THREADS", "1")
    assert parallel._default_threads() == 1
    monkeypatch.setenv("MINILUCID_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("MINILUCID_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="MINILUCID_NUM_THREADS must be a positive integer, got 'two'"):
        parallel._default_threads()
    with pytest.raises(ValueError, match="set_num_threads expects a positive int, got 0"):
        lucid.set_num_threads(0)


def test_a_kernels_error_reaches_the_caller(pool):
    pool("threaded")

    def broken(out, x):
        raise FloatingPointError("from a part")

    with pytest.raises(FloatingPointError, match="from a part"):
        parallel.chunked(broken, np.zeros(100), np.zeros(100))


def test_blocks_cover_every_row_once_and_hold_about_a_block_size(monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_SIZE", 100)
    for shape in [(1,), (7, 3), (250,), (3, 1000), (40, 30)]:
        bounds = parallel.block_bounds(np.empty(shape))
        assert [i for start, stop in bounds for i in range(start, stop)] == list(range(shape[0]))
        row = int(np.prod(shape[1:]))
        assert all((stop - start) * row <= max(100, row) for start, stop in bounds)


def test_a_thread_that_never_starts_is_not_waited_for(pool):
    """The caller takes every block when the pool's thread is held up (its core busy)."""
    pool("threaded")
    release = threading.Event()
    parallel._get_pool().submit(release.wait)  # the pool's only thread is now busy
    try:
        calls = calls_of(4 * parallel.BLOCK_SIZE)
        assert {name for name, _ in calls} == {threading.current_thread().name}
    finally:
        release.set()


@pytest.mark.parametrize("device", DEVICES)
def test_gpu_arrays_run_whole(device):
    """On the GPU a kernel already covers the device: no parts, no threads."""
    calls = []
    x = lucid.Tensor(np.zeros(1 << 20, np.float32), device=device).data

    def record(out, x):
        calls.append(out.size)

    parallel.chunked(record, x, x)
    assert (calls == [x.size]) == (device == "gpu")
