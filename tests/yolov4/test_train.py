"""Training: exact resume, survival of a kill, NaN handling, the config file, anchors, CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import minilucid as lucid
from minilucid.data_parallel import usable_cores
from yolov4.anchors import kmeans_anchors
from yolov4.data.shapes import CLASS_NAMES
from yolov4.training.checkpoint import load_trained
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer, TrainingError

TRAINING_PAGE = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text(encoding="utf-8")


def config(root, out, **overrides):
    settings = dict(
        data=str(root),
        model="small",
        img=64,
        epochs=2,
        batch=4,
        optimizer="adam",
        lr=1e-3,
        burn_in=2,
        out=str(out),
        seed=3,
        augment=dict(jitter=0.2, flip=0.5, mosaic=0.5),
        ema=0.9,
        drop_block=0.1,
    )
    return TrainConfig(**{**settings, **overrides})


def weights_of(trainer):
    return {k: np.array(v) for k, v in trainer.model.state_dict().items()}


def test_model_settings_reach_the_model(tiny_dataset, tmp_path):
    trainer = Trainer(
        config(
            tiny_dataset,
            tmp_path / "o",
            cls_label_smoothing=0.1,
            cmbn=True,
            model_options={"iou_normalizer": 0.5, "box_loss": "giou"},
        ),
        progress=False,
    )
    c = trainer.model.config
    assert (c.iou_normalizer, c.box_loss, c.cls_label_smoothing, c.drop_block, c.cmbn) == (0.5, "giou", 0.1, 0.1, True)


def test_the_iou_branch_term_is_summed_and_logged_where_the_branch_is_on(tiny_dataset, tmp_path):
    trainer = Trainer(
        config(tiny_dataset, tmp_path / "o", epochs=1, model_options={"iou_branch_weight": 0.5}), progress=False
    )
    terms = trainer.train_batch(*trainer.loader.batch(0, 0))
    assert terms["iou_branch"] > 0
    assert terms["loss"] == pytest.approx(terms["box"] + terms["obj"] + terms["cls"] + terms["iou_branch"])
    trainer.fit()
    logged = [json.loads(line) for line in (trainer.out / "log.jsonl").read_text().splitlines()]
    assert logged[-1]["iou_branch"] > 0
    off = Trainer(config(tiny_dataset, tmp_path / "off", epochs=1), progress=False)
    assert set(off.train_batch(*off.loader.batch(0, 0))) == {"loss", "box", "obj", "cls"}


def test_resume_is_exact(tiny_dataset, tmp_path):
    straight = Trainer(config(tiny_dataset, tmp_path / "a"), progress=False)
    straight.fit()
    first = Trainer(config(tiny_dataset, tmp_path / "b"), progress=False)
    first.fit(epochs=1)
    resumed = Trainer(config(tiny_dataset, tmp_path / "b"), progress=False)
    resumed.resume(tmp_path / "b" / "last.npz")
    assert resumed.epoch == 1
    resumed.fit()
    for key, value in weights_of(straight).items():
        np.testing.assert_array_equal(weights_of(resumed)[key], value, err_msg=key)
    np.testing.assert_array_equal(
        resumed.ema.shadow["head.0.output.conv.weight"], straight.ema.shadow["head.0.output.conv.weight"]
    )
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and "map50" in log[-1] and log[-1]["loss"] > 0
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    model, names, settings = load_trained(tmp_path / "a" / "last.npz")
    assert names == CLASS_NAMES and settings["img"] == 64 and not model.training


KILLER = textwrap.dedent("""
    import os, sys
    import minilucid.serialization as serialization
    import minilucid as lucid
    from yolov4.training.trainer import Trainer
    from yolov4.training.settings import TrainConfig
    mode = sys.argv[2]
    if mode == "during-write":
        original = serialization.write_atomically
        calls = {"n": 0}
        def dying_write(path, write):
            calls["n"] += str(path).endswith(".npz")  # checkpoints only, not the log or config.yaml
            if calls["n"] == 2:  # the second checkpoint: die half-way through writing it
                def half(file):
                    file.write(b"PK\\x03\\x04 half a zip")
                    file.flush()
                    os._exit(9)
                return original(path, half)
            return original(path, write)
        serialization.write_atomically = dying_write
    if mode == "between-steps":
        original_step = lucid.optim.Adam.step
        steps = {"n": 0}
        def dying_step(self):
            steps["n"] += 1
            if steps["n"] == 4:  # epoch 2, mid-way
                os._exit(9)
            return original_step(self)
        lucid.optim.Adam.step = dying_step
    config = TrainConfig(**__import__("json").loads(sys.argv[1]))
    Trainer(config, progress=False).fit()
