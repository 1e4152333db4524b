"""Selections and reads on the device that never make the host wait: the GPU's tricks, named.

On a GPU (CuPy) the host queues kernels and goes on; it waits for the device (a *sync*) only
when it needs a value from there. The obvious NumPy for picking entries out of an array,
``xp.nonzero(mask)`` or ``values[mask]``, is such a read in disguise: its result's size
depends on the data, so CuPy must finish the mask and read its count before it can make the
result. Once per call, that drains the GPU's queue; inside a training step's loop over
strides, or per image of a batch, it adds up.

Each function here returns what the obvious code would, or a fixed-size array that holds it,
using only steps whose output size the host already knows (sorts, searches, slices by host
numbers). Each docstring names the obvious code it stands for. On NumPy they give the same
result as that code; ``tests/yolov4/test_sync_free.py`` checks each against it, and, on the
CuPy stand-in, that each makes no sync where the obvious code makes one.

The cost: a sort is O(K log K) work where ``nonzero`` is O(K), all of it on the device,
while a sync stops both the host and the GPU. ``yolov4.loss`` and ``yolov4.detect`` use them.
"""

from __future__ import annotations

from typing import Any

import minilucid as lucid
from minilucid.backend import as_numpy, get_array_module


def stable_partition(mask: Any) -> Any:
    """Indices (K,) of a 1-D boolean ``mask``: its true entries first, then its false ones,
    each in their original order.

    Obvious code: ``xp.concatenate([xp.flatnonzero(mask), xp.flatnonzero(~mask)])``, two
    syncs on a GPU (each ``flatnonzero`` has a data-dependent size). Here: one stable sort of
    the mask's complement, which is K long whatever the data.
    """
    xp = get_array_module(mask)
    return xp.argsort((~mask).astype(xp.int8), kind="stable")  # false (0) before true (1): kept first


def first_true(mask: Any, count: int) -> Any:
    """Flat indices (count,) of the first ``count`` true entries of a boolean ``mask``, in
    order; ``count`` is a host number, the number of true entries known beforehand (or fewer).

    Obvious code: ``xp.flatnonzero(mask)`` (or ``mask.nonzero()``), a sync on a GPU: the
    host must read how many entries are true before the result can be made. When the host
    already knows that number (``yolov4.loss.pack_targets`` counts the positives while it
    encodes them), a stable partition cut at ``count`` gives the same indices without asking.
    """
    return stable_partition(mask.reshape(-1))[:count]


def rank_in_runs(sorted_keys: Any) -> Any:
    """(K,) the place of each entry of a sorted 1-D array within its run of equal keys:
    0 for the first of a run, 1 for the next, ...

    Obvious code: a loop over the distinct keys (``for key in xp.unique(sorted_keys)``) or
    ``xp.unique(sorted_keys, return_index=True)`` to find where each run starts, both syncs on
    a GPU (``unique`` has a data-dependent size). Here: each entry's run starts where a
    binary search for its own key lands, so the rank is its index minus that.
    """
    xp = get_array_module(sorted_keys)
    return xp.arange(len(sorted_keys)) - xp.searchsorted(sorted_keys, sorted_keys)


def best_per_group(group: Any, score: Any, cap: int, num_groups: int) -> Any:
    """Indices (L,) into ``group`` and ``score`` (each (M,)): group by group in increasing
    order, best score first within a group (ties in the given order), at most ``cap`` per
    group; then the entries past each group's cap, to fill a buffer of fixed size
    L = min(M, num_groups * cap).

    Obvious code: ``[order[group[order] == g][:cap] for g in range(num_groups)]`` with
    ``order = xp.argsort(-score, kind="stable")``: a boolean mask, so a sync, per group. Here
    the groups are sorted apart and each entry's rank within its group found on the device;
    the kept entries are moved first. How many are kept is data-dependent (a sync to learn),
    so the result is cut at the bound ``num_groups * cap`` instead, and its tail may hold
    entries over the cap: a reader on the host takes group g's first ``cap`` rows, which are
    exactly its kept ones.
    """
    xp = get_array_module(score)
    order = xp.argsort(-score, kind="stable")  # best first, ties in the given order
    order = order[xp.argsort(group[order], kind="stable")]  # then group by group
    kept = rank_in_runs(group[order]) < cap
    return order[stable_partition(kept)][: num_groups * cap]  # kept entries first: (L,)


def read_together(values: list) -> list[float]:
    """The host values of several 0-d device arrays or Tensors, as floats, in one copy.

    Obvious code: ``[float(v) for v in values]`` (or ``v.item()``), a sync and a copy per
    value on a GPU. Here: the values are stacked on the device and read at once, one sync
    for all of them.
    """
    arrays = [v.data if isinstance(v, lucid.Tensor) else v for v in values]
    xp = get_array_module(*arrays)
    return as_numpy(xp.stack(arrays)).tolist()
