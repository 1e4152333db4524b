"""Backbones: CSPDarknet53 (YOLOv4) and the CSPDarknet53-tiny of YOLOv4-tiny.

Shapes at a 416x416 input: CSPDarknet53 returns C3 (N, 256, 52, 52), C4 (N, 512, 26, 26)
and C5 (N, 1024, 13, 13), the maps at strides 8, 16 and 32.

A CSP stage (Cross Stage Partial, Wang et al. 2019) downsamples, then splits into two 1x1
branches: the *bypass* goes straight to the end, the *main* branch runs the residual
blocks and a 1x1 *transition*; the two are concatenated (transition first, as darknet's
``route -1,-k``) and a 1x1 *fuse* mixes them. Half the features skip the blocks, which cuts
computation and keeps gradients flowing through two paths.
"""

from __future__ import annotations

import minilucid as lucid
from minilucid import nn
from minilucid.nn import functional as F
from yolov4.darknet.cfg_format import DarknetGraph
from yolov4.layers import ConvUnit
from yolov4.model_config import YOLO_V4Config

STAGE_WIDTHS = (64, 128, 256, 512, 1024)
STAGE_BLOCKS = (1, 2, 8, 8, 4)


class ResidualBlock(nn.Module):
    """x + conv3x3(conv1x1(x)): darknet's conv, conv, ``[shortcut] from=-3``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = ConvUnit(channels, hidden, 1)
        self.conv = ConvUnit(hidden, channels, 3)

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        return x + self.conv(self.reduce(x))

    def to_darknet(self, graph: DarknetGraph, source: int) -> int:
        out = graph.conv(self.conv, graph.conv(self.reduce, source))
        return graph.shortcut(source, out)


class CSPStage(nn.Module):
    """Downsample by 2, then a cross-stage-partial group of residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, first: bool) -> None:
        super().__init__()
        # Stage 1 keeps its full width in both branches (its block is 1x1 32 -> 3x3 64);
        # later stages halve the branches.
        branch = out_channels if first else out_channels // 2
        hidden = out_channels // 2 if first else branch
        self.downsample = ConvUnit(in_channels, out_channels, 3, stride=2)
        self.bypass = ConvUnit(out_channels, branch, 1)
        self.main = ConvUnit(out_channels, branch, 1)
        self.blocks = nn.Sequential(*(ResidualBlock(branch, hidden) for _ in range(blocks)))
        self.transition = ConvUnit(branch, branch, 1)
        self.fuse = ConvUnit(2 * branch, out_channels, 1)

    def forward(self, x: lucid.Tensor) -> lucid.Tensor:
        x = self.downsample(x)
        main = self.transition(self.blocks(self.main(x)))
        return self.fuse(lucid.concatenate([main, self.bypass(x)], axis=1))

    def to_darknet(self, graph: DarknetGraph, source: int) -> int:
        x = graph.conv(self.downsample, source)
        bypass = graph.conv(self.bypass, x)
        main = graph.conv(self.main, x)
        for block in self.blocks:
            main = block.to_darknet(graph, main)
        main = graph.conv(self.transition, main)
        return graph.conv(self.fuse, graph.route(main, bypass))


