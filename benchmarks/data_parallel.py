"""A training step in one process and in processes that share each batch, against PyTorch.

    python benchmarks/data_parallel.py                 # the demo's step: small model, 256 px, batch 4
    python benchmarks/data_parallel.py --model yolov4 --size 416 --batch 4 --repeats 5

Cases, interleaved in one run, each the median of ``--repeats`` steps after a warm-up:
- minilucid, one process with ``--threads`` BLAS threads (``processes: 1``);
- minilucid, ``--processes`` processes (``minilucid.data_parallel.ForkedReplicas``), each a slice of
  the batch with one BLAS thread per core, their BatchNorms exchanging statistics
  (``processes: 2`` in a training config);
- PyTorch's twin (same weights) in one process with ``--threads`` threads.
Each step is forward, loss (minilucid: the YOLOv4 loss on random boxes; the twin: the sum of its
outputs), backward and an SGD step. The ratios are against PyTorch, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import interleaved_medians, machine_line, markdown_table, set_threads  # noqa: E402
from model import build, minilucid_step, random_boxes, torch_step  # noqa: E402


def shared_step(model, batch: int, size: int, processes: int):
    """(a callable running one step with the batch split between ``processes`` processes, the
    replicas to close afterwards)."""
    import numpy as np

    import minilucid as lucid
    from minilucid.data_parallel import ForkedReplicas

    images = np.random.default_rng(0).uniform(0, 1, (batch, 3, size, size)).astype(np.float32)
    targets = random_boxes(batch, size, model.config.num_classes)
    model.train()
    optimizer = lucid.optim.SGD(model.parameters(), lr=1e-6, momentum=0.949, weight_decay=5e-4)

    def share(rows: list[int]) -> None:  # one slice's gradients, weighted by its share of the batch
        loss = model.get_loss(lucid.Tensor(images[rows]), [targets[i] for i in rows])
        (loss * (len(rows) / batch)).backward()

    slices = [cut.tolist() for cut in np.array_split(np.arange(batch), processes)]
    replicas = ForkedReplicas(list(model.parameters()), processes - 1, share)

    def step() -> None:
        optimizer.zero_grad()
        replicas.run(lambda: share(slices[0]), [(rows,) for rows in slices[1:]])
        optimizer.step()

    return step, replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["yolov4", "yolov4-tiny", "small"], default="small")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads of the one-process cases")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    set_threads(args.threads)

    import torch
    from torch_twin import twin_of

    torch.set_num_threads(args.threads)
    model = build(args.model)
    twin = twin_of(model)
    shared, replicas = shared_step(model, args.batch, args.size, args.processes)
    try:
        runs = {
            "one": minilucid_step(model, "train", args.batch, args.size),
            "shared": shared,
            "torch": torch_step(twin, "train", args.batch, args.size),
        }
        times = interleaved_medians(runs, args.repeats)
    finally:
        replicas.close()
    torch_seconds = times["torch"]
    rows = [
        [
            f"minilucid, 1 process, {args.threads} threads",
            f"{times['one']:.3f}",
            f"{times['one'] / torch_seconds:.2f}x",
        ],
        [
            f"minilucid, {args.processes} processes sharing the batch",
            f"{times['shared']:.3f}",
            f"{times['shared'] / torch_seconds:.2f}x",
        ],
        [f"PyTorch, 1 process, {args.threads} threads", f"{torch_seconds:.3f}", "1.00x"],
    ]
    print(f"\n{args.model}, {args.size} px, batch {args.batch}: training step, median of {args.repeats}\n")
    print(markdown_table(["case", "seconds", "vs PyTorch"], rows))
    print(f"\nTwo processes against one: {times['one'] / times['shared']:.2f}x faster")
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
