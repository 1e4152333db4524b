import re
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

import minilucid as lucid
from tests.yolov4.conftest import randomize
from yolov4 import yolo_v4, yolo_v4_tiny
from yolov4.darknet.cfg_format import Section, parse_cfg, structure
from yolov4.darknet.weights import cfg_text, darknet_file, load_darknet, partial, save_darknet


def small():
    model = yolo_v4(num_classes=3, width_multiple=0.125, depth_multiple=0.33)
    randomize(model, seed=5)
    return model


@pytest.mark.parametrize("name", ["yolov4.cfg", "yolov4-tiny.cfg"])
def test_model_layers_equal_the_reference_cfg_one_for_one(name):
    reference = parse_cfg(darknet_file(name).read_text())
    model = yolo_v4() if name == "yolov4.cfg" else yolo_v4_tiny()
    ours = [Section("net"), *model.to_darknet().sections]
    assert len(ours) == len(reference)
    for index in range(len(ours) - 1):
        assert structure(ours, index) == structure(reference, index), f"layer {index}"
    # so the convolutions come in the cfg's order, the order of a .weights file
    convs = [s for s in reference if s.kind == "convolutional"]
    units = model.to_darknet().units
    assert [(int(s.get("filters")), int(s.get("size"))) for s in convs] == [
        (u.conv.out_channels, u.conv.kernel_size) for u in units
    ]


def test_darknet_files_ship_as_package_data():
    names = darknet_file("coco.names").read_text().splitlines()
    assert len(names) == 80 and names[:2] == ["person", "bicycle"]
    assert darknet_file("yolov4-tiny.cfg").parent == darknet_file("yolov4.cfg").parent
    with pytest.raises(
        ValueError, match=r"expected one of \['coco.names', 'yolov4-tiny.cfg', 'yolov4.cfg'\], got 'x.cfg'"
    ):
        darknet_file("x.cfg")
    # pyproject's package data names every shipped file, so an installed package has them too
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    patterns = re.findall(r'"([^"]+)"', re.search(r"^yolov4 = \[(.*)\]$", pyproject, flags=re.MULTILINE).group(1))
    folder = darknet_file("coco.names").parent
    package = folder.parents[1]  # yolov4/, which the patterns are relative to
    for file in folder.iterdir():
        relative = file.relative_to(package).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_round_trip_is_bit_exact(tmp_path):
    model = small().eval()
    save_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights", seen=1234)
    loaded = load_darknet(tmp_path / "m.cfg", tmp_path / "m.weights").eval()
    assert np.frombuffer((tmp_path / "m.weights").read_bytes()[12:20], "<u8")[0] == 1234  # 64-bit seen
    assert loaded.config.width_multiple == 0.125 and loaded.config.num_classes == 3
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    x = lucid.random.randn(1, 3, 64, 64)
    with lucid.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_full_yolov4_weights_file_is_exactly_257717640_bytes(tmp_path):
    model = yolo_v4()
    save_darknet(model, tmp_path / "yolov4.cfg", tmp_path / "yolov4.weights")
    assert (tmp_path / "yolov4.weights").stat().st_size == 257_717_640 == 20 + 4 * 64_429_405
    loaded = load_darknet(tmp_path / "yolov4.cfg", tmp_path / "yolov4.weights")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # darknet's yolov4.conv.137 (layers 0-136) is "162 MB": 20 + 4 x 42,509,664 bytes
    assert partial(tmp_path / "yolov4.cfg", tmp_path / "yolov4.weights", tmp_path / "yolov4.conv.137", 137) == 92
    assert (tmp_path / "yolov4.conv.137").stat().st_size == 170_038_676 == 20 + 4 * 42_509_664


