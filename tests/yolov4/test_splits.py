"""Training and validation sets read from where each format keeps them, never sharing an
image; a held-out fraction where a dataset has none; a broken validation set is an error."""

import json

import numpy as np
import pytest

from yolov4.data.coco import write_coco
from yolov4.data.formats import read_dataset
from yolov4.data.shapes import CLASS_NAMES, draw_scene
from yolov4.data.splits import read_splits
from yolov4.data.voc import write_voc
from yolov4.data.yolo import write_yolo
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer

NAMES = CLASS_NAMES


def samples(first, count, size=48):
    rng = np.random.default_rng(first)
    return [(f"img{i}.png", *draw_scene(rng, size)) for i in range(first, first + count)]


def names_of(dataset):
    return sorted(path.name for path, _ in dataset.items)


def image_names(first, count):
    return sorted(f"img{i}.png" for i in range(first, first + count))


# Each layout builds a dataset of img0..img9 in tmp_path and returns (what to train on,
# a separate validation set or None, the validation images it must give).
def yolo_roboflow(tmp):
    root = tmp / "export"
    write_yolo(samples(0, 7), root / "train", NAMES)
    write_yolo(samples(7, 3), root / "valid", NAMES)
    (root / "data.yaml").write_text(f"train: ../train/images\nval: ../valid/images\nnc: 3\nnames: {NAMES}\n")
    return root / "data.yaml", None, image_names(7, 3)


def yolo_path_key(tmp):
    write_yolo(samples(0, 8), tmp / "ds", NAMES, "train")
    write_yolo(samples(8, 2), tmp / "ds", NAMES, "val")
    (tmp / "configs").mkdir()
    (tmp / "configs" / "shapes.yaml").write_text(f"path: ../ds\ntrain: images/train\nval: images/val\nnames: {NAMES}\n")
    return tmp / "configs" / "shapes.yaml", None, image_names(8, 2)


def yolo_test_key_only(tmp):
    write_yolo(samples(0, 8), tmp / "ds", NAMES, "train")
    write_yolo(samples(8, 2), tmp / "ds", NAMES, "test")
    return tmp / "ds", None, image_names(8, 2)


def yolo_flat(tmp):
    write_yolo(samples(0, 10), tmp / "ds", NAMES)
    return tmp / "ds", None, None  # held out


def darknet_lists(tmp):
    root = write_yolo(samples(0, 10), tmp / "ds", NAMES)
    (root / "obj.names").write_text("\n".join(NAMES) + "\n")
    # train= relative to the working directory (tmp), valid= relative to the .data's folder
    (root / "train.txt").write_text("".join(f"ds/images/img{i}.png\n" for i in range(7)))
    (root / "valid.txt").write_text("".join(f"images/img{i}.png\n" for i in range(7, 10)))
    (root / "obj.data").write_text("classes = 3\ntrain = ds/train.txt\nvalid = valid.txt\nnames = obj.names\n")
    return root / "obj.data", None, image_names(7, 3)


def voc_lists(tmp):
    write_voc(samples(0, 7), tmp / "voc", NAMES, "train")
    write_voc(samples(7, 3), tmp / "voc", NAMES, "val")
    return tmp / "voc", None, image_names(7, 3)


def voc_trainval_and_val(tmp):
    write_voc(samples(0, 10), tmp / "voc", NAMES, "trainval")
    (tmp / "voc" / "ImageSets" / "Main" / "val.txt").write_text("img8\nimg9\n")
    return tmp / "voc", None, image_names(8, 2)


def voc_without_lists(tmp):
    write_voc(samples(0, 10), tmp / "voc", NAMES)
    return tmp / "voc", None, None


def coco_val_json(tmp):
    write_coco(samples(0, 7), tmp / "coco" / "train.json", NAMES)
    write_coco(samples(7, 3), tmp / "coco" / "val.json", NAMES)
    return tmp / "coco" / "train.json", tmp / "coco" / "val.json", image_names(7, 3)


def coco_alone(tmp):
    write_coco(samples(0, 10), tmp / "coco" / "train.json", NAMES)
    return tmp / "coco" / "train.json", None, None


LAYOUTS = [
    yolo_roboflow,
    yolo_path_key,
    yolo_test_key_only,
    yolo_flat,
    darknet_lists,
    voc_lists,
    voc_trainval_and_val,
    voc_without_lists,
    coco_val_json,
    coco_alone,
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda f: f.__name__)
def test_validation_images_are_never_training_images(layout, tmp_path, monkeypatch):
    data, val, expected = layout(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path if layout is darknet_lists else tmp_path / "elsewhere")
    train_set, val_set = read_splits(data, val)
    assert not set(names_of(train_set)) & set(names_of(val_set))
    assert sorted(names_of(train_set) + names_of(val_set)) == image_names(0, 10)
    if expected is not None:
        assert names_of(val_set) == expected
    else:  # a seeded 10%, the same every time
        assert len(val_set) == 1 and "held out (val_fraction 0.1, seed 0)" in val_set.source
        assert names_of(read_splits(data, val)[1]) == names_of(val_set)
    assert train_set.class_names == val_set.class_names == NAMES
    assert all(path.is_absolute() for path, _ in train_set.items + val_set.items)
    assert sum(len(boxes) for _, boxes in train_set.items) > 0 and sum(len(b) for _, b in val_set.items) > 0


