"""YOLO/darknet txt: ``images/`` and ``labels/`` side by side, one ``class cx cy w h`` line per
box with coordinates normalized to [0, 1]; class names from ``data.yaml`` (Roboflow,
Ultralytics), ``obj.names``/``*.names`` or a darknet ``.data`` file. An image without a label
file has no objects, but a split where no image has one is an error (labels in the wrong
folder, say ``label/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from minilucid.serialization import write_text_atomically
from yolov4.data.dataset import DetectionDataset, find_class_names_file, read_class_names
from yolov4.data.images import IMAGE_SUFFIXES, image_size, write_image
from yolov4.files import read_text, read_yaml

COORDINATE_TOLERANCE = 1e-6  # normalized YOLO coordinates may exceed [0, 1] by this much


def _labels_dir(images_dir: Path) -> Path:
    parts = list(images_dir.parts)
    if "images" not in parts:
        raise ValueError(f"{images_dir}: a YOLO image folder must be called images (labels go in labels/)")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return Path(*parts)


def _label_of_listed(image: Path) -> Path:
    """Darknet's rule for an image named in a list file: images/ or JPEGImages/ -> labels/,
    else the .txt beside the image."""
    parts = list(image.parts)
    for folder in ("images", "JPEGImages"):
        if folder in parts[:-1]:
            parts[len(parts) - 2 - parts[-2::-1].index(folder)] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


SPLIT_FOLDERS = {"val": ("val", "valid")}  # Roboflow exports call the validation split valid/


DARKNET_KEYS = {"val": "valid"}  # a darknet .data file says train= and valid=


def _yaml_file(path: Path) -> Path | None:
    if path.suffix in (".yaml", ".yml"):
        return path
    if path.is_dir():
        return next((p for p in (path / "data.yaml", path / "data.yml") if p.is_file()), None)
    return None


def _darknet_file(path: Path) -> Path | None:
    if path.suffix == ".data":
        return path
    return next(iter(sorted(path.glob("*.data"))), None) if path.is_dir() else None


def _yaml_split(yaml_file: Path, split: str) -> list[Path] | None:
    """The folders or list files a data.yaml names for ``split``, resolved as Ultralytics does:
    against ``path`` (relative to the yaml's folder), and a missing ``../x`` retried as ``x``."""
    content = read_yaml(yaml_file) or {}
    value = content.get(split) if isinstance(content, dict) else None
    if value in (None, "", []):
        return None
    if content.get("path") is not None and not isinstance(content["path"], str):
        raise ValueError(f"{yaml_file}: 'path' must be a folder, got {content['path']!r}")
    base = yaml_file.parent / content["path"] if content.get("path") else yaml_file.parent
    targets = []
    for entry in value if isinstance(value, list) else [value]:
        target = base / str(entry)
        if not target.exists() and str(entry).startswith("../"):  # Roboflow: ../train/images
            target = base / str(entry)[3:]
        if not target.exists():
            raise ValueError(f"{yaml_file}: the {split!r} entry {entry!r} does not exist (looked in {base})")
        targets.append(target)
    return targets


def _darknet_split(data_file: Path, split: str) -> list[Path] | None:
    """The list file a darknet .data file names for ``split``, relative to the working
    directory (as darknet reads it) or else to the .data file's folder."""
    key = DARKNET_KEYS.get(split, split)
    for line in read_text(data_file).splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key and value.strip():
            for candidate in (Path(value.strip()), data_file.parent / value.strip()):
                if candidate.is_file():
                    return [candidate.absolute()]
            raise ValueError(
                f"{data_file}: the {key}= list {value.strip()} does not exist "
                f"(relative to the working directory or to {data_file.parent})"
            )
    return None


def _listed_images(list_file: Path, bases: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """(image, label) pairs of a list file, one image path a line, relative ones against ``bases``."""
    pairs = []
    for number, line in enumerate(read_text(list_file).splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        image = next(((base / name).absolute() for base in bases if (base / name).is_file()), None)
        if image is None:  # absolute: the working directory may change after reading
            raise ValueError(f"{list_file}, line {number}: image {name} not found")
        pairs.append((image, _label_of_listed(image)))
    return pairs


def _folder_images(images_dir: Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs of an images/ folder, labels in the labels/ folder beside it."""
    labels_dir = _labels_dir(images_dir)
    images = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(image, labels_dir / image.relative_to(images_dir).with_suffix(".txt")) for image in images]


def yolo_split(path: Path, split: str) -> tuple[list[tuple[Path, Path]], str] | None:
    """(image, label) pairs of ``split`` and where they come from, or None where the dataset
    has no such split. Looked for in a data.yaml's key, a darknet .data's list file, then the
    folders images/<split>/ and <split>/images/ (val also as valid)."""
    root = path.parent if path.is_file() else path
    yaml_file = _yaml_file(path)
    targets = _yaml_split(yaml_file, split) if yaml_file else None
    if targets is not None:
        pairs = []
        for target in targets:
            if target.is_dir():
                pairs += _folder_images(target)
            else:
                pairs += _listed_images(target, (target.parent, Path(".")))
        return pairs, " + ".join(str(t) for t in targets)
    data_file = _darknet_file(path) if path.suffix not in (".yaml", ".yml") else None
    targets = _darknet_split(data_file, split) if data_file else None
    if targets is not None:
        return _listed_images(targets[0], (Path("."), data_file.parent)), str(targets[0])
    for name in SPLIT_FOLDERS.get(split, (split,)):
        for folder in (root / "images" / name, root / name / "images"):
            if folder.is_dir():
                return _folder_images(folder), str(folder)
    return None


def parse_yolo_label(path: Path, num_classes: int, width: int, height: int) -> np.ndarray:
    """One YOLO label file as (M, 5) pixel boxes; errors name the file and line."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        if len(fields) != 5:
            raise ValueError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()!r}")
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"{where}: expected an integer class and four numbers, got {line.strip()!r}") from None
        if not 0 <= cls < num_classes:
            raise ValueError(f"{where}: unknown class {cls}; there are {num_classes} classes (0..{num_classes - 1})")
        values = (cx, cy, w, h)
        if not all(np.isfinite(values)) or any(
            v < -COORDINATE_TOLERANCE or v > 1 + COORDINATE_TOLERANCE for v in values
        ):
            raise ValueError(f"{where}: coordinates must be normalized to [0, 1], got {cx:g} {cy:g} {w:g} {h:g}")
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: width and height must be positive, got {w:g} {h:g}")
        rows.append([cls, cx * width, cy * height, w * width, h * height])
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def read_yolo(path: str | Path, split: str | None = None, *, class_names: list[str] | None = None) -> DetectionDataset:
    """A YOLO/darknet txt dataset: ``path`` is its root (or a data.yaml/.data file beside it).

    ``split`` (train, val, test) is read from where the dataset keeps it (see ``yolo_split``);
    a dataset without that split is an error. ``split=None`` reads every image in images/.
    ``class_names`` name the label files' class indices in place of the dataset's names file.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise ValueError(f"{path}: dataset folder not found")
    if path.is_file() and path.suffix not in (".yaml", ".yml", ".data"):
        raise ValueError(f"{path}: not a dataset; give its folder, its data.yaml or .data file, or a COCO .json")
    names = class_names or read_class_names(path if path.is_file() else find_class_names_file(root))
    if split is None:
        if not (root / "images").is_dir():
            raise ValueError(f"{root}: no images/ folder")
        pairs, source = _folder_images(root / "images"), str(root / "images")
    else:
        found = yolo_split(path, split)
        if found is None:
            raise ValueError(f"{path}: no {split!r} split (no data.yaml or .data entry, no images/{split}/ folder)")
        pairs, source = found
    if pairs and not any(label.is_file() for _, label in pairs):
        folders = sorted({str(label.parent) for _, label in pairs})
        where = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more folders" if len(folders) > 3 else "")
        raise ValueError(
            f"{source}: not one of its {len(pairs)} images has a label file; looked for <image name>.txt "
            f"in {where} (YOLO labels go in a labels/ folder beside images/)"
        )
    items = []
    for image_path, label in pairs:
        if label.is_file():
            width, height = image_size(image_path)
            boxes = parse_yolo_label(label, len(names), width, height)
        else:
            boxes = np.zeros((0, 5))  # no label file: an image without objects
        items.append((image_path, boxes))
    if not items:
        raise ValueError(f"{source}: no images found")
    return DetectionDataset(items, names, source)


def write_yolo(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    root: str | Path,
    class_names: list[str],
    split: str | None = None,
) -> Path:
    """Write (file name, image, boxes) samples as a YOLO txt dataset with a data.yaml; returns root."""
    root = Path(root)
    images = root / "images" / split if split else root / "images"
    labels = root / "labels" / split if split else root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    for name, image, boxes in samples:
        write_image(images / name, image)
        height, width = image.shape[1:]
        lines = [
            f"{int(c)} {cx / width:.8f} {cy / height:.8f} {w / width:.8f} {h / height:.8f}" for c, cx, cy, w, h in boxes
        ]
        text = "\n".join(lines) + ("\n" if lines else "")
        write_text_atomically(labels / Path(name).with_suffix(".txt"), text)
    data_yaml = root / "data.yaml"
    content = read_yaml(data_yaml) if data_yaml.is_file() else {}
    content.update({"names": list(class_names), "nc": len(class_names)})
    if split:
        content[split] = str(Path("images") / split)
    text = yaml.safe_dump(content, sort_keys=False)
    write_text_atomically(data_yaml, text)
    return root
