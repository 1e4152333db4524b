"""Readers and writers of YOLO txt, COCO JSON and Pascal VOC, and their errors."""

import json

import numpy as np
import pytest

from yolov4.data.coco import read_coco, write_coco
from yolov4.data.formats import read_dataset
from yolov4.data.images import read_image
from yolov4.data.shapes import CLASS_NAMES, draw_scene, shapes_dataset
from yolov4.data.voc import read_voc, write_voc
from yolov4.data.yolo import read_yolo, write_yolo

NAMES = CLASS_NAMES


def samples(count=4, size=96, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"img{i}.png", *draw_scene(rng, size)) for i in range(count)]


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_round_trip_gives_the_same_boxes(fmt, tmp_path):
    written = samples()
    if fmt == "yolo":
        dataset = read_yolo(write_yolo(written, tmp_path, NAMES))
    elif fmt == "coco":
        dataset = read_coco(write_coco(written, tmp_path / "annotations.json", NAMES))
    else:
        dataset = read_voc(write_voc(written, tmp_path, NAMES), class_names=NAMES)
    assert dataset.class_names == NAMES and len(dataset) == len(written)
    by_name = {path.name: boxes for path, boxes in dataset.items}
    for name, _, boxes in written:
        np.testing.assert_allclose(by_name[name], boxes, atol=1e-6)
    image, _ = dataset[0]
    assert image.shape == (3, 96, 96) and image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    assert read_dataset(tmp_path / "annotations.json" if fmt == "coco" else tmp_path).class_names == NAMES


def test_yolo_class_names_from_every_kind_of_file_and_roboflow_layout(tmp_path):
    root = write_yolo(samples(2), tmp_path / "plain", NAMES)
    (root / "data.yaml").unlink()
    (root / "obj.names").write_text("\n".join(NAMES) + "\n")
    assert read_yolo(root).class_names == NAMES
    (root / "obj.names").rename(root / "classes.txt")
    (root / "obj.data").write_text("classes = 3\nnames = classes.txt\n")
    assert read_yolo(root / "obj.data").class_names == NAMES
    # Roboflow: train/images, valid/images and a data.yaml naming them, names as a mapping
    rf = tmp_path / "roboflow"
    write_yolo(samples(2), rf / "train", NAMES)
    write_yolo(samples(1, seed=1), rf / "valid", NAMES)
    (rf / "data.yaml").write_text(
        "train: train/images\nval: valid/images\nnames:\n  0: circle\n  1: square\n  2: triangle\n"
    )
    assert len(read_yolo(rf, "train")) == 2 and len(read_yolo(rf, "val")) == 1
    assert read_yolo(rf / "data.yaml", "val").class_names == NAMES


def test_an_image_without_a_label_file_has_no_objects(tmp_path):
    root = write_yolo(samples(2), tmp_path, NAMES)
    (root / "labels" / "img1.txt").unlink()
    dataset = read_yolo(root)
    assert dataset.items[1][1].shape == (0, 5) and len(dataset.items[0][1]) > 0


def test_a_yolo_split_without_a_single_label_file_is_an_error_naming_where_they_were_looked_for(tmp_path):
    root = write_yolo(samples(2), tmp_path, NAMES, "train")
    (root / "labels").rename(root / "label")  # a common slip: labels in label/
    with pytest.raises(
        ValueError, match=r"images/train: not one of its 2 images has a label file; .* in .*labels/train"
    ):
        read_yolo(root, "train")
    with pytest.raises(ValueError, match=r"not one of its 2 images has a label file"):
        read_yolo(root)


@pytest.mark.parametrize(
    "line,message",
    [
        ("0 0.5 0.5 0.1", r"labels/img0.txt, line 2: expected 5 fields 'class cx cy w h', got 4"),
        ("0 0.5 1.5 0.1 0.1", r"line 2: coordinates must be normalized to \[0, 1\]"),
        ("7 0.5 0.5 0.1 0.1", r"line 2: unknown class 7; there are 3 classes"),
        ("x 0.5 0.5 0.1 0.1", r"line 2: expected an integer class and four numbers"),
        ("1 0.5 0.5 0 0.1", r"line 2: width and height must be positive"),
    ],
)
def test_malformed_yolo_lines_name_file_and_line(line, message, tmp_path):
    root = write_yolo(samples(1), tmp_path, NAMES)
    label = root / "labels" / "img0.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        read_yolo(root)


