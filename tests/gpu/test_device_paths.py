"""Every public path of training and inference on the GPU, and the step's transfer budget.

Each test runs on a real GPU where CuPy can use one and on the strict CuPy stand-in
(``tests/gpu/standin.py``) everywhere else, so CI proves the GPU path on every run.

The budget of one training step (docs/performance.md, "The GPU budget"): one host-to-device
copy of the image batch, one of the encoded targets, no device-to-host copy of an output
map, and one blocking sync, the read of the loss terms. The stand-in counts them; a real
GPU cannot, so those asserts run on the stand-in only.
"""

import json

import numpy as np
import pytest

import minilucid as lucid
from minilucid import backend
from tests.gpu import standin
from yolov4.__main__ import main
from yolov4.darknet.weights import load_darknet, save_darknet
from yolov4.model import build_model
from yolov4.training.checkpoint import load_trained
from yolov4.training.settings import TrainConfig
from yolov4.training.trainer import Trainer

pytestmark = pytest.mark.gpu

ON_STANDIN = backend.cupy is standin.cupy
counting_only_on_standin = pytest.mark.skipif(not ON_STANDIN, reason="transfers are counted by the CuPy stand-in")

SIZE = 64
BOXES = [np.array([[0, 20, 24, 16, 20], [2, 44, 40, 24, 16]]), np.array([[1, 32, 32, 30, 26]])]


def images(n=2, seed=0):
    return np.random.default_rng(seed).random((n, 3, SIZE, SIZE), dtype=np.float32)


def config(root, out, **overrides):
    settings = dict(
        data=str(root),
        model="small",
        img=SIZE,
        epochs=1,
        batch=4,
        optimizer="adam",
        lr=1e-3,
        burn_in=1,
        out=str(out),
        seed=3,
        device="gpu",
    )
    return TrainConfig(**{**settings, **overrides})


def host_weights(model):
    return {k: backend.as_numpy(v) for k, v in model.state_dict().items()}


def on_gpu(model) -> bool:
    return all(t.device == "gpu" for t in [*model.parameters(), *model.buffers()])


# ----------------------------------------------------------------------------- one step, both devices


@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="sgd"),
        dict(optimizer="adam"),
        dict(optimizer="adam", ema=0.9),
        dict(optimizer="sgd", cmbn=True, batch=4, subdivisions=2),
        dict(optimizer="adam", sat=0.01),
    ],
    ids=["sgd", "adam", "ema", "cmbn", "sat"],
)
def test_a_training_step_on_the_gpu_equals_the_cpu(tiny_dataset, tmp_path, options):
    """The same step on both devices gives the same loss terms and weights."""
    results = []
    for device in ("cpu", "gpu"):
        trainer = Trainer(config(tiny_dataset, tmp_path / device, device=device, **options), progress=False)
        x, boxes = trainer.loader.batch(0, 0)
        assert x.device == device
        terms = trainer.train_batch(x, boxes)
        results.append((terms, host_weights(trainer.model), trainer))
    (cpu_terms, cpu_weights, _), (gpu_terms, gpu_weights, gpu_trainer) = results
    assert on_gpu(gpu_trainer.model)
    for key in cpu_terms:
        assert gpu_terms[key] == pytest.approx(cpu_terms[key], rel=1e-4, abs=1e-6), key
    for key, value in cpu_weights.items():
        np.testing.assert_allclose(gpu_weights[key], value, rtol=1e-3, atol=1e-5, err_msg=key)
    if gpu_trainer.ema:
        assert all(backend.device_of(v) == "gpu" for v in gpu_trainer.ema.shadow.values())


def test_drop_block_trains_on_the_gpu(tiny_dataset, tmp_path):
    """DropBlock's masks are drawn on the device; the step runs and moves the weights."""
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", drop_block=0.2), progress=False)
    before = host_weights(trainer.model)
    terms = trainer.train_batch(*trainer.loader.batch(0, 0))
    assert np.isfinite(terms["loss"]) and terms["loss"] > 0
    after = host_weights(trainer.model)
    assert any(not np.array_equal(before[k], after[k]) for k in before)


# ----------------------------------------------------------------------------- the budget


