"""Shared timing helpers for the benchmarks: same thread count, interleaved, median of runs."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def set_threads(threads: int) -> None:
    """Pin BLAS and PyTorch to ``threads``; call before importing NumPy or PyTorch.

    OMP_WAIT_POLICY=PASSIVE stops PyTorch's OpenMP workers from spinning after each call:
    measured here, their spinning slowed the NumPy call that followed from 6.3 to 10.9 ms,
    which would make an interleaved comparison unfair to whichever library runs second.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def interleaved_medians(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, run in turn (ABAB...) so drift hits all alike."""
    for _ in range(warmup):
        for run in cases.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
