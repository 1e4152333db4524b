"""python -m yolov4 ablate: rows as switches on a baseline, the table and its spread marks, resumption."""

import json

import pytest
import yaml

from yolov4.demo import DEMO
from yolov4.training.ablation import (
    DEFAULT_ROWS,
    PAPER_COLUMNS,
    SWITCHES,
    ablate,
    baseline_settings,
    build_table,
    columns_of,
    file_rows,
    markdown,
    named_rows,
    slug,
    verdict,
)
from yolov4.training.settings import TrainConfig

# A base that has some freebies on, as a demo might: the baseline must turn them off, and each
# +x must turn its switch on as the base has it.
BASE = {
    **DEMO,
    "model": "small",  # three levels: scale_x_y below has a value for each
    "schedule": "cosine",
    "cls_label_smoothing": 0.05,
    "augment": {**DEMO.get("augment", {}), "mosaic": 0.3},
    "model_options": {**DEMO.get("model_options", {}), "scale_x_y": [1.3, 1.2, 1.1]},
}


def config_of(settings):
    return TrainConfig(**settings)


def test_the_baseline_is_the_base_with_every_switch_off():
    baseline = config_of(baseline_settings(BASE))
    base = config_of(BASE)
    assert (baseline.model, baseline.img, baseline.batch, baseline.lr) == (base.model, base.img, base.batch, base.lr)
    assert baseline.schedule == "steps" and baseline.cls_label_smoothing == 0
    assert baseline.augment_config().mosaic == 0 and not baseline.cmbn and not baseline.dynamic_minibatch
    assert baseline.autoanchor == "off"
    options = baseline.model_options
    assert options["scale_x_y"] == [1.0, 1.0, 1.0] and options["pos_iou_thr"] == 1.0 and options["box_loss"] == "mse"
    assert options["iou_normalizer"] == config_of(BASE).model_options.get("iou_normalizer")  # not a switch: kept
    row = named_rows("baseline", BASE, None)[0]
    assert set(columns_of(row)[c] for c in PAPER_COLUMNS) == {""} and columns_of(row)["loss"] == "MSE"


def differences(a, b):
    """The settings (augment.x and model_options.x spelled out) where two rows differ."""
    flat = []
    for settings in (a, b):
        out = {}
        for key, value in settings.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        flat.append(out)
    return {k for k in set(flat[0]) | set(flat[1]) if flat[0].get(k) != flat[1].get(k)}


@pytest.mark.parametrize(
    ("row", "changed", "column"),
    [
        ("+s", {"model_options.scale_x_y"}, "S"),
        ("+m", {"augment.mosaic"}, "M"),
        ("+it", {"model_options.pos_iou_thr"}, "IT"),
        ("+ls", {"cls_label_smoothing"}, "LS"),
        ("+cbn", {"cmbn", "subdivisions"}, "CBN"),
        ("+ca", {"schedule"}, "CA"),
        ("+dm", {"multiscale", "dynamic_minibatch"}, "DM"),
        ("+oa", {"autoanchor"}, "OA"),
    ],
)
def test_each_named_row_turns_one_switch_on_over_the_baseline(row, changed, column):
    baseline, ours = named_rows(f"baseline,{row}", BASE, None)
    assert differences(baseline.settings, ours.settings) == changed
    cells = columns_of(ours)
    assert [c for c in PAPER_COLUMNS if cells[c]] == [column]
    TrainConfig(**ours.settings)  # a valid config


def test_a_switch_the_base_has_on_comes_back_as_the_base_has_it():
    rows = {row.name: row for row in named_rows("+m,+ls,+s,+it,+cbn", BASE, None)}
    assert rows["+m"].settings["augment"]["mosaic"] == 0.3
    assert rows["+ls"].settings["cls_label_smoothing"] == 0.05
    assert rows["+s"].settings["model_options"]["scale_x_y"] == [1.3, 1.2, 1.1]
    # Switches the base leaves off come on at darknet's settings.
    assert rows["+it"].settings["model_options"]["pos_iou_thr"] == 0.213
    assert rows["+cbn"].settings["subdivisions"] == 2 and rows["+cbn"].settings["cmbn"] is True
    bare = {**BASE, "cls_label_smoothing": 0.0, "augment": {**BASE["augment"], "mosaic": 0.0}}
    mosaic, smoothing = named_rows("+m,+ls", bare, None)
    assert mosaic.settings["augment"]["mosaic"] == 1.0 and smoothing.settings["cls_label_smoothing"] == 0.1


