"""benchmarks/finetune.py: its table of means and spreads, and when a gap is outside the spread."""

from benchmarks import finetune


def results(start, epochs, values):
    return [
        {"start": start, "epochs": epochs, "seed": s, "map50": v, "map": v / 2, "updates": 18}
        for s, v in enumerate(values)
    ]


def test_the_table_gives_mean_and_min_max_over_the_seeds():
    rows = results("scratch", 1, [0.1, 0.2, 0.3]) + results("finetune", 1, [0.4, 0.5, 0.6])
    text = finetune.table(rows, ["scratch", "finetune"])
    assert "| 1 (18) | 0.200 (0.100-0.300) | 0.100 (0.050-0.150) | 0.500 (0.400-0.600) |" in text


def test_a_gap_is_outside_the_spread_only_when_every_seed_of_one_is_above_every_seed_of_the_other():
    apart = results("scratch", 3, [0.1, 0.2, 0.3]) + results("finetune", 3, [0.31, 0.5, 0.6])
    assert "+0.270 (outside the spread)" in finetune.gaps(apart, ["scratch", "finetune"])
    overlapping = results("scratch", 3, [0.1, 0.2, 0.3]) + results("finetune", 3, [0.25, 0.5, 0.6])
    assert "+0.250 (within the spread)" in finetune.gaps(overlapping, ["scratch", "finetune"])
