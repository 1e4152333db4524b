"""The YOLO head: per stride, a 3x3 conv and a 1x1 output conv with a bias.

Output shape (N, A * V, H/s, W/s) with A anchors and V = 5 + C values per anchor, laid out
per anchor as [tx, ty, tw, th, objectness, class_1 .. class_C] (with the IoU-aware branch,
V = 6 + C and an IoU logit follows the objectness).
"""

from __future__ import annotations

import minilucid as lucid
from minilucid import nn
from yolov4.cfg import DarknetGraph
from yolov4.layers import ConvUnit


class YOLOHead(nn.Module):
    def __init__(self, in_channels: int, hidden: int, anchors: int, values_per_anchor: int) -> None:
        super().__init__()
        self.conv = ConvUnit(in_channels, hidden, 3, activation="leaky")
        self.output = ConvUnit(hidden, anchors * values_per_anchor, 1, activation="linear", batch_norm=False)

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        return self.output(self.conv(x))

    def to_darknet(self, graph: DarknetGraph, source: int, yolo_options: dict) -> int:
        out = graph.conv(self.output, graph.conv(self.conv, source))
        graph.yolo(**yolo_options)
        return out
