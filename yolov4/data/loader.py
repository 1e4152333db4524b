"""Batches for training and evaluation: (images (N, 3, S, S) Tensor, list of (M, 5) boxes).

Every random choice of batch b in epoch e comes from a generator seeded by (seed, e, b),
and the sample order of epoch e from (seed, e): an epoch is reproducible, and a run resumed
at any epoch sees exactly the batches an uninterrupted run would. With multi-scale, the
input size changes every ``multiscale_every`` batches to a multiple of 32 drawn from
``sizes`` (darknet's ``random=1``), the same for every image of a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

import minilucid as lucid
from yolov4.data.augment import AugmentConfig, augment_sample
from yolov4.letterbox import letterbox


def collate(samples: list[tuple[np.ndarray, np.ndarray]], device: str = "cpu") -> tuple[lucid.Tensor, list[np.ndarray]]:
    """Stack equally sized images into a Tensor; keep boxes as a list (what get_loss takes)."""
    images = np.stack([image for image, _ in samples]).astype(np.float32)
    return lucid.Tensor(images, device=device), [boxes for _, boxes in samples]


class DetectionLoader:
    """Augmented, letterboxed, optionally multi-scale batches of a detection dataset.

    Args:
        dataset: anything with ``len`` and ``dataset[i] -> (image, boxes)``.
        batch_size: images per batch.
        size: input size (a multiple of 32) when not multi-scale.
        augment: an AugmentConfig, or None for letterbox only (evaluation).
        shuffle: a new order every epoch.
        seed: makes every epoch reproducible.
        sizes: sizes for multi-scale training (multiples of 32), or None.
        multiscale_every: batches between size changes.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 8,
        size: int = 416,
        augment: AugmentConfig | None = None,
        shuffle: bool = True,
        seed: int = 0,
        sizes: Sequence[int] | None = None,
        multiscale_every: int = 10,
        drop_last: bool = False,
        device: str = "cpu",
    ) -> None:
        for s in [size, *(sizes or [])]:
            if s % 32 or s <= 0:
                raise ValueError(f"DetectionLoader: input sizes must be positive multiples of 32, got {s}")
        if batch_size < 1:
            raise ValueError(f"DetectionLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.size = dataset, batch_size, size
        self.augment, self.shuffle, self.seed = augment, shuffle, seed
        self.sizes, self.multiscale_every = list(sizes) if sizes else None, multiscale_every
        self.drop_last, self.device = drop_last, device
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration produces."""
        self.epoch = epoch

    def size_at(self, step: int) -> int:
        """The input size of global batch ``step``."""
        if not self.sizes:
            return self.size
        draw = np.random.default_rng([self.seed, 7919, step // self.multiscale_every])
        return int(draw.choice(self.sizes))

    def batch(self, epoch: int, index: int) -> tuple[lucid.Tensor, list[np.ndarray]]:
        """Batch ``index`` of ``epoch`` (the same every time it is asked for)."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        picks = order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, index])
        side = self.size_at(epoch * len(self) + index)
        size = (side, side)
        if self.augment is None:
            samples = [letterbox(*self.dataset[int(i)], size) for i in picks]
        else:
            samples = [augment_sample(self.dataset.__getitem__, int(i), size, rng, self.augment, n) for i in picks]
        return collate(samples, self.device)

    def __iter__(self) -> Iterator[tuple[lucid.Tensor, list[np.ndarray]]]:
        epoch = self.epoch
        self.epoch += 1
        for index in range(len(self)):
            yield self.batch(epoch, index)
