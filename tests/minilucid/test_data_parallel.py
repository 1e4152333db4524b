"""Forked replicas: the gradients of shares computed in other processes add up to one
process's, errors come back as themselves, and no replica outlives its parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minilucid as lucid
from minilucid.data_parallel import WAIT_SLICE_SECONDS, ForkedReplicas, usable_cores, wait_readable

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked replicas need fork(); this OS has none")


def small_model():
    """Two linear layers in float64, so sums compare to 1e-12."""
    lucid.random.seed(0)
    model = lucid.nn.Sequential(lucid.nn.Linear(6, 16), lucid.nn.Mish(), lucid.nn.Linear(16, 3))
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def share_gradient(model, x, y):
    """Forward and backward of one share; returns its loss (what ``work`` returns)."""
    loss = ((model(lucid.Tensor(x)) - lucid.Tensor(y)) ** 2).mean()
    loss.backward()
    return float(loss.item())


def shares(count, seed=0):
    gen = np.random.default_rng(seed)
    return [(gen.standard_normal((5, 6)), gen.standard_normal((5, 3))) for _ in range(count)]


@pytest.mark.parametrize("replicas", [1, 2])
def test_replicas_gradients_add_up_to_one_process_accumulating_the_same_shares(replicas):
    model = small_model()
    parameters = list(model.parameters())
    data = shares(replicas + 1)
    for p in parameters:
        p.grad = None
    one_process = [share_gradient(model, x, y) for x, y in data]
    expected = [p.grad.copy() for p in parameters]
    with ForkedReplicas(parameters, replicas, lambda x, y: share_gradient(model, x, y)) as forked:
        for p in parameters:
            p.grad = None
        results = forked.run(lambda: share_gradient(model, *data[0]), data[1:])
    assert results == pytest.approx(one_process, rel=1e-12)
    for p, want in zip(parameters, expected, strict=True):
        np.testing.assert_allclose(p.grad, want, rtol=1e-12, atol=1e-15)


def test_replicas_train_with_the_parameters_as_they_are_now():
    """Each run copies the parameters over: after an update, a replica computes with the new ones."""
    model = small_model()
    parameters = list(model.parameters())
    (x0, y0), (x1, y1) = shares(2)
    with ForkedReplicas(parameters, 1, lambda x, y: share_gradient(model, x, y)) as forked:
        for _ in range(3):
            for p in parameters:
                p.grad = None
            losses = forked.run(lambda: share_gradient(model, x0, y0), [(x1, y1)])
            for p in parameters:
                p.data -= 0.1 * p.grad
        for p in parameters:
            p.grad = None
        assert forked.run(lambda: 0.0, [(x1, y1)])[1] == pytest.approx(share_gradient(model, x1, y1), rel=1e-12)
    assert losses[1] != pytest.approx(share_gradient(model, x1, y1))  # the loss did change over the steps


def test_an_error_in_a_replica_is_raised_here_and_the_replica_serves_on():
    model = small_model()
    parameters = list(model.parameters())
    data = shares(2)

    def work(x, y):
        if not np.isfinite(x).all():
            raise FloatingPointError("the share's input holds a NaN")
        return share_gradient(model, x, y)

    with ForkedReplicas(parameters, 1, work) as forked:
        bad = data[1][0].copy()
        bad[0, 0] = np.nan
        with pytest.raises(FloatingPointError, match="holds a NaN"):
            forked.run(lambda: share_gradient(model, *data[0]), [(bad, data[1][1])])
        for p in parameters:
            p.grad = None
        assert forked.run(lambda: 1.0, [data[1]])[1] == pytest.approx(share_gradient(model, *data[1]))


def test_our_own_error_is_raised_after_the_replicas_answer():
    model = small_model()
    data = shares(2)

    def own():
        raise ValueError("ours")

    with ForkedReplicas(list(model.parameters()), 1, lambda x, y: share_gradient(model, x, y)) as forked:
        with pytest.raises(ValueError, match="ours"):
            forked.run(own, [data[1]])
        assert forked.run(lambda: 2.0, [data[1]])[0] == 2.0  # the replica's answer was taken, none is left over


def test_close_ends_the_replicas_and_parameters_must_share_a_dtype():
    model = small_model()
    open_files = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    forked = ForkedReplicas(list(model.parameters()), 2, lambda: None)
    pids = [process.pid for process in forked.processes]
    forked.close()
    assert not any(running(pid) for pid in pids)
    if open_files is not None:  # the pipes' ends are closed too: a run per fit leaks nothing
        assert len(os.listdir("/proc/self/fd")) == open_files
    mixed = [lucid.nn.Parameter(np.zeros(2, np.float32)), lucid.nn.Parameter(np.zeros(2, np.float64))]
    with pytest.raises(TypeError, match="one dtype"):
        ForkedReplicas(mixed, 1, lambda: None)
    with pytest.raises(ValueError, match="count >= 1"):
        ForkedReplicas(list(model.parameters()), 0, lambda: None)


def test_a_killed_parent_leaves_no_replica_behind(tmp_path):
    """A training run killed mid-epoch must not leave its replicas waiting forever."""
    script = textwrap.dedent(
        """
        import os, sys, time
        import numpy as np
        import minilucid as lucid
        from minilucid.data_parallel import ForkedReplicas
        forked = ForkedReplicas([lucid.nn.Parameter(np.zeros(3))], 2, lambda: None)
        print(" ".join(str(p.pid) for p in forked.processes), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if running(pid)]
        time.sleep(0.2)
    assert not alive, f"replicas {alive} outlived their killed parent"