def test_combined_rows_box_losses_and_the_default_set():
    row = named_rows("+m+ls+ciou", BASE, None)[0]
    cells = columns_of(row)
    assert [c for c in PAPER_COLUMNS if cells[c]] == ["M", "LS"] and cells["loss"] == "CIoU"
    assert named_rows("m+ls", BASE, None)[0].name == "+m+ls"  # the + may be left out in front
    assert named_rows("+mosaic", BASE, None)[0].name == "+m"  # long names
    losses = {r.name: columns_of(r)["loss"] for r in named_rows("+giou,+diou,+ciou,+mse", BASE, None)}
    assert losses == {"+giou": "GIoU", "+diou": "DIoU", "+ciou": "CIoU", "+mse": "MSE"}
    names = [r.name for r in named_rows(None, BASE, None)]
    assert names[0] == "baseline" and "+ga" not in names and len(names) == len(DEFAULT_ROWS) - 1
    assert names[-1] == "+s+m+it+oa+ciou"  # the paper's last row, without GA when no GA result is given
    ga = {"lr": 0.001, "augment": {"hue": 0.2}}
    with_ga = {r.name: r for r in named_rows(None, BASE, ga)}
    assert with_ga["+ga"].settings["lr"] == 0.001 and with_ga["+ga"].settings["augment"]["hue"] == 0.2
    assert columns_of(with_ga["+ga"])["GA"] == "✓" and "+s+m+it+ga+oa+ciou" in with_ga


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "baseline,+mosiac",
            r"unknown switch 'mosiac' in row '\+mosiac' \(did you mean mosaic\?\); known: baseline, s ",
        ),
        ("+lss", r"unknown switch 'lss' .*did you mean ls\?"),
        ("+giou+ciou", r"names 2 box losses \(giou, ciou\); a row has one"),
        ("+ga", r"row '\+ga' needs --ga BEST.yaml"),
        ("+m,+m", r"names the row '\+m' twice"),
        ("+", r"row '\+' names no switch"),
    ],
)
def test_bad_row_names_are_one_line_errors(rows, message):
    with pytest.raises(ValueError, match=message) as error:
        named_rows(rows, BASE, None)
    assert "\n" not in str(error.value)


def test_a_rows_file_gives_rows_on_the_baseline_marked_by_what_they_do(tmp_path):
    path = tmp_path / "rows.yaml"
    path.write_text("baseline: {}\nhalf mosaic:\n  augment: {mosaic: 0.5}\ncosine: {schedule: cosine}\n")
    rows = file_rows(path, BASE)
    assert [r.name for r in rows] == ["baseline", "half mosaic", "cosine"]
    assert rows[0].settings == baseline_settings(BASE)
    assert rows[1].settings["augment"] == {**baseline_settings(BASE)["augment"], "mosaic": 0.5}
    assert [c for c in PAPER_COLUMNS if columns_of(rows[1])[c]] == ["M"]
    assert [c for c in PAPER_COLUMNS if columns_of(rows[2])[c]] == ["CA"]
    path.write_text("a: {schedule: [1, 2\n")
    with pytest.raises(ValueError, match=r"rows.yaml: invalid YAML at line"):
        file_rows(path, BASE)
    path.write_text("a: {shedule: cosine}\n")
    with pytest.raises(ValueError, match=r"row 'a': unknown settings \['shedule'\] \(did you mean schedule"):
        file_rows(path, BASE)
    path.write_text("a: {img: 100}\n")
    with pytest.raises(ValueError, match=r"row 'a': TrainConfig.img = 100 is invalid"):
        file_rows(path, BASE)
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping of row name"):
        file_rows(path, BASE)


# ----------------------------------------------------------------------------- the table


def runs(*aps, ap50=0.8, ap75=0.5):
    return [{"seed": i, "map": ap, "map50": ap50, "map75": ap75} for i, ap in enumerate(aps)]


def entry(name, aps, **cells):
    return {
        "name": name,
        "cells": {**dict.fromkeys(PAPER_COLUMNS, ""), "loss": "MSE", "other": "", **cells},
        "runs": aps,
    }