def test_a_small_dataset_holds_out_at_least_one_image_and_too_small_is_an_error(tmp_path):
    write_yolo(samples(0, 3), tmp_path / "three", NAMES)
    train_set, val_set = read_splits(tmp_path / "three", val_fraction=0.01)
    assert (len(train_set), len(val_set)) == (2, 1)
    assert len(read_splits(tmp_path / "three", val_fraction=0.5)[1]) == 2
    write_yolo(samples(0, 1), tmp_path / "one", NAMES)
    with pytest.raises(ValueError, match=r"1 image are too few to hold out 0.1 of them for validation"):
        read_splits(tmp_path / "one")


def test_a_named_split_is_read_or_is_an_error(tmp_path):
    flat = write_yolo(samples(0, 4), tmp_path / "flat", NAMES)
    with pytest.raises(ValueError, match=r"no 'val' split"):
        read_dataset(flat, "val")  # once a silent fall-back to every image in images/
    voc = write_voc(samples(0, 4), tmp_path / "voc", NAMES)
    with pytest.raises(ValueError, match=r"no 'val' split \(no ImageSets/Main/val.txt\)"):
        read_dataset(voc, "val")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "val.txt").write_text("img1\nimg3\n")
    assert names_of(read_dataset(voc, "val")) == ["img1.png", "img3.png"]
    coco = write_coco(samples(0, 2), tmp_path / "coco" / "a.json", NAMES)
    with pytest.raises(ValueError, match=r"a COCO JSON holds one split"):
        read_dataset(coco, "val")


def test_a_coco_validation_json_with_other_category_ids_keeps_the_training_classes(tmp_path):
    """Exporters number categories as they like; the validation JSON is read with the training
    set's names, so its classes match by name (it was refused as having other classes)."""
    written = samples(7, 3)
    flipped = [(name, image, np.column_stack([2 - boxes[:, 0], boxes[:, 1:]])) for name, image, boxes in written]
    write_coco(samples(0, 7), tmp_path / "train.json", NAMES)
    write_coco(flipped, tmp_path / "val.json", NAMES[::-1])  # category 1 is triangle there
    train_set, val_set = read_splits(tmp_path / "train.json", tmp_path / "val.json")
    assert train_set.class_names == val_set.class_names == NAMES
    by_name = {path.name: boxes for path, boxes in val_set.items}
    for name, _, boxes in written:
        np.testing.assert_allclose(by_name[name], boxes, atol=1e-6)


def broken_yaml_entry(tmp):
    root = write_yolo(samples(0, 4), tmp / "ds", NAMES, "train")
    (root / "data.yaml").write_text(f"train: images/train\nval: valid/images\nnames: {NAMES}\n")
    return root, None, r"data.yaml: the 'val' entry 'valid/images' does not exist"


def bad_val_label(tmp):
    root = write_yolo(samples(0, 4), tmp / "ds", NAMES, "train")
    write_yolo(samples(4, 2), root, NAMES, "val")
    (root / "labels" / "val" / "img4.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    return root, None, r"labels/val/img4.txt, line 1: unknown class 9"


def missing_darknet_list(tmp):
    root = write_yolo(samples(0, 4), tmp / "ds", NAMES)
    (root / "obj.names").write_text("\n".join(NAMES) + "\n")
    (root / "train.txt").write_text("".join(f"images/img{i}.png\n" for i in range(4)))
    (root / "obj.data").write_text("train = train.txt\nvalid = valid.txt\nnames = obj.names\n")
    return root / "obj.data", None, r"obj.data: the valid= list valid.txt does not exist"


def unknown_voc_id(tmp):
    root = write_voc(samples(0, 4), tmp / "voc", NAMES, "train")
    (root / "ImageSets" / "Main" / "val.txt").write_text("img3\nimg7\n")
    return root, None, r"val.txt, line 2: image id 'img7' has no .*img7.xml"


def missing_coco_val(tmp):
    return write_coco(samples(0, 4), tmp / "train.json", NAMES), tmp / "val.json", r"val.json: not found"


def other_classes(tmp):
    data = write_coco(samples(0, 4), tmp / "train.json", NAMES)
    return (
        data,
        write_coco(samples(4, 2), tmp / "val.json", ["a", "b", "c"]),
        r"val.json: annotations\[0\]: unknown category 'a'; known classes are \['circle', 'square', 'triangle'\]$",
    )


@pytest.mark.parametrize(
    "broken",
    [broken_yaml_entry, bad_val_label, missing_darknet_list, unknown_voc_id, missing_coco_val, other_classes],
    ids=lambda f: f.__name__,
)
def test_a_broken_validation_set_is_a_one_line_error(broken, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, val, message = broken(tmp_path)
    with pytest.raises(ValueError, match="^validation set: .*" + message) as error:
        Trainer(TrainConfig(data=str(data), val=val and str(val), img=64, out=str(tmp_path / "o")), progress=False)
    assert "\n" not in str(error.value)


def test_the_trainer_says_where_both_sets_come_from(tmp_path, capsys):
    root = write_yolo(samples(0, 10), tmp_path / "ds", NAMES)
    trainer = Trainer(TrainConfig(data=str(root), img=64, out=str(tmp_path / "o")), progress=False)
    train_line, val_line = capsys.readouterr().out.splitlines()[:2]
    assert train_line == f"train: 9 images from {root / 'images'}, less the 1 held out for validation"
    assert val_line == f"val: 1 image from {root / 'images'}, held out (val_fraction 0.1, seed 0)"
    assert len(trainer.train_set) == 9 and len(trainer.val_set) == 1
    assert json.loads(trainer.checkpoint()["train_config"])["val_fraction"] == 0.1
    with pytest.raises(ValueError, match=r"TrainConfig.val_fraction = 1.0 is invalid"):
        TrainConfig(val_fraction=1.0)
