"""A one-class detection dataset cut from a real photograph, made the same way every time.

    python benchmarks/real_photo.py OUT        # writes OUT/data.yaml, OUT/images/{train,val}, ...

(``write_roboflow`` lays the same tiles out as a Roboflow export instead: notebook 18.)

The photograph is scikit-image's ``immunohistochemistry()`` (512 x 512 RGB, shipped inside
the scikit-image wheel, so nothing is downloaded): stained colon tissue in which brown (DAB)
glands sit in a pale stroma full of blue (hematoxylin) nuclei. The class is **a nucleus of
the stroma**, labelled by a rule anyone can rerun (``nucleus_boxes``):

1. unmix the stains with ``skimage.color.rgb2hed``;
2. nucleus pixels: hematoxylin, smoothed with a Gaussian of sigma 1, above 0.035;
3. stroma: DAB smoothed with sigma 8 below 0.04 (the nuclei inside the brown glands touch
   each other and are left out of the class);
4. a binary opening with a disk of radius 1, connected components, and the components of
   25 to 600 pixels are the objects; a box is a component's bounding box.

About a hundred nuclei of 5 to 20 pixels by 7 to 35 come out. The photograph is scaled up
(``scale``, 2 by default, bilinear) so that they measure 10 to 70 pixels, sizes that
YOLOv4-tiny's strides of 16 and 32 can place, then cut into overlapping square tiles.

The split is by region: the photograph is divided at a column that no box crosses, near
``train_fraction`` of its width; training tiles lie wholly left of it and held-out tiles
wholly right of it, so no object (and no pixel) is in both splits. A tile keeps the boxes
of which at least half the area lies inside it, clipped to the tile.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The labelling rule's numbers (see the module's docstring).
NUCLEUS_HEMATOXYLIN, NUCLEUS_SIGMA = 0.035, 1.0
STROMA_DAB, STROMA_SIGMA = 0.04, 8.0
MIN_AREA, MAX_AREA = 25, 600
KEEP_INSIDE = 0.5  # a tile keeps a box with at least this share of its area inside


def photograph() -> np.ndarray:
    """scikit-image's immunohistochemistry photograph, (512, 512, 3) uint8."""
    from skimage import data

    return data.immunohistochemistry()


def nucleus_boxes(photo: np.ndarray) -> np.ndarray:
    """(N, 4) boxes [x1, y1, x2, y2] in the photograph's pixels (x2, y2 exclusive) of the stroma's
    nuclei, by the rule in the module's docstring."""
    from skimage import color, filters, measure, morphology

    stains = color.rgb2hed(photo)
    nuclei = filters.gaussian(stains[..., 0], NUCLEUS_SIGMA) > NUCLEUS_HEMATOXYLIN
    stroma = filters.gaussian(stains[..., 2], STROMA_SIGMA) < STROMA_DAB
    mask = morphology.opening(nuclei & stroma, morphology.disk(1))
    regions = measure.regionprops(measure.label(mask))
    boxes = [(r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]) for r in regions if MIN_AREA <= r.area <= MAX_AREA]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def split_column(boxes: np.ndarray, width: int, fraction: float) -> int:
    """The column nearest ``fraction`` of ``width`` that no box crosses (every box lies wholly
    on one side of it)."""
    free = [x for x in range(1, width) if not ((boxes[:, 0] < x) & (boxes[:, 2] > x)).any()]
    if not free:
        raise ValueError("split_column: every column is crossed by a box")
    return min(free, key=lambda x: (abs(x - fraction * width), x))