def test_a_difference_inside_the_seeds_spread_is_marked_as_such():
    base = entry("baseline", runs(0.40, 0.44, 0.42))  # mean 0.42, spread 0.04
    close = entry("+m", runs(0.43, 0.45, 0.44), M="✓")  # +0.02: inside the spread
    far = entry("+ls", runs(0.30, 0.31, 0.32), LS="✓")  # -0.11: outside
    up = entry("+ca", runs(0.50, 0.52, 0.51), CA="✓")  # +0.09
    wide = entry("+s", runs(0.30, 0.60, 0.48), S="✓")  # +0.04, but its own spread is 0.30
    assert verdict(close, base) == (pytest.approx(0.02), "within spread")
    assert verdict(far, base) == (pytest.approx(-0.11), "below spread")
    assert verdict(up, base) == (pytest.approx(0.09), "above spread")
    assert verdict(wide, base)[1] == "within spread"
    assert verdict(base, base) == (0.0, "reference")
    one = entry("+oa", runs(0.9))
    assert verdict(one, base) == (pytest.approx(0.48), "one seed: no spread measured")
    assert verdict(entry("+dm", []), base) == (None, "not run yet")

    table = build_table([base, close, far, up, one, entry("+dm", [])], "baseline")
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["baseline"]["stats"]["map"] == {
        "mean": pytest.approx(0.42),
        "min": 0.40,
        "max": 0.44,
        "std": pytest.approx((0.0008 / 3) ** 0.5),
    }
    text = markdown(table)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "| ✓ |" in lines["+m"] and "within spread" in lines["+m"] and "+2.0" in lines["+m"]
    assert "42.0 (40.0-44.0)" in lines["baseline"] and "reference" in lines["baseline"]
    assert "below spread" in lines["+ls"] and "-11.0" in lines["+ls"]
    assert "one seed: no spread measured" in lines["+oa"] and "| 90.0 |" in lines["+oa"]
    assert "| - | - | - | 0 |" in lines["+dm"]
    assert lines["row"].split(" | ")[1:10] == list(PAPER_COLUMNS)
    with pytest.raises(ValueError, match="reference row 'nope'"):
        build_table([base], "nope")


def fake_run(calls):
    def run(settings, out):
        calls.append((settings["seed"], settings.get("cls_label_smoothing", 0)))
        out.mkdir(parents=True, exist_ok=True)
        ap = 0.3 + 0.01 * settings["seed"] + settings.get("cls_label_smoothing", 0)
        return {"map": ap, "map50": ap + 0.3, "map75": ap + 0.1, "seconds": 0.01}

    return run


