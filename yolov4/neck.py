"""Necks: SPP + PANet for YOLOv4, and YOLOv4-tiny's small FPN.

Shapes at 416x416 (YOLOv4): C3 (256, 52x52), C4 (512, 26x26), C5 (1024, 13x13) in;
N3 (128, 52x52), N4 (256, 26x26), N5 (512, 13x13) out.

SPP (He et al. 2014, as YOLOv3-SPP uses it) max-pools C5 at stride 1 with windows 5, 9
and 13 and concatenates them with the input: one map sees context at four scales.
PANet (Liu et al. 2018) first runs top-down (upsample the deep map, concatenate with a 1x1
*lateral* of the shallower backbone map) and then bottom-up (a stride-2 3x3 conv back down,
concatenated with the top-down map of that stride), so every output mixes all depths.

In darknet's cfg each head's layers follow the neck layer that makes its map, so a neck
writes its darknet layers with the heads in between: ``to_darknet`` takes ``write_head``,
called as ``write_head(level, source)`` where output ``level``'s head goes, with ``source``
the layer index of the map it reads.
"""

from __future__ import annotations

from collections.abc import Callable

import minilucid as lucid
from minilucid import nn
from minilucid.nn import functional as F
from yolov4.darknet.cfg_format import DarknetGraph
from yolov4.layers import ConvUnit

SPP_POOLS = (5, 9, 13)

HeadWriter = Callable[[int, int], object]  # write_head(output level, layer index of its map)


