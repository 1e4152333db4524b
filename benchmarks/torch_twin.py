"""A PyTorch twin of a darknet cfg, for tests and benchmarks only (PyTorch is never a
dependency of the packages).

It interprets the cfg sections directly (``[convolutional]``, ``[route]``, ``[shortcut]``,
``[maxpool]``, ``[upsample]``, ``[yolo]``), so it shares no code with minilucid's forward:
when the two agree, the model's forward does what its darknet description says.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from yolov4.darknet.cfg_format import Section, structure


class DarknetTwin(nn.Module):
    def __init__(self, sections: list[Section], in_channels: int = 3) -> None:
        super().__init__()
        self.sections = sections
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels: list[int] = []
        current = in_channels
        full = [Section("net"), *sections]
        self.options = [structure(full, i) for i in range(len(sections))]
        for section, options in zip(sections, self.options, strict=True):
            if section.kind == "convolutional":
                k, bn = int(options["size"]), options["batch_normalize"] == "1"
                self.convs.append(
                    nn.Conv2d(
                        current,
                        int(options["filters"]),
                        k,
                        int(options["stride"]),
                        k // 2,
                        bias=not bn,
                    )
                )
                self.norms.append(nn.BatchNorm2d(int(options["filters"])) if bn else nn.Identity())
                current = int(options["filters"])
            elif section.kind == "route":
                current = sum(channels[int(i)] for i in options["layers"].split(",")) // int(options.get("groups", "1"))
            channels.append(current)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The inputs of the [yolo] layers, ascending stride (largest map first)."""
        outputs, heads, conv = [], [], 0
        for section, options in zip(self.sections, self.options, strict=True):
            if section.kind == "convolutional":
                x = self.norms[conv](self.convs[conv](x))
                conv += 1
                if options["activation"] == "mish":
                    x = F.mish(x)
                elif options["activation"] == "leaky":
                    x = F.leaky_relu(x, 0.1)
            elif section.kind == "route":
                parts = [outputs[int(i)] for i in options["layers"].split(",")]
                groups, group = int(options.get("groups", "1")), int(options.get("group_id", "0"))
                x = torch.cat(parts, 1)
                if groups > 1:
                    x = torch.chunk(x, groups, 1)[group]
            elif section.kind == "shortcut":
                x = x + outputs[int(options["from"])]
            elif section.kind == "maxpool":
                size, stride = int(options["size"]), int(options["stride"])
                x = F.max_pool2d(x, size, stride, (size - 1) // 2)
            elif section.kind == "upsample":
                x = F.interpolate(x, scale_factor=int(options["stride"]), mode="nearest")
            elif section.kind == "yolo":
                heads.append(x)
            outputs.append(x)
        return sorted(heads, key=lambda h: -h.shape[-1])

    def copy_from(self, units) -> None:
        """Take the weights (and BatchNorm statistics) of minilucid ConvUnits in cfg order."""
        with torch.no_grad():
            for conv, norm, unit in zip(self.convs, self.norms, units, strict=True):
                conv.weight.copy_(torch.from_numpy(np.asarray(unit.conv.weight.numpy())))
                if unit.bn is None:
                    conv.bias.copy_(torch.from_numpy(unit.conv.bias.numpy()))
                    continue
                norm.weight.copy_(torch.from_numpy(unit.bn.weight.numpy()))
                norm.bias.copy_(torch.from_numpy(unit.bn.bias.numpy()))
                norm.running_mean.copy_(torch.from_numpy(unit.bn.running_mean.numpy()))
                norm.running_var.copy_(torch.from_numpy(unit.bn.running_var.numpy()))

    def parameters_in_unit_order(self) -> list[torch.Tensor]:
        """Per ConvUnit: conv weight, then BN weight and bias or the conv bias."""
        tensors = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            tensors.append(conv.weight)
            tensors += [norm.weight, norm.bias] if isinstance(norm, nn.BatchNorm2d) else [conv.bias]
        return tensors


def twin_of(model) -> DarknetTwin:
    """A PyTorch twin of a minilucid YOLO_V4 with the same weights, in the same mode."""
    graph = model.to_darknet()
    twin = DarknetTwin(graph.sections, model.config.image_channels)
    twin.copy_from(graph.units)
    return twin.train(model.training)
