"""Pascal VOC XML: one file per image with ``<object><name>`` and ``<bndbox>`` (1-based
inclusive pixel corners, so x1 = xmin - 1 and x2 = xmax); class names from a names file beside
Annotations/ as for YOLO, else every name in every file, sorted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from minilucid.serialization import write_text_atomically
from yolov4.boxes import labels_to_xywh, labels_to_xyxy
from yolov4.data.dataset import DetectionDataset, check_pixel_box, class_names_file, read_class_names
from yolov4.data.images import image_size, write_image
from yolov4.files import read_text


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
        names_file = class_names_file(root)
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
