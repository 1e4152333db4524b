"""Where a YOLOv4 training step spends its time: per operation, and Python against arrays.

    python benchmarks/profile_step.py [--model yolov4|yolov4-tiny|small] [--batch 4] [--size 416] [--torch]
    python benchmarks/profile_step.py --forward [--batch 1] [--torch]

``--forward`` profiles an eval-mode forward pass without gradients (batch 1 unless
``--batch`` says otherwise) instead of a training step: the case of the forward target.
``--repeats n`` times n steps and reports their average (default 1 step, 10 passes with
``--forward``: one pass is too short to time alone).

Every ``Function`` subclass's ``forward`` and ``backward`` is wrapped with a timer for one
step (after a warm-up step). Time inside them is array work (NumPy, BLAS); the rest of the
step (building Tensors, the graph walk, the optimizer's Python, the loss's bookkeeping) is
reported as "outside Functions". Process CPU time is split into user and system: system
time is the kernel handing out and zeroing fresh pages.

``--torch`` also profiles one step of the PyTorch twin (``torch.profiler``, same threads,
same run) and prints the two side by side, layer by layer: where minilucid's step is
slower than PyTorch's, and by how much. The twin's loss is the sum of its outputs, so the
YOLO loss is in minilucid's "everything else" only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
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


@contextlib.contextmanager
def instrumented(timings: dict[str, float]):
    """While in the block, every call of a Function subclass's forward/backward adds its seconds to ``timings``.

    A method a class inherits (``MaxPool2d.backward`` is ``MaxPool2dReference``'s) counts under
    the class that ran it, and a method that calls another (``super().forward``) counts once.
    """
    from minilucid.autograd import Function

    running = [False]  # inside a timed call: a nested one is not timed again

    def timed(method, key):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            if running[0]:
                return method(*args, **kwargs)
            running[0], start = True, time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                running[0] = False
                timings[key] += time.perf_counter() - start

        return wrapper

    originals = [  # (class, phase, its own method or None, the method it runs)
        (cls, phase, cls.__dict__.get(phase), getattr(cls, phase))
        for cls in all_subclasses(Function)
        for phase in ("forward", "backward")
    ]
    for cls, phase, _, method in originals:
        setattr(cls, phase, timed(method, f"{cls.__name__}.{phase}"))
    try:
        yield timings
    finally:
        for cls, phase, own, _ in originals:
            if own is None:
                delattr(cls, phase)
            else:
                setattr(cls, phase, own)


def compared_layers(kind: str) -> dict[str, str]:
    """The layers both steps run: minilucid's Function, and a piece of the names of the PyTorch
    (aten) operations that do that layer's work. ``kind`` is "train" or "forward" (eval mode,
    where BatchNorm is another Function)."""
    return {
        "Conv2d": "convolution",
        "BatchNormTrain" if kind == "train" else "BatchNormEval": "batch_norm",
        "Mish": "mish",
        "LeakyReLU": "leaky_relu",
        "MaxPool2d": "max_pool2d",
    }


def torch_timings(step: Callable[[], object], kind: str = "train", repeats: int = 1) -> tuple[dict[str, float], float]:
    """Seconds per "Layer.phase" of a PyTorch step, and the step's wall time (averages of ``repeats`` steps).

    An aten operation counts for a layer when its name holds the layer's piece
    (``compared_layers``), for the backward phase when it also holds "backward". Each counts
    with its self time, so an operation that calls another (convolution calls
    mkldnn_convolution) is not counted twice.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        wall = (time.perf_counter() - start) / repeats
    timings: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        for layer, piece in compared_layers(kind).items():
            if event.key.startswith("aten::") and piece in event.key:
                phase = "backward" if "backward" in event.key else "forward"
                timings[f"{layer}.{phase}"] += event.self_cpu_time_total / 1e6 / repeats  # from microseconds
    return timings, wall