@counting_only_on_standin
@pytest.mark.parametrize(
    "options",
    [dict(), dict(drop_block=0.2), dict(cmbn=True), dict(sat=0.01), dict(optimizer="sgd", ema=0.9)],
    ids=["default", "dropblock", "cmbn", "sat", "sgd-ema"],
)
def test_a_training_step_keeps_to_the_transfer_budget(tiny_dataset, tmp_path, options):
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", **options), progress=False)
    x, boxes = trainer.loader.batch(0, 0)
    trainer.train_batch(x, boxes)  # a first step makes the cached constants (grids, anchors)
    host_images = backend.as_numpy(x.data)
    with standin.counting() as counts:
        x = lucid.Tensor(host_images, device="gpu")  # what the loader does: the batch goes up once
        trainer.train_batch(x, boxes)
    assert counts.h2d <= 2, counts.events  # the images and the packed targets
    assert counts.syncs <= 1, counts.events  # the loss terms, read once
    assert max(counts.d2h_bytes, default=0) <= 64, counts.events  # a few floats, never a map


@counting_only_on_standin
def test_the_loss_reads_its_terms_once_and_copies_no_map():
    model = build_model("small", 3).to("gpu")
    x = lucid.Tensor(images(), device="gpu")
    model.get_loss(x, BOXES).backward()
    with standin.counting() as counts:
        model.get_loss(x, BOXES).backward()
    assert counts.syncs == 1 and counts.d2h == 1, counts.events
    assert counts.h2d == 1, counts.events  # the encoded targets and truth boxes, packed


@counting_only_on_standin
def test_numbers_in_ops_are_kernel_arguments_not_copies():
    x = lucid.Tensor(np.ones((2, 3), np.float32), device="gpu", requires_grad=True)
    with standin.counting() as counts:
        y = (2 ** (x * 3 + 1) - 0.5) / 4
        y = lucid.where(y > 1, y, 0.0) + lucid.maximum(y, 0.25)
        y.sum().backward()
    assert counts.h2d == 0 and counts.syncs == 0, counts.events
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- devices and state


def test_a_model_and_its_optimizer_move_between_devices(tiny_dataset, tmp_path):
    """Two steps on the CPU equal one on the CPU and one after moving everything to the GPU."""

    def run(second_device):
        trainer = Trainer(config(tiny_dataset, tmp_path / second_device, device="cpu", ema=0.9), progress=False)
        trainer.train_batch(*trainer.loader.batch(0, 0))
        trainer.model.to(second_device)
        trainer.loader.device = second_device
        trainer.train_batch(*trainer.loader.batch(0, 1))
        state = trainer.optimizer.state[0]
        assert backend.device_of(state["exp_avg"]) == second_device
        return host_weights(trainer.model)

    cpu, moved = run("cpu"), run("gpu")
    for key, value in cpu.items():
        np.testing.assert_allclose(moved[key], value, rtol=1e-3, atol=1e-5, err_msg=key)


def test_buffers_and_tensors_stay_on_the_device_of_their_data():
    xp = backend.cupy
    assert lucid.Tensor(xp.ones(3)).device == "gpu"
    bn = lucid.nn.BatchNorm2d(4).to("gpu")
    bn.running_mean = xp.zeros(4, dtype=np.float32)  # assigning a raw device array to a buffer
    assert bn.running_mean.device == "gpu"
    bn(lucid.Tensor(xp.ones((2, 4, 3, 3), dtype=np.float32)))  # and training mode still runs


def test_fit_evaluates_checkpoints_and_resumes_exactly_on_the_gpu(tiny_dataset, tmp_path):
    straight = Trainer(config(tiny_dataset, tmp_path / "a", epochs=2, ema=0.9, drop_block=0.1), progress=False)
    history = straight.fit()
    assert [r["epoch"] for r in history] == [1, 2] and history[-1]["map50"] is not None
    first = Trainer(config(tiny_dataset, tmp_path / "b", epochs=2, ema=0.9, drop_block=0.1), progress=False)
    first.fit(epochs=1)
    resumed = Trainer(config(tiny_dataset, tmp_path / "b", epochs=2, ema=0.9, drop_block=0.1), progress=False)
    resumed.resume(tmp_path / "b" / "last.npz")
    assert on_gpu(resumed.model)
    resumed.fit()
    ours, theirs = host_weights(straight.model), host_weights(resumed.model)
    for key in ours:
        np.testing.assert_array_equal(theirs[key], ours[key], err_msg=key)
    for key, value in straight.ema.shadow.items():
        np.testing.assert_array_equal(backend.as_numpy(resumed.ema.shadow[key]), backend.as_numpy(value))