class CSPDarknet53(nn.Module):
    """The YOLOv4 backbone: a 3x3 stem and five CSP stages; returns (C3, C4, C5)."""

    def __init__(self, config: YOLO_V4Config) -> None:
        super().__init__()
        widths = [config.channels(w) for w in STAGE_WIDTHS]
        self.stem = ConvUnit(config.image_channels, config.channels(32), 3)
        previous = self.stem.out_channels
        for index, (width, blocks) in enumerate(zip(widths, STAGE_BLOCKS, strict=True)):
            setattr(
                self,
                f"stage{index + 1}",
                CSPStage(previous, width, config.blocks(blocks), first=index == 0),
            )
            previous = width
        self.out_channels = tuple(widths[2:])
        # DropBlock on the three maps the neck reads (a regularizer of the paper's "bag of
        # freebies"); it has no weights and is the identity in eval mode.
        self.drop_block = nn.DropBlock2d(config.drop_block_size, config.drop_block) if config.drop_block else None

    def stages(self) -> list[CSPStage]:
        return [getattr(self, f"stage{i}") for i in range(1, 6)]

    def forward(self, x: lucid.Tensor) -> tuple[lucid.Tensor, ...]:
        x = self.stem(x)
        features = []
        for stage in self.stages():
            x = stage(x)
            features.append(x)
        if self.drop_block is not None:
            return tuple(self.drop_block(f) for f in features[2:])
        return tuple(features[2:])

    def to_darknet(self, graph: DarknetGraph, source: int) -> tuple[int, ...]:
        x = graph.conv(self.stem, source)
        features = []
        for stage in self.stages():
            x = stage.to_darknet(graph, x)
            features.append(x)
        return tuple(features[2:])


class TinyCSPBlock(nn.Module):
    """YOLOv4-tiny's stage: conv3x3, keep the second half of its channels, two 3x3 convs
    whose outputs are concatenated, a 1x1, a concat with the first conv, a 2x2 max-pool.

    Returns (pooled output, the 1x1's output), the second feeding the stride-16 head.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv = ConvUnit(in_channels, channels, 3, activation="leaky")
        self.part1 = ConvUnit(half, half, 3, activation="leaky")
        self.part2 = ConvUnit(half, half, 3, activation="leaky")
        self.transition = ConvUnit(channels, channels, 1, activation="leaky")

    def forward(self, x: lucid.Tensor) -> tuple[lucid.Tensor, lucid.Tensor]:
        x = self.conv(x)
        half = x[:, x.shape[1] // 2 :]  # darknet: route groups=2 group_id=1
        a = self.part1(half)
        b = self.part2(a)
        t = self.transition(lucid.concatenate([b, a], axis=1))
        return F.max_pool2d(lucid.concatenate([x, t], axis=1), 2, 2), t

    def to_darknet(self, graph: DarknetGraph, source: int) -> tuple[int, int]:
        x = graph.conv(self.conv, source)
        a = graph.conv(self.part1, graph.route(x, groups=2, group_id=1))
        b = graph.conv(self.part2, a)
        t = graph.conv(self.transition, graph.route(b, a))
        return graph.maxpool(2, 2, graph.route(x, t)), t


class CSPDarknet53Tiny(nn.Module):
    """YOLOv4-tiny's backbone: two stride-2 convs, three tiny CSP blocks, a 3x3 conv.

    Returns (the stride-16 feature, the stride-32 feature): (N, 256, 26, 26) and
    (N, 512, 13, 13) at 416x416.
    """

    def __init__(self, config: YOLO_V4Config) -> None:
        super().__init__()
        c = config.channels
        self.stem1 = ConvUnit(config.image_channels, c(32), 3, stride=2, activation="leaky")
        self.stem2 = ConvUnit(c(32), c(64), 3, stride=2, activation="leaky")
        self.block1 = TinyCSPBlock(c(64), c(64))
        self.block2 = TinyCSPBlock(2 * c(64), c(128))
        self.block3 = TinyCSPBlock(2 * c(128), c(256))
        self.final = ConvUnit(2 * c(256), c(512), 3, activation="leaky")
        self.out_channels = (c(256), c(512))

    def forward(self, x: lucid.Tensor) -> tuple[lucid.Tensor, lucid.Tensor]:
        x = self.stem2(self.stem1(x))
        x, _ = self.block1(x)
        x, _ = self.block2(x)
        x, route16 = self.block3(x)
        return route16, self.final(x)

    def to_darknet(self, graph: DarknetGraph, source: int) -> tuple[int, int]:
        x = graph.conv(self.stem2, graph.conv(self.stem1, source))
        x, _ = self.block1.to_darknet(graph, x)
        x, _ = self.block2.to_darknet(graph, x)
        x, route16 = self.block3.to_darknet(graph, x)
        return route16, graph.conv(self.final, x)
