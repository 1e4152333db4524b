"""Regularizers of the YOLOv4 paper beyond augmentation: CmBN and Self-Adversarial Training.

(DropBlock is ``YOLO_V4Config.drop_block``; label smoothing is ``cls_label_smoothing``.)

**CmBN**, Cross mini-Batch Normalization, is the engine's layer ``nn.CrossMiniBatchNorm2d``,
beside BatchNorm: with gradient accumulation (darknet's subdivisions) it normalizes
mini-batch t of an update with the statistics of mini-batches 1..t together. Here,
``use_cross_minibatch_norm`` puts it into a model and ``reset_cross_minibatch_norm``
starts a new update.

**SAT**, Self-Adversarial Training, is two stages. First the network attacks its own
input: the image moves by epsilon in the direction that raises the loss (the sign of the
loss's gradient with respect to the image), the weights untouched. Then the network trains
on the altered image with the original labels. The attack runs the network in eval mode:
its loss is then a function of each image alone, not of the batch it happens to sit in
(in train mode, with small batches, BatchNorm couples the images so strongly that a step
of 2/255 is far outside the linear regime and measurably lowered the loss it was meant to
raise), and no BatchNorm statistics change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minilucid as lucid
from minilucid import backend, nn
from minilucid.backend import get_array_module


def use_cross_minibatch_norm(model: nn.Module) -> nn.Module:
    """Replace every ``bn`` BatchNorm2d of the model by CmBN, keeping its parameters and
    statistics (so state dicts and optimizers are unchanged)."""
    for module in model.modules():
        old = module._modules.get("bn")
        if isinstance(old, nn.BatchNorm2d) and not isinstance(old, nn.CrossMiniBatchNorm2d):
            new = nn.CrossMiniBatchNorm2d(old.num_features, old.eps, old.momentum)
            new.weight, new.bias = old.weight, old.bias
            new.running_mean, new.running_var = old.running_mean, old.running_var
            module.bn = new
    return model


def reset_cross_minibatch_norm(model: nn.Module) -> None:
    """Call after each optimizer step: the next mini-batch starts a new update."""
    for module in model.modules():
        if isinstance(module, nn.CrossMiniBatchNorm2d):
            module.reset()


def self_adversarial_images(model: Any, images: Any, targets: Any, epsilon: float = 2 / 255) -> lucid.Tensor:
    """SAT's first stage: ``images`` moved by ``epsilon`` along the sign of d loss / d image
    (the network in eval mode), clipped to [0, 1]. The model's weights, gradients, BatchNorm
    statistics and train/eval mode are left as they were."""
    if epsilon <= 0:
        raise ValueError(f"self_adversarial_images: epsilon must be > 0, got {epsilon}")
    grads = [p.grad for p in model.parameters()]
    was_training = model.training
    source = images.data if isinstance(images, lucid.Tensor) else images
    if not backend.is_gpu_array(source):
        source = np.asarray(source, dtype=np.float32)
    attack = lucid.Tensor(source, requires_grad=True)  # where the images are
    try:
        # Only the gradient is wanted: no host read of the loss terms (a GPU sync).
        model.eval().get_loss(attack, targets, read_terms=False).backward()
    finally:
        model.train(was_training)
        for parameter, grad in zip(model.parameters(), grads, strict=True):
            parameter.grad = grad
    xp = get_array_module(attack.data)
    perturbed = xp.clip(attack.data + epsilon * xp.sign(attack.grad), 0, 1).astype(attack.dtype)
    return lucid.Tensor(perturbed)
