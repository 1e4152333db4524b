"""Batches for training and evaluation: (images (N, 3, S, S) Tensor, list of (M, 5) boxes).

Every random choice of batch b in epoch e comes from a generator seeded by (seed, e, b),
and the sample order of epoch e from (seed, e) (``minilucid.data.DataLoader.order``): an
epoch is reproducible, and a run resumed at any epoch sees exactly the batches an
uninterrupted run would. With multi-scale, the input size changes every ``multiscale_every``
batches to a multiple of 32 drawn from ``input_sizes``, the same for every image of a batch
(as darknet's ``random=1``, which draws its sizes from a wider range: notebook 14).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

import minilucid as lucid
from minilucid.data import DataLoader
from yolov4.data.augment import AugmentConfig, augment_sample
from yolov4.letterbox import letterbox


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
    ) -> None:
        for s in [input_size, *(input_sizes or [])]:
            if s % 32 or s <= 0:
                raise ValueError(f"DetectionLoader: input sizes must be positive multiples of 32, got {s}")
        super().__init__(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
        self.input_size, self.augment, self.device = input_size, augment, device
        self.input_sizes = list(input_sizes) if input_sizes else None
        self.multiscale_every = multiscale_every

    def input_size_at(self, step: int) -> int:
        """The input side of global batch ``step``."""
        if not self.input_sizes:
            return self.input_size
        draw = np.random.default_rng([self.seed, 7919, step // self.multiscale_every])
        return int(draw.choice(self.input_sizes))

    def batch(self, epoch: int, index: int) -> tuple[lucid.Tensor, list[np.ndarray]]:
        """Batch ``index`` of ``epoch`` (the same every time it is asked for)."""
        n = len(self.dataset)
        picks = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, index])
        side = self.input_size_at(epoch * len(self) + index)
        input_size = (side, side)
        if self.augment is None:
            samples = [letterbox(*self.dataset[int(i)], input_size) for i in picks]
        else:
            load = self.dataset.__getitem__
            samples = [augment_sample(load, int(i), input_size, rng, self.augment, n) for i in picks]
        return collate(samples, self.device)

    def __iter__(self) -> Iterator[tuple[lucid.Tensor, list[np.ndarray]]]:
        epoch = self.epoch
        self.epoch += 1
        for index in range(len(self)):
            yield self.batch(epoch, index)
