"""The three annotation formats people export, told apart by their layout: ``read_dataset``
reads any of them (a COCO .json, a VOC folder with Annotations/, a YOLO folder or its data.yaml
or .data file), each through its own module (``yolo``, ``coco``, ``voc``; what they share is in
``dataset``).
"""

from __future__ import annotations

from pathlib import Path

from yolov4.data.coco import read_coco
from yolov4.data.dataset import DetectionDataset
from yolov4.data.voc import read_voc
from yolov4.data.yolo import read_yolo, yolo_split


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
    return (path.is_dir() or path.is_file()) and yolo_split(path, split) is not None
