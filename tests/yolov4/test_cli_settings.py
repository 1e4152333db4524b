"""The command line's training settings are TrainConfig's fields: one option per field, whose
type, help and shown default come from the field, and a flag given wins over --config's value,
which wins over the field's default."""

import ast
import dataclasses
import re
from pathlib import Path

import pytest

import yolov4.__main__ as cli
from yolov4.__main__ import build_parser, main, shown_default
from yolov4.demo import DEMO
from yolov4.training.settings import TrainConfig, coerce, field_types

FIELDS = dataclasses.fields(TrainConfig)
# What each command that takes training settings leaves to options of its own.
OWN = {"train": (), "ablate": ("out", "exist_ok"), "evolve": ("out", "exist_ok", "epochs")}


def field_default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def setting_actions(command: str) -> dict:
    """The options of ``command`` by the TrainConfig field they set."""
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    names = parser.get_default("config_fields")  # what add_config_arguments added
    return {a.dest: a for a in parser._actions if a.dest in names and a.option_strings}, parser


def read_back(f: dataclasses.Field, shown: str):
    """A default as the help shows it, read as the field's type."""
    kind = field_types(TrainConfig)[f.name]
    if isinstance(field_default(f), dict):
        return dict(pair.split("=", 1) for pair in shown.split())
    return coerce(f.name, kind, shown.split() if isinstance(field_default(f), tuple) else shown)


@pytest.mark.parametrize("command", ["train", "ablate", "evolve"])
def test_every_field_is_an_option_whose_help_shows_its_default(command):
    actions, parser = setting_actions(command)
    assert set(actions) == {f.name for f in FIELDS} - set(OWN[command])
    starts_from = {} if command == "train" else DEMO  # ablate and evolve start from the demo's settings
    rendered = parser.format_help()
    for f in FIELDS:
        if f.name in OWN[command]:
            continue
        action = actions[f.name]
        assert action.option_strings[0] == "--" + f.name.replace("_", "-") and action.option_strings[0] in rendered
        assert action.default is None, f"--{f.name}: a default of its own would hide --config's value"
        assert action.help.replace("%%", "%").startswith(f.metadata["help"]), f.name
        shown = re.search(r"\(default: (.*)\)$", action.help)
        expected = starts_from.get(f.name, field_default(f))
        if shown_default(expected) is None:
            assert shown is None, f"--{f.name} shows a default, but {expected!r} has none to show"
            continue
        assert shown is not None, f"--{f.name} does not show its default {expected!r}"
        value = read_back(f, shown.group(1).replace("%%", "%"))
        if isinstance(expected, dict):
            expected = {k: str(v) for k, v in expected.items()}
        assert value == expected, f"--{f.name} shows {shown.group(1)}, the default is {expected!r}"


def test_the_demo_takes_its_epochs_device_and_processes_as_training_settings():
    actions, _ = setting_actions("demo")
    assert set(actions) == {"epochs", "device", "processes"}
    assert all(a.default is None for a in actions.values())
    assert f"(default: {DEMO['epochs']})" in actions["epochs"].help and "(default: cpu)" in actions["device"].help
    assert "(default: 2)" in actions["processes"].help  # the demo's own, not the trainer's 1


