"""Data parallel on CPU cores: forked copies of this process share each mini-batch.

On a small model the second core earns little inside one process: a BLAS product splits its
work between threads, but a NumPy ufunc runs on one core and Python runs the graph on one, so
a second BLAS thread made the demo's step only 1.07x faster (docs/training.md). Two processes,
each with one thread and half of the mini-batch, keep both cores busy for the whole step. That
is what this module does, in the way a data-parallel trainer does it:

    replicas = ForkedReplicas(parameters, count=1, work=train_share)   # forks once
    results = replicas.run(own=lambda: train_share(*first), shares=[second])
    optimizer.step()                                                    # here only

``run`` hands each replica its share, runs ``own()`` here at the same time, then adds each
replica's gradients into the parameters' ``.grad`` and returns every result, ours first. A
replica is ``fork()``'s copy of this process, so it has the model, the data and ``work``
already; per update it copies the parameters as they are now and runs ``work(*share)``, which
computes its share's gradients (forward and ``backward``). The parameters and the gradients
travel as flat arrays in memory that both processes map (``mmap``: no copy through a pipe, no
pickling); the shares and the results (a few floats) go through a pipe.

BatchNorm is the one layer that looks across the images of a batch. While ``run`` works, the
processes' BatchNorms swap their per-channel statistics (forward) and gradient sums (backward)
through a ``BatchExchange``, so each normalizes with the whole mini-batch's statistics and
every process keeps the same running statistics: the update is the one a single process makes
on the whole mini-batch, up to the order of float sums (PyTorch calls this SyncBatchNorm). For
that, every process must reach the same BatchNorms in the same order: the same model, and a
loss that reaches every layer (``minilucid.autograd`` orders backward by the forward alone).
Random draws stay apart: seed each share yourself where they matter (DropBlock's).

BLAS threads: each process gets ``cores // processes`` while ``run`` works (``threadpoolctl``
sets the BLAS library's count at run time; NumPy has no call for it), so two processes on two
cores do not fight over four threads; between runs this process has all of them back.
minilucid's own element-wise pool (``minilucid.parallel``) is held to the same share until
``close``.

Needs ``fork`` (Linux, macOS); a replica ends when ``close`` is called, when this process
exits, or when it finds its parent gone (a killed training run leaves no process behind).
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import select
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from minilucid import backend, parallel
from minilucid.nn.functional import norm

# How often a waiting replica checks that its parent still lives, in seconds.
PARENT_CHECK_SECONDS = 1.0
# How long a process waits at a BatchNorm for the others before it gives up (one of them died),
# counting only the time it ran (``wait_readable``).
EXCHANGE_TIMEOUT_SECONDS = 300.0
# A wait polls in slices this long; a slice that took far longer was spent stopped.
WAIT_SLICE_SECONDS = 1.0
# Values one process can put into one exchange: a BatchNorm's three statistics of 4096 channels.
EXCHANGE_SLOT_SIZE = 3 * 4096 + 1


def can_fork() -> bool:
    """Whether this platform can fork a process (Linux, macOS: yes; Windows: no)."""
    return "fork" in multiprocessing.get_all_start_methods()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def shared_array(size: int, dtype: np.dtype) -> np.ndarray:
    """A flat array in anonymous shared memory: a process forked after this sees the same bytes."""
    buffer = mmap.mmap(-1, max(size * np.dtype(dtype).itemsize, 1))
    return np.frombuffer(buffer, dtype=dtype, count=size)


class ExchangeAborted(RuntimeError):
    """Another process that shares the mini-batch failed, so this one stopped waiting for it."""


class BatchExchange:
    """Where the processes that share a mini-batch swap per-channel values, one BatchNorm at a
    time (``norm.batch_shared_by``). Each writes its values into its slot of shared memory and
    sends every other process one byte through a pipe (the byte says "my values are there"; the
    write and read system calls order the memory accesses around them); once it has a byte from
    each, it reads every slot. Two sets of slots taken in turn, so a process that runs ahead to
    the next exchange writes where no one still reads. A pipe is used, not a barrier: one byte
    each way took 13 us a round trip where ``multiprocessing.Barrier`` took 183 us, and a
    YOLOv4 step exchanges twice per BatchNorm (docs/training.md).

    The byte names the run (``sharing(run)``), so a byte left from a run that failed midway is
    recognized and skipped; a failing process sends its run's "abort" byte instead, and the others
    raise ``ExchangeAborted`` rather than wait for it."""

    def __init__(self, processes: int) -> None:
        self.processes, self.rank, self.round, self.tag = processes, 0, 0, 1  # rank: this process (0: the parent)
        self.slots = shared_array(2 * processes * EXCHANGE_SLOT_SIZE, np.float64)
        self.slots = self.slots.reshape(2, processes, EXCHANGE_SLOT_SIZE)  # (set, process, value)
        # (from, to) -> (read end, write end) of a pipe from process `from` to process `to`
        self.signals = {(i, j): os.pipe() for i in range(processes) for j in range(processes) if i != j}

    def gather(self, arrays: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Every process's ``arrays`` (same shapes in each), process 0's first, once all have called."""
        sizes = [array.size for array in arrays]
        if sum(sizes) > EXCHANGE_SLOT_SIZE:
            raise ValueError(f"BatchExchange: {sum(sizes)} values do not fit a slot of {EXCHANGE_SLOT_SIZE}")
        slots = self.slots[self.round % 2]
        self.round += 1
        slots[self.rank, : sum(sizes)] = np.concatenate([array.reshape(-1) for array in arrays])
        self._send(self.tag)
        for other in self._others():
            self._wait_for(other)
        ends = np.cumsum(sizes).tolist()
        return [
            [
                slot[end - size : end].astype(a.dtype).reshape(a.shape)
                for a, size, end in zip(arrays, sizes, ends, strict=True)
            ]
            for slot in slots
        ]

    def sharing(self, run: int) -> Any:
        """The context in which this process's BatchNorms share through this exchange, in run ``run``."""
        self.round, self.tag = 0, run % 127 + 1  # a byte's low 7 bits: the run; 0x80: abort
        return norm.batch_shared_by(self)

    def abort(self) -> None:
        """Tell the others that this process stops here (they raise ExchangeAborted)."""
        self._send(self.tag | 0x80)

    def close(self) -> None:
        """Close this process's ends of the pipes."""
        for read_end, write_end in self.signals.values():
            os.close(read_end)
            os.close(write_end)
        self.signals = {}

    def _others(self) -> list[int]:
        return [other for other in range(self.processes) if other != self.rank]

    def _send(self, byte: int) -> None:
        for other in self._others():
            os.write(self.signals[self.rank, other][1], bytes([byte]))

    def _wait_for(self, other: int) -> None:
        """Read ``other``'s byte for this run's exchange, skipping bytes of earlier runs."""
        pipe = self.signals[other, self.rank][0]
        waiting = select.poll()  # poll, not select: select cannot watch a descriptor numbered past 1023
        waiting.register(pipe, select.POLLIN)
        while True:
            if not wait_readable(lambda seconds: bool(waiting.poll(seconds * 1000)), EXCHANGE_TIMEOUT_SECONDS):
                raise TimeoutError(
                    f"process {other} sharing the mini-batch did not reach the next BatchNorm "
                    f"in {EXCHANGE_TIMEOUT_SECONDS:g} s of waiting"
                )
            byte = os.read(pipe, 1)[0]
            if byte == self.tag:
                return
            if byte == self.tag | 0x80:
                raise ExchangeAborted(f"process {other} sharing the mini-batch failed")


