"""The YOLO head: per stride, a 3x3 conv and a 1x1 output conv with a bias.

Output shape (N, A * V, H/s, W/s) with A anchors and V = 5 + C values per anchor, laid out
per anchor as [tx, ty, tw, th, objectness, class_1 .. class_C] (with the IoU-aware branch,
V = 6 + C and an IoU logit follows the objectness).

The output biases start at priors (Lin et al., "Focal Loss for Dense Object Detection"):
objectness at probability 0.01, since almost every cell holds no object, and each class at
1 / C. Started at 0.5 instead, thousands of "no object" terms swamp the first hundreds of
steps while the network merely learns to say "nothing here".
"""

from __future__ import annotations

import math

import minilucid as lucid
from minilucid import nn
from yolov4.darknet.cfg_format import DarknetGraph
from yolov4.layers import ConvUnit

OBJECT_PRIOR = 0.01


def logit(p: float) -> float:
    return math.log(p / (1 - p))


class YOLOHead(nn.Module):
    def __init__(self, in_channels: int, hidden: int, anchors: int, values_per_anchor: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvUnit(in_channels, hidden, 3, activation="leaky")
        self.output = ConvUnit(hidden, anchors * values_per_anchor, 1, activation="linear", batch_norm=False)
        bias = self.output.conv.bias.data.reshape(anchors, values_per_anchor)  # a view: (A, V)
        bias[:, 4] = logit(OBJECT_PRIOR)
        bias[:, values_per_anchor - num_classes :] = logit(1 / max(num_classes, 2))

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        return self.output(self.conv(x))

    def to_darknet(self, graph: DarknetGraph, source: int, yolo_options: dict) -> int:
        out = graph.conv(self.output, graph.conv(self.conv, source))
        graph.yolo(**yolo_options)
        return out