def test_missing_and_unreadable_images(tmp_path):
    root = write_yolo(samples(1), tmp_path / "yolo", NAMES)
    (root / "images" / "broken.png").write_bytes(b"not a png")
    (root / "labels" / "broken.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"broken.png: cannot read the image"):
        read_yolo(root)
    with pytest.raises(ValueError, match=r"image file not found"):
        read_image(tmp_path / "nope.png")
    coco = write_coco(samples(2), tmp_path / "coco" / "a.json", NAMES)
    (coco.parent / "img1.png").unlink()
    with pytest.raises(ValueError, match=r"image .*img1.png listed in 'images' is missing"):
        read_coco(coco)
    voc = write_voc(samples(1), tmp_path / "voc", NAMES)
    (voc / "JPEGImages" / "img0.png").unlink()
    with pytest.raises(ValueError, match=r"img0.xml: its image .* is missing"):
        read_voc(voc)


def test_16_bit_images_are_scaled_by_their_range_not_clipped_white(tmp_path):
    from PIL import Image

    ramp = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)  # 0 .. 65280
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode == "I;16"
    image = read_image(tmp_path / "deep.png")
    assert image.shape == (3, 16, 16) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], ramp / 65535, atol=1e-6)
    np.testing.assert_array_equal(image[0], image[2])
    Image.fromarray(ramp.astype(np.int32)).save(tmp_path / "deep.tif")  # mode "I", 32 bits a sample
    np.testing.assert_allclose(read_image(tmp_path / "deep.tif")[1], ramp / (2**31 - 1), atol=1e-6)


def test_malformed_coco_and_voc(tmp_path):
    path = write_coco(samples(1), tmp_path / "a.json", NAMES)
    content = json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"annotations\[0\]: category_id 99 is not in 'categories'"):
        read_coco(path)
    bad = json.loads(json.dumps(content))
    bad["annotations"][0]["bbox"] = [1, 2, 3]
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"annotations\[0\]: bbox must be \[x, y, w, h\]"):
        read_coco(path)
    bad = json.loads(json.dumps(content))
    bad["annotations"][0]["bbox"] = [90, 90, 50, 50]
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"annotations\[0\]: bbox .* outside the 96x96 image"):
        read_coco(path)
    crowd = json.loads(json.dumps(content))
    crowd["annotations"][0]["iscrowd"] = 1
    path.write_text(json.dumps(crowd))
    assert len(read_coco(path).items[0][1]) == len(content["annotations"]) - 1
    voc = write_voc(samples(1), tmp_path / "voc", NAMES)
    xml = voc / "Annotations" / "img0.xml"
    xml.write_text(
        xml.read_text()
        .replace("<name>circle</name>", "<name>hexagon</name>")
        .replace("<name>square</name>", "<name>hexagon</name>")
        .replace("<name>triangle</name>", "<name>hexagon</name>")
    )
    with pytest.raises(ValueError, match=r"img0.xml: <object> 0: unknown class 'hexagon'"):
        read_voc(voc, class_names=NAMES)
    xml.write_text("<annotation><filename>img0.png</filename><object><name>circle</name></object></annotation>")
    with pytest.raises(ValueError, match=r"<object> 0: needs <name> and <bndbox>"):
        read_voc(voc, class_names=NAMES)


