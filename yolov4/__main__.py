"""``python -m yolov4`` (or ``yolov4``): train, evaluate, detect, anchors, tile, export, partial, demo,
ablate, evolve.

Every command has ``--help``. A mistake in the input (a check's ValueError, a file the system
refuses) is one line, ``yolov4: error: ...``, exit status 1; anything else is a bug in yolov4,
shown with its traceback and a line asking to report it. A command that writes checks where
it writes before its long work, and never writes over one of its inputs.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import traceback
from dataclasses import MISSING
from pathlib import Path
from typing import Any, get_origin

from minilucid.serialization import write_text_atomically
from yolov4.files import check_not_inputs, check_writable


def darknet_weights_alone(args: argparse.Namespace) -> bool:
    """Whether --weights names a darknet .weights file (one of darknet's released files) rather
    than a training checkpoint."""
    return bool(getattr(args, "weights", None)) and Path(args.weights).suffix == ".weights"


def _model_from_args(args: argparse.Namespace):
    """(model, class names) from --weights CKPT, --darknet CFG WEIGHTS, or --weights with one of
    darknet's released .weights files (its cfg and COCO's class names come with the package)."""
    if getattr(args, "darknet", None) and getattr(args, "weights", None):
        raise ValueError("give --weights CKPT or --darknet CFG WEIGHTS, not both")
    released = darknet_weights_alone(args)
    if getattr(args, "names", None) and not (getattr(args, "darknet", None) or released):
        raise ValueError("--names is for a darknet model; a checkpoint (--weights) carries its own class names")
    if getattr(args, "darknet", None) or released:
        from yolov4.darknet.weights import darknet_file, load_darknet
        from yolov4.data.dataset import read_class_names

        files = [args.weights] if released else args.darknet
        names = read_class_names(args.names) if getattr(args, "names", None) else None
        model = load_darknet(*files).to(args.device).eval()
        classes = model.config.num_classes
        if names is not None and len(names) != classes:
            raise ValueError(
                f"--names {args.names} has {len(names)} class names; the model {files[0]} has {classes} classes"
            )
        if names is None and released:  # darknet's released files are trained on COCO's classes
            names = read_class_names(darknet_file("coco.names"))
        return model, names or [str(k) for k in range(classes)]
    if not getattr(args, "weights", None):
        raise ValueError("give --weights CKPT (a training checkpoint) or --darknet CFG WEIGHTS")
    from yolov4.training.checkpoint import load_trained

    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.weights}")
    model, names, _ = load_trained(args.weights, args.device)
    return model, names


def resumed_config(checkpoint: str, given: dict):
    """The TrainConfig stored in ``checkpoint`` with the ``given`` settings on top, continuing in
    the checkpoint's folder; a one-line ValueError for given settings that cannot change."""
    from yolov4.training.checkpoint import RUN_KEYS, WEIGHTS_KEYS, read_checkpoint
    from yolov4.training.settings import TrainConfig, changes_on_resume, stored_config

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    folder = Path(checkpoint).parent
    if "out" in given and Path(given["out"]).resolve() != folder.resolve():
        raise ValueError(f"--resume continues in the checkpoint's folder {folder}, not --out {given['out']}")
    stored = stored_config(read_checkpoint(checkpoint, (*WEIGHTS_KEYS, *RUN_KEYS)))
    config = TrainConfig(**{**stored, **given, "out": str(folder), "exist_ok": True})
    changes_on_resume(config, stored, checkpoint)  # refused before any data is read
    return config


def train_command(args: argparse.Namespace) -> None:
    from yolov4.training.settings import TrainConfig, merge_settings, read_settings
    from yolov4.training.trainer import Trainer

    given = merge_settings(read_settings(args.config) if args.config else {}, given_settings(args))
    config = resumed_config(args.resume, given) if args.resume else TrainConfig(**given)
    if config.data is not None and not Path(config.data).exists():
        raise FileNotFoundError(f"no dataset at {config.data}")
    if config.val is not None and not Path(config.val).exists():
        raise FileNotFoundError(f"no validation set at {config.val}")
    inputs = (args.config,) if args.config else ()
    trainer = Trainer(config, progress=not args.quiet, resuming=bool(args.resume), inputs=inputs)
    if args.resume:
        trainer.resume(args.resume)
        print(f"resuming {args.resume} at epoch {trainer.epoch + 1}")
    trainer.fit()
    print(f"checkpoints, log.jsonl and curves.png are in {trainer.out}")


METRIC_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large")


