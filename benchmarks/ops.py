"""Time minilucid's ops against PyTorch CPU in the same run, on YOLOv4's shapes at 416x416.

    python benchmarks/ops.py [--threads 2] [--repeats 5] [--batch 1] [--device cpu|gpu] [--quick]

For every distinct convolution of YOLOv4 (darknet's yolov4.cfg), and for Mish, BatchNorm
(train) and SPP's max-pools, it prints the median time of each library forward and
forward+backward, and the ratio minilucid / PyTorch (lower is better; 1.0 is parity).
Then it weighs each convolution by how many of YOLOv4's 110 have its shape: which shapes
hold minilucid's time and lose most to PyTorch. Measured alone, that is; ops alone do not
add up to a training step (docs/performance.md), which ``model.py`` times.
With --device gpu it times CuPy against PyTorch CUDA instead.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import interleaved_medians, machine_line, markdown_table, set_threads  # noqa: E402

# (in_channels, out_channels, kernel, stride, input size) of every distinct YOLOv4 conv at 416.
YOLOV4_CONVS = [
    (3, 32, 3, 1, 416),
    (32, 64, 3, 2, 416),
    (64, 64, 1, 1, 208),
    (64, 32, 1, 1, 208),
    (32, 64, 3, 1, 208),
    (128, 64, 1, 1, 208),
    (64, 128, 3, 2, 208),
    (128, 64, 1, 1, 104),
    (64, 64, 1, 1, 104),
    (64, 64, 3, 1, 104),
    (128, 128, 1, 1, 104),
    (128, 256, 3, 2, 104),
    (256, 128, 1, 1, 52),
    (128, 128, 1, 1, 52),
    (128, 128, 3, 1, 52),
    (256, 256, 1, 1, 52),
    (256, 512, 3, 2, 52),
    (512, 256, 1, 1, 26),
    (256, 256, 1, 1, 26),
    (256, 256, 3, 1, 26),
    (512, 512, 1, 1, 26),
    (512, 1024, 3, 2, 26),
    (1024, 512, 1, 1, 13),
    (512, 512, 1, 1, 13),
    (512, 512, 3, 1, 13),
    (1024, 1024, 1, 1, 13),
    (512, 1024, 3, 1, 13),
    (2048, 512, 1, 1, 13),
    (512, 256, 1, 1, 13),
    (256, 128, 1, 1, 26),
    (128, 256, 3, 1, 52),
    (256, 255, 1, 1, 52),
    (128, 256, 3, 2, 52),
    (256, 512, 3, 1, 26),
    (512, 255, 1, 1, 26),
    (256, 512, 3, 2, 26),
    (1024, 255, 1, 1, 13),
]
ACTIVATION_SHAPES = [(32, 416), (64, 208), (128, 104), (512, 26)]  # (channels, size)


def conv_counts(size: int = 416) -> Counter:
    """How many of YOLOv4's convolutions have each (in, out, kernel, stride, input size), from a forward pass."""
    import numpy as np

    import minilucid as lucid
    from minilucid.nn.functional import conv
    from yolov4 import yolo_v4

    counts: Counter = Counter()
    original = conv.Conv2d.forward

    def recording(self, x, weight, bias=None):
        counts[(x.shape[1], weight.shape[0], weight.shape[2], self.stride, x.shape[2])] += 1
        return original(self, x, weight, bias)

    conv.Conv2d.forward = recording
    try:
        model = yolo_v4()
        model.eval()
        with lucid.no_grad():
            model(lucid.Tensor(np.zeros((1, 3, size, size), np.float32)))
    finally:
        conv.Conv2d.forward = original
    return counts


