"""COCO JSON: ``images``, ``annotations`` (bbox = [x, y, w, h] in pixels), ``categories``; one
JSON per split. Crowd annotations are skipped, category ids are mapped to 0..C-1 in id order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from minilucid.serialization import write_text_atomically
from yolov4.data.dataset import DetectionDataset, check_pixel_box, checked_names
from yolov4.data.images import write_image
from yolov4.files import read_json


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
    checked_names(Path(json_path), [c["name"] for c in content["categories"]])
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
