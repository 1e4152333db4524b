"""Element-wise work on every CPU core: one small thread pool, used by the hot kernels.

A BLAS product runs on every core, a NumPy ufunc on one. But NumPy lets go of Python's
global lock while a ufunc (or a copy) runs over its arrays, so Python threads that call
ufuncs on *different parts* of an array really do run at the same time. That is all this
module does:

    parallel.chunked(kernel, out, *args)

splits ``out`` and every argument along axis 0 into one part per thread and calls
``kernel(out_part, *arg_parts)`` on each part, on a pool of threads; the caller's thread
waits. An argument is split when it is an array whose first axis is as long as ``out``'s;
anything else (a Python or NumPy scalar, a 0-d array, an array of first axis 1 that
broadcasts) goes whole to every part. A kernel writes its result into its ``out`` part.

Callers reshape their arrays so that axis 0 is long: element-wise ops pass flat views
(``x.reshape(-1)``), per-channel ops pass (N*C, H*W) maps with (N*C, 1) columns.

Results are the same to the bit as ``kernel(out, *args)`` run once on the whole arrays:
every element goes through the same ufunc calls in the same order, only in another thread.
No sum crosses a part (a kernel with a reduction must reduce along another axis than 0).

When it runs inline instead (``kernel(out, *args)`` on the caller's thread):
- the pool is switched off: ``set_num_threads(1)`` or ``MINILUCID_NUM_THREADS=1``;
- the arrays are small (under ``MIN_PARALLEL_SIZE`` elements of ``out``), where waking a
  thread costs more than it saves;
- the arrays live on a GPU (CuPy runs the kernel across the whole device anyway);
- ``out`` or a split argument is not C-contiguous (its parts would be strided).

The pool has as many threads as the process may use cores (like OpenBLAS's default), or
``MINILUCID_NUM_THREADS``. It is only busy while BLAS is not (an op runs one after the
other), so the two never compete for the cores.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minilucid import backend

# Measured on a 2-core Xeon (docs/performance.md): below ~64K float32 elements (256 KB)
# handing parts to a second thread costs as much as it saves.
MIN_PARALLEL_SIZE = 1 << 16
# Each thread walks its part in blocks of about this many elements, so that a kernel's
# temporaries stay in the core's cache (a kernel of several passes then reads memory once).
BLOCK_SIZE = 1 << 15

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _default_threads() -> int:
    """MINILUCID_NUM_THREADS, else the number of cores this process may run on."""
    value = os.environ.get("MINILUCID_NUM_THREADS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MINILUCID_NUM_THREADS must be a positive integer, got {value!r}")
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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


def part_bounds(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (start, stop) ranges covering 0..length, sizes differing by at most one."""
    parts = max(1, min(parts, length))
    edges = [length * k // parts for k in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


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
    """``kernel(out, *args)``, run block by block on the pool's threads; returns ``out``."""
    if runs_inline(out):
        kernel(out, *args)
        return out
    blocks = block_bounds(out)

    def run_blocks(first: int, last: int) -> None:  # blocks[first:last], in order
        for start, stop in blocks[first:last]:
            part = slice(start, stop)
            kernel(out[part], *(a[part] if _is_split(a, out) else a for a in args))

    parts = part_bounds(len(blocks), _threads)
    pool = _get_pool() if len(parts) > 1 else None
    futures = [pool.submit(run_blocks, *bounds) for bounds in parts[1:]]
    try:
        run_blocks(*parts[0])  # the caller's thread takes the first part
    finally:
        for future in futures:
            future.result()  # waits, and re-raises a kernel's error here
    return out
