"""Time minilucid's YOLOv4 against its PyTorch twin (same weights, same threads).

    python benchmarks/model.py                       # the full table of docs/performance.md
    python benchmarks/model.py --forward 416 --train 4 --repeats 3
    python benchmarks/model.py --model small --forward 416 --train 4

Cases:
- forward: eval mode, no gradients, batch 1, at each ``--forward`` size;
- train step: train mode, forward, loss (minilucid: the YOLOv4 loss on random boxes; the
  twin: the sum of its outputs), backward and an SGD step (momentum, weight decay), at 416
  for each ``--train`` batch size.

Times are medians of ``--repeats`` interleaved runs after a warm-up, in one process;
``--pool-off-too`` adds minilucid with its element-wise pool off (``minilucid.parallel``)
to the interleaving, a before/after of the pool in one run. Peak
memory is measured apart: each case runs again in a fresh process per library (the twin's
process never holds minilucid's model) and reports its peak resident set size.
``--plot`` writes time against input size and batch for docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import interleaved_medians, machine_line, markdown_table, set_threads  # noqa: E402

TRAIN_SIZE = 416


def build(name: str):
    """The benchmarked models: full YOLOv4, yolov4-tiny, or the demo's small variant."""
    from yolov4 import yolo_v4, yolo_v4_tiny

    if name == "yolov4":
        return yolo_v4()
    if name == "yolov4-tiny":
        return yolo_v4_tiny()
    return yolo_v4(num_classes=3, width_multiple=0.25, depth_multiple=0.33)


def random_boxes(batch: int, size: int, classes: int) -> list:
    """Four random ground-truth boxes per image, [class, cx, cy, w, h] in pixels."""
    import numpy as np

    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(batch):
        wh = rng.uniform(0.05, 0.5, (4, 2)) * size
        centre = rng.uniform(0.3, 0.7, (4, 2)) * size
        boxes.append(np.column_stack([rng.integers(0, classes, 4), centre, wh]).astype(np.float32))
    return boxes


def minilucid_step(model, kind: str, batch: int, size: int):
    """A callable running one case with minilucid."""
    import numpy as np

    import minilucid as lucid

    image = lucid.Tensor(np.random.default_rng(0).uniform(0, 1, (batch, 3, size, size)).astype(np.float32))
    if kind == "forward":
        model.eval()

        def forward():
            with lucid.no_grad():
                model(image)

        return forward
    model.train()
    targets = random_boxes(batch, size, model.config.num_classes)
    optimizer = lucid.optim.SGD(model.parameters(), lr=1e-6, momentum=0.949, weight_decay=5e-4)

    def step():
        optimizer.zero_grad()
        model.get_loss(image, targets).backward()
        optimizer.step()

    return step


def torch_step(twin, kind: str, batch: int, size: int):
    """A callable running one case with the PyTorch twin."""
    import numpy as np
    import torch

    image = torch.tensor(np.random.default_rng(0).uniform(0, 1, (batch, 3, size, size)).astype(np.float32))
    if kind == "forward":
        twin.eval()

        def forward():
            with torch.no_grad():
                twin(image)

        return forward
    twin.train()
    optimizer = torch.optim.SGD(twin.parameters(), lr=1e-6, momentum=0.949, weight_decay=5e-4)

    def step():
        optimizer.zero_grad()
        sum(out.sum() for out in twin(image)).backward()
        optimizer.step()

    return step


def with_pool_threads(threads: int, run):
    """``run`` with minilucid's element-wise pool set to ``threads`` threads while it runs."""
    import minilucid

    def wrapped():
        previous = minilucid.get_num_threads()
        minilucid.set_num_threads(threads)
        try:
            run()
        finally:
            minilucid.set_num_threads(previous)

    return wrapped