def leaky_conv(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> ConvUnit:
    """A conv unit with BatchNorm and LeakyReLU(0.1), as every conv of the neck is."""
    return ConvUnit(in_channels, out_channels, kernel, stride, activation="leaky")


def alternating(in_channels: int, width: int, count: int) -> nn.Sequential:
    """1x1 (-> width), 3x3 (-> 2 width), 1x1, ...: ``count`` convs ending at ``width``."""
    layers, previous = [], in_channels
    for i in range(count):
        out = width if i % 2 == 0 else 2 * width
        layers.append(leaky_conv(previous, out, 1 if i % 2 == 0 else 3))
        previous = out
    return nn.Sequential(*layers)


def sequence_to_darknet(sequence: nn.Sequential, graph: DarknetGraph, source: int) -> int:
    """The conv units of ``sequence`` as darknet layers after layer ``source``; the last one's index."""
    for unit in sequence:
        source = graph.conv(unit, source)
    return source


class SPP(nn.Module):
    """Three convs, max-pools 5/9/13 concatenated as [13, 9, 5, input], three convs."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.pre = alternating(in_channels, width, 3)
        self.post = alternating(4 * width, width, 3)

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        x = self.pre(x)
        pooled = [F.max_pool2d(x, k, 1, k // 2) for k in reversed(SPP_POOLS)]
        return self.post(lucid.concatenate([*pooled, x], axis=1))

    def to_darknet(self, graph: DarknetGraph, source: int) -> int:
        x = sequence_to_darknet(self.pre, graph, source)
        pooled = [graph.maxpool(k, 1, x) for k in SPP_POOLS]  # darknet pools 5 first
        return sequence_to_darknet(self.post, graph, graph.route(*reversed(pooled), x))


class PANet(nn.Module):
    """Top-down then bottom-up path aggregation over three strides: (C3, C4, P5) -> (N3, N4, N5)."""

    def __init__(self, in_channels: tuple[int, int, int], widths: tuple[int, int, int]) -> None:
        super().__init__()
        (c3, c4, _), (n3, n4, n5) = in_channels, widths
        self.reduce5 = leaky_conv(n5, n4)
        self.lateral4 = leaky_conv(c4, n4)
        self.top_down4 = alternating(2 * n4, n4, 5)
        self.reduce4 = leaky_conv(n4, n3)
        self.lateral3 = leaky_conv(c3, n3)
        self.top_down3 = alternating(2 * n3, n3, 5)
        self.downsample3 = leaky_conv(n3, n4, 3, stride=2)
        self.bottom_up4 = alternating(2 * n4, n4, 5)
        self.downsample4 = leaky_conv(n4, n5, 3, stride=2)
        self.bottom_up5 = alternating(2 * n5, n5, 5)

    def top_down(self, c3, c4, p5):
        """(N3, the top-down N4); joins are [lateral, upsampled] as darknet's route -1,-3."""
        up = F.interpolate(self.reduce5(p5), scale_factor=2)
        n4 = self.top_down4(lucid.concatenate([self.lateral4(c4), up], axis=1))
        up = F.interpolate(self.reduce4(n4), scale_factor=2)
        return self.top_down3(lucid.concatenate([self.lateral3(c3), up], axis=1)), n4

    @staticmethod
    def bottom_up(down: ConvUnit, fuse: nn.Sequential, shallow, deep):
        """One bottom-up step: ``fuse`` of [``down`` (a stride-2 conv) of the shallower map,
        the deeper map], a map at the deeper one's stride."""
        return fuse(lucid.concatenate([down(shallow), deep], axis=1))

    def forward(self, c3, c4, p5):
        n3, n4 = self.top_down(c3, c4, p5)
        n4 = self.bottom_up(self.downsample3, self.bottom_up4, n3, n4)
        return n3, n4, self.bottom_up(self.downsample4, self.bottom_up5, n4, p5)

    def to_darknet(self, graph: DarknetGraph, c3: int, c4: int, p5: int, write_head: HeadWriter) -> None:
        """The same layers in darknet's order, each output's head written right after its map."""
        up = graph.upsample(graph.conv(self.reduce5, p5))
        n4 = sequence_to_darknet(self.top_down4, graph, graph.route(graph.conv(self.lateral4, c4), up))
        up = graph.upsample(graph.conv(self.reduce4, n4))
        n3 = sequence_to_darknet(self.top_down3, graph, graph.route(graph.conv(self.lateral3, c3), up))
        write_head(0, n3)
        n4 = self.bottom_up_to_darknet(graph, self.downsample3, self.bottom_up4, n3, n4)
        write_head(1, n4)
        write_head(2, self.bottom_up_to_darknet(graph, self.downsample4, self.bottom_up5, n4, p5))

    @staticmethod
    def bottom_up_to_darknet(graph: DarknetGraph, down: ConvUnit, fuse: nn.Sequential, shallow: int, deep: int) -> int:
        """``bottom_up`` as darknet layers; the index of its last."""
        return sequence_to_darknet(fuse, graph, graph.route(graph.conv(down, shallow), deep))


class YOLOv4Neck(nn.Module):
    """SPP on C5, then PANet over (C3, C4, SPP output); returns (N3, N4, N5)."""

    def __init__(self, in_channels: tuple[int, int, int]) -> None:
        super().__init__()
        widths = tuple(c // 2 for c in in_channels)
        self.spp = SPP(in_channels[2], widths[2])
        self.pan = PANet(in_channels, widths)
        self.out_channels = widths

    def forward(self, features):
        c3, c4, c5 = features
        return self.pan(c3, c4, self.spp(c5))

    def to_darknet(self, graph: DarknetGraph, features: tuple[int, int, int], write_head: HeadWriter) -> None:
        """This neck as darknet layers after the backbone's ``features`` (layer indices of C3,
        C4, C5), with ``write_head`` called where each output's head goes."""
        c3, c4, c5 = features
        self.pan.to_darknet(graph, c3, c4, self.spp.to_darknet(graph, c5), write_head)


class TinyNeck(nn.Module):
    """YOLOv4-tiny: a 1x1 on the stride-32 map, and an upsampled 1x1 of it concatenated
    with the backbone's stride-16 route; returns (stride-16 map, stride-32 map)."""

    def __init__(self, in_channels: tuple[int, int]) -> None:
        super().__init__()
        c16, c32 = in_channels
        self.reduce32 = leaky_conv(c32, c32 // 2)
        self.reduce16 = leaky_conv(c32 // 2, c32 // 4)
        self.out_channels = (c32 // 4 + c16, c32 // 2)

    def forward(self, features):
        route16, x32 = features
        p32 = self.reduce32(x32)
        up = F.interpolate(self.reduce16(p32), scale_factor=2)
        return lucid.concatenate([up, route16], axis=1), p32

    def to_darknet(self, graph: DarknetGraph, features: tuple[int, int], write_head: HeadWriter) -> None:
        """This neck as darknet layers after the backbone's ``features`` (layer indices of the
        stride-16 route and the stride-32 map): the stride-32 head comes first in darknet's cfg."""
        route16, x32 = features
        p32 = graph.conv(self.reduce32, x32)
        write_head(1, p32)
        up = graph.upsample(graph.conv(self.reduce16, p32))
        write_head(0, graph.route(up, route16))
