"""Anchors fitted to the data by default where the model's defaults fit it poorly."""

import numpy as np
import pytest

from yolov4.anchors import best_possible_recall, default_anchors
from yolov4.data.yolo import write_yolo
from yolov4.training.checkpoint import load_trained
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer


def test_best_possible_recall_counts_boxes_some_anchor_fits_within_four_times():
    sizes = np.array([[10, 10], [1, 1], [100, 10], [9, 70]])
    anchors = np.array([[12, 16], [40, 40]])
    # 10x10 fits 12x16; 1x1 is 12 times smaller than either; 100x10 is 4x (at the limit) off 40x40;
    # 9x70 is 4.4x too narrow for 40x40 and 4.4x too tall for 12x16
    assert best_possible_recall(sizes, anchors) == pytest.approx(2 / 4)


def dataset(root, side):
    """Two 256 x 256 images with twelve boxes of about ``side`` pixels each."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        samples = []
        for index in range(2):
            size = side * rng.uniform(0.8, 1.25, (12, 2))
            centres = rng.uniform(20, 236, (12, 2))
            boxes = np.concatenate([np.zeros((12, 1)), centres, size], axis=1)
            samples.append((f"{index}.png", rng.uniform(0, 1, (3, 256, 256)).astype(np.float32), boxes))
        write_yolo(samples, root, ["dot"], split)
    return root


def test_tiny_boxes_get_fitted_anchors_which_resume_and_load_keep(tmp_path, capsys):
    data = dataset(tmp_path / "tiny", 2.5)
    config = TrainConfig(data=str(data), model="small", img=256, epochs=1, out=str(tmp_path / "run"))
    trainer = Trainer(config, progress=False)
    said = capsys.readouterr().out
    assert "best possible recall at 256 px 0.000 with small's default anchors, 1.000 with anchors fitted" in said
    fitted = trainer.model.config.anchors
    assert np.max(fitted[0]) < 4 and np.array(fitted).size == default_anchors("small").size
    checkpoint = trainer.save(tmp_path / "run" / "last.npz")
    resumed = Trainer(config, progress=False, resuming=True)
    assert "best possible recall" not in capsys.readouterr().out
    resumed.resume(checkpoint)
    assert resumed.model.config.anchors == fitted
    assert load_trained(checkpoint, "cpu")[0].config.anchors == fitted
    off = Trainer(TrainConfig(**{**config.to_dict(), "autoanchor": "off"}), progress=False)
    np.testing.assert_array_equal(np.array(off.model.config.anchors).reshape(-1, 2), default_anchors("small"))


def test_boxes_the_defaults_fit_keep_them_unless_asked(tmp_path, capsys):
    data = dataset(tmp_path / "fit", 20)
    config = TrainConfig(data=str(data), model="small", img=256, epochs=1, out=str(tmp_path / "run"))
    trainer = Trainer(config, progress=False)
    assert "1.000 with small's default anchors; defaults kept" in capsys.readouterr().out
    np.testing.assert_array_equal(np.array(trainer.model.config.anchors).reshape(-1, 2), default_anchors("small"))
    always = Trainer(TrainConfig(**{**config.to_dict(), "autoanchor": "always"}), progress=False)
    assert np.array(always.model.config.anchors).max() < 40  # fitted to 16-25 px boxes
    with pytest.raises(ValueError, match="autoanchor"):
        TrainConfig(autoanchor="sometimes")


def test_the_epoch_line_shows_map_by_object_size(tmp_path, capsys):
    data = dataset(tmp_path / "fit", 20)
    config = TrainConfig(data=str(data), model="small", img=128, epochs=1, batch=2, out=str(tmp_path / "run"))
    Trainer(config, progress=True).fit()
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1/1:"))
    for key in ("map50", "map ", "map_small", "map_medium", "map_large"):
        assert key in line, line


def test_the_built_in_data_keeps_the_default_anchors_unless_always(tmp_path, capsys):
    """The ablation's OA row (autoanchor always) must change something on the built-in shapes."""
    base = dict(model="small", img=128, epochs=1, out=str(tmp_path / "run"))
    kept = Trainer(TrainConfig(**base), progress=False)
    assert "best possible recall" not in capsys.readouterr().out
    np.testing.assert_array_equal(np.array(kept.model.config.anchors).reshape(-1, 2), default_anchors("small"))
    fitted = Trainer(TrainConfig(**base, autoanchor="always"), progress=False)
    assert "anchors fitted to the data (used)" in capsys.readouterr().out
    assert fitted.model.config.anchors != kept.model.config.anchors