def peak_memory_mb(model_name: str, library: str, kind: str, batch: int, size: int, threads: int) -> float:
    """Peak RSS in MB of a fresh process that builds the model and runs the case twice."""
    command = [sys.executable, __file__, "--memory-child", library, kind, str(batch), str(size)]
    command += ["--model", model_name, "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def memory_child(model_name: str, library: str, kind: str, batch: int, size: int) -> None:
    model = build(model_name)
    if library == "torch":
        import torch
        from torch_twin import twin_of

        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
        twin = twin_of(model)
        del model  # the twin's process holds only the twin
        gc.collect()
        run = torch_step(twin, kind, batch, size)
    else:
        run = minilucid_step(model, kind, batch, size)
    run()
    run()
    print(json.dumps({"peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM).

    Not ``getrusage``: Linux carries ru_maxrss across exec, so a child started by a big
    benchmark process would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: not Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["yolov4", "yolov4-tiny", "small"], default="yolov4")
    parser.add_argument("--forward", type=int, nargs="*", default=[320, 416, 608], help="input sizes, batch 1")
    parser.add_argument("--train", type=int, nargs="*", default=[1, 4, 8], help="batch sizes at 416")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument(
        "--pool-off-too", action="store_true", help="also time minilucid with its element-wise pool off (interleaved)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--plot", type=Path, help="write the time plot here (PNG)")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.memory_child:
        library, kind, batch, size = args.memory_child
        memory_child(args.model, library, kind, int(batch), int(size))
        return

    import torch
    from torch_twin import twin_of

    from yolov4.darknet.summary import count_flops

    torch.set_num_threads(args.threads)
    model = build(args.model)
    twin = twin_of(model)
    cases = [("forward", 1, size) for size in args.forward] + [("train", b, TRAIN_SIZE) for b in args.train]
    rows, records = [], []
    for kind, batch, size in cases:
        runs = {"ours": minilucid_step(model, kind, batch, size), "torch": torch_step(twin, kind, batch, size)}
        if args.pool_off_too:
            runs["ours_pool_off"] = with_pool_threads(1, minilucid_step(model, kind, batch, size))
        times = interleaved_medians(runs, args.repeats)
        record = {"model": args.model, "kind": kind, "batch": batch, "size": size, **times}
        record["gflops"] = count_flops(model, size) * batch * (1 if kind == "forward" else 3) / 1e9
        if not args.no_memory:
            for library in ("ours", "torch"):
                record[f"{library}_mb"] = peak_memory_mb(args.model, library, kind, batch, size, args.threads)
        records.append(record)
        rows.append(format_row(record))
        print(" | ".join(rows[-1]), flush=True)
    header = ["case", "minilucid s", "PyTorch s", "ratio", "minilucid GFLOP/s", "minilucid MB", "PyTorch MB", "ratio"]
    if args.pool_off_too:
        header += ["pool off s", "pool off ratio"]
    print(f"\n{args.threads} threads, median of {args.repeats}\n")
    print(markdown_table(header, rows))
    print(f"\n{machine_line()}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    if args.plot:
        plot(records, args.plot)


def format_row(record: dict) -> list[str]:
    """One table row: times, their ratio, achieved GFLOP/s and peak memory."""
    memory = ["-", "-", "-"]
    if "ours_mb" in record:
        ratio = record["ours_mb"] / record["torch_mb"]
        memory = [f"{record['ours_mb']:.0f}", f"{record['torch_mb']:.0f}", f"{ratio:.2f}"]
    pool_off = []
    if "ours_pool_off" in record:
        pool_off = [f"{record['ours_pool_off']:.3f}", f"{record['ours_pool_off'] / record['torch']:.2f}"]
    return [
        f"{record['model']} {record['kind']} {record['size']}x{record['size']} batch {record['batch']}",
        f"{record['ours']:.3f}",
        f"{record['torch']:.3f}",
        f"{record['ours'] / record['torch']:.2f}",
        f"{record['gflops'] / record['ours']:.0f}",
        *memory,
        *pool_off,
    ]


def plot(records: list[dict], path: Path) -> None:
    """Time against input size (forward) and against batch (train step), both libraries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, kind, key, label in ((axes[0], "forward", "size", "input size"), (axes[1], "train", "batch", "batch")):
        chosen = [r for r in records if r["kind"] == kind]
        for library, name in (("ours", "minilucid"), ("torch", "PyTorch")):
            ax.plot([r[key] for r in chosen], [r[library] for r in chosen], "o-", label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("seconds")
        title = "forward, batch 1" if kind == "forward" else f"training step at {TRAIN_SIZE}"
        ax.set_title(f"{records[0]['model']} {title}")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