def print_metrics(metrics: dict) -> None:
    labels = ("mAP@[.5:.95]", "mAP@0.5", "mAP@0.75", "AP small", "AP medium", "AP large")
    for key, label in zip(METRIC_KEYS, labels, strict=True):
        print(f"{label:>14}  {metrics[key]:.4f}")
    print(f"{'VOC AP@0.5':>14}  {metrics['voc_map50']:.4f} (11-point {metrics['voc07_map50']:.4f})")
    for name, value in metrics["per_class"].items():
        print(f"{'AP ' + name:>14}  {value:.4f}")


def eval_outputs(args: argparse.Namespace) -> None:
    """Check, before any work, that eval can write --out and --plots, and over no input."""
    outputs = [check_writable(args.out)] if args.out else []
    if args.plots:
        outputs += [check_writable(args.plots, folder=True) / name for name in ("pr_curve.png", "confusion_matrix.png")]
    check_not_inputs(outputs, [args.gt, args.pred, args.weights, *(args.darknet or ()), args.names])


def eval_command(args: argparse.Namespace) -> None:
    eval_outputs(args)
    if args.gt or args.pred:
        if not (args.gt and args.pred):
            raise ValueError("--gt and --pred go together")
        for_a_model = [f"--{k}" for k in ("data", "split", "weights", "darknet", "names", "plots") if getattr(args, k)]
        if for_a_model:
            raise ValueError(f"--gt and --pred score a detections file; {', '.join(for_a_model)} are for a model")
        for path in (args.gt, args.pred):
            if not Path(path).is_file():
                raise FileNotFoundError(f"no file at {path}")
        from yolov4.evaluation.metrics import coco_metrics_from_files

        metrics = coco_metrics_from_files(args.gt, args.pred)
    else:
        if not args.data:
            raise ValueError("give --data PATH with --weights CKPT, or --gt GT.json --pred PRED.json")
        if not Path(args.data).exists():
            raise FileNotFoundError(f"no dataset at {args.data}")
        from yolov4.data.formats import has_split, read_dataset
        from yolov4.evaluation.evaluate import evaluate_model

        model, names = _model_from_args(args)
        split = args.split or next((s for s in ("val", "test") if has_split(args.data, s)), None)
        dataset = read_dataset(args.data, split)
        if args.darknet and not args.names:  # unnamed classes: their number must agree
            if len(names) != dataset.num_classes:
                raise ValueError(f"the model has {len(names)} classes, {args.data} has {dataset.num_classes}")
        else:  # scored by name: the data relabelled to the weights' order, or refused
            dataset.use_class_order(names, args.weights or args.names)
        print(f"evaluating {len(dataset)} images from {dataset.source}")
        sliced = {"tile": args.tile, "overlap": args.overlap} if args.tile is not None else {}
        if sliced:
            print(f"sliced: {args.tile}-pixel tiles, overlap {args.overlap:g}, and the whole image, each at {args.img}")
        metrics = evaluate_model(model, dataset, args.img, plots=args.plots, letterbox=not args.stretch, **sliced)
    print_metrics(metrics)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(
            args.out,
            json.dumps({k: metrics[k] for k in (*METRIC_KEYS, "per_class", "voc_map50", "voc07_map50")}, indent=2),
        )
        print(f"metrics written to {args.out}")


def picture_names(images: list[str], out: Path, others: tuple = ()) -> list[str]:
    """A distinct ``stem.png`` for each image (``stem_2.png``, ... where stems repeat), none of
    them the path of an input image or of the ``other`` inputs."""
    inputs, used, names = {Path(p).resolve() for p in (*images, *others)}, set(), []
    for path in images:
        stem, number = Path(path).stem, 2
        name = f"{stem}.png"
        while name in used or (out / name).resolve() in inputs:
            name, number = f"{stem}_{number}.png", number + 1
        used.add(name)
        names.append(name)
    return names


def coco_ids(data: str, images: list[str], names: list[str]) -> tuple[list[int], list[int]]:
    """(image id of each image, category id of each class) from a COCO JSON: images are matched
    by their file_name (with its folders, if it has any) and classes by category name."""
    if not data.endswith(".json"):
        raise ValueError(f"predict --data takes a COCO .json (for its image and category ids), not {data}")
    if not Path(data).is_file():
        raise FileNotFoundError(f"no COCO file at {data}")
    from yolov4.data.coco import coco_content

    content = coco_content(data)
    by_name = {str(c["name"]): c["id"] for c in content["categories"]}
    if sorted(by_name) != sorted(names):
        raise ValueError(f"the model's classes {names} are not the categories of {data}: {sorted(by_name)}")
    image_ids = []
    for path in images:
        parts = Path(path).resolve().parts
        found = [
            i["id"]
            for i in content["images"]
            if parts[-len(Path(str(i.get("file_name"))).parts) :] == Path(str(i.get("file_name"))).parts
        ]
        if len(found) != 1:
            raise ValueError(f"{path} is {'not among' if not found else 'more than once in'} the images of {data}")
        image_ids.append(found[0])
    return image_ids, [by_name[n] for n in names]


