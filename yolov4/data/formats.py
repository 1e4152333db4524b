"""Readers and writers for the three annotation formats people export.

Every reader parses all labels when it is built, so a malformed file fails at once with
an error naming the file, the line or element, and what is wrong; images are decoded on
access. Items are (image (3, H, W) float32 in [0, 1], boxes (M, 5) [class_id, cx, cy, w, h]
in that image's pixels).

- YOLO/darknet txt: ``images/`` and ``labels/`` side by side, one ``class cx cy w h`` line
  per box with coordinates normalized to [0, 1]; class names from ``data.yaml`` (Roboflow,
  Ultralytics), ``obj.names``/``*.names`` or a darknet ``.data`` file. An image without a
  label file has no objects.
- COCO JSON: ``images``, ``annotations`` (bbox = [x, y, w, h] in pixels), ``categories``;
  crowd annotations are skipped, category ids are mapped to 0..C-1 in id order.
- Pascal VOC XML: one file per image with ``<object><name>`` and ``<bndbox>`` (1-based
  inclusive pixel corners, so x1 = xmin - 1 and x2 = xmax).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from minilucid.data import Dataset
from minilucid.serialization import write_atomically
from yolov4.data.images import IMAGE_SUFFIXES, read_image, write_image

COORDINATE_TOLERANCE = 1e-6  # normalized YOLO coordinates may exceed [0, 1] by this much


class DetectionDataset(Dataset):
    """(image path, boxes) pairs with class names; ``dataset[i]`` -> (image, boxes)."""

    def __init__(self, items: list[tuple[Path, np.ndarray]], class_names: list[str]) -> None:
        self.items = items
        self.class_names = list(class_names)

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


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only; clear errors for missing/unreadable."""
    if not path.is_file():
        raise ValueError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error


# ----------------------------------------------------------------------------- YOLO txt


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a data.yaml, a .names file, or a darknet .data file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: class-name file not found")
    if path.suffix in (".yaml", ".yml"):
        content = yaml.safe_load(path.read_text()) or {}
        names = content.get("names") if isinstance(content, dict) else None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)]
        if not isinstance(names, list) or not names:
            raise ValueError(f"{path}: expected a 'names' list (or an index -> name mapping)")
        return [str(n) for n in names]
    if path.suffix == ".data":
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "names":
                target = Path(value.strip())
                return read_class_names(target if target.is_absolute() else path.parent / target)
        raise ValueError(f"{path}: no 'names = ...' line in this darknet .data file")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names in this file")
    return names


def _find_names(root: Path) -> Path:
    for candidate in [
        root / "data.yaml",
        root / "data.yml",
        root / "obj.names",
        *sorted(root.glob("*.names")),
        *sorted(root.glob("*.data")),
    ]:
        if candidate.is_file():
            return candidate
    raise ValueError(f"{root}: no class names found (expected data.yaml, obj.names, *.names or *.data)")


def _labels_dir(images_dir: Path) -> Path:
    parts = list(images_dir.parts)
    if "images" not in parts:
        raise ValueError(f"{images_dir}: a YOLO image folder must be called images (labels go in labels/)")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return Path(*parts)


def _yolo_images_dir(root: Path, split: str | None) -> Path:
    yaml_file = next((p for p in (root / "data.yaml", root / "data.yml") if p.is_file()), None)
    if split and yaml_file is not None:
        content = yaml.safe_load(yaml_file.read_text()) or {}
        if split in content:
            base = Path(content.get("path", "")) if content.get("path") else yaml_file.parent
            target = Path(content[split])
            target = target if target.is_absolute() else (base / target)
            if target.is_dir():
                return target.resolve()
            raise ValueError(f"{yaml_file}: the {split!r} folder {target} does not exist")
    for candidate in ([root / "images" / split, root / split / "images"] if split else []) + [root / "images"]:
        if candidate.is_dir():
            return candidate
    raise ValueError(f"{root}: no images/ folder" + (f" for split {split!r}" if split else ""))