""")


@pytest.mark.parametrize(
    "mode, processes", [("between-steps", 1), ("during-write", 1), ("between-steps", 2)], ids=lambda v: str(v)
)
def test_a_killed_run_keeps_a_loadable_checkpoint_and_resumes(mode, processes, tiny_dataset, tmp_path):
    """Killed mid-epoch (with processes=2: the parent, its replica left to notice), the run resumes
    from its last checkpoint to the weights of a run never stopped."""
    if processes > 1 and (not hasattr(os, "fork") or usable_cores() < 2):
        pytest.skip("processes > 1 forks replicas onto a second core")
    settings = config(tiny_dataset, tmp_path / "run", processes=processes).to_dict()
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(settings), mode], env=env, capture_output=True, timeout=300
    )
    assert result.returncode == 9, result.stderr.decode()[-2000:]
    state = lucid.load(tmp_path / "run" / "last.npz")  # the epoch-1 checkpoint, intact
    assert int(state["epoch"]) == 1
    resumed = Trainer(TrainConfig(**settings), progress=False)
    resumed.resume(tmp_path / "run" / "last.npz")
    resumed.fit()
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")]  # a half-written file is cleared
    straight = Trainer(config(tiny_dataset, tmp_path / "straight", processes=processes), progress=False)
    straight.fit()
    for key, value in weights_of(straight).items():
        np.testing.assert_array_equal(weights_of(resumed)[key], value, err_msg=key)


def test_each_run_has_its_own_folder_and_the_log_follows_the_checkpoint(tiny_dataset, tmp_path):
    def epochs_logged():
        return [json.loads(line)["epoch"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]

    Trainer(config(tiny_dataset, tmp_path / "run", ema=0.0), progress=False).fit(epochs=1)
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert {"last.npz", "best.npz", "log.jsonl"} <= set(written)
    for name in written:  # the page that tells users what a run leaves behind
        assert f"`{name}`" in TRAINING_PAGE, f"a training run writes {name}; docs/training.md does not say so"
    again = Trainer(config(tiny_dataset, tmp_path / "run", ema=0.0), progress=False)
    assert again.out == tmp_path / "run2"  # a new run never appends to the old one's log
    # Killed after the epoch-2 log line was written but before its checkpoint (the old order):
    with (tmp_path / "run" / "log.jsonl").open("a") as log:
        log.write(json.dumps({"epoch": 2, "loss": 1.0}) + "\n")
    again.resume(tmp_path / "run" / "last.npz")
    assert again.out == tmp_path / "run"  # a resumed run continues in its folder
    again.fit()
    assert epochs_logged() == [1, 2] and not (tmp_path / "run2").exists()
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])["lr"] > 0  # the real one
    reused = Trainer(config(tiny_dataset, tmp_path / "run", ema=0.0, exist_ok=True, epochs=1), progress=False)
    assert reused.out == tmp_path / "run"
    (tmp_path / "run" / "best.npz").write_bytes(b"stale")
    reused.fit()
    assert epochs_logged() == [1] and int(lucid.load(tmp_path / "run" / "best.npz")["epoch"]) == 1


@pytest.mark.parametrize("processes", [1, 2])
def test_nan_loss_names_the_term_and_the_checkpoint(processes, tiny_dataset, tmp_path):
    if processes > 1 and (not hasattr(os, "fork") or usable_cores() < 2):
        pytest.skip("processes > 1 forks replicas onto a second core")
    trainer = Trainer(config(tiny_dataset, tmp_path / "nan", epochs=2, processes=processes), progress=False)
    trainer.fit(epochs=1)
    trainer.model.head[0].output.conv.bias.data[...] = np.nan
    with pytest.raises(
        TrainingError, match=r"epoch 1: YOLOv4 loss: the \w+ term is nan.* last good checkpoint is .*last.npz"
    ):
        trainer.fit()
    assert int(lucid.load(tmp_path / "nan" / "last.npz")["epoch"]) == 1  # nothing saved was lost


def test_config_from_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text("model: yolov4-tiny\nepochs: 3\naugment:\n  mosaic: 0.5\n")
    loaded = TrainConfig.from_file(tmp_path / "c.yaml", batch=2)
    assert loaded.model == "yolov4-tiny" and loaded.epochs == 3 and loaded.batch == 2
    assert loaded.augment_config().mosaic == 0.5
    (tmp_path / "c.json").write_text(json.dumps({"img": 320, "optimizer": "adamw"}))
    assert TrainConfig.from_file(tmp_path / "c.json").img == 320
    (tmp_path / "options.yaml").write_text("model_options:\n  iou_normalizer: 0.5\ncls_label_smoothing: 0.1\n")
    assert TrainConfig.from_file(tmp_path / "options.yaml").model_options == {"iou_normalizer": 0.5}
    (tmp_path / "bad.yaml").write_text("epochz: 3\n")
    with pytest.raises(ValueError, match=r"unknown settings \['epochz'\]"):
        TrainConfig.from_file(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="TrainConfig.img = 100 is invalid"):
        TrainConfig(img=100)


def test_a_config_file_from_a_windows_editor_reads(tmp_path):
    """Notepad starts a UTF-8 file with a byte-order mark; it is not part of the first key."""
    (tmp_path / "c.yaml").write_text("\ufeffepochs: 3\n", encoding="utf-8")
    (tmp_path / "c.json").write_text('\ufeff{"epochs": 4}', encoding="utf-8")
    assert TrainConfig.from_file(tmp_path / "c.yaml").epochs == 3
    assert TrainConfig.from_file(tmp_path / "c.json").epochs == 4


def test_config_values_take_their_field_types(tmp_path):
    """YAML reads 1e-3 as a string and JSON may write 416.0; both mean the number."""
    (tmp_path / "c.yaml").write_text(
        "lr: 1e-3\nimg: '64'\nsteps: [0.5, 1]\naugment:\n  mosaic: 5e-1\nmodel_options:\n  iou_normalizer: 1e-1\n"
    )
    loaded = TrainConfig.from_file(tmp_path / "c.yaml")
    assert (loaded.lr, loaded.img, loaded.steps) == (0.001, 64, (0.5, 1.0))
    assert loaded.augment == {"mosaic": 0.5} and loaded.model_options == {"iou_normalizer": 0.1}
    (tmp_path / "c.json").write_text('{"img": 416.0, "cmbn": true, "val": null}')
    assert TrainConfig.from_file(tmp_path / "c.json").img == 416
    (tmp_path / "bad.json").write_text('{"img": 416,}')
    with pytest.raises(ValueError, match=r"bad.json: invalid JSON at line 1, column 13: "):
        TrainConfig.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"TrainConfig.steps = 'late' is invalid: expected a list of numbers"):
        TrainConfig(steps="late")


def test_kmeans_recovers_clustered_sizes():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 14], [24, 40], [60, 30], [50, 110], [140, 90], [300, 260]], dtype=float)
    sizes = np.concatenate([c * np.exp(rng.normal(0, 0.05, (200, 2))) for c in centres])
    anchors, mean_iou = kmeans_anchors(sizes, k=6, seed=1)
    np.testing.assert_allclose(anchors, centres, rtol=0.06)
    assert mean_iou > 0.85
    with pytest.raises(ValueError, match="too few"):
        kmeans_anchors(sizes[:3], k=6)


@pytest.mark.parametrize("decay_on", ["conv", "all"])
def test_weight_decay_falls_on_convolution_weights_only_by_default(decay_on, tiny_dataset, tmp_path):
    settings = dict(optimizer="sgd", weight_decay=0.1, ema=0.0, drop_block=0.0)
    if decay_on == "all":
        settings["decay_on"] = "all"  # the option that keeps the old behaviour
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", **settings), progress=False)
    before = dict(trainer.model.named_parameters())
    before = {k: np.array(p.data) for k, p in before.items()}
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.5  # past burn-in; with a zero gradient only the decay moves a weight
    for p in trainer.model.parameters():
        p.grad = np.zeros_like(p.data)
    trainer.optimizer.step()
    conv_weights = {f"{name}.weight" for name, m in trainer.model.named_modules() if isinstance(m, lucid.nn.Conv2d)}
    assert len(conv_weights) > 10 and any(k.endswith(".bias") for k in before) and any("bn" in k for k in before)
    for name, p in trainer.model.named_parameters():
        decayed = name in conv_weights or decay_on == "all"
        expected = before[name] * (1 - 0.5 * 0.1) if decayed else before[name]
        np.testing.assert_allclose(p.data, expected, rtol=1e-6, err_msg=name)


def test_decay_on_is_checked():
    with pytest.raises(ValueError, match=r"TrainConfig.decay_on = 'bn' is invalid: expected conv or all"):
        TrainConfig(decay_on="bn")


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"eval_every": 0}, "TrainConfig.eval_every = 0 is invalid: expected a positive number of epochs"),
        ({"conf_thresh": 1.5}, r"TrainConfig.conf_thresh = 1.5 is invalid: expected a score threshold in \[0, 1\)"),
        ({"seed": -1}, r"TrainConfig.seed = -1 is invalid: expected a whole number >= 0"),
    ],
)
def test_evaluation_settings_are_checked(setting, message):
    """eval_every 0 divided by zero after the first epoch; conf_thresh 1.5 scored every epoch 0."""
    with pytest.raises(ValueError, match=message):
        TrainConfig(**setting)


def test_a_training_set_without_images_is_refused_before_the_model_is_built(tmp_path, monkeypatch):
    """Whatever reader let it through: an empty training set trained on nothing, exited 0 and
    wrote last.npz and best.npz with loss 0.0."""
    import yolov4.training.trainer
    from yolov4.data.dataset import DetectionDataset

    empty = DetectionDataset([], ["a"], "nowhere")
    monkeypatch.setattr(yolov4.training.trainer, "read_splits", lambda *args: (empty, empty))
    with pytest.raises(ValueError, match="the training set has no images: 0 images from nowhere"):
        Trainer(TrainConfig(data=str(tmp_path), out=str(tmp_path / "run")), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_from_before_the_rename_keeps_its_label_smoothing():
    """Checkpoints written when TrainConfig called cls_label_smoothing label_smoothing still resume."""
    from yolov4.training.settings import stored_config

    settings = TrainConfig().to_dict()
    del settings["cls_label_smoothing"]
    settings["label_smoothing"] = 0.1  # the setting's old name
    assert TrainConfig(**stored_config({"train_config": json.dumps(settings)})).cls_label_smoothing == 0.1


def test_resume_starts_from_the_stored_config_and_names_what_differs(tiny_dataset, tmp_path, capsys):
    from yolov4.__main__ import main

    settings = dict(model="tiny-small", lr=0.002, ema=0.0, drop_block=0.0, epochs=2)
    Trainer(config(tiny_dataset, tmp_path / "run", **settings), progress=False).fit(epochs=1)
    checkpoint = str(tmp_path / "run" / "last.npz")
    capsys.readouterr()

    assert main(["train", "--resume", checkpoint, "--lr", "0.01", "--model", "small", "--quiet"]) == 1
    printed = capsys.readouterr()
    error = printed.err
    assert error.count("\n") == 1 and error.startswith(f"yolov4: error: resume {checkpoint}: ")
    assert "train:" not in printed.out  # refused before the data is read
    assert "model 'small' (the checkpoint's run has 'tiny-small')" in error
    assert "lr 0.01 (the checkpoint's run has 0.002)" in error

    # No flags: the run continues with its own settings (today's defaults would be img 416, small).
    assert main(["train", "--resume", checkpoint, "--epochs", "3", "--quiet"]) == 0
    assert "resume: epochs 2 -> 3" in capsys.readouterr().out
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2, 3]
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (written["model"], written["img"], written["lr"], written["epochs"]) == ("tiny-small", 64, 0.002, 3)
    assert not (tmp_path / "run2").exists()


def test_the_ema_ramp_is_a_setting(tiny_dataset, tmp_path):
    """decay * (1 - exp(-updates / ema_ramp)): a short run can ramp up within its length."""
    import math

    from yolov4.training.ema import EMA

    conv = lucid.nn.Conv2d(2, 3, 1)
    ema = EMA(conv, 0.9, ramp=10)
    before = np.array(conv.weight.data)
    conv.weight.data += 1.0
    ema.update(conv)
    d = 0.9 * (1 - math.exp(-1 / 10))
    np.testing.assert_allclose(ema.shadow["weight"], d * before + (1 - d) * (before + 1), rtol=1e-6)
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", ema=0.99, ema_ramp=50), progress=False)
    assert (trainer.ema.decay, trainer.ema.ramp) == (0.99, 50)
    with pytest.raises(ValueError, match=r"TrainConfig.ema_ramp = 0 is invalid: expected a positive number"):
        TrainConfig(ema_ramp=0)


def test_pace_estimates_the_rest_of_the_run_from_the_timed_updates():
    from yolov4.training.trainer import Pace

    now = [0.0]
    pace = Pace(images_to_train=1000, skip=2, timed=4, clock=lambda: now[0])
    lines = []
    for update in range(10):
        now[0] += 50.0 if update < 2 else 1.0  # slow first updates are not timed; then 4 images/s
        lines.append(pace.update(4))
    said = [line for line in lines if line]
    assert len(said) == 1 and lines[5] == said[0]  # once, right after the 4 timed updates
    # 24 images trained, 976 to go at 4 img/s: 244 s
    assert "about 4.1 more minutes" in said[0] and "4.0 img/s" in said[0], said[0]


def test_a_run_prints_its_expected_time(tiny_dataset, tmp_path, capsys):
    Trainer(config(tiny_dataset, tmp_path / "run", epochs=3, batch=2)).fit()  # 12 updates: 2 skipped, 8 timed
    assert "expected: about" in capsys.readouterr().out


# ----------------------------------------------------------------------------- DM, dynamic mini-batch


def test_dynamic_batches_keep_pixels_per_batch_constant():
    from yolov4.data.loader import DetectionLoader, dynamic_batch_size

    class Scenes:
        def __len__(self):
            return 300

        def __getitem__(self, i):
            return np.zeros((3, 64, 64), np.float32), np.zeros((0, 5), np.float32)

    sizes = [96, 128, 160, 192]
    dynamic = DetectionLoader(Scenes(), 8, 128, None, seed=0, input_sizes=sizes, multiscale_every=2, dynamic_batch=True)
    fixed = DetectionLoader(Scenes(), 8, 128, None, seed=0, input_sizes=sizes, multiscale_every=2)
    pixels = 8 * 128 * 128
    for epoch in (0, 1):
        plan = dynamic.plan(epoch)
        assert sum(count for _, count, _ in plan) == 300  # every image once
        assert [start for start, _, _ in plan] == list(np.cumsum([0] + [c for _, c, _ in plan[:-1]]))
        assert len({side for _, _, side in plan}) > 1  # the sizes do change
        for _, count, side in plan[:-1]:  # the last batch holds what is left
            assert abs(count * side * side - pixels) <= side * side / 2, (count, side)
        assert dynamic.batches(epoch) == len(plan)
    index = next(i for i, (_, _, side) in enumerate(dynamic.plan(0)) if side != 128)
    images, boxes = dynamic.batch(0, index)
    _, count, side = dynamic.plan(0)[index]
    assert images.shape == (count, 3, side, side) and len(boxes) == count
    assert [len(targets) for _, targets in dynamic] == [c for _, c, _ in dynamic.plan(0)]
    # Without DM, a batch's pixels follow its size: what DM is for.
    assert len({count * side * side for _, count, side in fixed.plan(0)[:-1]}) > 1
    assert dynamic_batch_size(8, 128, 192) == 4 and dynamic_batch_size(8, 128, 96) == 14
    assert dynamic_batch_size(1, 128, 416) == 1


def dm_config(root, out, **overrides):
    settings = dict(img=128, batch=4, epochs=2, multiscale=True, dynamic_minibatch=True, ema=0.0, drop_block=0.0)
    return config(root, out, **{**settings, **overrides})


def test_dynamic_minibatch_schedule_counts_images_seen(tiny_dataset, tmp_path):
    # seed 3 draws size 160 for epoch 0: three batches (3, 3, 2 images) of the 8 images
    trainer = Trainer(dm_config(tiny_dataset, tmp_path / "o", seed=3, schedule="cosine", burn_in=0), progress=False)
    plan = trainer.loader.plan(0)
    assert [count for _, count, _ in plan] == [3, 3, 2]  # the premise: updates are not images
    images, targets = trainer.loader.batch(0, 0)
    trainer.train_batch(images, targets)
    assert trainer.scheduler.last_epoch == 3
    trainer = Trainer(dm_config(tiny_dataset, tmp_path / "p", seed=3, schedule="cosine", burn_in=0), progress=False)
    trainer.fit(epochs=1)
    assert trainer.scheduler.last_epoch == 8  # images, not the 3 updates
    lr = trainer.config.lr
    # Half the run's images seen: half-way down the cosine, whatever the number of updates.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.01 + lr * 0.99 * 0.5)
    trainer.fit()
    assert trainer.scheduler.last_epoch == 16
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.01)  # the end of the schedule


def test_a_run_with_dynamic_minibatch_differs_from_one_without(tiny_dataset, tmp_path):
    on = Trainer(dm_config(tiny_dataset, tmp_path / "on", seed=3, epochs=1), progress=False)
    off = Trainer(dm_config(tiny_dataset, tmp_path / "off", seed=3, epochs=1, dynamic_minibatch=False), progress=False)
    assert [c for _, c, _ in on.loader.plan(0)] != [c for _, c, _ in off.loader.plan(0)]
    on.fit()
    off.fit()
    assert any(not np.array_equal(a, b) for a, b in zip(weights_of(on).values(), weights_of(off).values(), strict=True))
    with pytest.raises(ValueError, match=r"TrainConfig.dynamic_minibatch = True needs multiscale: true"):
        TrainConfig(dynamic_minibatch=True)


@pytest.mark.skipif(
    not hasattr(os, "fork") or usable_cores() < 2, reason="processes > 1 forks replicas onto a second core"
)
def in_float64(batch):
    images, targets = batch
    return lucid.Tensor(images.data.astype(np.float64)), targets


def test_two_processes_make_the_updates_of_one(tiny_dataset, tmp_path):
    """processes=2 splits each mini-batch between two processes whose BatchNorms share its
    statistics: the same loss terms, parameters and running statistics as one process. In
    float64: the small model's float32 gradients at its start differ from float64's by up to
    60% in a few layers (BatchNorm shifts that cancel), so two float32 sums in different orders
    cannot be told apart from a mistake."""
    settings = dict(subdivisions=2, drop_block=0.0, epochs=1, lr=0.01, burn_in=0)  # DropBlock draws apart
    runs = {}
    for processes in (1, 2):
        trainer = Trainer(
            config(tiny_dataset, tmp_path / str(processes), processes=processes, **settings), progress=False
        )
        for parameter in trainer.model.parameters():
            parameter.data = parameter.data.astype(np.float64)
        start = weights_of(trainer)
        with trainer.data_parallel():
            assert (trainer.replicas is None) == (processes == 1)
            terms = [trainer.train_batch(*in_float64(trainer.loader.batch(0, index))) for index in range(2)]
        assert trainer.replicas is None
        runs[processes] = terms, weights_of(trainer)  # parameters and BatchNorm's running statistics
    (one_terms, one_state), (two_terms, two_state) = runs[1], runs[2]
    for ours, theirs in zip(two_terms, one_terms, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-9)
    for name, value in one_state.items():
        np.testing.assert_allclose(two_state[name], value, rtol=1e-7, atol=1e-9, err_msg=name)
    assert max(np.abs(one_state[name] - start[name]).max() for name in start) > 1e-3  # the updates moved it


@pytest.mark.skipif(
    not hasattr(os, "fork") or usable_cores() < 2, reason="processes > 1 forks replicas onto a second core"
)
def test_a_run_with_two_processes_trains_and_resumes_with_one(tiny_dataset, tmp_path, capsys):
    two = Trainer(config(tiny_dataset, tmp_path / "o", processes=2, epochs=1), progress=False)
    two.fit()
    assert two.replicas is None and two.history[-1]["loss"] > 0
    one = Trainer(config(tiny_dataset, tmp_path / "o", processes=1, epochs=2), progress=False, resuming=True)
    one.resume(two.out / "last.npz")
    assert "processes" in capsys.readouterr().out
    assert len(one.fit()) == 2


@pytest.mark.parametrize(
    "settings, fork, said",
    [
        ({}, False, "processes: 2 asked, this platform cannot fork; training in 1"),
        ({"cmbn": True, "subdivisions": 2}, True, "processes: 2 asked, CmBN carries statistics"),
    ],
)
def test_processes_is_an_upper_bound(tiny_dataset, tmp_path, capsys, monkeypatch, settings, fork, said):
    """A config with processes 2 (the demo's) trains in one process, and says why, where the OS
    cannot fork (Windows) and with CmBN; the GPU's case is tests/gpu's demo test."""
    import yolov4.training.trainer

    monkeypatch.setattr(yolov4.training.trainer, "can_fork", lambda: fork)
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", processes=2, epochs=1, **settings), progress=False)
    replicas = []

    def recording(*args):
        replicas.append(trainer.replicas)
        return Trainer.mini_batches(trainer, *args)

    monkeypatch.setattr(trainer, "mini_batches", recording)
    trainer.fit()
    assert said in capsys.readouterr().out
    assert replicas and all(r is None for r in replicas)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(subdivisions=2, processes=3), "1 to the images of a mini-batch"),
        (dict(batch=2, processes=4), "1 to the images of a mini-batch"),
    ],
)
def test_processes_is_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"batch": 4, **settings})