def image_files(arguments: list[str]) -> list[str]:
    """The image files that predict's arguments name: a file as given, a folder's images (sorted;
    not those in its subfolders), a glob pattern's images (sorted), for shells that leave it."""
    from yolov4.data.images import IMAGE_SUFFIXES

    files = []
    for argument in arguments:
        if Path(argument).is_dir():
            found, what = [str(p) for p in Path(argument).iterdir()], f"the folder {argument}"
        elif not Path(argument).exists() and any(c in argument for c in "*?["):
            found, what = glob.glob(argument, recursive=True), f"the pattern {argument}"
        elif not Path(argument).is_file():
            raise ValueError(f"{argument}: no such image file or folder")
        else:
            files.append(argument)
            continue
        images = sorted(p for p in found if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
        if not images:
            raise ValueError(f"no images in {what} (looked for {', '.join(IMAGE_SUFFIXES)} files)")
        files += images
    return files


def predict_command(args: argparse.Namespace) -> None:
    from yolov4.boxes import NMSSettings
    from yolov4.data.images import read_image
    from yolov4.evaluation.draw import draw_detections
    from yolov4.inference import detect_images
    from yolov4.tiles import detect_tiled
    from yolov4.training.runs import run_folder

    settings = NMSSettings(args.conf, args.iou)  # --conf 1 refused before any work
    images = image_files(args.images)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; name a folder")
    out = check_writable(run_folder(args.out, args.exist_ok), folder=True)
    inputs = (args.weights, *(args.darknet or ()), args.names, args.data)
    check_not_inputs([out / "detections.json"], [*images, *inputs])
    model, names = _model_from_args(args)
    if args.data:
        image_ids, category_ids = coco_ids(args.data, images, names)
    else:
        image_ids, category_ids = list(range(1, len(images) + 1)), list(range(1, len(names) + 1))
    out.mkdir(parents=True, exist_ok=True)
    records = []
    pictures = picture_names(images, out, tuple(p for p in inputs if p))
    for path, image_id, picture in zip(images, image_ids, pictures, strict=True):
        image = read_image(path)
        if args.tile is not None:
            found = detect_tiled(model, [image], args.img, args.tile, args.overlap, settings)[0]
        else:
            found = detect_images(model, [image], args.img, settings, letterbox=not args.stretch)[0]
        draw_detections(image, found, names).save(out / picture)
        for d in found:
            x1, y1, x2, y2 = d["box"]
            records.append(
                {
                    "image_id": image_id,
                    "file_name": Path(path).name,
                    "category_id": category_ids[d["class_id"]],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": d["score"],
                }
            )
        print(f"{path}: {len(found)} objects")
    write_text_atomically(out / "detections.json", json.dumps(records))
    print(f"annotated images and detections.json (COCO format) are in {out}")


def anchors_command(args: argparse.Namespace) -> None:
    from yolov4.anchors import anchor_layout, box_sizes, dataset_anchors, default_anchors, mean_best_iou
    from yolov4.data.formats import has_split, read_dataset

    layout = anchor_layout(args.model)
    k = args.n if args.n is not None else sum(layout)
    if k < len(layout) or k % len(layout):
        raise ValueError(
            f"-n {k} does not split evenly into {args.model}'s {len(layout)} output levels "
            f"(give a multiple of {len(layout)}; the model's own layout is {' + '.join(map(str, layout))})"
        )
    if not Path(args.data).exists():
        raise FileNotFoundError(f"no dataset at {args.data}")
    split = args.split or ("train" if has_split(args.data, "train") else None)
    dataset = read_dataset(args.data, split)
    anchors, mean_iou = dataset_anchors(dataset, args.img, k, levels=len(layout))
    ours = mean_best_iou(box_sizes(dataset, args.img), default_anchors(args.model))
    print(f"mean IoU of the boxes at --img {args.img} with their best anchor:")
    print(f"  {mean_iou:.3f} with the new anchors below, {ours:.3f} with {args.model}'s default anchors")
    print(f"anchors (w, h) for {args.model}, {len(layout)} levels x {k // len(layout)}, finest stride first,")
    print("for YOLO_V4Config(anchors=...):")
    print(json.dumps(anchors))


def tile_command(args: argparse.Namespace) -> None:
    from yolov4.tiles import write_tiles

    if not Path(args.data).exists():
        raise FileNotFoundError(f"no dataset at {args.data}")
    counts = write_tiles(args.data, args.out, args.size, args.overlap, args.min_visible, args.cut, args.val)
    for split, (images, tiles, boxes) in counts.items():
        print(f"{split}: {images} images -> {tiles} tiles of {args.size} px with {boxes} boxes")
    print(f"a YOLO dataset is in {args.out} (train on it with: python -m yolov4 train --data {args.out})")


def export_command(args: argparse.Namespace) -> None:
    from yolov4.darknet.weights import save_darknet

    cfg, weights = (check_writable(path) for path in args.darknet_out)
    if cfg.resolve() == weights.resolve():
        raise ValueError(f"--darknet names one file, {cfg}, for both the .cfg and the .weights")
    for path, other in ((cfg, weights), (weights, cfg)):
        if path.resolve() in other.resolve().parents:
            raise ValueError(f"--darknet writes {other} into {path}, which it would then write as a file")
    check_not_inputs([cfg, weights], [args.weights])
    model, _ = _model_from_args(args)
    cfg.parent.mkdir(parents=True, exist_ok=True)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_darknet(model, cfg, weights, args.img, args.img)
    print(f"wrote {cfg} and {weights}")


def summary_command(args: argparse.Namespace) -> None:
    from yolov4.darknet.summary import summary
    from yolov4.model import build_model

    print(summary(build_model(args.model, args.classes), args.img))


def demo_command(args: argparse.Namespace) -> None:
    from yolov4.demo import run_demo

    run_demo(args.out, **given_settings(args))


def base_settings(args: argparse.Namespace) -> tuple[dict, str]:
    """(the settings ablate and evolve start from, a line saying what they are): the demo's
    (yolov4/configs/demo.yaml, read now) or --config's, with the training settings given on top."""
    from yolov4.demo import DEMO, DEMO_CONFIG
    from yolov4.training.settings import merge_settings, read_settings

    settings = read_settings(args.config) if args.config else dict(DEMO)
    given = given_settings(args)
    for key in ("data", "val"):
        if given.get(key) is not None and not Path(given[key]).exists():
            raise FileNotFoundError(f"no {'dataset' if key == 'data' else 'validation set'} at {given[key]}")
    source = args.config or f"the demo's, {DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[2])}"
    said = ", ".join(f"{k} {v}" for k, v in given.items())
    merged = merge_settings(settings, given)
    data = merged.get("data") or "the built-in shapes dataset"
    return merged, f"settings: {source}" + (f", with {said}" if said else "") + f"; data: {data}"


def search_folder(args: argparse.Namespace, marker: str) -> Path:
    """Where ablate or evolve writes: --resume FOLDER (an earlier run's folder, holding
    ``marker``), else --out, numbered where it exists unless --exist-ok."""
    from yolov4.training.runs import run_folder

    if args.resume:
        folder = Path(args.resume)
        if not (folder / marker).exists():
            raise ValueError(f"--resume {folder}: no {marker} there, so no earlier {args.command} run to continue")
        return check_writable(folder, folder=True)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; name a folder")
    return check_writable(run_folder(args.out, args.exist_ok), folder=True)


def ablate_command(args: argparse.Namespace) -> None:
    from yolov4.training.ablation import ablate, file_rows, ga_settings, named_rows

    base, said = base_settings(args)
    ga = ga_settings(args.ga) if args.ga else None
    rows_file = args.rows is not None and (args.rows.endswith((".yaml", ".yml")) or Path(args.rows).is_file())
    if rows_file:
        if args.ga:
            raise ValueError("--ga is for named rows (+ga); a rows file sets every row's settings itself")
        rows = file_rows(args.rows, base)
    else:
        rows = named_rows(args.rows, base, ga)
    folder = search_folder(args, "ablation.json")
    outputs = [folder / name for name in ("ablation.md", "ablation.json", "ablation.png")]
    check_not_inputs(outputs, [args.config, args.ga, args.rows if rows_file else None, base.get("data")])
    seed = int(base.get("seed", 0))
    note = f"python -m yolov4 ablate: {said}; the baseline is them with every switch of the table off."
    ablate(rows, folder, args.seeds, seed, run=None, note=note)


def evolve_command(args: argparse.Namespace) -> None:
    from yolov4.training.evolve import evolve, parse_keys

    base, said = base_settings(args)
    keys = parse_keys(args.keys, base)
    folder = search_folder(args, "evolve.json")
    outputs = [folder / name for name in ("best.yaml", "trials.jsonl", "trials.csv", "evolve.json")]
    check_not_inputs(outputs, [args.config, base.get("data")])
    print(f"evolve: {said}; evolving {', '.join(keys)}")
    evolve(base, keys, folder, args.generations, args.population, args.epochs, int(base.get("seed", 0)))


def partial_command(args: argparse.Namespace) -> None:
    from yolov4.darknet.weights import partial

    check_not_inputs([check_writable(args.out)], [args.cfg, args.weights])
    written = partial(args.cfg, args.weights, args.out, args.layers)
    print(f"wrote {args.out}: the {written} conv layers among the first {args.layers} layers of {args.cfg}, seen 0")


def augment_gallery_command(args: argparse.Namespace) -> None:
    from yolov4.data.gallery import augment_gallery
    from yolov4.data.splits import training_set
    from yolov4.evaluation.draw import image_format

    image_format(check_writable(args.out))
    check_not_inputs([args.out], [args.data])
    if args.data and not Path(args.data).exists():
        raise FileNotFoundError(f"no dataset at {args.data}")
    dataset = training_set(args.data) if args.data else None  # the images training would see
    check_not_inputs([args.out], [path for path, _ in dataset.items] if dataset else [])
    path = augment_gallery(args.out, dataset, seed=args.seed, size=args.size)
    print(f"wrote {path}")


def input_size(text: str) -> int:
    """An --img value: the network's input size, a positive multiple of 32."""
    size = int(text)
    if size <= 0 or size % 32:
        raise argparse.ArgumentTypeError(f"the input size must be a positive multiple of 32, got {text}")
    return size


def fraction(text: str) -> float:
    """A --conf or --iou value: a threshold in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a threshold between 0 and 1, got {text}")
    return value


def seed(text: str) -> int:
    """A --seed: a whole number >= 0, as NumPy's generators take."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}")
    return value


def tile_size(text: str) -> int:
    """An augment-gallery --size: pixels, enough to show a mosaic's four corners."""
    from yolov4.data.gallery import MIN_TILE

    size = int(text)
    if size < MIN_TILE:
        raise argparse.ArgumentTypeError(f"the tile size must be at least {MIN_TILE} pixels, got {text}")
    return size


# Training settings whose option checks more than its field's type, as a usage error.
OPTION_TYPES = {"img": input_size, "seed": seed}
ON_THE_DEMO = (
    "the base settings: the demo's (yolov4/configs/demo.yaml, whose values are the defaults shown) or --config's, "
    "with a flag given on top"
)


def shown_default(value: Any) -> str | None:
    """A setting's value as its option is typed (``0.8 0.9``, ``true``, ``jitter=0.0 flip=0.5``);
    None for no value (None, or no settings), which the option's help describes itself."""
    if value is None or value == {}:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def key_value(text: str) -> tuple[str, Any]:
    """A KEY=VALUE of --augment or --model-options, the VALUE read as YAML (0.5, true, [1, 2])."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a YAML value") from None


def add_config_arguments(
    parser: argparse.ArgumentParser,
    description: str,
    exclude: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    shown: dict[str, Any] | None = None,
) -> None:
    """An option for each TrainConfig field (``--weight-decay`` for ``weight_decay``) but those
    ``exclude``d (or only those in ``only``), with the field's type, choices and help, and its
    default shown (``shown``'s value where it has one: the settings the command starts from). An
    option not given is None, so that --config's value or the default stands (``given_settings``)."""
    from dataclasses import fields

    from yolov4.training.settings import TrainConfig, field_types, value_kinds

    group = parser.add_argument_group("training settings", description)
    chosen = [f for f in fields(TrainConfig) if f.name not in exclude and (only is None or f.name in only)]
    for f in chosen:
        kind = value_kinds(field_types(TrainConfig)[f.name])[0]  # str for freeze's str | int
        kind = get_origin(kind) or kind
        if kind is bool:
            how = {"action": argparse.BooleanOptionalAction}
        elif kind is tuple:
            how = {"nargs": "+", "type": float, "metavar": "X"}
        elif kind is dict:
            how = {"action": "extend", "nargs": "+", "type": key_value, "metavar": "KEY=VALUE"}
        else:
            metavar = {int: "N", float: "X"}.get(kind, f.name.upper())
            how = {"type": OPTION_TYPES.get(f.name, kind), "choices": f.metadata.get("choices"), "metavar": metavar}
            if how["choices"]:
                del how["metavar"]  # argparse lists the choices
        default = shown_default((shown or {}).get(f.name, f.default if f.default_factory is MISSING else {}))
        text = f.metadata["help"] + ("; here KEY=VALUE pairs, each replacing that key alone" if kind is dict else "")
        text += f" (default: {default})" if default is not None else ""
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None, help=text.replace("%", "%%"), **how
        )
    parser.set_defaults(config_fields=tuple(f.name for f in chosen))


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (``add_config_arguments``' options), as
    TrainConfig takes them: --augment's and --model-options' KEY=VALUE pairs as mappings."""
    from yolov4.training.settings import TrainConfig, field_types

    given = {name: getattr(args, name) for name in args.config_fields if getattr(args, name) is not None}
    return {k: dict(v) if field_types(TrainConfig)[k] is dict else v for k, v in given.items()}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line as well, pointing at ``--help``."""

    def error(self, message: str):
        self.exit(2, f"yolov4: error: {message} (see {self.prog} --help)\n")


WEIGHTS_HELP = (
    "a training checkpoint (.npz), or one of darknet's released files (yolov4.weights, yolov4-tiny.weights), "
    "whose cfg and COCO class names come with this package"
)
STRETCH_HELP = (
    "stretch each image to the input size, as darknet's detector test does, instead of letterboxing it "
    "(keeping its aspect ratio, padded grey, as training here does)"
)


def build_parser() -> argparse.ArgumentParser:
    from yolov4.demo import DEMO

    parser = Parser(prog="yolov4", description="YOLOv4 built on minilucid (NumPy, or CuPy on a GPU).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def device(p):
        p.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="where to run (default: %(default)s)")

    def sliced(p):
        p.add_argument(
            "--tile",
            type=int,
            metavar="SIZE",
            help="detect sliced: SIZE-pixel tiles of each image and the whole image, each at --img, merged by NMS",
        )
        p.add_argument(
            "--overlap", type=float, default=0.2, help="overlap of neighbouring tiles (default: %(default)s)"
        )

    p = commands.add_parser("train", help="train a model on a dataset")
    p.add_argument("--config", help="a YAML or JSON file with any TrainConfig settings")
    p.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue from a checkpoint (last.npz), in its folder, with the settings it was made with; "
        "only --epochs, --device, --data and --val (and eval_every, conf_thresh) may change",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(
        p, "TrainConfig's fields: a flag given wins over --config's value, which wins over the default shown"
    )
    p.set_defaults(run=train_command)

    p = commands.add_parser("eval", help="COCO mAP of a model on a dataset, or of a detections JSON")
    p.add_argument("--data", help="the dataset to evaluate on")
    p.add_argument("--split", help="train, val or test (default: val or test where the dataset has one, else all)")
    p.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    p.add_argument("--darknet", nargs=2, metavar=("CFG", "WEIGHTS"), help="a darknet model instead")
    p.add_argument("--names", help="the darknet model's class names, one a line, checked against the data's")
    p.add_argument("--gt", help="COCO ground-truth JSON (with --pred)")
    p.add_argument("--pred", help="COCO detections JSON (with --gt)")
    p.add_argument("--img", type=input_size, default=416, help="input size (default: %(default)s)")
    p.add_argument("--out", metavar="METRICS.json", help="write the metrics here")
    p.add_argument("--plots", metavar="DIR", help="write pr_curve.png and confusion_matrix.png here")
    p.add_argument("--stretch", action="store_true", help=STRETCH_HELP)
    sliced(p)
    device(p)
    p.set_defaults(run=eval_command)

    p = commands.add_parser(
        "predict",
        help="detect objects in images",
        description="Detect objects in images: an annotated PNG of each (stem.png, stem_2.png where names repeat; "
        "never over an input) and detections.json (COCO results) in a new folder --out (numbered: runs/predict2, "
        "... where it exists). Its image_id and category_id are those of --data (a COCO .json naming the images and "
        "the classes), else 1-based positions: of the image among the images (a folder's in name order), of the "
        "class in the model's names.",
    )
    p.add_argument("images", nargs="+", help="image files, folders (their images) or glob patterns ('photos/*.jpg')")
    p.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    p.add_argument("--darknet", nargs=2, metavar=("CFG", "WEIGHTS"), help="a darknet model instead")
    p.add_argument("--names", help="class names, one a line, for a darknet model (default for a released file: COCO's)")
    p.add_argument("--img", type=input_size, default=416, help="input size (default: %(default)s)")
    p.add_argument("--conf", type=fraction, default=0.25, help="score threshold (default: %(default)s)")
    p.add_argument("--iou", type=fraction, default=0.45, help="NMS threshold (default: %(default)s)")
    p.add_argument("--data", metavar="COCO.json", help="take image_id and category_id from this COCO file")
    p.add_argument(
        "--out", default="runs/predict", help="output folder, numbered when it exists (default: %(default)s)"
    )
    p.add_argument("--exist-ok", action="store_true", help="write into --out as it is instead of a new numbered one")
    p.add_argument("--stretch", action="store_true", help=STRETCH_HELP)
    sliced(p)
    device(p)
    p.set_defaults(run=predict_command)

    p = commands.add_parser("anchors", help="k-means anchors for a dataset (1 - IoU distance)")
    p.add_argument("--data", required=True, help="the dataset")
    p.add_argument("--split", help="train, val or test (default: train where the dataset has one, else all)")
    p.add_argument(
        "--model",
        default="yolov4",
        help="the model the anchors are for, whose levels they are split over: yolov4 (3 levels), "
        "yolov4-tiny (2), medium, small or tiny-small (default: %(default)s)",
    )
    p.add_argument(
        "-n", type=int, help="number of anchors, a multiple of the model's levels (default: the model's own, 9 or 6)"
    )
    p.add_argument("--img", type=input_size, default=416, help="input size the anchors are for (default: %(default)s)")
    p.set_defaults(run=anchors_command)

    p = commands.add_parser(
        "tile",
        help="cut a dataset's images into overlapping tiles with their boxes (small objects in large images)",
        description="Cut every image of a dataset (YOLO, COCO or VOC) into SIZE-pixel tiles, OVERLAP apart, and "
        "write them with their boxes as a YOLO dataset in --out, split as training splits the images (the "
        "dataset's val split, --val, or 10%% of the images held out): the tiles of one image are all on one side. "
        "A tile keeps a box with at least --min-visible of its area inside, clipped; a box cut off below that is "
        "dropped and its pixels painted grey (--cut grey), or kept clipped (--cut keep).",
    )
    p.add_argument("--data", required=True, help="the dataset")
    p.add_argument("--val", help="a separate validation set (default: the dataset's own, else 10%% held out)")
    p.add_argument("--size", type=int, default=416, help="tile side in pixels (default: %(default)s)")
    p.add_argument("--overlap", type=float, default=0.2, help="overlap of neighbouring tiles (default: %(default)s)")
    p.add_argument(
        "--min-visible",
        type=float,
        default=0.5,
        help="share of a box's area a tile must show to keep it (default: %(default)s)",
    )
    p.add_argument(
        "--cut",
        choices=["grey", "keep"],
        default="grey",
        help="a box shown less than --min-visible: dropped, its pixels grey; or kept clipped (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="the folder to write (new, or empty)")
    p.set_defaults(run=tile_command)

    p = commands.add_parser("export", help="write a checkpoint as a darknet .cfg and .weights pair")
    p.add_argument("--weights", metavar="CKPT", required=True, help="a training checkpoint")
    p.add_argument("--darknet", nargs=2, dest="darknet_out", metavar=("OUT.cfg", "OUT.weights"), required=True)
    p.add_argument(
        "--img", type=input_size, default=416, help="width and height written in the cfg (default: %(default)s)"
    )
    p.set_defaults(run=export_command, device="cpu")

    p = commands.add_parser(
        "partial",
        help="cut the first N layers' weights into a new .weights file, as darknet's partial does",
        description="Write the weights of the conv layers among the first N layers of CFG's WEIGHTS to OUT, with "
        "seen reset to 0, as darknet's partial does: partial yolov4.cfg yolov4.weights yolov4.conv.137 137.",
    )
    p.add_argument("cfg", metavar="CFG", help="the darknet cfg the weights belong to")
    p.add_argument("weights", metavar="WEIGHTS", help="its .weights file")
    p.add_argument("out", metavar="OUT", help="the cut file to write")
    p.add_argument("layers", metavar="N", type=int, help="how many layers to keep (layers 0 to N-1)")
    p.set_defaults(run=partial_command)

    p = commands.add_parser("summary", help="layers, output shapes, parameters and FLOPs of a model")
    p.add_argument(
        "--model", default="yolov4", help="yolov4, yolov4-tiny, medium, small or tiny-small (default: %(default)s)"
    )
    p.add_argument("--classes", type=int, default=80, help="number of classes (default: %(default)s)")
    p.add_argument("--img", type=input_size, default=416, help="input size (default: %(default)s)")
    p.set_defaults(run=summary_command)

    p = commands.add_parser("demo", help="train on the built-in dataset, evaluate, and draw detections")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    add_config_arguments(
        p,
        "on top of the demo's settings (yolov4/configs/demo.yaml)",
        only=("epochs", "device", "processes"),
        shown=DEMO,
    )
    p.set_defaults(run=demo_command)

    def search(p, name, own=()):
        """ablate's and evolve's options: the base settings and where the search writes."""
        p.add_argument(
            "--config", help="start from this TrainConfig file instead of the demo's (yolov4/configs/demo.yaml)"
        )
        p.add_argument(
            "--out", default=f"runs/{name}", help="output folder, numbered when it exists (default: %(default)s)"
        )
        p.add_argument("--exist-ok", action="store_true", help="write into --out as it is, continuing what is there")
        p.add_argument("--resume", metavar="FOLDER", help=f"continue an earlier {name} run in its folder")
        add_config_arguments(p, ON_THE_DEMO, exclude=("out", "exist_ok", *own), shown=DEMO)

    p = commands.add_parser(
        "ablate",
        help="the YOLOv4 paper's Table 4: train with each freebie on and off, table of held-out AP",
        description="Train the same model once per row and seed, and write the table (ablation.md, ablation.json, "
        "ablation.png) into a new folder --out. The base is the demo's settings (or --config's) with the options "
        "given; the baseline row is the base with every freebie of the table off and the MSE box loss; a row +x+y "
        "turns switches x and y on. Switches: s (grid sensitivity), m (mosaic), it (IoU threshold), ga (the "
        "settings of --ga), ls (label smoothing), cbn (CmBN), ca (cosine schedule), dm (dynamic mini-batch), oa "
        "(optimized anchors), mse/giou/diou/ciou (box loss), and the extras ms (multi-scale) and sd (the batch "
        "split, plain BatchNorm). Each run's result is written as it ends: --resume FOLDER (or --out FOLDER "
        "--exist-ok) skips finished runs. See docs/ablation.md.",
    )
    p.add_argument(
        "--rows",
        help="comma-separated rows, e.g. baseline,+m,+ls,+m+ls, or a YAML file of row name -> TrainConfig "
        "settings on top of the baseline (default: Table 4's rows; +ga only with --ga)",
    )
    p.add_argument("--seeds", type=int, default=3, help="runs per row: seeds base, base+1, ... (default: %(default)s)")
    p.add_argument("--ga", metavar="BEST.yaml", help="the best.yaml of python -m yolov4 evolve, for the +ga rows")
    search(p, "ablate")
    p.set_defaults(run=ablate_command)

    p = commands.add_parser(
        "evolve",
        help="genetic search of training settings over short runs (the paper's GA); writes best.yaml",
        description="Mutate training settings over --generations of --population short runs (--epochs each) and "
        "keep the fittest by held-out fitness = 0.1 x mAP@0.5 + 0.9 x mAP@[.5:.95]. Generation 0 holds the base "
        "settings and mutations of them; each later one mutates the fittest trial so far (gaussian steps, "
        "clipped to each setting's range, seeded). Writes trials.jsonl, trials.csv and best.yaml (the base "
        "settings with the best values, for train --config). A rerun with --resume FOLDER skips finished trials.",
    )
    p.add_argument(
        "--keys",
        help="comma-separated settings to evolve: lr, momentum, hue, saturation, exposure, jitter, flip, mosaic, "
        "iou_normalizer (default: all of them, less momentum unless the optimizer is sgd)",
    )
    p.add_argument("--generations", type=int, default=3, help="generations (default: %(default)s)")
    p.add_argument("--population", type=int, default=4, help="trials per generation (default: %(default)s)")
    p.add_argument(
        "--epochs", type=int, default=1, help="epochs of each trial; best.yaml keeps the base's (default: %(default)s)"
    )
    search(p, "evolve", own=("epochs",))
    p.set_defaults(run=evolve_command)

    p = commands.add_parser("augment-gallery", help="write a PNG of every augmentation with its boxes")
    p.add_argument("--data", help="a dataset (YOLO folder, COCO .json or VOC folder); default: the built-in one")
    p.add_argument("--out", default="augment-gallery.png", help="the PNG to write (default: %(default)s)")
    p.add_argument("--size", type=tile_size, default=256, help="tile size in pixels (default: %(default)s)")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    p.set_defaults(run=augment_gallery_command)
    return parser


def report(error: Exception) -> int:
    """Print ``error`` for the user and return the exit status: one line for a mistake in the
    input (a check's ValueError, a file the system refused, no GPU, a training run that
    diverged), the traceback and a request to report it for anything else: a bug in yolov4."""
    from minilucid.backend import DeviceUnavailableError
    from yolov4.training.trainer import TrainingError

    if isinstance(error, OSError) and error.filename is not None:
        print(f"yolov4: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
    elif isinstance(error, (ValueError, OSError, DeviceUnavailableError, TrainingError)):
        print(f"yolov4: error: {error}", file=sys.stderr)
    else:
        traceback.print_exception(error)
        print(
            "yolov4: internal error: this is a bug in yolov4, not a mistake in your input; please report it "
            "with the command and the traceback above",
            file=sys.stderr,
        )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print("yolov4: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
