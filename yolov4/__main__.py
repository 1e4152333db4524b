"""``python -m yolov4``: the command line (more commands come with training and evaluation)."""

from __future__ import annotations

import argparse
import sys


def augment_gallery_command(args: argparse.Namespace) -> None:
    from yolov4.data.formats import read_dataset
    from yolov4.data.gallery import augment_gallery

    dataset = read_dataset(args.data) if args.data else None
    path = augment_gallery(args.out, dataset, seed=args.seed, size=args.size)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolov4", description="YOLOv4 on minilucid.")
    commands = parser.add_subparsers(dest="command", required=True)
    gallery = commands.add_parser("augment-gallery", help="write a PNG of every augmentation with its boxes")
    gallery.add_argument("--data", help="a dataset (YOLO folder, COCO .json or VOC folder); default: the built-in one")
    gallery.add_argument("--out", default="augment-gallery.png", help="the PNG to write (default: %(default)s)")
    gallery.add_argument("--size", type=int, default=256, help="tile size in pixels (default: %(default)s)")
    gallery.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    gallery.set_defaults(run=augment_gallery_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"yolov4: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
