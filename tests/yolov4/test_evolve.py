"""python -m yolov4 evolve: bounded seeded mutation, resumable trials, best.yaml for train --config."""

import json

import numpy as np
import pytest

from yolov4.demo import DEMO
from yolov4.training.ablation import ga_settings
from yolov4.training.evolve import GENES, current_values, evolve, fitness, mutate, parse_keys
from yolov4.training.settings import TrainConfig


def test_mutation_stays_in_bounds_and_is_seeded():
    keys = list(GENES)
    for start in ({k: GENES[k].low for k in keys}, {k: GENES[k].high for k in keys}):
        values = dict(start)
        rng = np.random.default_rng(0)
        for _ in range(300):  # a long walk with a large step leans on the clipping
            values = mutate(values, rng, sigma=0.5)
            for key, value in values.items():
                assert GENES[key].low <= value <= GENES[key].high, (key, value)
        assert values != start
    middle = {k: (GENES[k].low + GENES[k].high) / 2 for k in keys}
    a = mutate(middle, np.random.default_rng([7, 1, 3]))
    assert a == mutate(middle, np.random.default_rng([7, 1, 3]))
    assert a != mutate(middle, np.random.default_rng([8, 1, 3]))
    assert a != middle
    lr = GENES["lr"]
    assert lr.from_unit(lr.to_unit(0.004)) == pytest.approx(0.004, rel=1e-5)  # log scale round trip
    assert lr.from_unit(2.0) == lr.high and lr.from_unit(-1.0) == lr.low


def test_keys_default_to_what_the_optimizer_uses_and_unknown_ones_are_refused():
    adam = parse_keys(None, {**DEMO, "optimizer": "adam"})
    assert "momentum" not in adam and "lr" in adam and "mosaic" in adam
    assert "momentum" in parse_keys(None, {**DEMO, "optimizer": "sgd"})
    assert parse_keys("lr, hue", DEMO) == ["lr", "hue"]
    with pytest.raises(ValueError, match=r"--keys: unknown settings \['hues'\]; known: lr, momentum"):
        parse_keys("lr,hues", DEMO)
    values = current_values({**DEMO, "lr": 0.003, "augment": {"hue": 0.2}}, ["lr", "hue", "saturation"])
    assert values == {"lr": 0.003, "hue": 0.2, "saturation": 1.5}  # saturation: AugmentConfig's default


def scored_by_lr(calls):
    """A cheap fitness for the search's plumbing: higher lr is fitter."""

    def run(settings, out):
        calls.append(settings)
        score = settings["lr"] * 10
        return {"map": score, "map50": score, "map75": score, "seconds": 0.0}

    return run


BASE = {**DEMO, "optimizer": "sgd", "lr": 0.002}