def tile_origins(start: int, stop: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis of [start, stop): evenly spaced, no more than ``stride``
    apart, the first at ``start`` and the last ending at ``stop``."""
    if stop - start < tile:
        raise ValueError(f"tile_origins: a region of {stop - start} pixels is narrower than a tile of {tile}")
    count = math.ceil((stop - start - tile) / stride) + 1
    return [int(round(v)) for v in np.linspace(start, stop - tile, count)]


def tile_boxes(boxes: np.ndarray, x0: int, y0: int, tile: int) -> np.ndarray:
    """The boxes of the tile at (x0, y0) as (M, 5) [class 0, cx, cy, w, h] in its pixels: each
    box clipped to the tile, kept where at least ``KEEP_INSIDE`` of its area is inside."""
    clipped = np.clip(boxes - [x0, y0, x0, y0], 0, tile)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    kept = clipped[inside >= KEEP_INSIDE * area]
    centres, sizes = (kept[:, :2] + kept[:, 2:]) / 2, kept[:, 2:] - kept[:, :2]
    return np.concatenate([np.zeros((len(kept), 1)), centres, sizes], axis=1)


def scaled_photograph(scale: int = 2) -> np.ndarray:
    """The photograph scaled by ``scale`` (bilinear), as the tiles are cut from it: (3, H, W)
    float32 in [0, 1]."""
    from PIL import Image

    photo = photograph()
    height, width = photo.shape[0] * scale, photo.shape[1] * scale
    pixels = np.asarray(Image.fromarray(photo).resize((width, height), Image.BILINEAR), dtype=np.float32) / 255
    return pixels.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


@dataclass
class RealPhotoTiles:
    """The tiles of both splits, before they are written: (name, (3, T, T) image in [0, 1],
    (M, 5) boxes) each; ``column``: where the photograph (scaled) was divided."""

    train: list[tuple[str, np.ndarray, np.ndarray]]
    val: list[tuple[str, np.ndarray, np.ndarray]]
    column: int
    boxes: np.ndarray  # every object, [x1, y1, x2, y2] in the scaled photograph's pixels


def real_photo_tiles(
    tile: int = 160, scale: int = 2, stride: int = 60, val_stride: int = 80, train_fraction: float = 0.6
) -> RealPhotoTiles:
    """The photograph labelled (``nucleus_boxes``), scaled by ``scale``, divided at a column no
    box crosses near ``train_fraction`` of its width, and cut into ``tile``-pixel squares at most
    ``stride`` apart on the left (training) and ``val_stride`` apart on the right (held out)."""
    photo = photograph()
    boxes = nucleus_boxes(photo) * scale
    image = scaled_photograph(scale)
    height, width = image.shape[1:]
    column = split_column(boxes, width, train_fraction)

    def cut(x_start: int, x_stop: int, step: int, name: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [
            (f"{name}_y{y:04d}_x{x:04d}.png", image[:, y : y + tile, x : x + tile], tile_boxes(boxes, x, y, tile))
            for y in tile_origins(0, height, tile, step)
            for x in tile_origins(x_start, x_stop, tile, step)
        ]

    return RealPhotoTiles(cut(0, column, stride, "train"), cut(column, width, val_stride, "val"), column, boxes)


def write_real_photo(root: str | Path, **options) -> RealPhotoTiles:
    """Write ``real_photo_tiles(**options)`` as a YOLO txt dataset under ``root``: ``images/train``,
    ``images/val``, their labels and a ``data.yaml`` naming the class ``nucleus``. Returns the
    tiles; the same options write the same files."""
    from yolov4.data.yolo import write_yolo

    tiles = real_photo_tiles(**options)
    for split in ("train", "val"):
        write_yolo(getattr(tiles, split), root, ["nucleus"], split)
    return tiles


# What Roboflow writes into an export's data.yaml for a YOLO format: the splits named from a
# folder beside the export (../train/images), which readers retry without the ../.
ROBOFLOW_YAML = "train: ../train/images\nval: ../valid/images\n\nnc: 1\nnames: ['nucleus']\n"


def write_roboflow(root: str | Path, tiles: RealPhotoTiles) -> Path:
    """Write ``tiles`` laid out as a Roboflow export in YOLO format: ``train/`` and ``valid/``,
    each with ``images/`` and ``labels/``, and a ``data.yaml`` at the top naming them as
    Roboflow does (``train: ../train/images``). Returns the data.yaml's path."""
    from minilucid.serialization import write_text_atomically
    from yolov4.data.yolo import write_yolo

    root = Path(root)
    for split, folder in (("train", "train"), ("val", "valid")):
        write_yolo(getattr(tiles, split), root / folder, ["nucleus"])
        (root / folder / "data.yaml").unlink()  # write_yolo's own; an export has one, at its top
    write_text_atomically(root / "data.yaml", ROBOFLOW_YAML)
    return root / "data.yaml"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/real_photo.py OUT")
    tiles = write_real_photo(sys.argv[1])
    train, val = (sum(len(b) for _, _, b in split) for split in (tiles.train, tiles.val))
    print(
        f"{Path(sys.argv[1]) / 'data.yaml'}: {len(tiles.train)} training tiles ({train} boxes), "
        f"{len(tiles.val)} held-out tiles ({val} boxes); {len(tiles.boxes)} nuclei, divided at column {tiles.column}"
    )
