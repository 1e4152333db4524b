"""Shared timing helpers for the benchmarks: same thread count, interleaved, median of runs."""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import statistics
import time
from collections.abc import Callable


def set_threads(threads: int) -> None:
    """Pin BLAS and PyTorch to ``threads``; call before importing NumPy or PyTorch.

    MINILUCID_NUM_THREADS sizes minilucid's element-wise pool (``minilucid.parallel``) alike.
    OMP_WAIT_POLICY=PASSIVE stops PyTorch's OpenMP workers from spinning after each call:
    measured here, their spinning slowed the NumPy call that followed from 6.3 to 10.9 ms,
    which would make an interleaved comparison unfair to whichever library runs second.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINILUCID_NUM_THREADS"):
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


def cpu_model() -> str:
    """The CPU's name as the kernel reports it, and whether it has AVX-512 (Linux's /proc)."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in lines if ":" in line)  # the last core's fields
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    avx512 = ", AVX-512" if "avx512f" in fields.get("flags", "").split() else ""
    return f"{fields.get('model name', 'unknown CPU')} ({fields.get('vendor_id', '?')}{avx512})"


def numpy_blas() -> str:
    """NumPy's BLAS: its name and version, and for OpenBLAS the kernels it chose at run time."""
    import numpy

    blas = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    text = f"{blas.get('name', 'unknown BLAS')} {blas.get('version', '')}".strip()
    # NumPy's wheels bundle OpenBLAS; it reports the core type it picked (SkylakeX, Haswell, ...).
    for library in glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs", "*openblas*")):
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            function = getattr(ctypes.CDLL(library), symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return f"{text}, {function().decode()} kernels"
    return text


def steal_ticks(stat_path: str = "/proc/stat") -> int | None:
    """Clock ticks the hypervisor has taken from this machine's CPUs since boot, or None.

    That is the "steal" column of the first line of Linux's /proc/stat (all CPUs together);
    elsewhere there is no such count.
    """
    try:
        with open(stat_path) as stat:
            fields = stat.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    except OSError:
        return None
    return int(fields[8]) if len(fields) > 8 and fields[0] == "cpu" else None


# Above this share of the CPU taken by the host, ratios mislead: PyTorch's threads wait for each
# other at every operation, so steal slows it more than minilucid (docs/performance.md).
STEAL_WARNING_PERCENT = 5.0


class StealMeter:
    """How much of the CPU the host took (hypervisor steal) since the meter was made."""

    def __init__(self) -> None:
        self.start_ticks, self.start_time = steal_ticks(), time.monotonic()

    def percent(self) -> float | None:
        """Steal since the start, in percent of all CPUs' time, or None where it is not counted."""
        ticks = steal_ticks()
        seconds = time.monotonic() - self.start_time
        if ticks is None or self.start_ticks is None or seconds <= 0:
            return None
        per_second = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        return 100 * (ticks - self.start_ticks) / (per_second * seconds)

    def line(self) -> str:
        """A sentence for under a table; it says when the figures above should not be trusted."""
        percent = self.percent()
        if percent is None:
            return "Host steal: not counted on this system."
        text = f"Host steal during the run: {percent:.1f}% of the CPU."
        if percent >= STEAL_WARNING_PERCENT:
            text += " The host took the CPU often enough to skew the ratios: run again on a quieter machine."
        return text


_run = StealMeter()  # the benchmarks import this module first: the meter covers their whole run


def machine_line() -> str:
    """What a table was measured on: CPU, cores, NumPy's BLAS, PyTorch, threads; and the host's steal so far."""
    import numpy

    import minilucid

    try:
        import torch

        torch_text = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_text = "PyTorch not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Machine: {cpu_model()}, {cores} cores; NumPy {numpy.__version__} with {numpy_blas()} "
        f"({os.environ.get('OPENBLAS_NUM_THREADS', 'default')} threads); {torch_text}; "
        f"minilucid element-wise pool {minilucid.get_num_threads()} threads\n{_run.line()}"
    )
