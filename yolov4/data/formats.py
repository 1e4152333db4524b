"""Readers and writers for the three annotation formats people export.

Every reader parses all labels when it is built, so a malformed file fails at once with
an error naming the file, the line or element, and what is wrong; images are decoded on
access. Items are (image (3, H, W) float32 in [0, 1], boxes (M, 5) [class_id, cx, cy, w, h]
in that image's pixels).

- YOLO/darknet txt: ``images/`` and ``labels/`` side by side, one ``class cx cy w h`` line
  per box with coordinates normalized to [0, 1]; class names from ``data.yaml`` (Roboflow,
  Ultralytics), ``obj.names``/``*.names`` or a darknet ``.data`` file. An image without a
  label file has no objects, but a split where no image has one is an error (labels in
  the wrong folder, say ``label/``).
- COCO JSON: ``images``, ``annotations`` (bbox = [x, y, w, h] in pixels), ``categories``;
  crowd annotations are skipped, category ids are mapped to 0..C-1 in id order.
- Pascal VOC XML: one file per image with ``<object><name>`` and ``<bndbox>`` (1-based
  inclusive pixel corners, so x1 = xmin - 1 and x2 = xmax); class names from a names file
  beside Annotations/ as for YOLO, else every name in every file, sorted.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from minilucid.data import Dataset
from minilucid.serialization import write_text_atomically
from yolov4.boxes import labels_to_xywh, labels_to_xyxy
from yolov4.data.images import IMAGE_SUFFIXES, image_size, read_image, write_image
from yolov4.files import read_json, read_text, read_yaml

COORDINATE_TOLERANCE = 1e-6  # normalized YOLO coordinates may exceed [0, 1] by this much
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


# ----------------------------------------------------------------------------- YOLO txt


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
        return _checked_names(path, names, content.get("nc"), "nc")
    if path.suffix == ".data":
        settings = dict(line.partition("=")[::2] for line in read_text(path).splitlines())
        settings = {key.strip(): value.strip() for key, value in settings.items()}
        if not settings.get("names"):
            raise ValueError(f"{path}: no 'names = ...' line in this darknet .data file")
        target = Path(settings["names"])
        names = read_class_names(target if target.is_absolute() else path.parent / target)
        return _checked_names(path, names, settings.get("classes"), "classes")
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names in this file")
    return _checked_names(path, names)


def _names_by_id(path: Path, names: dict) -> list:
    """The names of a data.yaml's ``{id: name}`` mapping in id order; its ids must be 0..N-1."""
    ids = sorted((int(k) for k in names if str(k).isdigit()), key=int)
    if len(set(ids)) != len(names) or ids != list(range(len(names))):
        given = ", ".join(map(str, names))
        raise ValueError(f"{path}: 'names' maps the class ids {given}; expected each of 0 to {len(names) - 1} once")
    return [value for _, value in sorted((int(k), v) for k, v in names.items())]


def _checked_names(path: Path, names: list, count: Any = None, count_key: str = "") -> list[str]:
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


def _names_file(root: Path) -> Path | None:
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


def _find_names(root: Path) -> Path:
    found = _names_file(root)
    if found is not None:
        return found
    raise ValueError(f"{root}: no class names found (expected data.yaml, obj.names, *.names or *.data)")


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


def _yolo_split(path: Path, split: str) -> tuple[list[tuple[Path, Path]], str] | None:
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

    ``split`` (train, val, test) is read from where the dataset keeps it (see ``_yolo_split``);
    a dataset without that split is an error. ``split=None`` reads every image in images/.
    ``class_names`` name the label files' class indices in place of the dataset's names file.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise ValueError(f"{path}: dataset folder not found")
    if path.is_file() and path.suffix not in (".yaml", ".yml", ".data"):
        raise ValueError(f"{path}: not a dataset; give its folder, its data.yaml or .data file, or a COCO .json")
    names = class_names or read_class_names(path if path.is_file() else _find_names(root))
    if split is None:
        if not (root / "images").is_dir():
            raise ValueError(f"{root}: no images/ folder")
        pairs, source = _folder_images(root / "images"), str(root / "images")
    else:
        found = _yolo_split(path, split)
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


# ----------------------------------------------------------------------------- COCO JSON