def parse_yolo_label(path: Path, num_classes: int, width: int, height: int) -> np.ndarray:
    """One YOLO label file as (M, 5) pixel boxes; errors name the file and line."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
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


def read_yolo(path: str | Path, split: str | None = None, class_names: list[str] | None = None) -> DetectionDataset:
    """A YOLO/darknet txt dataset: ``path`` is its root (or a data.yaml/.data file beside it)."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise ValueError(f"{path}: dataset folder not found")
    names = class_names or read_class_names(path if path.is_file() else _find_names(root))
    images_dir = _yolo_images_dir(root, split)
    labels_dir = _labels_dir(images_dir)
    items = []
    for image_path in sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        label = labels_dir / image_path.relative_to(images_dir).with_suffix(".txt")
        if label.is_file():
            width, height = _image_size(image_path)
            boxes = parse_yolo_label(label, len(names), width, height)
        else:
            boxes = np.zeros((0, 5))  # no label file: an image without objects
        items.append((image_path, boxes))
    if not items:
        raise ValueError(f"{images_dir}: no images found")
    return DetectionDataset(items, names)


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
        write_atomically(labels / Path(name).with_suffix(".txt"), lambda file, text=text: file.write(text.encode()))
    data_yaml = root / "data.yaml"
    content = yaml.safe_load(data_yaml.read_text()) if data_yaml.is_file() else {}
    content.update({"names": list(class_names), "nc": len(class_names)})
    if split:
        content[split] = str(Path("images") / split)
    text = yaml.safe_dump(content, sort_keys=False)
    write_atomically(data_yaml, lambda file: file.write(text.encode()))
    return root


# ----------------------------------------------------------------------------- COCO JSON