def test_32_bit_seen_header(tmp_path):
    model = small()
    save_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights", seen=77)
    raw = (tmp_path / "m.weights").read_bytes()
    old = np.array([0, 1, 0], "<i4").tobytes() + np.array([77], "<u4").tobytes() + raw[20:]
    (tmp_path / "old.weights").write_bytes(old)
    loaded = load_darknet(tmp_path / "m.cfg", tmp_path / "old.weights")  # a 16-byte header
    np.testing.assert_array_equal(loaded.head[0].output.conv.weight.numpy(), model.head[0].output.conv.weight.numpy())


def test_wrong_weights_size_names_expected_and_actual_bytes(tmp_path):
    model = small()
    save_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights")
    raw = (tmp_path / "m.weights").read_bytes()
    (tmp_path / "short.weights").write_bytes(raw[:-8])
    with pytest.raises(ValueError, match=rf"expected {len(raw)} bytes .* got {len(raw) - 8} bytes"):
        load_darknet(tmp_path / "m.cfg", tmp_path / "short.weights")
    (tmp_path / "tiny.weights").write_bytes(raw[:10])
    with pytest.raises(ValueError, match="too short"):
        load_darknet(tmp_path / "m.cfg", tmp_path / "tiny.weights")


def test_custom_classes_and_anchors(tmp_path):
    text = darknet_file("yolov4.cfg").read_text()
    text = text.replace("classes=80", "classes=3").replace("filters=255", "filters=24")
    text = text.replace("anchors = 12, 16, 19, 36, 40, 28", "anchors = 10, 12, 20, 30, 40, 50")
    text = text.replace("width=608", "width=320").replace("height=608", "height=320")
    (tmp_path / "custom.cfg").write_text(text)
    model = load_darknet(tmp_path / "custom.cfg")
    assert model.config.num_classes == 3
    assert model.config.anchors[0] == ((10, 12), (20, 30), (40, 50))
    assert model.darknet_input_size == (320, 320)
    assert model.head[2].output.conv.out_channels == 24


def test_a_cfg_this_project_cannot_represent_names_section_and_line(tmp_path):
    lines = darknet_file("yolov4.cfg").read_text().splitlines()
    # the 6th [convolutional] (layer 6, the first residual 3x3) gets 96 filters instead of 64
    starts = [i for i, line in enumerate(lines) if line.strip() == "[convolutional]"]
    target = next(i for i in range(starts[5], len(lines)) if lines[i].startswith("filters"))
    lines[target] = "filters=96"
    (tmp_path / "odd.cfg").write_text("\n".join(lines))
    expected = (
        rf"layer 6 \(\[convolutional\] at line {starts[5] + 1}\) cannot be represented: filters=96 \(expected 64\)"
    )
    with pytest.raises(ValueError, match=expected):
        load_darknet(tmp_path / "odd.cfg")
    text = darknet_file("yolov4-tiny.cfg").read_text().replace("[upsample]", "[sam]")
    (tmp_path / "sam.cfg").write_text(text)
    with pytest.raises(ValueError, match=r"layer 33 \(\[sam\] at line \d+\): expected a \[upsample\] section"):
        load_darknet(tmp_path / "sam.cfg")
    (tmp_path / "one.cfg").write_text("[net]\nwidth=416\n[convolutional]\nfilters=3\n[yolo]\nclasses=1\n")
    with pytest.raises(ValueError, match=r"found 1 \[yolo\] sections"):
        load_darknet(tmp_path / "one.cfg")
    with pytest.raises(FileNotFoundError, match="no cfg file"):
        load_darknet(tmp_path / "missing.cfg")


def test_written_cfg_reads_back_the_same_settings():
    model = yolo_v4_tiny(num_classes=5)
    text = cfg_text(model, 320, 320)
    sections = parse_cfg(text)
    assert sections[0].get("width") == "320"
    yolos = [s for s in sections if s.kind == "yolo"]
    assert [s.get("mask") for s in yolos] == ["3,4,5", "0,1,2"]
    assert all(s.get("classes") == "5" for s in yolos)
    assert re.search(r"filters=30\nsize=1", text)