def weighted_conv_lines(times: dict, counts: Counter, worst: int = 5) -> list[str]:
    """Each conv shape's times (ours fwd, torch fwd, ours fwd+bwd, torch fwd+bwd) times its count:
    the totals over the model's convolutions, and the shapes with the largest forward+backward gap."""
    totals = [sum(t[i] * counts[shape] for shape, t in times.items()) for i in range(4)]
    lines = [
        f"Over YOLOv4's {sum(counts[shape] for shape in times)} convolutions of these shapes (each times its count): "
        f"forward {totals[0]:.3f} s against {totals[1]:.3f} s ({totals[0] / totals[1]:.2f}), "
        f"forward+backward {totals[2]:.3f} s against {totals[3]:.3f} s ({totals[2] / totals[3]:.2f})."
    ]
    gaps = sorted(times, key=lambda shape: -(times[shape][2] - times[shape][3]) * counts[shape])
    for cin, cout, k, s, size in gaps[:worst]:
        t, count = times[(cin, cout, k, s, size)], counts[(cin, cout, k, s, size)]
        lines.append(
            f"- conv {cin}->{cout} k{k} s{s} @{size}, {count} in the model: "
            f"forward+backward {(t[2] - t[3]) * count:+.3f} s against PyTorch"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="images per op (YOLOv4 trains at 4-64)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="a few shapes only")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    set_threads(args.threads)

    import numpy as np
    import torch

    import minilucid as lucid
    from minilucid.nn import functional as F

    torch.set_num_threads(args.threads)
    device = args.device
    torch_device = "cuda" if device == "gpu" else "cpu"
    sync = (lambda: torch.cuda.synchronize()) if device == "gpu" else (lambda: None)
    if device == "gpu":
        import cupy

        lucid_sync = cupy.cuda.Device().synchronize
    else:
        lucid_sync = lambda: None  # noqa: E731
    rng = np.random.default_rng(0)

    def pair(shape):
        array = rng.standard_normal(shape).astype(np.float32)
        ours = lucid.Tensor(array, requires_grad=True, device=device)
        theirs = torch.tensor(array, device=torch_device, requires_grad=True)
        return ours, theirs

    def timed(ours_fn, theirs_fn):
        def ours_forward():
            with lucid.no_grad():
                ours_fn()
            lucid_sync()

        def theirs_forward():
            with torch.no_grad():
                theirs_fn()
            sync()

        def ours_step():
            ours_fn().sum().backward()
            lucid_sync()

        def theirs_step():
            theirs_fn().sum().backward()
            sync()

        t = interleaved_medians(
            {"of": ours_forward, "tf": theirs_forward, "ob": ours_step, "tb": theirs_step},
            args.repeats,
        )
        return t["of"], t["tf"], t["ob"], t["tb"]

    def row(name, times):
        of, tf, ob, tb = times
        return [
            name,
            f"{of * 1e3:.2f}",
            f"{tf * 1e3:.2f}",
            f"{of / tf:.2f}",
            f"{ob * 1e3:.2f}",
            f"{tb * 1e3:.2f}",
            f"{ob / tb:.2f}",
        ]

    header = [
        "op",
        "ours fwd ms",
        "torch fwd ms",
        "fwd ratio",
        "ours fwd+bwd ms",
        "torch fwd+bwd ms",
        "fwd+bwd ratio",
    ]
    sections = []
    convs = YOLOV4_CONVS[::6] if args.quick else YOLOV4_CONVS
    rows, worst, conv_times = [], [0.0, 0.0], {}
    for cin, cout, k, s, size in convs:
        x, tx = pair((args.batch, cin, size, size))
        w, tw = pair((cout, cin, k, k))
        pad = k // 2
        times = timed(
            lambda: F.conv2d(x, w, None, s, pad),
            lambda: torch.nn.functional.conv2d(tx, tw, None, s, pad),
        )
        conv_times[(cin, cout, k, s, size)] = times
        rows.append(row(f"conv {cin}->{cout} k{k} s{s} @{size}", times))
        worst = [max(worst[0], times[0] / times[1]), max(worst[1], times[2] / times[3])]
        print(" | ".join(rows[-1]), flush=True)
    sections.append((f"Convolutions of YOLOv4 at 416x416, batch {args.batch}", rows))
    print(f"worst conv ratio: forward {worst[0]:.2f}, forward+backward {worst[1]:.2f}")
    weighted = weighted_conv_lines(conv_times, conv_counts())
    print("\n".join(weighted))

    rows = []
    for c, size in ACTIVATION_SHAPES[:2] if args.quick else ACTIVATION_SHAPES:
        shape = (args.batch, c, size, size)
        x, tx = pair(shape)
        gamma, tgamma = pair((c,))
        beta, tbeta = pair((c,))
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        trm, trv = torch.zeros(c, device=torch_device), torch.ones(c, device=torch_device)
        if device == "gpu":
            import cupy

            rm, rv = cupy.asarray(rm), cupy.asarray(rv)
        label = "x".join(map(str, shape))
        rows.append(row(f"mish {label}", timed(lambda: F.mish(x), lambda: torch.nn.functional.mish(tx))))
        rows.append(
            row(
                f"leaky_relu {label}",
                timed(lambda: F.leaky_relu(x, 0.1), lambda: torch.nn.functional.leaky_relu(tx, 0.1)),
            )
        )
        rows.append(
            row(
                f"batch_norm (train) {label}",
                timed(
                    lambda: F.batch_norm(x, rm, rv, gamma, beta, True),
                    lambda: torch.nn.functional.batch_norm(tx, trm, trv, tgamma, tbeta, True),
                ),
            )
        )
        for row_ in rows[-3:]:
            print(" | ".join(row_), flush=True)
    x, tx = pair((args.batch, 512, 13, 13))
    for k in (5, 9, 13):
        rows.append(
            row(
                f"max_pool {k}x{k} s1 {args.batch}x512x13x13",
                timed(
                    lambda k=k: F.max_pool2d(x, k, 1, k // 2),
                    lambda k=k: torch.nn.functional.max_pool2d(tx, k, 1, k // 2),
                ),
            )
        )
        print(" | ".join(rows[-1]), flush=True)
    sections.append(("Activations, BatchNorm and pooling", rows))

    text = "\n\n".join(f"### {title}\n\n{markdown_table(header, body)}" for title, body in sections)
    text += "\n\n" + "\n".join(weighted)
    print()
    print(f"minilucid {device} vs PyTorch {torch_device}, {args.threads} threads, median of {args.repeats}")
    print(text)
    print(f"\n{machine_line()}")
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
