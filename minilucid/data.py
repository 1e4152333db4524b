"""``minilucid.data``: ``Dataset``, ``TensorDataset`` and ``DataLoader``.

A DataLoader with a ``seed`` shuffles epoch e with a generator seeded by (seed, e), so any
epoch's order can be rebuilt from two numbers, which is what resuming a run needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy

from minilucid import random
from minilucid.backend import get_array_module
from minilucid.tensor import Tensor


class Dataset:
    """A sized, indexable collection of samples; subclasses define both methods."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long arrays or tensors."""

    def __init__(self, *arrays: Any) -> None:
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"TensorDataset needs arrays of one length, got lengths {sorted(lengths)}")
        self.arrays = [a.data if isinstance(a, Tensor) else numpy.asarray(a) for a in arrays]

    def __getitem__(self, index: int) -> tuple:
        return tuple(a[index] for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack samples into batch Tensors: tuples field by field, dicts key by key."""
    first = batch[0]
    if isinstance(first, tuple | list):
        return type(first)(default_collate(list(field)) for field in zip(*batch, strict=True))
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in batch]) for key in first}
    if isinstance(first, Tensor):
        xp = get_array_module(first.data)
        return Tensor._from_array(xp.stack([sample.data for sample in batch]))
    if isinstance(first, numpy.ndarray | int | float | numpy.number):
        return Tensor(numpy.stack([numpy.asarray(sample) for sample in batch]))
    return list(batch)


class DataLoader:
    """Batches of a Dataset.

    Args:
        dataset: anything with ``__getitem__`` and ``__len__``.
        batch_size: samples per batch.
        shuffle: draw a new order every epoch.
        collate_fn: turns a list of samples into a batch (``default_collate``).
        drop_last: skip a last, smaller batch.
        seed: makes every epoch's order reproducible; without it, ``minilucid.random`` decides.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        collate_fn: Callable[[list], Any] | None = None,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.collate_fn = collate_fn or default_collate
        self.drop_last, self.seed = drop_last, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next iteration uses."""
        self.epoch = epoch

    def order(self, epoch: int) -> numpy.ndarray:
        """The sample order of ``epoch``."""
        n = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(n)
        rng = numpy.random.default_rng([self.seed, epoch]) if self.seed is not None else random.generator()
        return rng.permutation(n)

    def __iter__(self) -> Iterator[Any]:
        order = self.order(self.epoch)
        self.epoch += 1
        for batch in range(len(self)):
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self.collate_fn([self.dataset[int(i)] for i in indices])

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
