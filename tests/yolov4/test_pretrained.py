"""Fine-tuning: starting weights from darknet files (full or cut by ``partial``) and from our
checkpoints, layer by layer; a frozen backbone that stays as loaded."""

import json
import shutil

import numpy as np
import pytest

import minilucid as lucid
from tests.yolov4.conftest import randomize
from yolov4.__main__ import main
from yolov4.darknet.weights import conv_layers, save_darknet, unit_tensors
from yolov4.data.shapes import CLASS_NAMES
from yolov4.model import build_model
from yolov4.training.pretrained import load_pretrained
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer

NAMES = ["a", "b", "c"]


def source(classes, seed=1, model="small"):
    """A model with random weights and BatchNorm statistics (the writer's input)."""
    built = build_model(model, classes)
    randomize(built, seed=seed)
    return built


def arrays_of(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def layer_keys(model):
    """(darknet layer index, whether it is an output conv, its state_dict keys) per conv layer."""
    outputs = {id(head.output) for head in model.head}
    return [
        (index, id(unit) in outputs, [f"{prefix}.{name}" for name, _ in unit_tensors(unit)])
        for index, prefix, unit in conv_layers(model)
    ]


def assert_layers(model, expected, keys, err=""):
    for key in keys:
        np.testing.assert_array_equal(np.array(model.state_dict()[key]), expected[key], err_msg=f"{err} {key}")


def test_darknet_file_loads_every_layer_and_the_output_convs_only_for_the_same_class_count(tmp_path):
    written = source(5)
    save_darknet(written, tmp_path / "m.cfg", tmp_path / "m.weights")
    file_values = arrays_of(written)

    three = build_model("small", 3)
    fresh = arrays_of(three)
    line = load_pretrained(three, tmp_path / "m.weights", NAMES)
    layers = layer_keys(three)
    for _, output, keys in layers:
        assert_layers(three, fresh if output else file_values, keys, "output conv fresh" if output else "loaded")
    head_params = sum(h.output.conv.weight.size + h.output.conv.bias.size for h in three.head)
    loaded = three.count_parameters() - head_params
    assert line == (
        f"loaded {len(layers) - 3} of {len(layers)} layers ({loaded:,} of {three.count_parameters():,} parameters) "
        f"from {tmp_path / 'm.weights'}; left fresh: 3 output convs (5 classes in the file, 3 in the data)"
    )

    five = build_model("small", 5)
    line = load_pretrained(five, tmp_path / "m.weights", list("vwxyz"))
    assert_layers(five, file_values, file_values, "all")
    assert line.startswith(f"loaded {len(layers)} of {len(layers)} layers") and "fresh" not in line


def test_partial_cuts_the_first_n_layers_and_the_cut_file_loads_into_exactly_those(tmp_path, capsys):
    written = source(3)
    save_darknet(written, tmp_path / "m.cfg", tmp_path / "m.weights", seen=123456)
    file_values = arrays_of(written)
    layers = layer_keys(written)
    cut = layers[len(layers) // 2][0] + 1  # darknet layers 0..cut-1, half of the conv layers
    kept = [keys for index, _, keys in layers if index < cut]
    assert (
        main(["partial", str(tmp_path / "m.cfg"), str(tmp_path / "m.weights"), str(tmp_path / "m.cut"), str(cut)]) == 0
    )
    assert f"the {len(kept)} conv layers among the first {cut} layers" in capsys.readouterr().out

    raw = (tmp_path / "m.cut").read_bytes()
    assert np.frombuffer(raw[:12], "<i4").tolist() == [0, 2, 5]  # darknet's header layout
    assert int(np.frombuffer(raw[12:20], "<u8")[0]) == 0  # darknet's partial resets seen
    floats = sum(file_values[key].size for keys in kept for key in keys)
    assert len(raw) == 20 + 4 * floats

    model = build_model("small", 3)
    fresh = arrays_of(model)
    line = load_pretrained(model, tmp_path / "m.cut", NAMES)
    for index, _, keys in layers:
        assert_layers(model, file_values if index < cut else fresh, keys, f"layer {index}")
    assert f"loaded {len(kept)} of {len(layers)} layers" in line
    assert f"left fresh: {len(layers) - len(kept)} layers the file does not have" in line

    next_conv = layers[len(kept)][0]  # a cut file cannot be cut past its end
    assert main(["partial", *(str(tmp_path / f) for f in ("m.cfg", "m.cut", "x")), str(next_conv + 1)]) == 1
    assert f"ends before layer {next_conv}" in capsys.readouterr().err


def test_checkpoint_classes_in_another_order_are_remapped_by_name(tmp_path):
    written = source(3, seed=2)
    checkpoint = tmp_path / "ckpt.npz"
    lucid.save(
        {
            "model": written.state_dict(),
            "model_config": json.dumps(written.config.to_dict()),
            "class_names": json.dumps(NAMES),
        },
        checkpoint,
    )
    order = ["c", "a", "b"]
    permuted = build_model("small", 3)
    line = load_pretrained(permuted, checkpoint, order)
    assert (
        "loaded 82 of 82 layers" in line and "class channels reordered by name from the file's ['a', 'b', 'c']" in line
    )
    x = lucid.random.rand(2, 3, 64, 64)
    with lucid.no_grad():
        for ours, theirs in zip(permuted.eval()(x), written.eval()(x), strict=True):
            ours, theirs = (m.numpy().reshape(2, 3, 8, *m.shape[2:]) for m in (ours, theirs))  # (N, A, 5+C, H, W)
            np.testing.assert_allclose(ours[:, :, :5], theirs[:, :, :5], rtol=1e-5, atol=1e-5)
            for k, name in enumerate(order):
                np.testing.assert_allclose(ours[:, :, 5 + k], theirs[:, :, 5 + NAMES.index(name)], rtol=1e-5, atol=1e-5)
    found = permuted.predict(x, conf_thresh=0.3)
    expected = written.predict(x, conf_thresh=0.3)
    assert sum(map(len, expected)) > 0
    for ours, theirs in zip(found, expected, strict=True):
        assert [order[d["class_id"]] for d in ours] == [NAMES[d["class_id"]] for d in theirs]
        np.testing.assert_allclose([d["score"] for d in ours], [d["score"] for d in theirs], rtol=1e-4)

    other = build_model("small", 3)
    fresh = arrays_of(other)
    line = load_pretrained(other, checkpoint, ["a", "b", "dog"])
    assert line.endswith(
        "left fresh: 3 output convs (the file's classes ['a', 'b', 'c'] are not the data's ['a', 'b', 'dog'])"
    )
    for _, output, keys in layer_keys(other):
        assert_layers(other, fresh if output else arrays_of(written), keys)


def test_a_file_of_another_model_is_a_one_line_error(tmp_path):
    tiny = source(3, model="tiny-small")
    save_darknet(tiny, tmp_path / "tiny.cfg", tmp_path / "tiny.weights")
    with pytest.raises(
        ValueError, match=r"tiny.weights: [\d,]+ float32 values fit no darknet file of this model \(yolov4,"
    ) as error:
        load_pretrained(build_model("small", 3), tmp_path / "tiny.weights", NAMES)
    assert "\n" not in str(error.value)
    raw = (tmp_path / "tiny.weights").read_bytes()
    (tmp_path / "longer.weights").write_bytes(raw + bytes(4))  # one float past the full file: no class count fits
    with pytest.raises(ValueError, match="fit no darknet file of this model"):
        load_pretrained(build_model("tiny-small", 3), tmp_path / "longer.weights", NAMES)
    (tmp_path / "odd.weights").write_bytes(raw + bytes(2))
    with pytest.raises(ValueError, match="are not whole float32 values"):
        load_pretrained(build_model("tiny-small", 3), tmp_path / "odd.weights", NAMES)
    lucid.save(
        {
            "model": tiny.state_dict(),
            "model_config": json.dumps(tiny.config.to_dict()),
            "class_names": json.dumps(NAMES),
        },
        tmp_path / "tiny.npz",
    )
    with pytest.raises(ValueError, match=r"tiny.npz fits no layer of this model \(yolov4, width_multiple 0.25"):
        load_pretrained(build_model("small", 3), tmp_path / "tiny.npz", NAMES)
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        load_pretrained(build_model("small", 3), tmp_path / "missing.weights", NAMES)
    with pytest.raises(
        ValueError, match=r"TrainConfig.freeze = 'neck' is invalid: expected backbone or a positive number"
    ):
        TrainConfig(freeze="neck")


def test_a_frozen_backbone_stays_as_loaded_while_the_rest_trains_and_resumes_exactly(tiny_dataset, tmp_path, capsys):
    written = source(len(CLASS_NAMES), seed=3)
    save_darknet(written, tmp_path / "m.cfg", tmp_path / "m.weights")
    file_values = arrays_of(written)

    def config(out, **overrides):
        settings = dict(weight_decay=0.0005, seed=3, sat=0.02, freeze="backbone")
        return fine_tuning(tiny_dataset, tmp_path / "m.weights", out, **{**settings, **overrides})

    straight = Trainer(config(tmp_path / "run"), progress=False)
    assert "loaded 82 of 82 layers" in capsys.readouterr().out
    trainable = {id(p) for p in straight.model.parameters()} - {id(p) for p in straight.model.backbone.parameters()}
    assert {id(p) for group in straight.optimizer.param_groups for p in group["params"]} == trainable
    straight.fit(epochs=1)
    (tmp_path / "stopped").mkdir()
    shutil.copy(tmp_path / "run" / "last.npz", tmp_path / "stopped" / "last.npz")
    straight.fit()
    after = arrays_of(straight.model)
    backbone = [k for k in after if k.startswith("backbone.")]
    assert backbone
    for key in backbone:  # weights and BatchNorm statistics alike
        np.testing.assert_array_equal(after[key], file_values[key], err_msg=key)
    moved = [k for k in after if not k.startswith("backbone.") and not np.array_equal(after[k], file_values[k])]
    assert {k for k in after if not k.startswith("backbone.") and k.endswith(("conv.weight", "running_mean"))} <= set(
        moved
    )

    (tmp_path / "m.weights").unlink()  # a resume reads the checkpoint, not the run's starting weights
    capsys.readouterr()
    resumed = Trainer(config(tmp_path / "other"), progress=False, resuming=True)
    assert "loaded" not in capsys.readouterr().out
    resumed.resume(tmp_path / "stopped" / "last.npz")
    resumed.fit()
    for key, value in after.items():
        np.testing.assert_array_equal(arrays_of(resumed.model)[key], value, err_msg=key)


def test_freeze_n_keeps_darknets_first_n_layers(tiny_dataset, tmp_path):
    settings = dict(data=str(tiny_dataset), img=64, batch=4, optimizer="sgd", lr=1e-2, burn_in=0, out=str(tmp_path))
    trainer = Trainer(TrainConfig(**settings, freeze="60"), progress=False)  # as --freeze 60 gives it
    assert trainer.config.freeze == 60
    with pytest.raises(ValueError, match=r"TrainConfig.freeze = 1000 freezes every layer: nothing would train"):
        Trainer(TrainConfig(**settings, freeze=1000), progress=False)
    before = arrays_of(trainer.model)
    trainer.loader.set_epoch(0)
    images, targets = next(iter(trainer.loader))
    trainer.model.train()
    trainer.train_batch(images, targets)
    after = arrays_of(trainer.model)
    layers = layer_keys(trainer.model)
    assert any(index < 60 for index, _, _ in layers) and any(index >= 60 for index, _, _ in layers)
    for index, _, keys in layers:
        for key in keys:
            if index < 60:
                np.testing.assert_array_equal(after[key], before[key], err_msg=key)
            elif key.endswith("conv.weight"):
                assert not np.array_equal(after[key], before[key]), key


def fine_tuning(tiny_dataset, weights, out, **overrides):
    """A small model fine-tuned on the tiny dataset from ``weights`` (2 classes: fresh output convs)."""
    settings = dict(
        data=str(tiny_dataset),
        model="small",
        img=64,
        epochs=2,
        batch=4,
        optimizer="sgd",
        lr=1e-2,
        burn_in=1,
        weight_decay=0.0,
        out=str(out),
        seed=5,
        weights=str(weights),
    )
    return TrainConfig(**{**settings, **overrides})


def test_the_layers_the_file_left_fresh_learn_at_fresh_lr_times_the_rate_of_the_loaded_ones(tiny_dataset, tmp_path):
    save_darknet(source(2, seed=4), tmp_path / "m.cfg", tmp_path / "m.weights")
    config = fine_tuning(tiny_dataset, tmp_path / "m.weights", tmp_path / "run", fresh_lr=7.0, burn_in=4)
    trainer = Trainer(config, progress=False)
    outputs = {id(p) for head in trainer.model.head for p in head.output.parameters()}
    assert len(outputs) == 6  # the output convs' weights and biases, the only layers left fresh
    trainer.loader.set_epoch(0)
    images, targets = next(iter(trainer.loader))
    for _ in range(3):  # through burn-in: the schedule scales every group alike
        trainer.model.train()
        trainer.train_batch(images, targets)
        rates = {id(p): group["lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
        assert len(rates) == len(list(trainer.model.parameters()))
        loaded_rate = trainer.scheduler.lr_at(1e-2, trainer.scheduler.last_epoch)
        for key, rate in rates.items():
            assert rate == pytest.approx(7.0 * loaded_rate if key in outputs else loaded_rate)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(loaded_rate)  # the rate logged is lr's


def test_fine_tuning_takes_finetune_yaml_unless_told_and_a_run_from_scratch_does_not(tmp_path):
    from yolov4.training.settings import FINETUNE, NOT_FINETUNING, stored_config

    assert set(FINETUNE) == set(NOT_FINETUNING) == {"burn_in", "fresh_lr"}
    assert FINETUNE["fresh_lr"] > 1 and FINETUNE["burn_in"] < NOT_FINETUNING["burn_in"]
    tuned, scratch = TrainConfig(weights="w.weights"), TrainConfig()
    for name, value in FINETUNE.items():
        assert getattr(tuned, name) == value and getattr(scratch, name) == NOT_FINETUNING[name], name
    assert TrainConfig(weights="w.weights", fresh_lr=1, burn_in=1000).to_dict() == {
        **tuned.to_dict(),
        "fresh_lr": 1.0,
        "burn_in": 1000,
    }  # given settings win
    with pytest.raises(ValueError, match=r"^TrainConfig.fresh_lr = 3.0 needs weights: without them every layer"):
        TrainConfig(fresh_lr=3)
    with pytest.raises(
        ValueError, match=r"^TrainConfig.fresh_lr = 0.0 is invalid: expected a positive multiple of lr$"
    ):
        TrainConfig(weights="w.weights", fresh_lr=0)
    with pytest.raises(ValueError, match=r"^TrainConfig.burn_in = -1 is invalid: expected a number of updates"):
        TrainConfig(burn_in=-1)
    # A checkpoint from before fresh_lr trained every layer at one rate, and resumes so.
    old = TrainConfig(weights="w.weights", burn_in=1000).to_dict()
    del old["fresh_lr"]
    assert TrainConfig(**stored_config({"train_config": json.dumps(old)})).fresh_lr == 1.0


def test_train_weights_on_the_command_line_fine_tunes_with_finetune_yaml(tiny_dataset, tmp_path):
    from yolov4.training.settings import FINETUNE

    save_darknet(source(2, seed=4), tmp_path / "m.cfg", tmp_path / "m.weights")
    common = ["train", "--data", str(tiny_dataset), "--model", "small", "--img", "64", "--epochs", "1", "--quiet"]
    assert main([*common, "--weights", str(tmp_path / "m.weights"), "--out", str(tmp_path / "a")]) == 0
    stored = lucid_config(tmp_path / "a")
    assert {k: stored[k] for k in FINETUNE} == FINETUNE
    (tmp_path / "own.yaml").write_text("fresh_lr: 2\nburn_in: 3\n")
    given = ["--config", str(tmp_path / "own.yaml"), "--out", str(tmp_path / "b")]
    assert main([*common, "--weights", str(tmp_path / "m.weights"), *given]) == 0
    assert (lucid_config(tmp_path / "b")["fresh_lr"], lucid_config(tmp_path / "b")["burn_in"]) == (2.0, 3)
    assert main([*common, "--out", str(tmp_path / "c")]) == 0  # from scratch: the trainer's own defaults
    assert (lucid_config(tmp_path / "c")["fresh_lr"], lucid_config(tmp_path / "c")["burn_in"]) == (1.0, 1000)


def lucid_config(run):
    """The TrainConfig settings a run's checkpoint stores."""
    return json.loads(lucid.load(run / "last.npz")["train_config"])


def test_a_fine_tuning_run_resumes_exactly_with_its_groups_without_the_weights_file(tiny_dataset, tmp_path):
    save_darknet(source(2, seed=4), tmp_path / "m.cfg", tmp_path / "m.weights")
    straight = Trainer(
        fine_tuning(tiny_dataset, tmp_path / "m.weights", tmp_path / "run", fresh_lr=5.0), progress=False
    )
    straight.fit(epochs=1)
    (tmp_path / "stopped").mkdir()
    shutil.copy(tmp_path / "run" / "last.npz", tmp_path / "stopped" / "last.npz")
    straight.fit()
    (tmp_path / "m.weights").unlink()  # the resumed run learns which layers were loaded from its checkpoint
    resumed = Trainer(
        fine_tuning(tiny_dataset, tmp_path / "m.weights", tmp_path / "o", fresh_lr=5.0), progress=False, resuming=True
    )
    resumed.resume(tmp_path / "stopped" / "last.npz")
    assert [len(g["params"]) for g in resumed.optimizer.param_groups] == [
        len(g["params"]) for g in straight.optimizer.param_groups
    ]
    resumed.fit()
    for key, value in arrays_of(straight.model).items():
        np.testing.assert_array_equal(arrays_of(resumed.model)[key], value, err_msg=key)
