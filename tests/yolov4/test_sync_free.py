"""Each of ``yolov4.sync_free``'s helpers against the obvious code it stands for: the same
result on NumPy and on the device; and, on the CuPy stand-in, no sync where the obvious code
makes one (the reason each helper exists)."""

import numpy as np
import pytest

import minilucid as lucid
from minilucid import backend
from tests.conftest import DEVICES
from tests.gpu import standin
from yolov4.sync_free import best_per_group, first_true, rank_in_runs, read_together, stable_partition

ON_STANDIN = backend.cupy is standin.cupy
needs_standin = pytest.mark.skipif(not ON_STANDIN, reason="syncs are counted by the CuPy stand-in only")


def masks(rng):
    """Boolean masks of several sizes and densities, the empty, all-false and all-true ones among them."""
    yield np.zeros(0, dtype=bool)
    yield np.zeros(7, dtype=bool)
    yield np.ones(7, dtype=bool)
    for size in (1, 10, 257):
        for density in (0.05, 0.5, 0.95):
            yield rng.random(size) < density


def groups_and_scores(rng):
    """(group, score, num_groups) cases: groups empty, under and over the cap, tied scores."""
    yield np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 3
    for size, num_groups, levels in ((12, 2, 4), (50, 4, 3), (300, 5, 1000)):
        group = rng.integers(0, num_groups - 1, size)  # the last group empty
        group = np.sort(group)  # sorted, as nonzero gives the images
        score = (rng.integers(0, levels, size) / levels).astype(np.float32)  # few levels: many ties
        yield group, score, num_groups


def obvious_best_per_group(group, score, cap, num_groups):
    """A mask per group (a sync each on a GPU): each group's best ``cap`` indices, in order."""
    order = np.argsort(-score, kind="stable")
    return [order[group[order] == g][:cap] for g in range(num_groups)]


def on(device, array):
    return backend.to_device(array, device)


# ----------------------------------------------------------------------------- the same result


@pytest.mark.parametrize("device", DEVICES)
def test_stable_partition_is_the_true_positions_then_the_false_ones(device, rng):
    for mask in masks(rng):
        expected = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
        found = backend.as_numpy(stable_partition(on(device, mask)))
        np.testing.assert_array_equal(found, expected, err_msg=f"mask {mask.astype(int)}")


