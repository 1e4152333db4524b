"""A model summary in darknet's style: one row per layer with its output shape and FLOPs.

FLOPs are counted as darknet does: 2 x (multiply-adds of every convolution), which gives
YOLOv4 60.1 BFLOPs at 416x416 and 128.4 at 608. Pools, adds and upsampling are free in
that count.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolov4.darknet.cfg_format import structure
from yolov4.model import YOLO_V4


@dataclass
class LayerRow:
    index: int
    kind: str
    detail: str
    output_shape: tuple[int, int, int]  # (C, H, W)
    parameters: int
    flops: int


def summarize(model: YOLO_V4, input_size: int | tuple[int, int] = 416) -> list[LayerRow]:
    """Per darknet layer: (index, kind, detail, output (C, H, W), parameters, FLOPs)."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    if height % 32 or width % 32:
        raise ValueError(f"summary: input size must be a multiple of 32, got {height}x{width}")
    graph = model.to_darknet()
    sections = [None, *graph.sections]
    units = iter(graph.units)
    shapes: list[tuple[int, int, int]] = []
    rows = []
    current = (model.config.image_channels, height, width)
    for index, section in enumerate(graph.sections):
        options = structure(sections, index)  # absolute layer references
        params = flops = 0
        if section.kind == "convolutional":
            unit = next(units)
            c = unit.conv
            k, s = c.kernel_size, c.stride
            out = (
                c.out_channels,
                (current[1] + 2 * (k // 2) - k) // s + 1,
                (current[2] + 2 * (k // 2) - k) // s + 1,
            )
            params = sum(p.size for p in unit.parameters())
            flops = 2 * out[0] * out[1] * out[2] * c.in_channels * k * k
            detail = f"{c.out_channels} {k}x{k}/{s} {unit.activation}"
        elif section.kind == "route":
            sources = [shapes[int(i)] for i in options["layers"].split(",")]
            groups = int(options.get("groups", "1"))
            out = (sum(s[0] for s in sources) // groups, sources[0][1], sources[0][2])
            detail = "layers " + options["layers"] + (f" group 1/{groups}" if groups > 1 else "")
        elif section.kind == "shortcut":
            out, detail = current, "add layer " + options["from"]
        elif section.kind == "maxpool":
            size, stride = int(options["size"]), int(options["stride"])
            out = (current[0], -(-current[1] // stride), -(-current[2] // stride))
            detail = f"{size}x{size}/{stride}"
        elif section.kind == "upsample":
            out, detail = (current[0], current[1] * 2, current[2] * 2), "x2 nearest"
        else:  # yolo: the decoding of the previous layer
            out, detail = current, f"{section.options['mask']} classes {section.options['classes']}"
        shapes.append(out)
        current = out
        rows.append(LayerRow(index, section.kind, detail, out, params, flops))
    return rows


def summary(model: YOLO_V4, input_size: int | tuple[int, int] = 416) -> str:
    """A printable table of ``summarize`` with the totals."""
    rows = summarize(model, input_size)
    lines = [f"{'layer':>5}  {'type':<14}{'detail':<28}{'output':>18}{'params':>12}{'BFLOPs':>9}"]
    for r in rows:
        shape = "x".join(str(v) for v in r.output_shape)
        lines.append(f"{r.index:>5}  {r.kind:<14}{r.detail:<28}{shape:>18}{r.parameters:>12,}{r.flops / 1e9:>9.3f}")
    total_flops = sum(r.flops for r in rows)
    lines.append(
        f"total: {model.count_parameters():,} trainable parameters, {model.count_floats():,} floats with "
        f"BatchNorm statistics, {total_flops / 1e9:.1f} BFLOPs at {input_size}"
    )
    return "\n".join(lines)


def count_flops(model: YOLO_V4, input_size: int | tuple[int, int] = 416) -> int:
    """darknet's FLOP count (2 x multiply-adds of the convolutions) at ``input_size``."""
    return sum(r.flops for r in summarize(model, input_size))
