"""DropBlock, SAT and CmBN switches, and the augmentation gallery."""

import numpy as np
import pytest
from PIL import Image

import minilucid as lucid
from tests.yolov4.test_loss_and_predict import GROUND_TRUTH, scenes, small
from yolov4.data.gallery import augment_gallery
from yolov4.data.shapes import shapes_dataset
from yolov4.regularize import reset_cross_minibatch_norm, self_adversarial_images


def test_sat_perturbation_raises_the_loss_and_leaves_the_model_alone():
    model, x = small(), scenes()
    optimizer = lucid.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(20):  # a little training, so the running statistics describe the data
        optimizer.zero_grad()
        model.get_loss(x, GROUND_TRUTH).backward()
        optimizer.step()
    optimizer.zero_grad()
    before_state = {k: np.array(v) for k, v in model.state_dict().items()}
    adversarial = self_adversarial_images(model, x, GROUND_TRUTH, epsilon=2 / 255)
    assert model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before_state[key], err_msg=key)  # weights and BN statistics
    assert all(p.grad is None for p in model.parameters())
    change = adversarial.numpy() - x.numpy()
    assert np.abs(change).max() <= 2 / 255 + 1e-7 and np.abs(change).mean() > 1 / 255
    assert adversarial.numpy().min() >= 0 and adversarial.numpy().max() <= 1
    model.eval()  # the loss the attack climbs: up along the gradient's sign, down against it
    base = model.get_loss(x, GROUND_TRUTH).item()
    assert model.get_loss(adversarial, GROUND_TRUTH).item() > base
    opposite = lucid.Tensor(np.clip(2 * x.numpy() - adversarial.numpy(), 0, 1))
    assert model.get_loss(opposite, GROUND_TRUTH).item() < base
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        self_adversarial_images(model, x, GROUND_TRUTH, epsilon=0)


def as_float64(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        tensor.data = tensor.data.astype(np.float64)
    return model


def test_cmbn_with_one_mini_batch_per_update_equals_batchnorm():
    plain, cross = small(), small(cmbn=True)
    assert sum(isinstance(m, lucid.nn.CrossMiniBatchNorm2d) for m in cross.modules()) > 50
    cross.load_state_dict(plain.state_dict())
    assert list(cross.state_dict()) == list(plain.state_dict())
    plain, cross = as_float64(plain), as_float64(cross)  # equal up to rounding, so compare in float64
    x = lucid.Tensor(scenes().numpy().astype(np.float64))
    for _ in range(2):  # two updates of one mini-batch each
        loss_plain, loss_cross = plain.get_loss(x, GROUND_TRUTH), cross.get_loss(x, GROUND_TRUTH)
        loss_plain.backward()
        loss_cross.backward()
        reset_cross_minibatch_norm(cross)
        assert loss_cross.item() == pytest.approx(loss_plain.item(), rel=1e-10)
    for (name, p), (_, q) in zip(plain.named_parameters(), cross.named_parameters(), strict=True):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-8, atol=1e-8 * np.abs(p.grad).max(), err_msg=name)
    for (name, a), (_, b) in zip(plain.state_dict().items(), cross.state_dict().items(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=name)


def test_drop_block_switch_acts_in_training_only():
    plain, dropping = small(), small(drop_block=0.3, drop_block_size=3)
    dropping.load_state_dict(plain.state_dict())
    x = scenes()
    with lucid.no_grad():
        for p, q in zip(plain.eval()(x), dropping.eval()(x), strict=True):
            np.testing.assert_array_equal(p.numpy(), q.numpy())  # the identity in eval mode
        dropping.train()
        a, b = dropping(x), dropping(x)
    assert not np.array_equal(a[2].numpy(), b[2].numpy())  # random masks while training
    with pytest.raises(ValueError, match="drop_block"):
        small(drop_block=1.5)


def test_augment_gallery_writes_a_grid(tmp_path):
    dataset = shapes_dataset("train", root=tmp_path / "shapes", train=8, val=2)
    path = augment_gallery(tmp_path / "gallery.png", dataset, size=128)
    with Image.open(path) as picture:
        assert picture.size == (4 * 128, 2 * (128 + 18))
        pixels = np.asarray(picture)
    assert pixels.std() > 10