def comparison_rows(
    ours: dict[str, float], ours_wall: float, theirs: dict[str, float], theirs_wall: float, kind: str = "train"
):
    """Table rows: each compared layer and phase (slowest of ours first), everything else, the whole step."""

    def row(name: str, mine: float, torch_seconds: float) -> list[str]:
        ratio = f"{mine / torch_seconds:.2f}" if torch_seconds > 0 else "-"
        return [name, f"{mine:.3f}", f"{torch_seconds:.3f}", ratio]

    keys = [f"{layer}.{phase}" for layer in compared_layers(kind) for phase in ("forward", "backward")]
    keys = sorted((key for key in keys if key in ours or key in theirs), key=lambda key: -ours.get(key, 0.0))
    rows = [row(key, ours.get(key, 0.0), theirs.get(key, 0.0)) for key in keys]
    rest_ours = ours_wall - sum(ours.get(key, 0.0) for key in keys)
    rest_theirs = theirs_wall - sum(theirs.get(key, 0.0) for key in keys)
    rows.append(row("everything else (loss, adds, concatenation, optimizer, Python)", rest_ours, rest_theirs))
    rows.append(row("whole step", ours_wall, theirs_wall))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["yolov4", "yolov4-tiny", "small"], default="yolov4")
    parser.add_argument("--batch", type=int, help="images per step (default 4; 1 with --forward)")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=14)
    parser.add_argument("--torch", action="store_true", help="also profile the PyTorch twin and compare")
    parser.add_argument(
        "--forward",
        dest="kind",
        action="store_const",
        const="forward",
        default="train",
        help="profile an eval forward pass, not a training step",
    )
    parser.add_argument("--repeats", type=int, help="steps to average (default 1; 10 with --forward)")
    args = parser.parse_args()
    forward = args.kind == "forward"
    if args.batch is None:
        args.batch = 1 if forward else 4
    if args.repeats is None:
        args.repeats = 10 if forward else 1
    set_threads(args.threads)

    from model import build, minilucid_step

    import minilucid  # noqa: F401  (loads every Function subclass before instrumenting)
    import yolov4  # noqa: F401

    network = build(args.model)
    step = minilucid_step(network, args.kind, args.batch, args.size)
    step()  # warm-up
    timings: dict[str, float] = defaultdict(float)
    with instrumented(timings):
        cpu_before, start = os.times(), time.perf_counter()
        for _ in range(args.repeats):
            step()
        wall, cpu_after = (time.perf_counter() - start) / args.repeats, os.times()
    timings = {key: seconds / args.repeats for key, seconds in timings.items()}
    inside = sum(timings.values())
    rows = [[key, f"{seconds:.3f}", f"{100 * seconds / wall:.1f}"] for key, seconds in timings.items()]
    rows.sort(key=lambda row: -float(row[1]))
    rows = rows[: args.top]
    rows.append(["(other Functions)", f"{inside - sum(float(r[1]) for r in rows):.3f}", ""])
    rows.append(
        ["outside Functions (Python, graph, optimizer)", f"{wall - inside:.3f}", f"{100 * (wall - inside) / wall:.1f}"]
    )
    rows.append(["whole step", f"{wall:.3f}", "100.0"])
    user = (cpu_after.user - cpu_before.user) / args.repeats
    system = (cpu_after.system - cpu_before.system) / args.repeats
    what = "eval forward pass" if args.kind == "forward" else "training step"
    average = f", average of {args.repeats}" if args.repeats > 1 else ""
    print(f"{args.model} {what}, {args.size}x{args.size}, batch {args.batch}, {args.threads} threads{average}\n")
    print(markdown_table(["where", "seconds", "% of step"], rows))
    print(f"\n{machine_line()}")
    print(f"CPU time: user {user:.2f} s, system {system:.2f} s ({100 * system / (user + system):.0f}% system)")
    if args.torch:
        compare_with_torch(network, args, timings, wall)


def compare_with_torch(network, args, timings: dict[str, float], wall: float) -> None:
    """Profile one step of ``network``'s PyTorch twin and print it beside minilucid's ``timings``."""
    import torch
    from model import torch_step
    from torch_twin import twin_of

    torch.set_num_threads(args.threads)
    step = torch_step(twin_of(network), args.kind, args.batch, args.size)
    step()  # warm-up
    theirs, theirs_wall = torch_timings(step, args.kind, args.repeats)
    print(f"\nThe same step, minilucid against PyTorch {torch.__version__} (seconds; ratio = minilucid / PyTorch)\n")
    rows = comparison_rows(timings, wall, theirs, theirs_wall, args.kind)
    print(markdown_table(["where", "minilucid s", "PyTorch s", "ratio"], rows))


if __name__ == "__main__":
    main()
