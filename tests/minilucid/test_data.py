import numpy as np
import pytest

import minilucid as lucid
from minilucid.data import DataLoader, Dataset, TensorDataset, default_collate


class Squares(Dataset):
    def __getitem__(self, index):
        return np.full((2,), index, dtype=np.float32), index * index

    def __len__(self):
        return 10


def test_batches_and_drop_last():
    batches = list(DataLoader(Squares(), batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    images, labels = batches[0]
    assert isinstance(images, lucid.Tensor) and images.shape == (4, 2)
    assert labels.numpy().tolist() == [0, 1, 4, 9]
    assert len(DataLoader(Squares(), batch_size=4, drop_last=True)) == 2
    assert len(list(DataLoader(Squares(), batch_size=4, drop_last=True))) == 2


def test_shuffle_with_a_seed_is_reproducible_and_differs_by_epoch():
    def epochs(loader, n):
        return [np.concatenate([b[1].numpy() for b in loader]).tolist() for _ in range(n)]

    first = epochs(DataLoader(Squares(), batch_size=3, shuffle=True, seed=5), 3)
    second = epochs(DataLoader(Squares(), batch_size=3, shuffle=True, seed=5), 3)
    assert first == second
    assert first[0] != first[1]
    assert sorted(first[0]) == [i * i for i in range(10)]
    resumed = DataLoader(Squares(), batch_size=3, shuffle=True, seed=5)
    resumed.set_epoch(2)
    assert epochs(resumed, 1)[0] == first[2]


def test_custom_collate_and_dicts():
    loader = DataLoader(Squares(), batch_size=5, collate_fn=lambda samples: [s[1] for s in samples])
    assert next(iter(loader)) == [0, 1, 4, 9, 16]
    batch = default_collate([{"a": np.ones(2), "name": "x"}, {"a": np.zeros(2), "name": "y"}])
    assert batch["a"].shape == (2, 2) and batch["name"] == ["x", "y"]


def test_tensor_dataset():
    data = TensorDataset(np.arange(6).reshape(3, 2), np.array([1, 2, 3]))
    assert len(data) == 3 and data[1][1] == 2
    with pytest.raises(ValueError, match="one length"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(data, batch_size=0)
