"""What the three annotation formats share: a dataset of (image path, boxes) pairs with its
class names, the class-name files (data.yaml, ``.names``, darknet's ``.data``), and the check of
a box given in pixels.

Items are (image (3, H, W) float32 in [0, 1], boxes (M, 5) [class_id, cx, cy, w, h] in that
image's pixels); images are decoded on access, labels parsed when a reader builds the dataset,
so a malformed file fails at once, with an error naming the file, the line or element, and
what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from minilucid.data import Dataset
from yolov4.data.images import read_image
from yolov4.files import read_text, read_yaml

PIXEL_TOLERANCE = 1.0  # COCO and VOC boxes may overhang their image by this many pixels


class DetectionDataset(Dataset):
    """(image path, boxes) pairs with class names; ``dataset[i]`` -> (image, boxes).
    ``source`` says where the images come from (a folder, a list file, a JSON)."""

    def __init__(self, items: list[tuple[Path, np.ndarray]], class_names: list[str], source: str = "") -> None:
        self.items = items
        self.class_names = list(class_names)
        self.source = source

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path, boxes = self.items[index]
        return read_image(path), boxes.copy()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def boxes(self) -> list[np.ndarray]:
        """The boxes of every image, without decoding any image."""
        return [boxes for _, boxes in self.items]

    def use_class_order(self, names: list[str], what: str) -> None:
        """Relabel in place to the class ``names`` (a model's) where both have the same classes
        in another order; a one-line ValueError listing both where the classes differ, with
        ``what`` (the model's file) in front."""
        names, ours = list(names), list(self.class_names)
        if names == ours:
            return
        if sorted(names) != sorted(ours) or len(set(names)) != len(names):
            raise ValueError(f"{what}: the weights' classes {names} are not the data's {ours}")
        order = np.array([names.index(name) for name in ours])  # our class -> the model's class
        relabelled = []
        for path, boxes in self.items:
            boxes = boxes.copy()
            boxes[:, 0] = order[boxes[:, 0].astype(int)]
            relabelled.append((path, boxes))
        self.items, self.class_names = relabelled, names


def check_pixel_box(
    where: str, shown: str, corners: tuple[float, ...], size: tuple[float, float] | None = None, image: str = ""
) -> None:
    """A pixel box (x1, y1, x2, y2) must be finite, non-empty and, given the image's (width,
    height), inside it within PIXEL_TOLERANCE; else a ValueError ``where: shown is ...``."""
    x1, y1, x2, y2 = corners
    if not all(np.isfinite(corners)):
        raise ValueError(f"{where}: {shown} must be finite numbers")
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{where}: {shown} is empty (width and height must be positive)")
    if size is None:
        return
    width, height = size
    if min(x1, y1) < -PIXEL_TOLERANCE or x2 > width + PIXEL_TOLERANCE or y2 > height + PIXEL_TOLERANCE:
        raise ValueError(f"{where}: {shown} is outside the {width:g}x{height:g} image {image}")


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a data.yaml, a .names file, or a darknet .data file; a one-line
    ValueError where they are missing, empty, repeated, or not as many as the file's count
    (data.yaml's ``nc``, the .data's ``classes``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: class-name file not found")
    if path.suffix in (".yaml", ".yml"):
        content = read_yaml(path) or {}
        names = content.get("names") if isinstance(content, dict) else None
        if isinstance(names, dict):
            names = _names_by_id(path, names)
        if not isinstance(names, list) or not names:
            raise ValueError(f"{path}: expected a 'names' list (or an index -> name mapping)")
        return checked_names(path, names, content.get("nc"), "nc")
    if path.suffix == ".data":
        settings = dict(line.partition("=")[::2] for line in read_text(path).splitlines())
        settings = {key.strip(): value.strip() for key, value in settings.items()}
        if not settings.get("names"):
            raise ValueError(f"{path}: no 'names = ...' line in this darknet .data file")
        target = Path(settings["names"])
        names = read_class_names(target if target.is_absolute() else path.parent / target)
        return checked_names(path, names, settings.get("classes"), "classes")
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names in this file")
    return checked_names(path, names)


def _names_by_id(path: Path, names: dict) -> list:
    """The names of a data.yaml's ``{id: name}`` mapping in id order; its ids must be 0..N-1."""
    ids = sorted((int(k) for k in names if str(k).isdigit()), key=int)
    if len(set(ids)) != len(names) or ids != list(range(len(names))):
        given = ", ".join(map(str, names))
        raise ValueError(f"{path}: 'names' maps the class ids {given}; expected each of 0 to {len(names) - 1} once")
    return [value for _, value in sorted((int(k), v) for k, v in names.items())]


def checked_names(path: Path, names: list, count: Any = None, count_key: str = "") -> list[str]:
    """``names`` as strings, each given and none twice, and as many as ``count`` where the
    file gives one (under ``count_key``)."""
    for index, name in enumerate(names):
        if name is None or isinstance(name, (list, dict)) or not str(name).strip():
            raise ValueError(f"{path}: class {index} has no name (got {name!r})")
    names = [str(n) for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: the class names {repeated} are given more than once; each class needs its own")
    if count is not None and not _is_number(count, len(names)):
        raise ValueError(f"{path}: {count_key} is {count!r} but there are {len(names)} class names {names}")
    return names


def _is_number(value: Any, number: int) -> bool:
    """Whether ``value`` (a YAML or text value) is ``number``."""
    try:
        return not isinstance(value, bool) and float(value) == number
    except (TypeError, ValueError):
        return False


def class_names_file(root: Path) -> Path | None:
    """The class-name file a dataset folder keeps, if any (data.yaml, obj.names, *.names, *.data)."""
    for candidate in [
        root / "data.yaml",
        root / "data.yml",
        root / "obj.names",
        *sorted(root.glob("*.names")),
        *sorted(root.glob("*.data")),
    ]:
        if candidate.is_file():
            return candidate
    return None


def find_class_names_file(root: Path) -> Path:
    """``class_names_file(root)``, or a one-line ValueError naming the files looked for."""
    found = class_names_file(root)
    if found is not None:
        return found
    raise ValueError(f"{root}: no class names found (expected data.yaml, obj.names, *.names or *.data)")
