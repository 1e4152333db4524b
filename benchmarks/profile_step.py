"""Where a YOLOv4 training step spends its time: per operation, and Python against arrays.

    python benchmarks/profile_step.py [--model yolov4|yolov4-tiny|small] [--batch 4] [--size 416]

Every ``Function`` subclass's ``forward`` and ``backward`` is wrapped with a timer for one
step (after a warm-up step). Time inside them is array work (NumPy, BLAS); the rest of the
step (building Tensors, the graph walk, the optimizer's Python, the loss's bookkeeping) is
reported as "outside Functions". Process CPU time is split into user and system: system
time is the kernel handing out and zeroing fresh pages.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_line, markdown_table, set_threads  # noqa: E402


def all_subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls``, recursively."""
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


def instrument(timings: dict[str, float]) -> None:
    """Wrap forward/backward of every Function subclass so each call adds to ``timings``."""
    from minilucid.autograd import Function

    def timed(method, key):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                timings[key] += time.perf_counter() - start

        return wrapper

    for cls in all_subclasses(Function):
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                setattr(cls, phase, timed(cls.__dict__[phase], f"{cls.__name__}.{phase}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["yolov4", "yolov4-tiny", "small"], default="yolov4")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    set_threads(args.threads)

    from model import build, minilucid_step

    import minilucid  # noqa: F401  (loads every Function subclass before instrumenting)
    import yolov4  # noqa: F401

    step = minilucid_step(build(args.model), "train", args.batch, args.size)
    step()  # warm-up
    timings: dict[str, float] = defaultdict(float)
    instrument(timings)
    cpu_before, start = os.times(), time.perf_counter()
    step()
    wall, cpu_after = time.perf_counter() - start, os.times()
    inside = sum(timings.values())
    rows = [[key, f"{seconds:.3f}", f"{100 * seconds / wall:.1f}"] for key, seconds in timings.items()]
    rows.sort(key=lambda row: -float(row[1]))
    rows = rows[: args.top]
    rows.append(["(other Functions)", f"{inside - sum(float(r[1]) for r in rows):.3f}", ""])
    rows.append(
        ["outside Functions (Python, graph, optimizer)", f"{wall - inside:.3f}", f"{100 * (wall - inside) / wall:.1f}"]
    )
    rows.append(["whole step", f"{wall:.3f}", "100.0"])
    user = cpu_after.user - cpu_before.user
    system = cpu_after.system - cpu_before.system
    print(f"{args.model} training step, {args.size}x{args.size}, batch {args.batch}, {args.threads} threads\n")
    print(markdown_table(["where", "seconds", "% of step"], rows))
    print(f"\n{machine_line()}")
    print(f"CPU time: user {user:.2f} s, system {system:.2f} s ({100 * system / (user + system):.0f}% system)")


if __name__ == "__main__":
    main()