def coco_content(json_path: str | Path) -> dict[str, Any]:
    """A COCO JSON's content, checked: an object with lists under images, annotations and
    categories; every category an integer id and a name, every image an id; no id or
    category name twice."""
    content = read_json(json_path)
    if not isinstance(content, dict):
        raise ValueError(
            f"{json_path}: expected a COCO object with images, annotations and categories, got {type(content).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(content.get(key), list):
            raise ValueError(f"{json_path}: expected a list under {key!r}")
    for index, category in enumerate(content["categories"]):
        if not isinstance(category, dict) or not _is_integer(category.get("id")) or "name" not in category:
            raise ValueError(f"{json_path}: categories[{index}] needs an integer id and a name, got {category!r}")
    for index, image in enumerate(content["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), (int, str)):
            raise ValueError(f"{json_path}: images[{index}] needs an id (a number or a string), got {image!r}")
    for key in ("categories", "images"):
        ids = [item["id"] for item in content[key]]
        repeated = sorted({i for i in ids if ids.count(i) > 1}, key=str)
        if repeated:
            raise ValueError(f"{json_path}: the {key} ids {repeated} are given more than once")
    _checked_names(Path(json_path), [c["name"] for c in content["categories"]])
    return content


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def coco_bbox(where: str, annotation: Any, image_ids: Iterable, category_ids: Iterable) -> tuple[float, ...]:
    """(x, y, w, h) of a COCO annotation, after checking that it is an object naming a known
    image and category with four numbers as its bbox; else a one-line ValueError at ``where``."""
    if not isinstance(annotation, dict):
        raise ValueError(f"{where}: expected an object with image_id, category_id and bbox, got {annotation!r}")
    for key, known, listed in (("image_id", image_ids, "images"), ("category_id", category_ids, "categories")):
        value = annotation.get(key)
        if not isinstance(value, (int, str)) or value not in known:  # a list or an object is no id
            raise ValueError(f"{where}: {key} {value!r} is not in {listed!r}")
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise ValueError(f"{where}: bbox must be four numbers [x, y, w, h], got {bbox!r}")
    return tuple(float(v) for v in bbox)


def read_coco(
    json_path: str | Path, *, image_dir: str | Path | None = None, class_names: list[str] | None = None
) -> DetectionDataset:
    """A COCO-format dataset (one split per JSON); images are looked up in ``image_dir``
    (default: beside the JSON).

    Class indices follow the categories in id order, or, given ``class_names`` (another
    split's), those names: a category by name, wherever its id puts it; an annotation of a
    category not among them is an error."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise ValueError(f"{json_path}: COCO annotation file not found")
    content = coco_content(json_path)
    for key in ("images", "categories"):
        if not content[key]:
            raise ValueError(f"{json_path}: no {key} (its {key!r} list is empty)")
    image_dir = Path(image_dir) if image_dir is not None else json_path.parent
    categories = sorted(content["categories"], key=lambda c: c["id"])
    names = [str(c["name"]) for c in categories] if class_names is None else list(class_names)
    index_of = {name: index for index, name in enumerate(names)}
    class_of = {c["id"]: index_of.get(str(c["name"])) for c in categories}  # None: not among class_names
    images = {}
    for index, image in enumerate(content["images"]):
        try:
            width, height = float(image["width"]), float(image["height"])
            images[image["id"]] = (image_dir / image["file_name"], width, height, [])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{json_path}: images[{index}] needs id, file_name, width and height ({error})") from None
        if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
            raise ValueError(
                f"{json_path}: images[{index}] width and height must be positive, got {width:g}x{height:g}"
            )
    for index, annotation in enumerate(content["annotations"]):
        where = f"{json_path}: annotations[{index}]"
        if isinstance(annotation, dict) and annotation.get("iscrowd", 0):
            continue
        x, y, w, h = coco_bbox(where, annotation, images, class_of)
        if class_of[annotation["category_id"]] is None:
            category = next(str(c["name"]) for c in categories if c["id"] == annotation["category_id"])
            raise ValueError(f"{where}: unknown category {category!r}; known classes are {names}")
        path, width, height, boxes = images[annotation["image_id"]]
        check_pixel_box(where, f"bbox {annotation['bbox']}", (x, y, x + w, y + h), (width, height), path.name)
        boxes.append([class_of[annotation["category_id"]], x + w / 2, y + h / 2, w, h])
    items = [(path, np.array(boxes, dtype=np.float64).reshape(-1, 5)) for path, _, _, boxes in images.values()]
    for path, _ in items:
        if not path.is_file():
            raise ValueError(f"{json_path}: image {path} listed in 'images' is missing")
    return DetectionDataset(items, names, str(json_path))


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
    write_text_atomically(json_path, text)
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
        check_pixel_box(where, f"<bndbox> ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})", (xmin - 1, ymin - 1, xmax, ymax))
        if names is not None and name not in names:
            raise ValueError(f"{where}: unknown class {name!r}; known classes are {sorted(names)}")
        x1, y1 = xmin - 1, ymin - 1  # VOC corners are 1-based and inclusive
        found.append(name)
        rows.append([names[name] if names else -1, x1, y1, xmax, ymax])
    return filename, labels_to_xywh(np.array(rows, dtype=np.float64).reshape(-1, 5)), found


def _voc_split(root: Path, split: str) -> list[Path]:
    """The annotation files of the image ids listed in ImageSets/Main/<split>.txt."""
    list_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not list_file.is_file():
        raise ValueError(f"{root}: no {split!r} split (no ImageSets/Main/{split}.txt)")
    annotations = []
    for number, line in enumerate(read_text(list_file).splitlines(), start=1):
        if not line.split():
            continue
        xml = root / "Annotations" / f"{line.split()[0]}.xml"
        if not xml.is_file():
            raise ValueError(f"{list_file}, line {number}: image id {line.split()[0]!r} has no {xml}")
        annotations.append(xml)
    if not annotations:
        raise ValueError(f"{list_file}: lists no image ids")
    return annotations


def read_voc(root: str | Path, split: str | None = None, *, class_names: list[str] | None = None) -> DetectionDataset:
    """A Pascal VOC dataset: ``root/Annotations/*.xml`` and ``root/JPEGImages/``; ``split``
    reads only the image ids in ``ImageSets/Main/<split>.txt`` (train, val, trainval, test).

    Class names come from ``class_names``, else from a names file in ``root`` (data.yaml,
    obj.names, *.names, *.data, as for YOLO), else every name in every annotation file of
    every split, sorted: the same indices whatever the split or the order of the files.
    """
    root = Path(root)
    annotations = sorted((root / "Annotations").glob("*.xml"))
    if not annotations:
        raise ValueError(f"{root}: no Annotations/*.xml files")
    if class_names is None:
        names_file = _names_file(root)
        if names_file is not None:
            class_names = read_class_names(names_file)
        else:
            class_names = sorted({n for path in annotations for n in parse_voc(path, None)[2]})
    source = str(root / "Annotations")
    if split is not None:
        annotations = _voc_split(root, split)
        source = str(root / "ImageSets" / "Main" / f"{split}.txt")
    index = {name: i for i, name in enumerate(class_names)}
    items = []
    for path in annotations:
        filename, boxes, _ = parse_voc(path, index)
        image = root / "JPEGImages" / filename
        if not image.is_file():
            raise ValueError(f"{path}: its image {image} is missing")
        size = image_size(image)
        for number, (_, x1, y1, x2, y2) in enumerate(labels_to_xyxy(boxes)):
            shown = f"<bndbox> ({x1 + 1:g}, {y1 + 1:g}, {x2:g}, {y2:g})"
            check_pixel_box(f"{path}: <object> {number}", shown, (x1, y1, x2, y2), size, filename)
        items.append((image, boxes))
    return DetectionDataset(items, class_names, source)


def write_voc(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    root: str | Path,
    class_names: list[str],
    split: str | None = None,
) -> Path:
    """Write (file name, image, boxes) samples as a Pascal VOC folder; ``split`` also adds
    their ids to ImageSets/Main/<split>.txt."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    ids = []
    for name, image, boxes in samples:
        ids.append(Path(name).stem)
        write_image(root / "JPEGImages" / name, image)
        annotation = ElementTree.Element("annotation")
        ElementTree.SubElement(annotation, "filename").text = name
        size = ElementTree.SubElement(annotation, "size")
        for key, value in zip(("width", "height", "depth"), (image.shape[2], image.shape[1], 3), strict=True):
            ElementTree.SubElement(size, key).text = str(value)
        for cls, x1, y1, x2, y2 in labels_to_xyxy(np.asarray(boxes, dtype=np.float64).reshape(-1, 5)):
            obj = ElementTree.SubElement(annotation, "object")
            ElementTree.SubElement(obj, "name").text = class_names[int(cls)]
            box = ElementTree.SubElement(obj, "bndbox")
            corners = (x1 + 1, y1 + 1, x2, y2)  # VOC corners are 1-based and inclusive
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
                ElementTree.SubElement(box, key).text = repr(float(value))
        text = ElementTree.tostring(annotation, encoding="unicode")
        write_text_atomically(root / "Annotations" / Path(name).with_suffix(".xml"), text)
    if split:
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        with (root / "ImageSets" / "Main" / f"{split}.txt").open("a") as listed:
            listed.write("".join(f"{i}\n" for i in ids))
    return root


def read_dataset(
    path: str | Path, split: str | None = None, *, class_names: list[str] | None = None
) -> DetectionDataset:
    """Any of the three formats, recognized by its layout: a COCO .json, a VOC folder with
    Annotations/, or a YOLO folder (or its data.yaml or .data file). ``split`` is read from
    where the format keeps it, and a dataset without it is an error; None reads every image.
    A COCO JSON is one split: give the split's own JSON. ``class_names`` (another split's)
    fix the class indices, as each reader says."""
    path = Path(path)
    if path.suffix == ".json":
        if split is not None:
            raise ValueError(f"{path}: a COCO JSON holds one split; give the {split!r} split's own JSON")
        return read_coco(path, class_names=class_names)
    if (path / "Annotations").is_dir():
        return read_voc(path, split, class_names=class_names)
    return read_yolo(path, split, class_names=class_names)


def has_split(path: str | Path, split: str) -> bool:
    """Whether the dataset at ``path`` keeps a ``split`` of its own; a split that is named
    but missing (a data.yaml entry, a .data list) is an error, not a no."""
    path = Path(path)
    if path.suffix == ".json":
        return False
    if (path / "Annotations").is_dir():
        return (path / "ImageSets" / "Main" / f"{split}.txt").is_file()
    return (path.is_dir() or path.is_file()) and _yolo_split(path, split) is not None