@pytest.mark.parametrize("device", DEVICES)
def test_first_true_is_flatnonzero_given_the_count(device, rng):
    for mask in masks(rng):
        mask = mask.reshape(-1, 1) if mask.size % 2 else mask.reshape(2, -1)  # 2-D: flat indices come back
        expected = np.flatnonzero(mask)
        for count in {len(expected), len(expected) // 2}:  # all of them, or the first half
            found = backend.as_numpy(first_true(on(device, mask), count))
            np.testing.assert_array_equal(found, expected[:count], err_msg=f"count {count}")


def test_first_true_of_a_loss_target_picks_its_positive_slots():
    """As the loss uses it: an objectness target (N, H, W, A) of 0s and 1s."""
    positive = np.zeros((2, 3, 4, 3), dtype=np.float32)
    positive[0, 1, 2, 0] = positive[0, 1, 2, 2] = positive[1, 0, 3, 1] = 1.0
    index = first_true(positive > 0.5, 3)
    assert [np.unravel_index(i, positive.shape) for i in index] == [(0, 1, 2, 0), (0, 1, 2, 2), (1, 0, 3, 1)]


@pytest.mark.parametrize("device", DEVICES)
def test_rank_in_runs_counts_from_each_runs_start(device, rng):
    cases = [np.zeros(0, dtype=np.int64), np.array([4]), np.array([0, 0, 0]), np.sort(rng.integers(0, 6, 40))]
    for keys in cases:
        expected, previous, rank = [], None, 0
        for key in keys:  # the loop it replaces
            rank = rank + 1 if key == previous else 0
            expected.append(rank)
            previous = key
        found = backend.as_numpy(rank_in_runs(on(device, keys)))
        np.testing.assert_array_equal(found, np.array(expected, dtype=found.dtype), err_msg=f"keys {keys}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cap", [1, 3, 1000])
def test_best_per_group_keeps_each_groups_best_first_then_fills_its_buffer(device, cap, rng):
    for group, score, num_groups in groups_and_scores(rng):
        found = backend.as_numpy(best_per_group(on(device, group), on(device, score), cap, num_groups))
        expected = obvious_best_per_group(group, score, cap, num_groups)
        kept = np.concatenate(expected)
        assert len(found) == min(len(group), num_groups * cap)  # a size the host knows
        assert len(np.unique(found)) == len(found)  # no index twice
        np.testing.assert_array_equal(found[: len(kept)], kept)  # the kept ones first, group by group
        over = found[len(kept) :]  # filler: entries past their group's cap
        assert all(np.sum(group[kept] == group[i]) == cap for i in over)
        for g in range(num_groups):  # what detect's host side reads: a group's first cap rows
            np.testing.assert_array_equal(found[group[found] == g][:cap], expected[g], err_msg=f"group {g}")


def test_best_per_group_cases_include_filler_and_ties(rng):
    """The cases above are not all easy: some buffers end in entries over a cap, some groups
    tie on scores."""
    cases = list(groups_and_scores(rng))
    assert any(min(len(g), n * 3) > sum(min(np.sum(g == k), 3) for k in range(n)) for g, _, n in cases)
    assert any(len(np.unique(s)) < len(s) for _, s, _ in cases)


@pytest.mark.parametrize("device", DEVICES)
def test_read_together_is_a_float_per_value(device):
    values = [lucid.Tensor(np.float32(v), device=device) for v in (0.25, -3.5, 1e-8)]
    values.append(lucid.zeros((), device=device).data)  # a raw array too
    expected = [float(v.data if isinstance(v, lucid.Tensor) else v) for v in values]
    found = read_together(values)
    assert found == expected and all(type(v) is float for v in found)


# ----------------------------------------------------------------------------- the syncs


def counted(function, *args):
    """(result, syncs) of one call on the stand-in."""
    with standin.counting() as counts:
        result = function(*args)
    return result, counts.syncs


@needs_standin
def test_the_helpers_make_no_sync_where_the_obvious_code_makes_one():
    cp = standin.cupy
    mask = cp.asarray(np.array([False, True, True, False, True]))
    keys = cp.asarray(np.array([0, 0, 1, 2, 2, 2]))
    group, score = cp.asarray(np.array([0, 0, 0, 1, 1])), cp.asarray(np.array([0.2, 0.9, 0.5, 0.1, 0.3]))
    cases = [
        (stable_partition, (mask,), lambda m: cp.concatenate([cp.flatnonzero(m), cp.flatnonzero(~m)]), (mask,)),
        (first_true, (mask, 3), cp.flatnonzero, (mask,)),
        (rank_in_runs, (keys,), lambda k: cp.unique(k, return_index=True), (keys,)),
        (best_per_group, (group, score, 2, 2), lambda g, s: obvious_best_per_group(g, s, 2, 2), (group, score)),
    ]
    for helper, args, obvious, obvious_args in cases:
        result, syncs = counted(helper, *args)
        assert syncs == 0, f"{helper.__name__}: {standin.COUNTS.events}"
        assert isinstance(result, cp.ndarray)  # still on the device
        _, obvious_syncs = counted(obvious, *obvious_args)
        assert obvious_syncs >= 1, f"the obvious code of {helper.__name__} should sync"


@needs_standin
def test_read_together_reads_once_where_reading_each_value_syncs_each_time():
    values = [lucid.Tensor(np.float32(v), device="gpu") for v in (1.0, 2.0, 3.0, 4.0)]
    with standin.counting() as counts:
        read_together(values)
    assert (counts.syncs, counts.d2h, counts.d2h_bytes) == (1, 1, [16]), counts.events
    _, syncs = counted(lambda: [float(v.data) for v in values])
    assert syncs == 4
