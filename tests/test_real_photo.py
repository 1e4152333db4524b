"""benchmarks/real_photo.py: a labelled real photograph, cut into tiles split by region."""

import numpy as np
import pytest

pytest.importorskip("skimage", reason="scikit-image (the dev extra) ships the photograph")

from benchmarks import real_photo  # noqa: E402
from yolov4.data.yolo import read_yolo  # noqa: E402


@pytest.fixture(scope="module")
def tiles():
    return real_photo.real_photo_tiles()


def test_the_rule_finds_a_plausible_number_of_nuclei_of_nucleus_size():
    boxes = real_photo.nucleus_boxes(real_photo.photograph())
    assert 60 <= len(boxes) <= 160, len(boxes)
    sides = np.concatenate([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    assert sides.min() >= 2 and np.median(sides) <= 20 and sides.max() <= 60, (sides.min(), np.median(sides))


def test_every_box_lies_inside_its_tile_and_is_not_empty(tiles):
    for name, image, boxes in tiles.train + tiles.val:
        assert image.shape == (3, 160, 160) and image.min() >= 0 and image.max() <= 1, name
        _, cx, cy, w, h = boxes.T if len(boxes) else np.zeros((5, 0))
        assert (w > 0).all() and (h > 0).all(), name
        assert (cx - w / 2 >= 0).all() and (cx + w / 2 <= 160).all(), name
        assert (cy - h / 2 >= 0).all() and (cy + h / 2 <= 160).all(), name


def test_the_splits_come_from_disjoint_regions_that_no_object_crosses(tiles):
    column = tiles.column
    x1, x2 = tiles.boxes[:, 0], tiles.boxes[:, 2]
    assert not ((x1 < column) & (x2 > column)).any()  # every object on one side
    assert (x2 <= column).sum() >= 30 and (x1 >= column).sum() >= 30  # both sides have objects

    def origin(name):
        return int(name.split("_x")[1].removesuffix(".png"))

    assert all(origin(name) + 160 <= column for name, _, _ in tiles.train)
    assert all(origin(name) >= column for name, _, _ in tiles.val)
    assert 100 <= len(tiles.train) <= 200 and len(tiles.val) >= 20
    assert sum(len(b) for _, _, b in tiles.train) >= 100 and sum(len(b) for _, _, b in tiles.val) >= 50


def test_the_same_options_write_the_same_dataset(tiles, tmp_path):
    again = real_photo.real_photo_tiles()
    assert [n for n, _, _ in again.train] == [n for n, _, _ in tiles.train]
    for (_, image, boxes), (_, image2, boxes2) in zip(tiles.train + tiles.val, again.train + again.val, strict=True):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(boxes, boxes2)
    real_photo.write_real_photo(tmp_path)
    train, val = read_yolo(tmp_path, "train"), read_yolo(tmp_path, "val")
    assert train.class_names == ["nucleus"] and (len(train), len(val)) == (len(tiles.train), len(tiles.val))
    read = sorted(len(b) for b in train.boxes())
    assert read == sorted(len(b) for _, _, b in tiles.train)


def test_tile_origins_cover_the_region_no_further_apart_than_the_stride():
    origins = real_photo.tile_origins(100, 724, 160, 60)
    assert origins[0] == 100 and origins[-1] == 724 - 160
    assert max(np.diff(origins)) <= 60
    with pytest.raises(ValueError, match="narrower than a tile"):
        real_photo.tile_origins(0, 100, 160, 60)


def test_the_roboflow_layout_is_read_back_with_its_valid_folder_as_the_held_out_split(tiles, tmp_path):
    from dataclasses import replace

    from yolov4.data.splits import read_splits
    from yolov4.files import read_yaml

    few = replace(tiles, train=tiles.train[:5], val=tiles.val[:3])
    data_yaml = real_photo.write_roboflow(tmp_path / "export", few)
    assert data_yaml == tmp_path / "export" / "data.yaml"
    assert read_yaml(data_yaml)["train"] == "../train/images" and read_yaml(data_yaml)["val"] == "../valid/images"
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["data.yaml", "train", "valid"]
    train, val = read_splits(data_yaml)
    assert train.class_names == val.class_names == ["nucleus"]
    assert sorted(p.name for p, _ in train.items) == sorted(n for n, _, _ in few.train)
    assert sorted(p.name for p, _ in val.items) == sorted(n for n, _, _ in few.val)
    assert all(p.parent == tmp_path / "export" / "valid" / "images" for p, _ in val.items)
    read = {p.name: b for p, b in val.items}
    for name, _, boxes in few.val:
        np.testing.assert_allclose(read[name], boxes, atol=1e-4)


def test_the_tiles_are_cut_from_the_scaled_photograph_where_their_names_say(tiles):
    photo = real_photo.scaled_photograph()
    assert photo.shape == (3, 1024, 1024) and photo.dtype == np.float32
    for name, image, _ in (tiles.train[0], tiles.train[-1], tiles.val[-1]):
        y, x = int(name.split("_y")[1][:4]), int(name.split("_x")[1][:4])
        np.testing.assert_array_equal(image, photo[:, y : y + 160, x : x + 160])