def test_no_training_default_is_typed_in_the_command_line_module():
    """A default written into __main__.py's help ("default: 0.0013") goes stale when the field changes."""
    literals = [
        node.value
        for node in ast.walk(ast.parse(Path(cli.__file__).read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for f in FIELDS:
        shown = shown_default(field_default(f))
        if shown is not None:
            typed = [text for text in literals if f"(default: {shown})" in text]
            assert not typed, f"__main__.py types TrainConfig.{f.name}'s default: {typed}"


class Stop(BaseException):  # not an Exception: main() does not turn it into an exit status
    pass


@pytest.fixture
def trained(monkeypatch):
    """The TrainConfig that ``train`` would train with, instead of training."""
    import yolov4.training.trainer

    made = []

    def record(config, **options):
        made.append(config)
        raise Stop

    monkeypatch.setattr(yolov4.training.trainer, "Trainer", record)

    def run(argv):
        with pytest.raises(Stop):
            main(["train", *argv])
        return made[-1]

    return run


def test_a_flag_wins_over_the_config_file_which_wins_over_the_default(trained, tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("lr: 0.004\nepochs: 5\nmultiscale: true\naugment: {mosaic: 0.5, flip: 0.1}\n")
    out = ["--out", str(tmp_path / "run")]
    from_file = trained(["--config", str(config), *out])
    assert (from_file.lr, from_file.epochs, from_file.batch, from_file.multiscale) == (0.004, 5, 8, True)
    flags = [
        *("--lr", "0.01", "--no-multiscale", "--augment", "flip=0", "--steps", "0.5", "0.7"),
        *("--model-options", "iou_normalizer=0.5", "anchors=[[[10, 14], [23, 27], [37, 58]]]"),
    ]
    given = trained(["--config", str(config), *out, *flags, "--model", "yolov4-tiny"])
    assert (given.lr, given.epochs, given.batch, given.multiscale) == (0.01, 5, 8, False)
    assert given.augment == {"mosaic": 0.5, "flip": 0.0}  # one key replaced, the file's others kept
    assert given.steps == (0.5, 0.7)
    assert given.model_options["iou_normalizer"] == 0.5
    assert given.model_options["anchors"] == [[[10, 14], [23, 27], [37, 58]]]
    assert trained(out).lr == TrainConfig().lr


def test_a_setting_in_a_flag_is_checked_as_in_a_file(capsys):
    said = cli_error(["train", "--augment", "mosaic"], capsys)
    assert said == "argument --augment: expected KEY=VALUE, got mosaic (see yolov4 train --help)"
    said = cli_error(["train", "--optimizer", "lion"], capsys)
    assert said.startswith("argument --optimizer: invalid choice: 'lion'")
    assert main(["train", "--augment", "mosiac=0.5"]) == 1
    assert "TrainConfig.augment: unknown settings ['mosiac'] (did you mean mosaic" in capsys.readouterr().err


def cli_error(argv, capsys) -> str:
    """What argparse says to ``argv``: exit status 2 and one line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1, error
    return error.removeprefix("yolov4: error: ").strip()


@pytest.mark.parametrize("command", ["ablate", "evolve"])
def test_ablate_and_evolve_put_the_settings_given_on_the_demos(command):
    args = build_parser().parse_args([command, "--lr", "0.01", "--augment", "mosaic=0.5", "--out", "x", "--seed", "4"])
    base, said = cli.base_settings(args)
    assert base == {**DEMO, "lr": 0.01, "seed": 4, "augment": {**DEMO["augment"], "mosaic": 0.5}}
    assert "out" not in base  # --out is where the search writes, not a training setting
    assert said.startswith("settings: the demo's, yolov4/configs/demo.yaml, with lr 0.01")


def test_evolves_epochs_are_each_trials_and_the_bases_stay():
    args = build_parser().parse_args(["evolve", "--epochs", "2"])
    assert args.epochs == 2 and cli.base_settings(args)[0]["epochs"] == DEMO["epochs"]


def test_the_model_fields_a_run_sets_are_the_models_own():
    """cls_label_smoothing, drop_block and cmbn are YOLO_V4Config fields that TrainConfig sets for
    the run: their default and type are the model's, and model_options cannot set them too."""
    from yolov4.model_config import YOLO_V4Config
    from yolov4.training.settings import MODEL_SETTINGS, SET_BY_TRAIN_CONFIG

    assert set(MODEL_SETTINGS) == {"cls_label_smoothing", "drop_block", "cmbn"}
    model = {f.name: f for f in dataclasses.fields(YOLO_V4Config)}
    for name in MODEL_SETTINGS:
        ours = TrainConfig.__dataclass_fields__[name]
        assert ours.default == model[name].default and name in SET_BY_TRAIN_CONFIG
        assert field_types(TrainConfig)[name] == field_types(YOLO_V4Config)[name]