def test_load_trained_on_the_gpu_predicts_as_on_the_cpu(tiny_dataset, tmp_path):
    trainer = Trainer(config(tiny_dataset, tmp_path / "o", ema=0.9), progress=False)
    trainer.fit()
    cpu_model, names, _ = load_trained(tmp_path / "o" / "last.npz", device="cpu")
    gpu_model, gpu_names, _ = load_trained(tmp_path / "o" / "last.npz", device="gpu")
    assert on_gpu(gpu_model) and names == gpu_names
    x = images(2, seed=5)
    found_cpu = cpu_model.predict(x, conf_thresh=0.01)
    found_gpu = gpu_model.predict(x, conf_thresh=0.01)
    assert [len(d) for d in found_gpu] == [len(d) for d in found_cpu]
    for ours, theirs in zip(found_gpu, found_cpu, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert a["class_id"] == b["class_id"]
            np.testing.assert_allclose(a["box"], b["box"], rtol=1e-3, atol=1e-2)


def test_darknet_files_of_a_gpu_model_round_trip(tmp_path):
    model = build_model("small", 3).to("gpu")
    lucid.random.seed(1)
    for p in model.parameters():
        p.data[...] = backend.to_device(lucid.random.randn(*p.shape).numpy() * 0.1, "gpu")
    save_darknet(model, tmp_path / "m.cfg", tmp_path / "m.weights")
    back = load_darknet(tmp_path / "m.cfg", tmp_path / "m.weights").to("gpu")
    assert on_gpu(back)
    ours, theirs = host_weights(model), host_weights(back)
    for key in ours:
        np.testing.assert_array_equal(theirs[key], ours[key], err_msg=key)


# ----------------------------------------------------------------------------- the command line


def test_the_cli_trains_evaluates_and_predicts_on_the_gpu(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--device", "gpu"]
    train = ["train", "--data", str(tiny_dataset), "--model", "small", "--img", "64", "--epochs", "1"]
    assert main([*train, "--batch", "4", "--out", str(out), "--quiet", *common]) == 0
    weights = str(out / "last.npz")
    assert main(["eval", "--weights", weights, "--data", str(tiny_dataset), "--img", "64", *common]) == 0
    image = next((tiny_dataset / "images" / "val").glob("*.png"))
    predictions = tmp_path / "pred"
    argv = ["predict", "--weights", weights, "--img", "64", "--conf", "0.01", "--out", str(predictions), *common]
    assert main([*argv, str(image)]) == 0
    assert json.loads((predictions / "detections.json").read_text()) is not None


def test_the_demo_runs_on_the_gpu(tmp_path, monkeypatch, capsys):
    """The demo command end to end, on a smaller shapes set at 64 px to fit the test budget."""
    import yolov4.demo
    import yolov4.training.trainer
    from yolov4.data.shapes import shapes_dataset

    def small_shapes(split):
        return shapes_dataset(split, root=tmp_path / "shapes", train=8, val=4, size=SIZE)

    monkeypatch.setattr(yolov4.training.trainer, "shapes_dataset", small_shapes)
    monkeypatch.setattr(yolov4.demo, "shapes_dataset", small_shapes)
    monkeypatch.setitem(yolov4.demo.DEMO, "img", SIZE)
    assert main(["demo", "--device", "gpu", "--epochs", "1", "--out", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "last.npz").is_file() and (tmp_path / "demo" / "detections.png").is_file()
    said = capsys.readouterr().out
    assert "held-out mAP@0.5" in said
    assert yolov4.demo.DEMO["processes"] > 1 and "a GPU trains in one process" in said  # processes: an upper bound
