"""The command line end to end on a tiny dataset: train, eval, predict, anchors, export."""

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL_GPU
from yolov4.__main__ import main
from yolov4.darknet.weights import load_darknet
from yolov4.data.shapes import CLASS_NAMES


def test_train_eval_predict_anchors_export(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_dataset),
                "--model",
                "small",
                "--img",
                "64",
                "--epochs",
                "1",
                "--batch",
                "4",
                "--optimizer",
                "adam",
                "--lr",
                "0.001",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "last.npz").is_file() and (out / "log.jsonl").is_file()
    said = capsys.readouterr().out.splitlines()
    assert f"train: 8 images from {tiny_dataset / 'images' / 'train'}" in said
    assert f"val: 4 images from {tiny_dataset / 'images' / 'val'}" in said
    listed = (out / "splits.txt").read_text().splitlines()
    assert sorted(listed[2:]) == sorted(str(p) for p in (tiny_dataset / "images" / "val").glob("*.png"))

    metrics_file = tmp_path / "metrics.json"
    assert (
        main(
            [
                "eval",
                "--data",
                str(tiny_dataset),
                "--weights",
                str(out / "last.npz"),
                "--img",
                "64",
                "--out",
                str(metrics_file),
                "--plots",
                str(tmp_path / "plots"),
            ]
        )
        == 0
    )
    metrics = json.loads(metrics_file.read_text())
    assert {"map", "map50", "map75", "map_small", "map_medium", "map_large", "per_class"} <= set(metrics)
    assert set(metrics["per_class"]) == {"circle", "square", "triangle"}
    assert (tmp_path / "plots" / "pr_curve.png").is_file() and (tmp_path / "plots" / "confusion_matrix.png").is_file()
    said = capsys.readouterr().out
    assert "mAP@[.5:.95]" in said and f"evaluating 4 images from {tiny_dataset / 'images' / 'val'}" in said

    images = sorted((tiny_dataset / "images" / "val").glob("*.png"))[:2]
    assert (
        main(
            [
                "predict",
                *map(str, images),
                "--weights",
                str(out / "last.npz"),
                "--img",
                "64",
                "--conf",
                "0.01",
                "--out",
                str(tmp_path / "pred"),
            ]
        )
        == 0
    )
    detections = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert all({"image_id", "category_id", "bbox", "score"} <= set(d) for d in detections)
    with Image.open(tmp_path / "pred" / f"{images[0].stem}.png") as picture:
        assert picture.size == (64, 64)

    gt = tmp_path / "gt.json"
    from yolov4.data.coco import coco_dict
    from yolov4.data.yolo import read_yolo

    val = read_yolo(tiny_dataset, "val")
    gt.write_text(json.dumps(coco_dict([(p.name, (64, 64), b) for p, b in val.items], val.class_names)))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{**d, "image_id": 1} for d in detections]))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "m2.json")]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["map"] >= 0

    assert main(["anchors", "--data", str(tiny_dataset), "-n", "6", "--img", "64"]) == 0
    assert "mean IoU" in capsys.readouterr().out

    cfg, weights = tmp_path / "m.cfg", tmp_path / "m.weights"
    assert main(["export", "--weights", str(out / "last.npz"), "--darknet", str(cfg), str(weights)]) == 0
    assert load_darknet(cfg, weights).config.num_classes == 3