def test_a_wait_counts_only_the_time_it_ran():
    """A poll that returns long after the slice it asked for was stopped (Ctrl-Z) with the
    other processes: that time is not waiting, so the wait goes on; running time still ends it."""
    now = [0.0]

    def poll_that(advance, answers):
        def poll(seconds):
            now[0] += advance(seconds)
            return answers.pop(0)

        return poll

    stopped_an_hour = poll_that(lambda seconds: 3600.0, [False, True])
    assert wait_readable(stopped_an_hour, timeout=300.0, clock=lambda: now[0])
    calls = [False] * 1000
    never = poll_that(lambda seconds: seconds, calls)
    assert not wait_readable(never, timeout=300.0, clock=lambda: now[0])
    assert len(calls) == 1000 - 300 / WAIT_SLICE_SECONDS  # it waited 300 s of slices, then gave up


def test_two_processes_stopped_longer_than_the_timeout_go_on_when_continued():
    """Ctrl-Z on a two-process run, ``fg`` minutes later: the process waiting at a BatchNorm
    goes on instead of timing out (here with a 2-second timeout and a 4-second stop)."""
    script = textwrap.dedent(
        """
        import time
        import numpy as np
        import minilucid as lucid
        from minilucid import data_parallel
        data_parallel.EXCHANGE_TIMEOUT_SECONDS, data_parallel.WAIT_SLICE_SECONDS = 2.0, 0.25
        lucid.random.seed(0)
        model = lucid.nn.Sequential(lucid.nn.Conv2d(3, 4, 3, padding=1), lucid.nn.BatchNorm2d(4)).train()
        x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
        def work(part, late):
            time.sleep(late)  # the replica comes late: this process waits for it at the BatchNorm
            out = model(lucid.Tensor(part))
            (out * out).sum().backward()
            return 0.0
        with data_parallel.ForkedReplicas(list(model.parameters()), 1, work) as forked:
            print("running", flush=True)
            forked.run(lambda: work(x[:2], 0.0), [(x[2:], 1.0)])
        print("done", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert child.stdout.readline().strip() == "running"
    time.sleep(0.5)  # this process waits at the first BatchNorm, the replica sleeps
    os.killpg(child.pid, signal.SIGSTOP)
    time.sleep(4.0)
    os.killpg(child.pid, signal.SIGCONT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "done", err[-500:]


def running(pid):
    """Whether process ``pid`` runs (a zombie, ended and waiting to be reaped by init, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the OS whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_usable_cores_is_at_least_one():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def batch_norm_model():
    """A conv and a BatchNorm in float64: its processes exchange statistics forward and backward."""
    lucid.random.seed(0)
    model = lucid.nn.Sequential(lucid.nn.Conv2d(3, 4, 3, padding=1), lucid.nn.BatchNorm2d(4), lucid.nn.Mish())
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model.train()


def test_batch_norm_normalizes_with_the_whole_shared_batch():
    model = batch_norm_model()
    images = np.random.default_rng(0).standard_normal((4, 3, 5, 5))

    def work(x):
        out = model(lucid.Tensor(x))
        (out * out).sum().backward()
        return out.numpy()

    whole = work(images)
    expected = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    with ForkedReplicas(list(model.parameters()), 1, work) as forked:
        ours, theirs = forked.run(lambda: work(images[:2]), [(images[2:],)])
    np.testing.assert_allclose(np.concatenate([ours, theirs]), whole, rtol=1e-12, atol=1e-12)
    for p, want in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(p.grad, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("who", ["replica-before-its-forward", "ours-between-forward-and-backward"])
def test_a_failure_midway_stops_the_others_waiting_and_the_next_run_is_whole(who):
    """A process that fails while others wait for its statistics must not leave them waiting,
    and what the failed run left in the pipes must not mix into the next one."""
    model = batch_norm_model()
    images = np.random.default_rng(0).standard_normal((4, 3, 5, 5))

    def work(x, fail=False):
        if fail:
            raise ValueError("failed before its forward")
        out = model(lucid.Tensor(x))
        (out * out).sum().backward()
        return 0.0

    def failing_own():
        model(lucid.Tensor(images[:2]))  # the forward's exchanges happen; then no backward
        raise ValueError("failed after its forward")

    with ForkedReplicas(list(model.parameters()), 1, work) as forked:
        own, share = (lambda: work(images[:2])), (images[2:], True)
        if who.startswith("ours"):
            own, share = failing_own, (images[2:], False)
        with pytest.raises(ValueError, match="failed"):
            forked.run(own, [share])
        for p in model.parameters():
            p.grad = None
        forked.run(lambda: work(images[:2]), [(images[2:],)])
        shared = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    work(images)
    for p, got in zip(model.parameters(), shared, strict=True):
        np.testing.assert_allclose(got, p.grad, rtol=1e-10, atol=1e-12)


def test_the_element_wise_pool_is_held_to_a_share_of_the_cores_until_close():
    previous = lucid.get_num_threads()
    lucid.set_num_threads(4)
    try:
        forked = ForkedReplicas(list(small_model().parameters()), 1, lambda: None)
        assert lucid.get_num_threads() == forked.threads == max(1, usable_cores() // 2)
        forked.close()
        assert lucid.get_num_threads() == 4
    finally:
        lucid.set_num_threads(previous)
