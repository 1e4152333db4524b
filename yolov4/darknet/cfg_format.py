"""darknet's ``.cfg`` format: parsing, writing, and a graph builder that writes it.

A cfg is a list of sections (``[convolutional]``, ``[route]``, ...) that darknet runs in
order; each layer reads the previous layer's output unless a ``[route]`` or ``[shortcut]``
names other layers by index. ``DarknetGraph`` lets a model describe itself in that form
while it walks its own data flow: ask for a layer that reads from any layer but the last
one, and a ``[route]`` is inserted, exactly as darknet's own cfgs do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The keys that decide a section's structure; the rest (anchors, jitter, ...) are settings.
STRUCTURAL_KEYS = {
    "convolutional": (
        "batch_normalize",
        "filters",
        "size",
        "stride",
        "pad",
        "padding",
        "groups",
        "activation",
    ),
    "route": ("layers", "groups", "group_id"),
    "shortcut": ("from", "activation"),
    "maxpool": ("size", "stride"),
    "upsample": ("stride",),
    "yolo": (),
}
DEFAULTS = {
    "batch_normalize": "0",
    "stride": "1",
    "pad": "0",
    "groups": "1",
    "group_id": "0",
    "activation": "logistic",
}


@dataclass
class Section:
    """One ``[kind]`` block: its options as strings, and where it stood in the file."""

    kind: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def int(self, key: str, default: int | None = None) -> int:
        value = self.options.get(key)
        if value is None:
            if default is None:
                raise ValueError(f"[{self.kind}] at line {self.line} has no {key}=")
            return default
        return int(float(value))

    def ints(self, key: str) -> list[int]:
        return [int(v) for v in self.options.get(key, "").replace(" ", "").split(",") if v]

    def floats(self, key: str) -> list[float]:
        return [float(v) for v in self.options.get(key, "").replace(" ", "").split(",") if v]


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    """Sections of a cfg text, ``[net]`` first; comments (# and ;) and blank lines dropped."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{source}: line {number}: a section header must look like [name], got {line!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, number))
        elif "=" in line:
            if not sections:
                raise ValueError(f"{source}: line {number}: an option before the first [section]")
            key, value = (part.strip() for part in line.split("=", 1))
            sections[-1].options[key] = value
        else:
            raise ValueError(f"{source}: line {number}: expected key=value or [section], got {line!r}")
    if not sections or sections[0].kind not in ("net", "network"):
        raise ValueError(f"{source}: a darknet cfg starts with a [net] section")
    return sections


def format_cfg(sections: list[Section], header: str = "") -> str:
    """The cfg text of ``sections`` (``header`` lines become # comments at the top)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for section in sections:
        lines += ["", f"[{section.kind}]"] + [f"{k}={v}" for k, v in section.options.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def structure(sections: list[Section], index: int) -> dict[str, str]:
    """The structural options of layer ``index`` (0 = first after [net]), with route and
    shortcut references made absolute and darknet's defaults filled in."""
    section = sections[index + 1]
    keys = STRUCTURAL_KEYS.get(section.kind)
    if keys is None:
        return {"unsupported": section.kind}
    result = {}
    for key in keys:
        value = section.options.get(key, DEFAULTS.get(key))
        if value is None:
            continue
        if key in ("layers", "from"):
            value = ",".join(str(v if v >= 0 else index + v) for v in section.ints(key))
        result[key] = value.replace(" ", "")
    return result


class DarknetGraph:
    """Collects a model's layers as darknet sections while the model walks its data flow.

    Every method takes ``source``, the index of the layer whose output it reads (-1 is the
    input image), and returns the index of the new layer. ``units`` lists the ConvUnits in
    cfg order, which is the order of their weights in a ``.weights`` file.
    """

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.units: list[Any] = []

    @property
    def last(self) -> int:
        return len(self.sections) - 1

    def _add(self, kind: str, **options: Any) -> int:
        self.sections.append(Section(kind, {k: str(v) for k, v in options.items()}))
        return self.last

    def _read_from(self, source: int) -> None:
        if source != self.last:
            self.route(source)

    def route(self, *layers: int, groups: int = 1, group_id: int = 0) -> int:
        """Concatenate the outputs of ``layers`` along channels (or take one channel group)."""
        here = self.last + 1
        options: dict[str, Any] = {"layers": ",".join(str(layer - here) for layer in layers)}
        if groups != 1:
            options.update(groups=groups, group_id=group_id)
        return self._add("route", **options)

    def conv(self, unit: Any, source: int) -> int:
        self._read_from(source)
        options: dict[str, Any] = {}
        if unit.bn is not None:
            options["batch_normalize"] = 1
        c = unit.conv
        options.update(
            filters=c.out_channels,
            size=c.kernel_size,
            stride=c.stride,
            pad=1,
            activation=unit.activation,
        )
        self.units.append(unit)
        return self._add("convolutional", **options)

    def shortcut(self, other: int, source: int) -> int:
        """Add the output of ``other`` to that of ``source``."""
        self._read_from(source)
        return self._add("shortcut", **{"from": other - (self.last + 1), "activation": "linear"})

    def maxpool(self, size: int, stride: int, source: int) -> int:
        self._read_from(source)
        return self._add("maxpool", size=size, stride=stride)

    def upsample(self, source: int, stride: int = 2) -> int:
        self._read_from(source)
        return self._add("upsample", stride=stride)

    def yolo(self, **options: Any) -> int:
        return self._add("yolo", **options)
