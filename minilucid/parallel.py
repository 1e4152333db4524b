"""Element-wise work on every CPU core: one small thread pool, used by the hot kernels.

A BLAS product runs on every core, a NumPy ufunc on one. But NumPy lets go of Python's
global lock while a ufunc (or a copy) runs over its arrays, so Python threads that call
ufuncs on *different blocks* of an array really do run at the same time. That is all this
module does:

    parallel.chunked(kernel, out, *args)

cuts ``out`` and every argument along axis 0 into blocks of about ``BLOCK_SIZE`` elements
and calls ``kernel(out_block, *arg_blocks)`` on each. The caller's thread and the pool's
threads take the blocks in turn from one queue, so a thread whose core is busy elsewhere
simply takes fewer. An argument is cut when it is an array whose first axis is as long as
``out``'s; anything else (a Python or NumPy scalar, a 0-d array, an array of first axis 1
that broadcasts) goes whole to every block. A kernel writes its results into its blocks:
usually ``out``'s, or, for a kernel that sums each row (BatchNorm's), a (rows,) vector
passed among the arguments, with the summed array passed as ``out`` to set the blocks.

Callers reshape their arrays so that axis 0 is long: element-wise ops go through
``elementwise``, which passes flat views; per-channel ops pass (N*C, H*W) maps with
(N*C, 1) columns; im2col passes (N*C, KH, KW, OH, OW) windows.

Results are the same to the bit as ``kernel(out, *args)`` run once on the whole arrays:
every element goes through the same ufunc calls in the same order, only in another block.
So a kernel must not sum across axis 0. It may sum along a row: a block always holds
whole rows, so each row's sum is the same call on the same values.

It runs ``kernel(out, *args)`` once, on the caller's thread, when ``out`` is small (under
``MIN_PARALLEL_SIZE`` elements), lives on a GPU (one CuPy kernel covers the device), or is
not C-contiguous.

Threads: one by default (the pool off: every block taken by the caller's thread),
``MINILUCID_NUM_THREADS=n`` or ``set_num_threads(n)`` for more. Why blocks pay even on one
core, and why one thread is the default, is in docs/performance.md ("Element-wise work in
blocks").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minilucid import backend

# Measured on a 2-core Xeon (docs/performance.md): below ~64K float32 elements (256 KB)
# handing blocks to a second thread costs as much as it saves.
MIN_PARALLEL_SIZE = 1 << 16
# 32K float32 elements (128 KB) per array: a kernel's inputs, outputs and temporaries stay
# within a core's 1-2 MB L2 cache.
BLOCK_SIZE = 1 << 15

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _default_threads() -> int:
    """MINILUCID_NUM_THREADS, else 1 (the pool off; docs/performance.md says why)."""
    value = os.environ.get("MINILUCID_NUM_THREADS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MINILUCID_NUM_THREADS must be a positive integer, got {value!r}")
        return int(value)
    return 1


_threads = _default_threads()


def get_num_threads() -> int:
    """How many threads element-wise kernels use (1: the pool is off)."""
    return _threads


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads for element-wise kernels; 1 turns the pool off."""
    global _threads, _pool
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {threads!r}")
    with _pool_lock:
        if _pool is not None and threads != _threads:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = threads


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="minilucid")
        return _pool


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it makes its own pool when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def runs_inline(out: Any) -> bool:
    """True when ``chunked`` would call the kernel once, on the whole arrays, on the caller's thread."""
    return backend.is_gpu_array(out) or out.ndim == 0 or out.size < MIN_PARALLEL_SIZE or not out.flags.c_contiguous


def _is_split(arg: Any, out: Any) -> bool:
    return getattr(arg, "ndim", 0) > 0 and arg.shape[0] == out.shape[0]


def elementwise(kernel: Callable[..., None], out: Any, *args: Any) -> Any:
    """``chunked`` over flat views, for kernels whose arrays all have ``out``'s shape.

    Arrays that cannot be viewed flat (not C-contiguous) make it run ``kernel`` whole, inline:
    a flat copy would not receive the kernel's writes.
    """
    arrays = [out, *(a for a in args if getattr(a, "ndim", 0) > 0)]
    if any(a.shape != out.shape or not a.flags.c_contiguous for a in arrays):
        kernel(out, *args)
        return out
    flat = [a.reshape(-1) if getattr(a, "ndim", 0) > 0 else a for a in args]
    chunked(kernel, out.reshape(-1), *flat)
    return out


def block_bounds(out: Any) -> list[tuple[int, int]]:
    """(start, stop) ranges of axis 0, each about ``BLOCK_SIZE`` elements of ``out`` (at least a row)."""
    row = out.size // out.shape[0]
    rows = max(1, BLOCK_SIZE // max(row, 1))
    return [(start, min(start + rows, out.shape[0])) for start in range(0, out.shape[0], rows)]


def chunked(kernel: Callable[..., None], out: Any, *args: Any) -> Any:
    """``kernel(out, *args)``, run block by block by the caller's and the pool's threads; returns ``out``."""
    if runs_inline(out):
        kernel(out, *args)
        return out
    blocks = block_bounds(out)
    queue, lock = iter(blocks), threading.Lock()

    def take_blocks() -> None:  # runs the next block left, until none is left
        while True:
            with lock:
                bounds = next(queue, None)
            if bounds is None:
                return
            part = slice(*bounds)
            kernel(out[part], *(a[part] if _is_split(a, out) else a for a in args))

    helpers = [_get_pool().submit(take_blocks) for _ in range(min(_threads, len(blocks)) - 1)]
    try:
        take_blocks()  # the caller's thread works too
    finally:
        for helper in helpers:
            if not helper.cancel():  # one that never started (its core was busy) is not waited for
                helper.result()  # waits, and re-raises a kernel's error here
    return out