@pytest.mark.parametrize(
    "bbox,message",
    [
        ([float("nan"), 10, 20, 20], r"annotations\[1\]: bbox \[nan, 10, 20, 20\] must be finite numbers"),
        ([10, 10, float("inf"), 20], r"annotations\[1\]: bbox .* must be finite numbers"),
        ([10, 10, 0, 20], r"annotations\[1\]: bbox \[10, 10, 0, 20\] is empty"),
        ([-20, 10, 30, 20], r"annotations\[1\]: bbox .* is outside the 96x96 image img0.png"),
        ([10, 80, 20, 20], r"annotations\[1\]: bbox .* is outside the 96x96 image img0.png"),
    ],
)
def test_coco_boxes_are_checked_like_yolo_boxes(bbox, message, tmp_path):
    path = write_coco(samples(1), tmp_path / "a.json", NAMES)
    content = json.loads(path.read_text())
    assert len(content["annotations"]) >= 2
    content["annotations"][1]["bbox"] = bbox
    path.write_text(json.dumps(content))  # json writes NaN and Infinity, and reads them back
    with pytest.raises(ValueError, match=message):
        read_coco(path)
    content["annotations"][1]["bbox"] = [-0.5, 0, 96.5, 96]  # exporters' rounding overhang is fine
    path.write_text(json.dumps(content))
    assert len(read_coco(path).items[0][1]) == len(content["annotations"])


@pytest.mark.parametrize(
    "corners,message",
    [
        (("nan", "10", "20", "30"), r"img0.xml: <object> 1: <bndbox> \(nan, 10, 20, 30\) must be finite numbers"),
        (("10", "10", "8", "30"), r"img0.xml: <object> 1: <bndbox> .* is empty"),
        (("10", "10", "120", "30"), r"img0.xml: <object> 1: <bndbox> \(10, 10, 120, 30\) is outside the 96x96 image"),
        (("-5", "10", "20", "30"), r"img0.xml: <object> 1: <bndbox> .* is outside the 96x96 image img0.png"),
    ],
)
def test_voc_boxes_are_checked_like_yolo_boxes(corners, message, tmp_path):
    import xml.etree.ElementTree as ElementTree

    root = write_voc(samples(1), tmp_path, NAMES)
    xml = root / "Annotations" / "img0.xml"
    tree = ElementTree.parse(xml)
    box = list(tree.getroot().iter("object"))[1].find("bndbox")
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
        box.find(key).text = value
    tree.write(xml)
    with pytest.raises(ValueError, match=message):
        read_voc(root, class_names=NAMES)
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), ("0", "1", "97", "96"), strict=True):
        box.find(key).text = value  # 0-based corners and a one-pixel overhang are fine
    tree.write(xml)
    assert len(read_voc(root, class_names=NAMES).items[0][1]) == len(list(tree.getroot().iter("object")))


def test_voc_class_indices_do_not_depend_on_split_or_file_order_and_follow_a_names_file(tmp_path):
    def scene(name, classes):
        boxes = np.array([[c, 20 + 20 * i, 30, 16, 16] for i, c in enumerate(classes)], dtype=np.float64)
        return name, np.zeros((3, 64, 64), np.float32), boxes

    # "triangle" (2) is only in the val file, "circle" (0) only in a train file named last
    root = write_voc([scene("a.png", [1]), scene("z.png", [0, 1])], tmp_path, NAMES, "train")
    write_voc([scene("m.png", [2, 1])], root, NAMES, "val")
    train, val = read_dataset(root, "train"), read_dataset(root, "val")
    assert train.class_names == val.class_names == sorted(NAMES)
    assert [b[:, 0].tolist() for _, b in val.items] == [[2, 1]]
    assert [b[:, 0].tolist() for _, b in train.items] == [[1], [0, 1]]
    (root / "voc.names").write_text("square\ntriangle\ncircle\n")  # the user's own order wins
    for split in ("train", "val"):
        assert read_dataset(root, split).class_names == ["square", "triangle", "circle"]
    assert [b[:, 0].tolist() for _, b in read_voc(root, split="val").items] == [[1, 0]]
    assert [b[:, 0].tolist() for _, b in read_voc(root, split="train").items] == [[0], [2, 0]]
    (root / "voc.names").write_text("square\ncircle\n")
    with pytest.raises(ValueError, match=r"m.xml: <object> 0: unknown class 'triangle'"):
        read_voc(root, split="val")


