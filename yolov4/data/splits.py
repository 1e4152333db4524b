"""A training set and a validation set that never share an image.

The validation set is read from where the dataset keeps it (a data.yaml's ``val`` or
``test``, a ``valid/`` or ``val/`` folder, VOC's ``ImageSets/Main/val.txt`` or ``test.txt``,
a darknet ``.data``'s ``valid=`` list) or from a separate dataset (a COCO split is its own
JSON). Where there is none, a fixed fraction of the images is held out, chosen by a seed
that does not change with the training seed, so runs with different seeds are scored on the
same images. Held-out means never trained on: images that appear in both sets are dropped
from the training set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolov4.data.dataset import DetectionDataset
from yolov4.data.formats import has_split, read_dataset

TRAIN_SPLITS = ("train", "trainval")  # in order of preference
VAL_SPLITS = ("val", "test")
HOLD_OUT_SEED = 0


def count(n: int) -> str:
    """ "1 image" or "n images"."""
    return f"{n} image" if n == 1 else f"{n} images"


def describe(dataset: DetectionDataset) -> str:
    """'12 images from <where>': one line for a run's log."""
    return f"{count(len(dataset))} from {dataset.source}"


def hold_out(
    dataset: DetectionDataset, fraction: float, seed: int = HOLD_OUT_SEED
) -> tuple[DetectionDataset, DetectionDataset]:
    """(the rest, a seeded ``fraction`` of the images, at least one) of a dataset."""
    total = len(dataset)
    held = max(1, round(fraction * total))
    if held >= total:
        raise ValueError(
            f"{dataset.source}: {count(total)} are too few to hold out {fraction:g} of them for validation; "
            "give a validation set"
        )
    chosen = set(np.random.default_rng(seed).permutation(total)[:held].tolist())
    kept = [item for i, item in enumerate(dataset.items) if i not in chosen]
    taken = [item for i, item in enumerate(dataset.items) if i in chosen]
    rest = DetectionDataset(kept, dataset.class_names, f"{dataset.source}, less the {held} held out for validation")
    val = DetectionDataset(
        taken, dataset.class_names, f"{dataset.source}, held out (val_fraction {fraction:g}, seed {seed})"
    )
    return rest, val


def without(train: DetectionDataset, val: DetectionDataset) -> DetectionDataset:
    """The training set less every image that is also in the validation set."""
    held = {path.resolve() for path, _ in val.items}
    kept = [(path, boxes) for path, boxes in train.items if path.resolve() not in held]
    if len(kept) == len(train):
        return train
    if not kept:
        raise ValueError(f"{train.source}: every training image is also in the validation set {val.source}")
    dropped = len(train) - len(kept)
    return DetectionDataset(
        kept, train.class_names, f"{train.source}, less the {count(dropped)} also in the validation set"
    )


def training_set(data: str | Path) -> DetectionDataset:
    """The images a run trains on: the dataset's train (or trainval) split where it has one,
    else all of it (before any hold-out)."""
    return read_dataset(data, next((s for s in TRAIN_SPLITS if has_split(data, s)), None))


def read_splits(
    data: str | Path, val: str | Path | None = None, val_fraction: float = 0.1
) -> tuple[DetectionDataset, DetectionDataset]:
    """(training set, validation set) of the dataset at ``data``; ``val`` names a separate
    validation dataset, read with the training set's class names (``read_dataset``). A
    validation set that is named but broken, or names a class training lacks, is an error."""
    train = training_set(data)
    source = Path(val) if val is not None else Path(data)
    try:
        if val is not None and not source.exists():
            raise ValueError(f"{val}: not found")
        split = next((s for s in VAL_SPLITS if has_split(source, s)), None)
        if val is None and split is None:
            return hold_out(train, val_fraction)
        held = read_dataset(source, split, class_names=train.class_names)
    except ValueError as error:
        raise ValueError(f"validation set: {error}") from None
    return without(train, held), held