def read_coco(json_path: str | Path, image_dir: str | Path | None = None) -> DetectionDataset:
    """A COCO-format dataset; images are looked up in ``image_dir`` (default: beside the JSON)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise ValueError(f"{json_path}: COCO annotation file not found")
    try:
        content = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}: not valid JSON ({error})") from error
    for key in ("images", "annotations", "categories"):
        if not isinstance(content.get(key), list):
            raise ValueError(f"{json_path}: expected a list under {key!r}")
    image_dir = Path(image_dir) if image_dir is not None else json_path.parent
    categories = sorted(content["categories"], key=lambda c: c["id"])
    class_of = {c["id"]: index for index, c in enumerate(categories)}
    images = {}
    for index, image in enumerate(content["images"]):
        try:
            images[image["id"]] = (image_dir / image["file_name"], float(image["width"]), float(image["height"]), [])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{json_path}: images[{index}] needs id, file_name, width and height ({error})") from None
    for index, annotation in enumerate(content["annotations"]):
        where = f"{json_path}: annotations[{index}]"
        if annotation.get("iscrowd", 0):
            continue
        if annotation.get("image_id") not in images:
            raise ValueError(f"{where}: image_id {annotation.get('image_id')!r} is not in 'images'")
        if annotation.get("category_id") not in class_of:
            raise ValueError(f"{where}: category_id {annotation.get('category_id')!r} is not in 'categories'")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        path, width, height, boxes = images[annotation["image_id"]]
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0 or x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
            raise ValueError(f"{where}: bbox {bbox} is empty or outside the {width:g}x{height:g} image {path.name}")
        boxes.append([class_of[annotation["category_id"]], x + w / 2, y + h / 2, w, h])
    items = [(path, np.array(boxes, dtype=np.float64).reshape(-1, 5)) for path, _, _, boxes in images.values()]
    for path, _ in items:
        if not path.is_file():
            raise ValueError(f"{json_path}: image {path} listed in 'images' is missing")
    return DetectionDataset(items, [c["name"] for c in categories])


def coco_dict(samples: Iterable[tuple[str, tuple[int, int], np.ndarray]], class_names: list[str]) -> dict[str, Any]:
    """COCO ground truth from (file name, (height, width), boxes) samples."""
    images, annotations = [], []
    for image_id, (name, (height, width), boxes) in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": name, "width": int(width), "height": int(height)})
        for cls, cx, cy, w, h in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [cx - w / 2, cy - h / 2, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    json_path: str | Path,
    class_names: list[str],
    image_dir: str | Path | None = None,
) -> Path:
    """Write (file name, image, boxes) samples as images plus one COCO JSON file."""
    json_path = Path(json_path)
    image_dir = Path(image_dir) if image_dir is not None else json_path.parent
    described = []
    for name, image, boxes in samples:
        write_image(image_dir / name, image)
        described.append((name, image.shape[1:], boxes))
    text = json.dumps(coco_dict(described, class_names))
    write_atomically(json_path, lambda file: file.write(text.encode()))
    return json_path


# ----------------------------------------------------------------------------- Pascal VOC


def parse_voc(path: Path, names: dict[str, int] | None) -> tuple[str, np.ndarray, list[str]]:
    """(image file name, boxes, object names) of one VOC XML file."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}: not valid XML ({error})") from error
    filename = root.findtext("filename")
    if not filename:
        raise ValueError(f"{path}: no <filename> element")
    rows, found = [], []
    for index, element in enumerate(root.iter("object")):
        where = f"{path}: <object> {index}"
        name = (element.findtext("name") or "").strip()
        box = element.find("bndbox")
        if not name or box is None:
            raise ValueError(f"{where}: needs <name> and <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
        if xmax <= xmin - 1 or ymax <= ymin - 1:
            raise ValueError(f"{where}: <bndbox> is empty ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
        if names is not None and name not in names:
            raise ValueError(f"{where}: unknown class {name!r}; known classes are {sorted(names)}")
        x1, y1 = xmin - 1, ymin - 1  # VOC corners are 1-based and inclusive
        found.append(name)
        rows.append([names[name] if names else -1, (x1 + xmax) / 2, (y1 + ymax) / 2, xmax - x1, ymax - y1])
    return filename, np.array(rows, dtype=np.float64).reshape(-1, 5), found


def read_voc(root: str | Path, class_names: list[str] | None = None) -> DetectionDataset:
    """A Pascal VOC dataset: ``root/Annotations/*.xml`` and ``root/JPEGImages/`` (class names
    from ``class_names``, else every name found, sorted)."""
    root = Path(root)
    annotations = sorted((root / "Annotations").glob("*.xml"))
    if not annotations:
        raise ValueError(f"{root}: no Annotations/*.xml files")
    if class_names is None:
        discovered = sorted({n for path in annotations for n in parse_voc(path, None)[2]})
        class_names = discovered
    index = {name: i for i, name in enumerate(class_names)}
    items = []
    for path in annotations:
        filename, boxes, _ = parse_voc(path, index)
        image = root / "JPEGImages" / filename
        if not image.is_file():
            raise ValueError(f"{path}: its image {image} is missing")
        items.append((image, boxes))
    return DetectionDataset(items, class_names)


def write_voc(samples: Iterable[tuple[str, np.ndarray, np.ndarray]], root: str | Path, class_names: list[str]) -> Path:
    """Write (file name, image, boxes) samples as a Pascal VOC folder."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for name, image, boxes in samples:
        write_image(root / "JPEGImages" / name, image)
        annotation = ElementTree.Element("annotation")
        ElementTree.SubElement(annotation, "filename").text = name
        size = ElementTree.SubElement(annotation, "size")
        for key, value in zip(("width", "height", "depth"), (image.shape[2], image.shape[1], 3), strict=True):
            ElementTree.SubElement(size, key).text = str(value)
        for cls, cx, cy, w, h in boxes:
            obj = ElementTree.SubElement(annotation, "object")
            ElementTree.SubElement(obj, "name").text = class_names[int(cls)]
            box = ElementTree.SubElement(obj, "bndbox")
            corners = (cx - w / 2 + 1, cy - h / 2 + 1, cx + w / 2, cy + h / 2)
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
                ElementTree.SubElement(box, key).text = repr(float(value))
        text = ElementTree.tostring(annotation, encoding="unicode")
        write_atomically(root / "Annotations" / Path(name).with_suffix(".xml"), lambda f, t=text: f.write(t.encode()))
    return root


def read_dataset(path: str | Path, split: str | None = None) -> DetectionDataset:
    """Any of the three formats, recognized by its layout: a COCO .json, a VOC folder with
    Annotations/, or a YOLO folder (or its data.yaml)."""
    path = Path(path)
    if path.suffix == ".json":
        return read_coco(path)
    if (path / "Annotations").is_dir():
        return read_voc(path)
    return read_yolo(path, split)