def test_coco_classes_follow_the_names_given_whatever_the_category_ids(tmp_path):
    """A COCO JSON read with another split's class names counts each category by its name;
    an annotation of a category not among them is a one-line error naming it."""
    path = write_coco(samples(), tmp_path / "a.json", NAMES)
    plain, reversed_names = read_coco(path), read_coco(path, class_names=NAMES[::-1])
    assert plain.class_names == NAMES and reversed_names.class_names == NAMES[::-1]
    for (_, ours), (_, theirs) in zip(plain.items, reversed_names.items, strict=True):
        np.testing.assert_array_equal(theirs[:, 0], len(NAMES) - 1 - ours[:, 0])
        np.testing.assert_array_equal(theirs[:, 1:], ours[:, 1:])
    assert read_dataset(path, class_names=NAMES[::-1]).items[0][1].tolist() == reversed_names.items[0][1].tolist()
    content = json.loads(path.read_text())
    first = next(c["name"] for c in content["categories"] if c["id"] == content["annotations"][0]["category_id"])
    others = [name for name in NAMES if name != first]
    with pytest.raises(ValueError, match=rf"annotations\[0\]: unknown category '{first}'; known classes are \['"):
        read_coco(path, class_names=others)


def test_builtin_dataset_is_deterministic_and_has_what_training_needs(tmp_path):
    a = shapes_dataset("train", root=tmp_path / "a", train=30, val=6)
    b = shapes_dataset("train", root=tmp_path / "b", train=30, val=6)
    for (_, x), (_, y) in zip(a.items, b.items, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[3][0], b[3][0])
    assert len(shapes_dataset("val", root=tmp_path / "a", train=30, val=6)) == 6
    boxes = np.concatenate(a.boxes())
    assert set(boxes[:, 0].astype(int)) == {0, 1, 2}
    sides = boxes[:, 3:5].max(axis=1)
    assert (sides < 32).sum() > 5 and ((sides >= 32) & (sides < 96)).sum() > 5 and (sides >= 96).sum() > 0
    per_image = [len(x) for x in a.boxes()]
    assert min(per_image) >= 1 and max(per_image) >= 4
    overlapping = 0
    for image_boxes in a.boxes():
        corners = np.c_[image_boxes[:, 1:3] - image_boxes[:, 3:5] / 2, image_boxes[:, 1:3] + image_boxes[:, 3:5] / 2]
        for i in range(len(corners)):
            for j in range(i + 1, len(corners)):
                w = min(corners[i, 2], corners[j, 2]) - max(corners[i, 0], corners[j, 0])
                h = min(corners[i, 3], corners[j, 3]) - max(corners[i, 1], corners[j, 1])
                overlapping += w > 0 and h > 0
    assert overlapping > 0  # partial occlusion happens


BOM = "\ufeff"  # what Notepad and other Windows editors write at the start of a UTF-8 file


