"""Batches for training and evaluation: (images (N, 3, S, S) Tensor, list of (M, 5) boxes).

Every random choice of batch b in epoch e comes from a generator seeded by (seed, e, b),
and the sample order of epoch e from (seed, e) (``minilucid.data.DataLoader.order``): an
epoch is reproducible, and a run resumed at any epoch sees exactly the batches an
uninterrupted run would. With multi-scale, the input size changes every ``multiscale_every``
batches to a multiple of 32 drawn from ``input_sizes``, the same for every image of a batch
(as darknet's ``random=1``, which draws its sizes from a wider range: notebook 14).

Dynamic mini-batch (``dynamic_batch``, the YOLOv4 paper's DM, darknet's
``dynamic_minibatch=1``): with multi-scale, a batch at side s holds
``dynamic_batch_size(batch_size, input_size, s)`` images, so that images x s x s stays the
``batch_size x input_size x input_size`` pixels of the configured batch (within the rounding
to whole images). An epoch is then cut into batches of changing size (``plan``); its sizes are
drawn per ``multiscale_every`` batches from a generator seeded by (seed, epoch, group), so
an epoch's batches are again rebuilt from two numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

import minilucid as lucid
from minilucid.data import DataLoader
from yolov4.data.augment import AugmentConfig, augment_sample
from yolov4.letterbox import letterbox


def dynamic_batch_size(batch_size: int, input_size: int, side: int) -> int:
    """Images in a dynamic mini-batch at input ``side``: ``batch_size`` scaled by
    (input_size / side)^2 and rounded, at least 1, so pixels per batch stay those of
    ``batch_size`` images at ``input_size``. (darknet scales from the largest size instead and
    takes 80% of the result where that is still above its configured batch; here the
    configured batch at the configured size is the reference, so a DM run's pixels per update
    and its peak memory are those of the same run without DM.)"""
    return max(1, round(batch_size * input_size * input_size / (side * side)))


def collate(samples: list[tuple[np.ndarray, np.ndarray]], device: str = "cpu") -> tuple[lucid.Tensor, list[np.ndarray]]:
    """Stack equally sized images into a Tensor; keep boxes as a list (what get_loss takes)."""
    images = np.stack([image for image, _ in samples]).astype(np.float32)
    return lucid.Tensor(images, device=device), [boxes for _, boxes in samples]


class DetectionLoader(DataLoader):
    """Augmented, letterboxed, optionally multi-scale batches of a detection dataset: a
    ``DataLoader`` (its seeded epoch order, length, ``drop_last`` and ``set_epoch``) whose
    batches are drawn by ``batch(epoch, index)``.

    Args:
        dataset: anything with ``len`` and ``dataset[i] -> (image, boxes)``.
        batch_size: images per batch.
        input_size: the network's input side (a multiple of 32) when not multi-scale.
        augment: an AugmentConfig, or None for letterbox only (evaluation).
        shuffle: a new order every epoch.
        seed: makes every epoch reproducible.
        input_sizes: input sides for multi-scale training (multiples of 32), or None.
        multiscale_every: batches between size changes.
        drop_last: skip a last, smaller batch.
        device: where the batches' images go.
        dynamic_batch: with ``input_sizes``, images per batch scale with the input size so
            that pixels per batch stay constant (``dynamic_batch_size``).
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 8,
        input_size: int = 416,
        augment: AugmentConfig | None = None,
        shuffle: bool = True,
        seed: int = 0,
        input_sizes: Sequence[int] | None = None,
        multiscale_every: int = 10,
        drop_last: bool = False,
        device: str = "cpu",
        dynamic_batch: bool = False,
    ) -> None:
        for s in [input_size, *(input_sizes or [])]:
            if s % 32 or s <= 0:
                raise ValueError(f"DetectionLoader: input sizes must be positive multiples of 32, got {s}")
        super().__init__(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
        self.input_size, self.augment, self.device = input_size, augment, device
        self.input_sizes = list(input_sizes) if input_sizes else None
        self.multiscale_every = multiscale_every
        self.dynamic_batch = bool(dynamic_batch and self.input_sizes)
        self._plans: dict[int, list[tuple[int, int, int]]] = {}

    def input_size_at(self, step: int) -> int:
        """The input side of global batch ``step``."""
        if not self.input_sizes:
            return self.input_size
        draw = np.random.default_rng([self.seed, 7919, step // self.multiscale_every])
        return int(draw.choice(self.input_sizes))

    def plan(self, epoch: int) -> list[tuple[int, int, int]]:
        """(first position in the epoch's order, images, input side) of each batch of ``epoch``.
        Fixed-size batches unless ``dynamic_batch``; then each group of ``multiscale_every``
        batches draws its side from (seed, epoch, group) and holds ``dynamic_batch_size`` images."""
        if not self.dynamic_batch:
            n, size = len(self.dataset), self.batch_size
            return [
                (i * size, min(size, n - i * size), self.input_size_at(epoch * len(self) + i))
                for i in range(DataLoader.__len__(self))
            ]
        if epoch not in self._plans:
            plan, start, n = [], 0, len(self.dataset)
            while start < n:
                group = len(plan) // self.multiscale_every
                side = int(np.random.default_rng([self.seed, 7919, epoch, group]).choice(self.input_sizes))
                count = dynamic_batch_size(self.batch_size, self.input_size, side)
                if self.drop_last and start + count > n:
                    break
                plan.append((start, min(count, n - start), side))
                start += count
            self._plans = {epoch: plan}  # one epoch at a time is all a run asks for
        return self._plans[epoch]

    def batches(self, epoch: int) -> int:
        """How many batches ``epoch`` has (with ``dynamic_batch``, it depends on the epoch)."""
        return len(self.plan(epoch)) if self.dynamic_batch else DataLoader.__len__(self)

    def batch(self, epoch: int, index: int) -> tuple[lucid.Tensor, list[np.ndarray]]:
        """Batch ``index`` of ``epoch`` (the same every time it is asked for)."""
        n = len(self.dataset)
        if self.dynamic_batch:
            start, count, side = self.plan(epoch)[index]
        else:
            start, count = index * self.batch_size, self.batch_size
            side = self.input_size_at(epoch * len(self) + index)
        picks = self.order(epoch)[start : start + count]
        rng = np.random.default_rng([self.seed, epoch, index])
        input_size = (side, side)
        if self.augment is None:
            samples = [letterbox(*self.dataset[int(i)], input_size) for i in picks]
        else:
            load = self.dataset.__getitem__
            samples = [augment_sample(load, int(i), input_size, rng, self.augment, n) for i in picks]
        return collate(samples, self.device)

    def __len__(self) -> int:
        """Batches in the epoch the next iteration draws (``set_epoch``)."""
        return self.batches(self.epoch)

    def __iter__(self) -> Iterator[tuple[lucid.Tensor, list[np.ndarray]]]:
        epoch = self.epoch
        self.epoch += 1
        for index in range(self.batches(epoch)):
            yield self.batch(epoch, index)