def wait_readable(poll: Callable[[float], bool], timeout: float, clock: Callable[[], float] = time.monotonic) -> bool:
    """Whether ``poll(seconds)`` finds its pipe readable within ``timeout`` seconds of waiting.
    Only the time the process ran counts: each poll counts at most the slice it asked for, so
    the time a stopped job (Ctrl-Z, SIGSTOP) spent stopped inside a poll is not waiting. Its
    other processes were stopped with it, and the run goes on when it is continued, instead of
    timing out at its first BatchNorm. The obvious ``poll(timeout)`` counts the stop."""
    waited = 0.0
    while waited < timeout:
        started = clock()
        if poll(WAIT_SLICE_SECONDS):
            return True
        waited += min(clock() - started, WAIT_SLICE_SECONDS)
    return False


class ReplicaError(RuntimeError):
    """A replica stopped (its process died) or could not say what went wrong."""


class ForkedReplicas:
    """``count`` forked copies of this process, each running ``work(*share)`` on a share of
    every update and handing back the gradients of ``parameters`` (module docstring)."""

    def __init__(self, parameters: Sequence[Any], count: int, work: Callable[..., Any]) -> None:
        if not can_fork():
            raise RuntimeError("data parallel on CPU cores forks the process, and this platform cannot fork")
        if count < 1:
            raise ValueError(f"ForkedReplicas needs count >= 1 replicas, got {count}")
        self.parameters, self.count = list(parameters), count
        on_gpu = [p for p in self.parameters if backend.is_gpu_array(p.data)]
        if on_gpu:
            raise ValueError("ForkedReplicas splits work across CPU cores; the parameters are on a GPU")
        dtypes = {p.data.dtype for p in self.parameters}
        if len(dtypes) != 1:
            raise TypeError(f"ForkedReplicas needs parameters of one dtype, got {sorted(map(str, dtypes))}")
        dtype = dtypes.pop()
        sizes = [p.data.size for p in self.parameters]
        ends = np.cumsum(sizes).tolist()
        # parameter i is flat[slices[i]] in the shared arrays
        self.slices = [slice(end - size, end) for size, end in zip(sizes, ends, strict=True)]
        self.shared_parameters = shared_array(sum(sizes), dtype)
        self.shared_gradients = [shared_array(sum(sizes), dtype) for _ in range(count)]
        self.threads = max(1, usable_cores() // (count + 1))
        # minilucid's element-wise pool (minilucid.parallel) no wider than a process's share of
        # the cores either, here and (inherited) in the replicas, until close
        self.pool_threads = parallel.get_num_threads()
        parallel.set_num_threads(min(self.pool_threads, self.threads))
        self.exchange = BatchExchange(count + 1)
        self.work, self.parent, self.runs = work, os.getpid(), 0  # runs so far; a replica: its current one
        context = multiprocessing.get_context("fork")
        self.pipes, self.processes = [], []
        for index in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=self._serve, args=(index, theirs), daemon=True)
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork() from a process with threads (OpenBLAS's): a
                # replica only runs NumPy, whose OpenBLAS remakes its threads after a fork.
                warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
                process.start()
            theirs.close()  # the replica holds it now; ours must not keep its end open
            self.pipes.append(ours)
            self.processes.append(process)

    # ------------------------------------------------------------------ here
    def run(self, own: Callable[[], Any], shares: Sequence[tuple]) -> list[Any]:
        """Run ``work(*shares[i])`` on replica i while ``own()`` runs here; then add each replica's
        gradients into the parameters' ``.grad`` (after ours, in order) and return
        ``[own's result, replica 0's, ...]``. An exception in any of them is raised here, ours
        first, once every replica has answered."""
        if len(shares) != len(self.pipes):
            raise ValueError(f"ForkedReplicas.run: {len(shares)} shares for {len(self.pipes)} replicas")
        from threadpoolctl import threadpool_limits

        self.runs += 1

        with threadpool_limits(self.threads, user_api="blas"):
            self._write(self.shared_parameters, [p.data for p in self.parameters])
            for pipe, share in zip(self.pipes, shares, strict=True):
                pipe.send((self.runs, share))
            result, error = self._work(own)
            answers = [self._answer(index) for index in range(len(self.pipes))]
        results, errors = [result], [error]
        for index, (replica_error, result, has_gradient) in enumerate(answers):
            results.append(result)
            errors.append(replica_error)
            if replica_error is None:
                self._add_gradients(self.shared_gradients[index], has_gradient)
        errors = [error for error in errors if error is not None]
        if errors:
            causes = [error for error in errors if not isinstance(error, ExchangeAborted)]
            raise (causes or errors)[0]  # the error itself, not another process's wait it broke
        return results

    def _work(self, work: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        """(``work()``'s result, None) or (None, its exception), its BatchNorms sharing the
        mini-batch in run number ``self.runs``; a failure tells the others to stop waiting for this process."""
        try:
            with self.exchange.sharing(self.runs):
                return work(), None
        except Exception as error:
            self.exchange.abort()
            return None, error

    def _answer(self, index: int) -> tuple[BaseException | None, Any, list[bool]]:
        """Replica ``index``'s reply: (its exception or None, its result, which parameters got
        a gradient)."""
        try:
            return self.pipes[index].recv()
        except EOFError:
            code = self.processes[index].exitcode
            return ReplicaError(f"replica {index} ended before it answered (exit code {code})"), None, []

    def _add_gradients(self, flat: np.ndarray, has_gradient: list[bool]) -> None:
        """Add one replica's gradients, read from ``flat``, into the parameters' ``.grad``."""
        for p, part, present in zip(self.parameters, self.slices, has_gradient, strict=True):
            if not present:
                continue
            theirs = flat[part].reshape(p.data.shape)
            p.grad = theirs.copy() if p.grad is None else p.grad + theirs  # a new array: .grad may be shared

    def _write(self, flat: np.ndarray, arrays: list[Any]) -> None:
        """Copy ``arrays`` (one per parameter; None writes nothing) into ``flat``."""
        for array, part in zip(arrays, self.slices, strict=True):
            if array is not None:
                flat[part] = array.reshape(-1)

    def close(self) -> None:
        """End the replicas and wait for them."""
        for pipe in self.pipes:
            with contextlib.suppress(BrokenPipeError, OSError):  # already gone
                pipe.send(None)
            pipe.close()
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
            process.close()  # its sentinel's file descriptor
        if self.processes:
            self.exchange.close()
            parallel.set_num_threads(self.pool_threads)
        self.pipes, self.processes = [], []

    def __enter__(self) -> ForkedReplicas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ in a replica
    def _serve(self, index: int, pipe: Any) -> None:
        """A replica's loop: wait for a share, load the parameters, run ``work``, write the
        gradients, answer; end on None, on a closed pipe, or when the parent is gone."""
        for earlier in self.pipes:  # the parent's ends of the replicas forked before this one
            earlier.close()
        from threadpoolctl import threadpool_limits

        threadpool_limits(self.threads, user_api="blas")
        self.exchange.rank = index + 1
        while True:
            message = self._receive(pipe)
            if message is None:
                return
            self.runs, share = message
            for p, part in zip(self.parameters, self.slices, strict=True):
                p.data[...] = self.shared_parameters[part].reshape(p.data.shape)
                p.grad = None
            result, error = self._work(partial(self.work, *share))
            self._write(self.shared_gradients[index], [p.grad for p in self.parameters])
            has_gradient = [p.grad is not None for p in self.parameters]
            try:
                pipe.send((error, result, has_gradient))
            except Exception:  # an exception that cannot be pickled: say what it was
                pipe.send((ReplicaError(f"replica {index}: {type(error).__name__}: {error}"), None, []))

    def _receive(self, pipe: Any) -> Any:
        """The next (run, share), or None when told to end, when the pipe closes or the parent is gone."""
        while not pipe.poll(PARENT_CHECK_SECONDS):
            if os.getppid() != self.parent:
                return None
        try:
            return pipe.recv()
        except EOFError:
            return None