def test_files_that_begin_with_a_byte_order_mark_read_as_without(tmp_path):
    root = write_yolo(samples(2), tmp_path / "yolo", NAMES)
    plain = read_yolo(root)
    label = root / "labels" / "img0.txt"
    label.write_text(BOM + label.read_text(), encoding="utf-8")
    (root / "data.yaml").write_text(BOM + (root / "data.yaml").read_text(), encoding="utf-8")
    with_bom = read_yolo(root)
    assert with_bom.class_names == NAMES
    for (_, ours), (_, theirs) in zip(with_bom.items, plain.items, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    (root / "data.yaml").unlink()
    (root / "obj.names").write_text(BOM + "\n".join(NAMES) + "\n", encoding="utf-8")
    assert read_yolo(root).class_names == NAMES
    coco = write_coco(samples(2), tmp_path / "coco" / "a.json", NAMES)
    coco.write_text(BOM + coco.read_text(), encoding="utf-8")
    assert read_coco(coco).class_names == NAMES


@pytest.mark.parametrize(
    "text,message",
    [
        ("names:\n\t- circle\n", r"data.yaml: invalid YAML at line 2, column 1: found character '\\t'"),
        ("names: [circle, square\n", r"data.yaml: invalid YAML at line 2, column 1: expected ',' or ']'"),
        ("nc: 3\nnames: [circle, square]\n", r"data.yaml: nc is 3 but there are 2 class names \['circle', 'square'\]"),
        ("names: {0: circle, 2: triangle}\n", r"data.yaml: 'names' maps the class ids 0, 2; expected each of 0 to 1"),
        ("names: {0: circle, one: square}\n", r"'names' maps the class ids 0, one; expected each of 0 to 1 once"),
        ("names: [circle, circle, square]\n", r"the class names \['circle'\] are given more than once"),
        ("names:\n- circle\n-\n- square\n", r"data.yaml: class 1 has no name \(got None\)"),
        ("names: [circle, '', square]\n", r"data.yaml: class 1 has no name \(got ''\)"),
    ],
)
def test_a_data_yaml_that_is_not_a_list_of_names_is_a_one_line_error(text, message, tmp_path):
    """Not silently the wrong classes: nc that disagrees, ids with a gap (names: {0: a, 2: c}
    used to become ['a', 'c'], so class 1 trained as 'c'), a name twice or none."""
    root = write_yolo(samples(1), tmp_path, NAMES)
    (root / "data.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_yolo(root)


def test_names_by_id_and_the_counts_that_agree(tmp_path):
    root = write_yolo(samples(1), tmp_path, NAMES)
    (root / "data.yaml").write_text("nc: 3\nnames: {2: triangle, 0: circle, '1': square}\n")
    assert read_yolo(root).class_names == NAMES
    (root / "data.yaml").unlink()
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    (root / "obj.data").write_text("classes = 2\nnames = classes.txt\n")
    with pytest.raises(ValueError, match=r"obj.data: classes is '2' but there are 3 class names"):
        read_yolo(root / "obj.data")
    (root / "obj.data").write_text("classes = 3\nnames = classes.txt\n")
    assert read_yolo(root / "obj.data").class_names == NAMES


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: [c], r"a.json: expected a COCO object with images, annotations and categories, got list"),
        (lambda c: {**c, "images": []}, r"a.json: no images \(its 'images' list is empty\)"),
        (lambda c: {**c, "categories": []}, r"a.json: no categories"),
        (lambda c: {**c, "images": c["images"] * 2}, r"a.json: the images ids \[1\] are given more than once"),
        (lambda c: {**c, "categories": [{"name": "circle"}]}, r"categories\[0\] needs an integer id and a name"),
        (lambda c: {**c, "categories": [{"id": "1", "name": "x"}]}, r"categories\[0\] needs an integer id"),
        (lambda c: {**c, "images": [7]}, r"images\[0\] needs an id \(a number or a string\), got 7"),
        (lambda c: {**c, "annotations": [[1, 2]]}, r"annotations\[0\]: expected an object with image_id"),
        (
            lambda c: {**c, "annotations": [{**c["annotations"][0], "image_id": [1]}]},
            r"annotations\[0\]: image_id \[1\] is not in 'images'",
        ),
        (
            lambda c: {**c, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]},
            r"the class names \['a'\] are given more than once",
        ),
        (
            lambda c: {**c, "annotations": [{**c["annotations"][0], "bbox": ["1", 2, 3, 4]}]},
            r"annotations\[0\]: bbox must be four numbers",
        ),
    ],
)
def test_a_coco_json_of_another_shape_is_a_one_line_error(change, message, tmp_path):
    """A top-level list used to be an AttributeError; "images": [] trained on nothing."""
    path = write_coco(samples(1), tmp_path / "a.json", NAMES)
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(ValueError, match=message):
        read_coco(path)


def test_text_that_is_not_utf8_is_a_one_line_error(tmp_path):
    root = write_yolo(samples(1), tmp_path, NAMES)
    (root / "labels" / "img0.txt").write_bytes(b"0 0.5 0.5 0.1 0.1 \xe9\n")
    with pytest.raises(ValueError, match=r"img0.txt: not UTF-8 text \(byte 18 is 0xe9\)"):
        read_yolo(root)


def test_a_data_yaml_path_that_is_not_a_folder_name_and_a_file_that_is_not_a_dataset(tmp_path):
    root = write_yolo(samples(1), tmp_path, NAMES, "train")
    (root / "data.yaml").write_text(f"path: 5\ntrain: images/train\nnames: {NAMES}\n")
    with pytest.raises(ValueError, match=r"data.yaml: 'path' must be a folder, got 5"):
        read_yolo(root, "train")
    image = root / "images" / "train" / "img0.png"
    with pytest.raises(ValueError, match=r"img0.png: not a dataset; give its folder, its data.yaml or .data file"):
        read_dataset(image)