def test_summary_command(capsys):
    assert main(["summary", "--model", "yolov4", "--img", "608"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "64,363,101 trainable parameters" in last and "128.4 BFLOPs at 608" in last


def test_augment_gallery_command(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV4_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "gallery.png"
    assert main(["augment-gallery", "--out", str(out), "--size", "96"]) == 0
    with Image.open(out) as picture:
        assert picture.size == (4 * 96, 2 * (96 + 18))


@pytest.mark.parametrize("val_folder", ["val", "valid"])
def test_augment_gallery_reads_the_documented_split_layouts(val_folder, tmp_path, monkeypatch):
    """train/images + val/images (or valid/images), found by their folders or named by
    Roboflow's data.yaml: the gallery shows the training images, as training reads them."""
    from yolov4.data import gallery
    from yolov4.data.shapes import draw_scene
    from yolov4.data.yolo import write_yolo

    rng = np.random.default_rng(0)
    root = tmp_path / "export"
    write_yolo([(f"t{i}.png", *draw_scene(rng, 64)) for i in range(3)], root / "train", CLASS_NAMES)
    write_yolo([(f"v{i}.png", *draw_scene(rng, 64)) for i in range(2)], root / val_folder, CLASS_NAMES)
    shown, write = [], gallery.augment_gallery
    monkeypatch.setattr(gallery, "augment_gallery", lambda out, data, **k: shown.append(data) or write(out, data, **k))
    yaml_file = root / "data.yaml"
    for data, splits in ((root, ""), (yaml_file, f"train: ../train/images\nval: ../{val_folder}/images\n")):
        yaml_file.write_text(f"{splits}names: {CLASS_NAMES}\n")  # the splits by their folders, then Roboflow's yaml
        assert main(["augment-gallery", "--data", str(data), "--out", str(tmp_path / "g.png"), "--size", "64"]) == 0
        assert sorted(path.name for path, _ in shown[-1].items) == ["t0.png", "t1.png", "t2.png"]
        assert (tmp_path / "g.png").is_file()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["augment-gallery", "--data", "/no/such/dataset"], "yolov4: error:"),
        (["train", "--data", "/no/such/dataset"], "yolov4: error: no dataset at /no/such/dataset"),
        (["train", "--model", "yolov9"], "yolov4: error: TrainConfig.model = 'yolov9' is invalid"),
        (["train", "--val", "/no/such/val.json"], "yolov4: error: no validation set at /no/such/val.json"),
        (["eval", "--weights", "/no/ckpt.npz", "--data", "/tmp"], "yolov4: error: no checkpoint at /no/ckpt.npz"),
    ],
)
def test_errors_are_one_line(argv, message):
    result = subprocess.run([sys.executable, "-m", "yolov4", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_broken_validation_set_is_a_one_line_error(tmp_path):
    from yolov4.data.shapes import CLASS_NAMES, draw_scene
    from yolov4.data.yolo import write_yolo

    rng = np.random.default_rng(0)
    root = write_yolo([(f"{i}.png", *draw_scene(rng, 64)) for i in range(2)], tmp_path, CLASS_NAMES, "train")
    (root / "data.yaml").write_text(f"train: images/train\nval: ../valid/images\nnames: {CLASS_NAMES}\n")
    result = subprocess.run(
        [sys.executable, "-m", "yolov4", "train", "--data", str(root), "--img", "64", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"yolov4: error: validation set: {root / 'data.yaml'}: the 'val' entry '../valid/images' does not exist "
        f"(looked in {root})"
    )


@pytest.mark.skipif(REAL_GPU, reason="this machine has a GPU")
def test_gpu_without_one_is_a_one_line_error():
    result = subprocess.run(
        [sys.executable, "-m", "yolov4", "demo", "--device", "gpu", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "'gpu' was requested but is not available" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_settings_are_the_measured_ones():
    """docs/training.md reports the demo's figures for exactly these settings."""
    from yolov4.demo import DEMO
    from yolov4.training.settings import TrainConfig

    config = TrainConfig(**DEMO)
    assert (config.model, config.img, config.epochs, config.batch, config.lr) == ("tiny-small", 352, 14, 4, 0.006)
    assert config.processes == 2 and config.augment_config().hue == 0
    assert config.model_options == {"iou_normalizer": 1.0}


def test_the_demo_is_its_packaged_config_file(tmp_path, monkeypatch):
    """``python -m yolov4 demo`` and ``train --config yolov4/configs/demo.yaml`` are the same run,
    and the file ships inside the package."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    import yolov4.demo
    import yolov4.training.trainer

    made = []

    class Stop(BaseException):  # not an Exception: main() does not turn it into an exit status
        pass

    def record(config, **options):
        made.append(config.to_dict())
        raise Stop

    monkeypatch.setattr(yolov4.demo, "Trainer", record)
    monkeypatch.setattr(yolov4.training.trainer, "Trainer", record)
    with pytest.raises(Stop):
        yolov4.demo.run_demo(tmp_path / "demo")
    config_file = yolov4.demo.DEMO_CONFIG
    with pytest.raises(Stop):
        main(["train", "--config", str(config_file), "--out", str(tmp_path / "demo")])
    assert made[0] == made[1]
    assert made[0]["data"] is None and made[0]["epochs"] == 14  # the built-in shapes, as docs/training.md says

    package = Path(yolov4.__file__).parent
    assert config_file.parent.parent == package and config_file.is_file()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["yolov4"]
    assert any(fnmatch.fnmatch(str(config_file.relative_to(package)), pattern) for pattern in shipped)


def test_the_demo_scores_the_ema_weights_when_it_keeps_them(tmp_path, monkeypatch):
    """With EMA on, the demo's reported mAP and pictures come from the averaged weights, as the
    trainer's own evaluation and load_trained do."""
    import yolov4.demo
    import yolov4.training.trainer
    from yolov4.data.shapes import shapes_dataset
    from yolov4.training.checkpoint import load_trained

    def small_shapes(split):
        return shapes_dataset(split, root=tmp_path / "shapes", train=8, val=4, size=64)

    monkeypatch.setattr(yolov4.training.trainer, "shapes_dataset", small_shapes)
    monkeypatch.setattr(yolov4.demo, "shapes_dataset", small_shapes)
    for key, value in dict(img=64, ema=0.9, ema_ramp=1, eval_every=1).items():
        monkeypatch.setitem(yolov4.demo.DEMO, key, value)
    scored, evaluate = [], yolov4.demo.evaluate_model

    def record(model, *args, **kwargs):
        scored.append({k: np.array(v) for k, v in model.state_dict().items()})
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(yolov4.demo, "evaluate_model", record)
    yolov4.demo.run_demo(tmp_path / "demo", epochs=1)
    averaged, _, _ = load_trained(tmp_path / "demo" / "last.npz")  # the EMA's weights
    raw, _, _ = load_trained(tmp_path / "demo" / "last.npz", use_ema=False)
    key = "head.0.output.conv.weight"
    assert not np.array_equal(averaged.state_dict()[key], raw.state_dict()[key])
    for name, value in averaged.state_dict().items():
        np.testing.assert_array_equal(scored[-1][name], value, err_msg=name)


DARKNET_ANCHORS = {  # cfg/yolov4.cfg and cfg/yolov4-tiny.cfg, input pixels
    "yolov4": [(12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110), (192, 243), (459, 401)],
    "yolov4-tiny": [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)],
}


def test_anchors_reports_the_mean_iou_of_the_models_default_anchors(tiny_dataset, capsys):
    """The boxes' mean best IoU with the model's own anchors, beside the new anchors' figure,
    so that a user can see whether new anchors are worth it."""
    sizes = []  # the tiny dataset's 64x64 images at --img 128: twice their label sizes in pixels
    for label in (tiny_dataset / "labels" / "train").glob("*.txt"):
        sizes += [(128 * float(w), 128 * float(h)) for _, _, _, w, h in map(str.split, label.read_text().splitlines())]
    for model, anchors in DARKNET_ANCHORS.items():
        best = []
        for w, h in sizes:
            ious = [min(w, a) * min(h, b) / (w * h + a * b - min(w, a) * min(h, b)) for a, b in anchors]
            best.append(max(ious))
        assert main(["anchors", "--data", str(tiny_dataset), "--img", "128", "--model", model]) == 0
        out = capsys.readouterr().out
        new, default = (float(x) for x in re.findall(r"(\d\.\d{3}) with", out))
        assert f"with {model}'s default anchors" in out
        assert default == pytest.approx(sum(best) / len(best), abs=6e-4)
        assert new > default  # k-means on these very boxes fits them better than COCO's anchors


def test_anchors_are_split_over_the_chosen_models_levels(tiny_dataset, capsys):
    def levels(*options):
        assert main(["anchors", "--data", str(tiny_dataset), "--img", "64", *options]) == 0
        return [len(level) for level in json.loads(capsys.readouterr().out.strip().splitlines()[-1])]

    assert levels() == [3, 3, 3]
    assert levels("--model", "yolov4-tiny") == [3, 3]
    assert levels("--model", "yolov4-tiny", "-n", "6") == [3, 3]
    assert levels("--model", "tiny-small", "-n", "4") == [2, 2]
    assert levels("-n", "6") == [2, 2, 2]
    for options, message in [
        (["-n", "7"], "-n 7 does not split evenly into yolov4's 3 output levels"),
        (["--model", "yolov4-tiny", "-n", "9"], "-n 9 does not split evenly into yolov4-tiny's 2 output levels"),
        (["--model", "yolov5"], "unknown model 'yolov5'; choose one of yolov4, yolov4-tiny"),
    ]:
        assert main(["anchors", "--data", str(tiny_dataset), *options]) == 1
        error = capsys.readouterr().err
        assert error.startswith(f"yolov4: error: {message}") and error.count("\n") == 1
    from yolov4.anchors import dataset_anchors
    from yolov4.data.yolo import read_yolo

    with pytest.raises(ValueError, match="7 anchors do not split evenly into 2 levels"):
        dataset_anchors(read_yolo(tiny_dataset, "train"), 64, k=7, levels=2)


@pytest.mark.parametrize(
    "text,message",
    [
        ("lr: fast\n", "TrainConfig.lr = 'fast' is invalid: expected a number"),
        ("epochs: 2.5\n", "TrainConfig.epochs = 2.5 is invalid: expected a whole number"),
        (
            "augment:\n  mosiac: 0.5\n",
            "TrainConfig.augment: unknown settings ['mosiac'] (did you mean mosaic for mosiac?)",
        ),
        (
            "model_options:\n  cls_label_smoothing: 0.1\n",
            "TrainConfig.model_options cannot set cls_label_smoothing (a TrainConfig setting: set it outside",
        ),
        ("model_options:\n  num_classes: 3\n", "TrainConfig.model_options cannot set num_classes (it comes from"),
        ("model_options:\n  iou_normaliser: 1\n", "TrainConfig.model_options: unknown settings ['iou_normaliser']"),
        ("epochs: [3\nlr: 1\n", "CONFIG: invalid YAML at line 2, column 3: expected ',' or ']'"),
        ("- 3\n", "CONFIG: expected a mapping of settings (name: value), got list"),
    ],
)
def test_config_mistakes_are_one_line_errors(text, message, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "yolov4", "train", "--config", str(config), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("yolov4: error: " + message.replace("CONFIG", str(config))), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_out_naming_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "yolov4", "train", "--out", str(tmp_path / "notes.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"yolov4: error: TrainConfig.out = '{tmp_path / 'notes.txt'}' is a file; name a folder for the run"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def untrained(tiny_dataset, tmp_path_factory):
    """A checkpoint of a small model for the tiny dataset's classes after one update."""
    from yolov4.training.settings import TrainConfig
    from yolov4.training.trainer import Trainer

    out = tmp_path_factory.mktemp("untrained")
    trainer = Trainer(TrainConfig(data=str(tiny_dataset), img=64, batch=4, out=str(out / "run")), progress=False)
    trainer.train_batch(*trainer.loader.batch(0, 0))
    return trainer.save(out / "last.npz")


def test_predict_writes_a_new_folder_never_over_an_input(untrained, tiny_dataset, tmp_path, capsys):
    source = sorted((tiny_dataset / "images" / "val").glob("*.png"))[0]
    for folder in ("a", "b"):  # the same name in two folders
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "0.png").write_bytes(source.read_bytes())
    images = [str(tmp_path / "a" / "0.png"), str(tmp_path / "b" / "0.png")]
    common = ["--weights", str(untrained), "--img", "64", "--conf", "0.0"]
    assert main(["predict", *images, *common, "--out", str(tmp_path / "a")]) == 0  # a exists: a2
    assert sorted(p.name for p in (tmp_path / "a2").iterdir()) == ["0.png", "0_2.png", "detections.json"]
    assert main(["predict", *images, *common, "--out", str(tmp_path / "a"), "--exist-ok"]) == 0
    assert (tmp_path / "a" / "0.png").read_bytes() == source.read_bytes()  # the input is untouched
    assert {"0_2.png", "0_3.png", "detections.json"} <= {p.name for p in (tmp_path / "a").iterdir()}
    plain = json.loads((tmp_path / "a2" / "detections.json").read_text())
    assert plain and {d["image_id"] for d in plain} == {1, 2}

    from yolov4.data.coco import coco_dict

    gt = coco_dict([(f"{f}/0.png", (64, 64), np.zeros((0, 5))) for f in ("b", "a")], CLASS_NAMES)
    gt["images"][0]["id"], gt["images"][1]["id"] = 42, 17  # b/0.png is 42, a/0.png is 17
    gt["categories"] = [{"id": 10 * (k + 1), "name": name} for k, name in reversed(list(enumerate(CLASS_NAMES)))]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert main(["predict", *images, *common, "--data", str(tmp_path / "gt.json"), "--out", str(tmp_path / "c")]) == 0
    with_ids = json.loads((tmp_path / "c" / "detections.json").read_text())
    assert [d["image_id"] for d in with_ids] == [{1: 17, 2: 42}[d["image_id"]] for d in plain]
    assert [d["category_id"] for d in with_ids] == [10 * d["category_id"] for d in plain]


def relabelled_copy(tiny_dataset, root, names):
    """The tiny dataset with its classes named ``names`` (the shapes' names, reordered or more)."""
    import shutil

    shutil.copytree(tiny_dataset, root)
    for label in root.glob("labels/*/*.txt"):
        lines = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(f"{names.index(CLASS_NAMES[int(c)])} {' '.join(v)}\n" for c, *v in lines))
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {names}\n")
    return root


def test_eval_and_resume_match_classes_by_name(untrained, tiny_dataset, tmp_path, monkeypatch, capsys):
    import yolov4.evaluation.evaluate
    from yolov4.data.yolo import read_yolo
    from yolov4.training.settings import TrainConfig
    from yolov4.training.trainer import Trainer

    reordered = relabelled_copy(tiny_dataset, tmp_path / "reordered", ["triangle", "circle", "square"])
    scored = []
    monkeypatch.setattr(
        yolov4.evaluation.evaluate, "evaluate_model", lambda model, data, *a, **k: scored.append(data) or {}
    )
    monkeypatch.setattr("yolov4.__main__.print_metrics", lambda metrics: None)
    assert main(["eval", "--data", str(reordered), "--weights", str(untrained), "--img", "64"]) == 0
    original = read_yolo(tiny_dataset, "val")
    assert scored[0].class_names == CLASS_NAMES  # the data in the weights' order, by name
    for (_, theirs), (_, ours) in zip(scored[0].items, original.items, strict=True):
        np.testing.assert_array_equal(theirs, ours)

    more = relabelled_copy(tiny_dataset, tmp_path / "more", [*CLASS_NAMES, "star"])
    capsys.readouterr()
    assert main(["eval", "--data", str(more), "--weights", str(untrained), "--img", "64"]) == 1
    assert capsys.readouterr().err == (
        f"yolov4: error: {untrained}: the weights' classes {CLASS_NAMES} are not the data's {[*CLASS_NAMES, 'star']}\n"
    )

    trainer = Trainer(TrainConfig(data=str(reordered), img=64, batch=4, out=str(tmp_path / "r")), progress=False)
    trainer.resume(untrained)
    assert trainer.class_names == CLASS_NAMES
    assert [b.tolist() for _, b in trainer.val_set.items] == [b.tolist() for _, b in original.items]
    trainer = Trainer(TrainConfig(data=str(more), img=64, batch=4, out=str(tmp_path / "m")), progress=False)
    with pytest.raises(ValueError, match=r"resume .*: the weights' classes \[.*\] are not the data's \[.*'star'\]"):
        trainer.resume(untrained)


# ----------------------------------------------------------------------------- unusual input


def one_line_error(argv, capsys) -> str:
    """What main() says to ``argv``: exit status 1 and one line, ``yolov4: error: ...``, no traceback."""
    capsys.readouterr()
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("yolov4: error: ") and error.count("\n") == 1, error
    return error.removeprefix("yolov4: error: ").strip()


def usage_error(argv, capsys) -> str:
    """What argparse says to ``argv``: exit status 2 and one line as well."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.startswith("yolov4: error: ") and error.count("\n") == 1, error
    return error.removeprefix("yolov4: error: ").strip()


@pytest.fixture(scope="module")
def darknet_pair(untrained, tmp_path_factory):
    """The untrained checkpoint (3 classes) as a darknet .cfg and .weights pair."""
    from yolov4.darknet.weights import save_darknet
    from yolov4.training.checkpoint import load_trained

    folder = tmp_path_factory.mktemp("darknet")
    save_darknet(load_trained(untrained)[0], folder / "m.cfg", folder / "m.weights", 64, 64)
    return folder / "m.cfg", folder / "m.weights"


@pytest.mark.parametrize(
    "text,message",
    [
        ("names:\n\t- circle\n", "data.yaml: invalid YAML at line 4, column 1: found character '\\t'"),
        ("names: [circle, square\n", "data.yaml: invalid YAML at line 4, column 1: expected ',' or ']'"),
        ("nc: 3\nnames: [circle, square]\n", "data.yaml: nc is 3 but there are 2 class names"),
        ("names: {0: circle, 2: triangle}\n", "data.yaml: 'names' maps the class ids 0, 2; expected each of 0 to 1"),
    ],
)
def test_a_data_yaml_mistake_is_one_line_for_every_command_that_reads_it(text, message, tiny_dataset, tmp_path, capsys):
    """Invalid YAML used to escape as yaml's ScannerError; a wrong nc or a gap in the ids trained on."""
    import shutil

    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    (data / "data.yaml").write_text(f"train: images/train\nval: images/val\n{text}")
    for argv in (
        ["train", "--data", str(data), "--img", "64", "--out", str(tmp_path / "run")],
        ["anchors", "--data", str(data)],
        ["augment-gallery", "--data", str(data), "--out", str(tmp_path / "g.png")],
    ):
        assert message in one_line_error(argv, capsys)
    assert not (tmp_path / "run").exists() and not (tmp_path / "g.png").exists()


def test_a_coco_training_file_of_another_shape_is_one_line(tiny_dataset, tmp_path, capsys):
    """A top-level list was an AttributeError; "images": [] trained on nothing and wrote last.npz."""
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    train = ["train", "--img", "64", "--epochs", "1", "--out", str(tmp_path / "run"), "--data"]
    assert one_line_error([*train, str(listed)], capsys) == (
        f"{listed}: expected a COCO object with images, annotations and categories, got list"
    )
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    assert one_line_error([*train, str(empty)], capsys) == f"{empty}: no images (its 'images' list is empty)"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("names,count", [(["circle", "square"], 2), ([*CLASS_NAMES, "star"], 4)])
def test_darknet_names_must_be_as_many_as_the_models_classes(
    names, count, darknet_pair, tiny_dataset, tmp_path, capsys
):
    """Fewer names were an IndexError while drawing; more were used without a word."""
    (tmp_path / "my.names").write_text("\n".join(names) + "\n")
    image = str(sorted((tiny_dataset / "images" / "val").glob("*.png"))[0])
    argv = ["predict", image, "--darknet", *map(str, darknet_pair), "--img", "64", "--conf", "0"]
    said = one_line_error([*argv, "--names", str(tmp_path / "my.names"), "--out", str(tmp_path / "p")], capsys)
    assert said == f"--names {tmp_path / 'my.names'} has {count} class names; the model {darknet_pair[0]} has 3 classes"
    assert not (tmp_path / "p").exists()
    (tmp_path / "my.names").write_text("\ufeff" + "\n".join(CLASS_NAMES) + "\n", encoding="utf-8")  # as Notepad saves
    assert main([*argv, "--names", str(tmp_path / "my.names"), "--out", str(tmp_path / "p")]) == 0


def test_eval_of_a_detections_file_of_another_shape_is_one_line(tmp_path, capsys):
    from yolov4.data.coco import coco_dict

    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(coco_dict([("0.png", (64, 64), np.array([[0, 32.0, 32.0, 10.0, 10.0]]))], CLASS_NAMES)))
    pred.write_text(json.dumps({"image_id": 1, "category_id": 1, "bbox": [27, 27, 10, 10], "score": 0.9}))
    said = one_line_error(["eval", "--gt", str(gt), "--pred", str(pred)], capsys)
    assert said == f"{pred}: expected a list of detections [{{image_id, category_id, bbox, score}}, ...], got dict"
    pred.write_text(json.dumps([json.loads(pred.read_text())]))
    said = one_line_error(["eval", "--gt", str(gt), "--pred", str(pred), "--weights", "x.npz"], capsys)
    assert said == "--gt and --pred score a detections file; --weights are for a model"
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 0


def test_no_command_writes_under_a_file_or_gets_far_before_it_says_so(
    untrained, darknet_pair, tiny_dataset, tmp_path, capsys
):
    """A path under a regular file (NotADirectoryError) was a traceback after the work: for train
    after the data was read and the model built, for export naming a hidden .tmp file."""
    (tmp_path / "notes.txt").write_text("mine")
    under = tmp_path / "notes.txt" / "x"
    image = str(sorted((tiny_dataset / "images" / "val").glob("*.png"))[0])
    cfg, weights = map(str, darknet_pair)
    for argv in (
        ["train", "--data", str(tiny_dataset), "--img", "64", "--out", str(under)],
        ["predict", image, "--weights", str(untrained), "--img", "64", "--out", str(under)],
        ["export", "--weights", str(untrained), "--darknet", str(under / "m.cfg"), str(under / "m.weights")],
        ["partial", cfg, weights, str(under / "m.conv"), "3"],
        [
            "eval",
            "--data",
            str(tiny_dataset),
            "--weights",
            str(untrained),
            "--img",
            "64",
            "--out",
            str(under / "m.json"),
        ],
        ["eval", "--data", str(tiny_dataset), "--weights", str(untrained), "--img", "64", "--plots", str(under)],
        ["augment-gallery", "--data", str(tiny_dataset), "--out", str(under / "g.png")],
    ):
        said = one_line_error(argv, capsys)
        assert said.startswith(f"cannot write {under}") and said.endswith(
            f"{tmp_path / 'notes.txt'} is a file, not a folder"
        )
    assert "train:" not in capsys.readouterr().out  # refused before the data was read
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in a read-only folder")
def test_a_read_only_folder_is_refused_before_the_work(tiny_dataset, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        said = one_line_error(
            ["train", "--data", str(tiny_dataset), "--img", "64", "--out", str(folder / "run")], capsys
        )
    finally:
        folder.chmod(0o755)
    assert said == f"cannot write {folder / 'run'}: no permission to write in {folder}"


def test_no_command_writes_over_one_of_its_inputs(untrained, darknet_pair, tiny_dataset, tmp_path, capsys):
    """export --darknet over its own --weights wrote cfg text into the checkpoint; partial over
    its WEIGHTS replaced the full weights with the cut."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    checkpoint = str(shutil.copy(untrained, run / "last.npz"))
    cfg, weights = (str(shutil.copy(p, tmp_path / p.name)) for p in darknet_pair)
    kept = {path: Path(path).read_bytes() for path in (checkpoint, cfg, weights)}
    said = one_line_error(
        ["export", "--weights", checkpoint, "--darknet", checkpoint, str(tmp_path / "x.weights")], capsys
    )
    assert said == f"{checkpoint} would overwrite the input {checkpoint}; write it elsewhere"
    said = one_line_error(
        ["export", "--weights", checkpoint, "--darknet", str(tmp_path / "x"), str(tmp_path / "x")], capsys
    )
    assert said == f"--darknet names one file, {tmp_path / 'x'}, for both the .cfg and the .weights"
    said = one_line_error(
        ["export", "--weights", checkpoint, "--darknet", str(tmp_path / "e" / "m.cfg"), str(tmp_path / "e")], capsys
    )
    assert (
        said
        == f"--darknet writes {tmp_path / 'e' / 'm.cfg'} into {tmp_path / 'e'}, which it would then write as a file"
    )
    assert not (tmp_path / "e").exists()
    assert one_line_error(["partial", cfg, weights, weights, "3"], capsys) == (
        f"{weights} would overwrite the input {weights}; write it elsewhere"
    )
    assert "would overwrite the input" in one_line_error(["partial", cfg, weights, cfg, "3"], capsys)
    train = ["train", "--data", str(tiny_dataset), "--img", "64", "--out", str(run), "--exist-ok"]
    assert one_line_error([*train, "--weights", checkpoint], capsys) == (
        f"{run / 'last.npz'} would overwrite the input {checkpoint}; write it elsewhere"
    )
    (run / "config.yaml").write_text("epochs: 1\n")
    assert "config.yaml would overwrite the input" in one_line_error(
        [*train, "--config", str(run / "config.yaml")], capsys
    )
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (tmp_path / "pred.json").write_text("[]")
    said = one_line_error(["eval", "--gt", str(gt), "--pred", str(tmp_path / "pred.json"), "--out", str(gt)], capsys)
    assert said == f"{gt} would overwrite the input {gt}; write it elsewhere"
    image = sorted((tiny_dataset / "images" / "train").glob("*.png"))[0]
    said = one_line_error(["augment-gallery", "--data", str(tiny_dataset), "--out", str(image)], capsys)
    assert said == f"{image} would overwrite the input {image}; write it elsewhere"
    assert all(Path(path).read_bytes() == content for path, content in kept.items())


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["eval"],
        ["predict", "x.png"],
        ["anchors", "--data", "x"],
        ["export", "--weights", "x.npz", "--darknet", "a.cfg", "a.weights"],
        ["summary"],
    ],
)
@pytest.mark.parametrize("size", ["0", "-32", "100"])
def test_every_input_size_is_a_positive_multiple_of_32(argv, size, capsys):
    """--img 0 reached the first convolution: 'input (1, 3, 0, 0) is smaller than the kernel'."""
    said = usage_error([*argv, "--img", size], capsys)
    assert (
        said
        == f"argument --img: the input size must be a positive multiple of 32, got {size} (see yolov4 {argv[0]} --help)"
    )


def test_every_command_that_takes_img_checks_it():
    from yolov4.__main__ import build_parser, input_size

    commands = build_parser()._subparsers._group_actions[0].choices
    with_img = {name for name, p in commands.items() for a in p._actions if a.dest == "img"}
    assert with_img == {"train", "eval", "predict", "anchors", "export", "summary", "ablate", "evolve"}
    assert all(a.type is input_size for p in commands.values() for a in p._actions if a.dest == "img")


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--conf", "1.5", "argument --conf: expected a threshold between 0 and 1, got 1.5"),
        ("--iou", "-0.1", "argument --iou: expected a threshold between 0 and 1, got -0.1"),
    ],
)
def test_predict_thresholds_are_between_0_and_1(option, value, message, capsys):
    """--iou -0.1 was accepted and changed the result; --conf 1.5 found nothing without a word."""
    assert usage_error(["predict", "x.png", option, value], capsys) == f"{message} (see yolov4 predict --help)"


def test_predict_takes_a_folder_or_a_pattern(untrained, tiny_dataset, tmp_path, capsys):
    """A folder was 'image file not found'; a pattern that the shell did not expand (Windows) too."""
    folder = tiny_dataset / "images" / "val"
    common = ["--weights", str(untrained), "--img", "64", "--conf", "0"]
    assert main(["predict", str(folder), *common, "--out", str(tmp_path / "a")]) == 0
    said = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert said == [str(p) for p in sorted(folder.glob("*.png"))]
    assert main(["predict", str(folder / "[12].png"), *common, "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["1.png", "2.png", "detections.json"]
    (tmp_path / "empty").mkdir()
    assert one_line_error(["predict", str(tmp_path / "empty"), *common], capsys).startswith(
        f"no images in the folder {tmp_path / 'empty'} (looked for .jpg, .jpeg, .png"
    )
    assert one_line_error(["predict", str(tmp_path / "none.png"), *common], capsys) == (
        f"{tmp_path / 'none.png'}: no such image file or folder"
    )


def test_export_into_a_missing_folder_makes_it(untrained, tmp_path, capsys):
    """It used to fail naming a hidden .xxxx.tmp file."""
    cfg, weights = tmp_path / "new" / "m.cfg", tmp_path / "new" / "m.weights"
    assert main(["export", "--weights", str(untrained), "--darknet", str(cfg), str(weights), "--img", "64"]) == 0
    assert load_darknet(cfg, weights).config.num_classes == 3


def test_augment_gallery_takes_an_image_file_of_a_size_it_can_draw(tmp_path, capsys):
    """--out naming a folder said 'unknown file extension:'; --size 0 divided by zero."""
    assert one_line_error(["augment-gallery", "--out", str(tmp_path)], capsys) == f"{tmp_path} is a folder; name a file"
    assert one_line_error(["augment-gallery", "--out", str(tmp_path / "g.txt")], capsys) == (
        f"{tmp_path / 'g.txt'}: .txt is not an image type; name a .png or .jpg file"
    )
    for size in ("0", "8"):
        said = usage_error(["augment-gallery", "--size", size], capsys)
        assert said.startswith(f"argument --size: the tile size must be at least 16 pixels, got {size} (see ")
    assert main(["augment-gallery", "--size", "16", "--out", str(tmp_path / "g.jpg")]) == 0


def test_a_checkpoint_whose_weights_do_not_fit_its_model_is_one_line(untrained, tiny_dataset, tmp_path, capsys):
    """load_state_dict's KeyError was caught as a user error only by catching every KeyError; a
    setting of a newer version and a missing entry were a TypeError and a KeyError."""
    import minilucid as lucid
    from yolov4.training.checkpoint import read_checkpoint

    state = read_checkpoint(untrained)
    del state["model"]["head.0.output.conv.weight"]
    lucid.save(state, tmp_path / "old.npz")
    image = str(sorted((tiny_dataset / "images" / "val").glob("*.png"))[0])
    said = one_line_error(
        ["predict", image, "--weights", str(tmp_path / "old.npz"), "--out", str(tmp_path / "p")], capsys
    )
    assert said.startswith(f"{tmp_path / 'old.npz'}: its weights do not fit its model (load_state_dict: missing keys")
    state = read_checkpoint(untrained)
    state["model_config"] = json.dumps({**json.loads(state["model_config"]), "wings": 2})
    lucid.save(state, tmp_path / "newer.npz")
    said = one_line_error(["predict", image, "--weights", str(tmp_path / "newer.npz")], capsys)
    assert said == f"{tmp_path / 'newer.npz'}: its model has settings this version of yolov4 does not know: ['wings']"
    del state["train_config"], state["optimizer"]
    lucid.save(state, tmp_path / "bare.npz")
    assert one_line_error(["train", "--resume", str(tmp_path / "bare.npz")], capsys) == (
        f"{tmp_path / 'bare.npz'}: not a yolov4 training checkpoint (no train_config, optimizer)"
    )


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    """Only a mistake in the input is one line; a bug in yolov4 is not hidden as one."""
    import yolov4.__main__

    def broken(args):
        return {}["no such key"]

    monkeypatch.setattr(yolov4.__main__, "summary_command", broken)
    assert main(["summary"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Traceback (most recent call last):") and "KeyError: 'no such key'" in error
    assert error.strip().splitlines()[-1].startswith("yolov4: internal error: this is a bug in yolov4")


def test_a_file_the_system_refuses_is_one_line_naming_it(monkeypatch, capsys):
    import errno

    import yolov4.__main__

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/runs/last.npz")

    monkeypatch.setattr(yolov4.__main__, "summary_command", full)
    assert one_line_error(["summary"], capsys) == "/data/runs/last.npz: No space left on device"


def test_a_model_is_given_one_way_and_names_only_with_darknet(untrained, darknet_pair, tmp_path, capsys):
    """--darknet beside --weights won silently; --names beside a checkpoint was ignored."""
    (tmp_path / "my.names").write_text("\n".join(CLASS_NAMES) + "\n")
    both = ["eval", "--data", str(tmp_path), "--weights", str(untrained), "--darknet", *map(str, darknet_pair)]
    assert one_line_error(both, capsys) == "give --weights CKPT or --darknet CFG WEIGHTS, not both"
    named = ["eval", "--data", str(tmp_path), "--weights", str(untrained), "--names", str(tmp_path / "my.names")]
    assert one_line_error(named, capsys) == (
        "--names is for a darknet model; a checkpoint (--weights) carries its own class names"
    )


def test_an_output_folder_without_a_name_is_not_numbered(untrained, tiny_dataset, tmp_path, monkeypatch, capsys):
    """--out '' or '.' said "PosixPath('.') has an empty name"; with --exist-ok it writes there."""
    monkeypatch.chdir(tmp_path)
    image = str(sorted((tiny_dataset / "images" / "val").glob("*.png"))[0])
    for out in ("", "."):
        said = one_line_error(["predict", image, "--weights", str(untrained), "--img", "64", "--out", out], capsys)
        assert said == "'.' exists and has no name to number; name a new folder, or reuse it with exist_ok (--exist-ok)"
    assert main(["predict", image, "--weights", str(untrained), "--img", "64", "--out", ".", "--exist-ok"]) == 0
    assert (tmp_path / "detections.json").is_file()


@pytest.mark.parametrize("command", [["train"], ["augment-gallery"]])
def test_a_seed_is_a_whole_number_of_at_least_0(command, capsys):
    """NumPy's generators said only 'expected non-negative integer'."""
    said = usage_error([*command, "--seed", "-1"], capsys)
    assert said == f"argument --seed: expected a whole number >= 0, got -1 (see yolov4 {command[0]} --help)"