def test_trials_are_seeded_resumable_and_mutate_the_fittest(tmp_path):
    keys = ["lr", "momentum", "hue"]
    calls = []
    said = []
    records = evolve(
        BASE, keys, tmp_path / "a", generations=2, population=3, seed=4, run=scored_by_lr(calls), say=said.append
    )
    assert len(calls) == 6 and [r["trial"] for r in records] == list(range(6))
    assert all(c["epochs"] == 1 for c in calls)  # trials are short; best.yaml keeps the base's epochs
    assert records[0]["values"] == current_values(BASE, keys)  # trial 0: the base itself
    fittest_first = max(records[:3], key=lambda r: r["fitness"])
    assert [r["parent"] for r in records[3:]] == [fittest_first["trial"]] * 3
    assert all(r["fitness"] == pytest.approx(fitness(r)) for r in records)
    lines = (tmp_path / "a" / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line)["trial"] for line in lines] == list(range(6))
    csv = (tmp_path / "a" / "trials.csv").read_text().splitlines()
    assert csv[0].startswith("trial,generation,parent,fitness") and csv[0].endswith("lr,momentum,hue") and len(csv) == 7

    # The same seed in another folder draws the same trials; another seed does not.
    again = evolve(
        BASE, keys, tmp_path / "b", generations=2, population=3, seed=4, run=scored_by_lr([]), say=said.append
    )
    assert [r["values"] for r in again] == [r["values"] for r in records]
    other = evolve(
        BASE, keys, tmp_path / "c", generations=1, population=3, seed=5, run=scored_by_lr([]), say=said.append
    )
    assert [r["values"] for r in other[1:]] != [r["values"] for r in records[1:3]]

    # A rerun skips every finished trial; one more generation runs only its own trials.
    calls.clear()
    evolve(BASE, keys, tmp_path / "a", generations=2, population=3, seed=4, run=scored_by_lr(calls), say=said.append)
    assert calls == []
    lines.pop()  # as if killed before trial 5 was written
    (tmp_path / "a" / "trials.jsonl").write_text("\n".join(lines) + "\n")
    records = evolve(
        BASE, keys, tmp_path / "a", generations=3, population=3, seed=4, run=scored_by_lr(calls), say=said.append
    )
    assert len(calls) == 4 and [r["trial"] for r in records] == list(range(9))
    with pytest.raises(ValueError, match="holds a search with other seed"):
        evolve(
            BASE, keys, tmp_path / "a", generations=3, population=3, seed=9, run=scored_by_lr(calls), say=said.append
        )


def test_best_yaml_loads_as_a_train_config_with_the_best_trial_values(tmp_path):
    keys = ["lr", "mosaic", "iou_normalizer"]
    records = evolve(
        BASE, keys, tmp_path, generations=2, population=3, seed=1, run=scored_by_lr([]), say=lambda s: None
    )
    best = max(records, key=lambda r: r["fitness"])
    assert best["values"]["lr"] == max(r["values"]["lr"] for r in records)
    config = TrainConfig.from_file(tmp_path / "best.yaml")
    assert config.lr == best["values"]["lr"]
    assert config.augment["mosaic"] == best["values"]["mosaic"]
    assert config.model_options["iou_normalizer"] == best["values"]["iou_normalizer"]
    assert config.epochs == TrainConfig(**BASE).epochs  # the base's length, not the 1-epoch trials'
    assert (config.model, config.img, config.optimizer) == (BASE["model"], BASE["img"], "sgd")
    assert f"trial {best['trial']}" in (tmp_path / "best.yaml").read_text().splitlines()[0]
    # ablate --ga takes the evolved settings, and only those, from it.
    evolved = ga_settings(tmp_path / "best.yaml")
    assert evolved == {
        "lr": best["values"]["lr"],
        "augment": {"mosaic": best["values"]["mosaic"]},
        "model_options": {"iou_normalizer": best["values"]["iou_normalizer"]},
    }


def test_evolve_end_to_end_through_the_command_line(tiny_dataset, tmp_path):
    from yolov4.__main__ import main

    out = tmp_path / "evolve"
    args = ["evolve", "--data", str(tiny_dataset), "--img", "64", "--epochs", "1", "--population", "2"]
    assert main([*args, "--generations", "1", "--keys", "lr,hue", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(0 <= r["map"] <= 1 and 0 <= r["map50"] <= 1 for r in records)
    config = TrainConfig.from_file(out / "best.yaml")
    best = max(records, key=lambda r: (r["fitness"], -r["trial"]))
    assert (config.lr, config.augment["hue"], config.data, config.img) == (
        best["values"]["lr"],
        best["values"]["hue"],
        str(tiny_dataset),
        64,
    )
    assert not list((out / "trials").glob("*/last.npz"))
    assert main([*args, "--generations", "1", "--keys", "lr,hue", "--resume", str(out)]) == 0  # nothing left to run
    assert len((out / "trials.jsonl").read_text().splitlines()) == 2
    assert main(["evolve", "--keys", "lr,hues", "--out", str(tmp_path / "x")]) == 1
