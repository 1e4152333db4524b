"""Data parallel on the detector: two processes sharing a batch of the small YOLOv4 give the
gradients of one process holding it all (float64, so that rounding cannot hide a mistake)."""

import os

import numpy as np
import pytest

import minilucid as lucid
from minilucid.data_parallel import ForkedReplicas
from yolov4.data.shapes import draw_scene
from yolov4.model import yolo_v4

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked replicas need fork(); this OS has none")


@pytest.mark.parametrize("empty_share", [False, True], ids=["boxes-in-both", "no-boxes-in-one-share"])
def test_two_processes_give_the_gradients_of_one_batch(empty_share):
    """Each BatchNorm normalizes with the whole batch's statistics and passes back the whole
    batch's gradient sums, so the split is invisible, also when one share's loss graph differs
    (no boxes: no box or class terms)."""
    lucid.random.seed(0)
    model = yolo_v4(num_classes=3, width_multiple=0.25, depth_multiple=0.33)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    model.train()
    rng = np.random.default_rng(0)
    scenes = [draw_scene(rng, 64) for _ in range(4)]
    images = np.stack([image for image, _ in scenes]).astype(np.float64)
    targets = [boxes[:0] if empty_share and i >= 2 else boxes for i, (_, boxes) in enumerate(scenes)]

    def share_loss(share_images, share_targets):
        loss = model.get_loss(lucid.Tensor(share_images), share_targets) * (len(share_targets) / len(targets))
        loss.backward()
        return float(loss.item())

    whole = share_loss(images, targets)
    expected = {name: p.grad.copy() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    with ForkedReplicas(list(model.parameters()), 1, share_loss) as forked:
        halves = forked.run(lambda: share_loss(images[:2], targets[:2]), [(images[2:], targets[2:])])
    assert sum(halves) == pytest.approx(whole, rel=1e-12)
    for name, p in model.named_parameters():
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(p.grad, expected[name], rtol=1e-9, atol=1e-9 * scale, err_msg=name)
