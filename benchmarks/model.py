"""Time minilucid's YOLOv4 against its PyTorch twin (same weights, same threads), forward.

    python benchmarks/model.py [--model yolov4|yolov4-tiny|small] [--sizes 416] [--batch 1]
                               [--threads 2] [--repeats 5]

The twin (benchmarks/torch_twin.py) runs the model's own darknet description in PyTorch.
Both run in eval mode without gradients; the script prints the median time of each, the
ratio minilucid / PyTorch (lower is better) and the achieved GFLOP/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import interleaved_medians, markdown_table, set_threads  # noqa: E402


def build(name: str):
    from yolov4 import yolo_v4, yolo_v4_tiny

    if name == "yolov4":
        return yolo_v4()
    if name == "yolov4-tiny":
        return yolo_v4_tiny()
    return yolo_v4(num_classes=3, width_multiple=0.25, depth_multiple=0.33)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["yolov4", "yolov4-tiny", "small"], default="yolov4")
    parser.add_argument("--sizes", type=int, nargs="+", default=[416])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    set_threads(args.threads)

    import numpy as np
    import torch
    from torch_twin import twin_of

    import minilucid as lucid
    from yolov4.summary import count_flops

    torch.set_num_threads(args.threads)
    model = build(args.model).eval()
    twin = twin_of(model)
    rows = []
    for size in args.sizes:
        image = np.random.default_rng(0).uniform(0, 1, (args.batch, 3, size, size)).astype(np.float32)
        x, tx = lucid.Tensor(image), torch.tensor(image)

        def ours(x=x):
            with lucid.no_grad():
                model(x)

        def theirs(tx=tx):
            with torch.no_grad():
                twin(tx)

        times = interleaved_medians({"ours": ours, "torch": theirs}, args.repeats)
        flops = count_flops(model, size) * args.batch
        rows.append(
            [
                f"{args.model} forward {size}x{size} batch {args.batch}",
                f"{times['ours']:.3f}",
                f"{times['torch']:.3f}",
                f"{times['ours'] / times['torch']:.2f}",
                f"{flops / times['ours'] / 1e9:.0f}",
                f"{flops / times['torch'] / 1e9:.0f}",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    header = ["case", "minilucid s", "PyTorch s", "ratio", "minilucid GFLOP/s", "PyTorch GFLOP/s"]
    print(f"\n{args.threads} threads, median of {args.repeats}\n")
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