def test_results_are_written_as_they_come_and_a_rerun_skips_them(tmp_path):
    rows = named_rows("baseline,+ls", DEMO, None)
    calls, said = [], []
    table = ablate(rows, tmp_path / "a", seeds=2, base_seed=5, run=fake_run(calls), say=said.append)
    assert calls == [(5, 0.0), (6, 0.0), (5, 0.1), (6, 0.1)]
    assert sorted(p.name for p in (tmp_path / "a" / "results").iterdir()) == [
        "+ls-seed5.json",
        "+ls-seed6.json",
        "baseline-seed5.json",
        "baseline-seed6.json",
    ]
    assert "left" in said[1] and said[1].startswith("ablate: [1/4] baseline seed 5: AP 0.350")
    assert {row["name"]: row["verdict"] for row in table["rows"]} == {"baseline": "reference", "+ls": "above spread"}
    for name in ("ablation.md", "ablation.json", "ablation.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    stored = json.loads((tmp_path / "a" / "ablation.json").read_text())
    assert [r["seed"] for r in stored["rows"][1]["runs"]] == [5, 6]

    # Killed after one run: that result is kept, the rest run.
    (tmp_path / "a" / "results" / "+ls-seed6.json").unlink()
    calls.clear()
    ablate(rows, tmp_path / "a", seeds=2, base_seed=5, run=fake_run(calls), say=said.append)
    assert calls == [(6, 0.1)]
    calls.clear()
    ablate(rows, tmp_path / "a", seeds=3, base_seed=5, run=fake_run(calls), say=said.append)
    assert calls == [(7, 0.0), (7, 0.1)]  # one more seed: only the new runs

    other = named_rows("baseline,+ls", {**DEMO, "epochs": 1}, None)
    with pytest.raises(ValueError, match=r"baseline-seed5.json was made with other settings \(epochs, eval_every\)"):
        ablate(other, tmp_path / "a", seeds=1, base_seed=5, run=fake_run(calls), say=said.append)


def test_the_command_line_refuses_bad_rows_in_one_line(tmp_path, capsys):
    from yolov4.__main__ import main

    assert main(["ablate", "--rows", "baseline,+mosiac", "--out", str(tmp_path / "x")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "did you mean mosaic?" in error
    bad = tmp_path / "rows.yaml"
    bad.write_text("a: [1\n")
    assert main(["ablate", "--rows", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "invalid YAML" in capsys.readouterr().err
    assert main(["ablate", "--resume", str(tmp_path / "none")]) == 1
    assert "no ablation.json there" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_ablate_baseline_and_ls_for_one_epoch_through_the_command_line(tmp_path):
    """The issue's done-when: python -m yolov4 ablate --rows baseline,+ls --seeds 1 --epochs 1."""
    from yolov4.__main__ import main

    out = tmp_path / "ablate"
    assert main(["ablate", "--rows", "baseline,+ls", "--seeds", "1", "--epochs", "1", "--out", str(out)]) == 0
    for name in ("ablation.md", "ablation.json", "ablation.png"):
        assert (out / name).stat().st_size > 0
    table = json.loads((out / "ablation.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["baseline", "+ls"]
    for row in table["rows"]:
        assert len(row["runs"]) == 1
        for key in ("map", "map50", "map75"):
            assert 0 <= row["runs"][0][key] <= 1
            assert row["stats"][key]["mean"] == row["runs"][0][key]
    assert table["rows"][1]["cells"]["LS"] == "✓" and table["rows"][0]["cells"]["LS"] == ""
    assert table["rows"][1]["settings"]["cls_label_smoothing"] > 0
    assert yaml.safe_load((out / "runs" / "baseline-seed0" / "config.yaml").read_text())["epochs"] == 1
    assert not (out / "runs" / "baseline-seed0" / "last.npz").exists()  # checkpoints are not kept
    assert "| +ls |" in (out / "ablation.md").read_text()
    assert set(SWITCHES) >= {"s", "m", "it", "ga", "ls", "cbn", "ca", "dm", "oa", "mse", "giou", "diou", "ciou"}


def test_the_measured_table_in_the_docs_is_the_commands_on_the_demos_settings(tmp_path):
    """docs/ablation.md's measured table is what ``ablate --seeds 3`` writes from the results kept
    in docs/ablation-run: every row of the default table has its three seeds, each made with the
    demo's settings as they are now (ablate refuses a stored result made with other settings, as
    on a resume), and the page shows every row as the command wrote it; so too for the page's
    second table, the demo's own settings with MSE and with CIoU."""
    from pathlib import Path
    from shutil import copytree

    docs = Path(__file__).resolve().parents[2] / "docs"
    stored = {path.stem for path in (docs / "ablation-run" / "results").glob("*.json")}
    page = (docs / "ablation.md").read_text(encoding="utf-8").splitlines()

    def must_not_train(settings, out):
        raise AssertionError(f"{out.name} is missing from docs/ablation-run/results")

    def rebuilt(rows, name):
        """The table ``ablate`` makes of ``rows`` from a copy of the kept results, training nothing."""
        folder = copytree(docs / "ablation-run", tmp_path / name)
        table = ablate(rows, folder, seeds=3, base_seed=DEMO["seed"], run=must_not_train, say=lambda line: None)
        assert all(len(row["runs"]) == 3 for row in table["rows"])
        return markdown(table).splitlines()[4:]  # the rows, without the lines above the header

    rows = named_rows(None, DEMO, None)
    missing = [row.name for row in rows if f"{slug(row.name)}-seed{DEMO['seed']}" not in stored]
    assert not missing, f"rows of the default table not measured: {missing}"
    written = (docs / "ablation-run" / "ablation.md").read_text(encoding="utf-8").splitlines()
    for line in rebuilt(rows, "ablate"):
        assert line in written, f"docs/ablation-run/ablation.md is not the table its results make: {line}"
        assert line in page, f"docs/ablation.md lacks the measured row {line}"

    # The page's second table: the demo's own settings (S, IT and CA on) with MSE and with CIoU.
    for line in rebuilt(named_rows("baseline,+s+it+ca,+s+it+ca+ciou", DEMO, None), "demo-rows"):
        assert line in page, f"docs/ablation.md lacks the measured row {line}"
