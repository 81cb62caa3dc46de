"""Profile animals of five species from Animals with Attributes (App. D, App. G.1, Table 6).

The AwA images carry no boxes: the authors annotated bounding boxes and
orientations (left, right, frontal, back) by hand and did not release them.
lmdis reads such annotations from a text file next to the images. Expected
layout under ``root`` (the unpacked ``Animals_with_Attributes2`` folder;
AwA1's ``JPEGImages`` works the same way)::

    JPEGImages/<class>/<name>.jpg      e.g. JPEGImages/zebra/zebra_10001.jpg
    boxes.txt                          one line per annotated animal

``boxes.txt`` lines are ``<path> <x1> <y1> <x2> <y2> <facing>``, whitespace
separated: ``path`` relative to ``JPEGImages`` (``zebra/zebra_10001.jpg``),
the box corners in pixels with PIL's convention (pixel u spans [u, u + 1],
so a box around pixels 10..19 is ``10 ... 20``), and ``facing`` one of
``left``, ``right``, ``frontal``, ``back``: the direction the animal's head
points in the image. Blank lines and lines starting with ``#`` are skipped;
an image may have several lines (several animals).

Preparation (App. G.1): frontal and back views are dropped; the shorter edge
of each box is enlarged (about its centre) to make it square; the square is
cropped (edge pixels repeated past the image border), scaled to 64x64
(the model pads to 80 with edge values) and flipped horizontally when the
animal faces right, so that all face left. Only the five classes of App. D
(``CLASSES``) are read; lines of other classes are skipped.

No landmark annotations (``PROTOCOL`` is None) and no test split: the paper
shows AwA results only qualitatively.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from lmdis.data.base import CroppedDataset

SPLITS = ("train",)
IMAGE_SIZE = 64  # Table 6
PADDED_SIZE = 80  # Table 6: the model edge-pads the images to this side
CLASSES = ("antelope", "deer", "moose", "horse", "zebra")  # App. D
FACINGS = ("left", "right", "frontal", "back")
BOXES_FILE = "boxes.txt"
_LINE_FORMAT = "'<class>/<name>.jpg x1 y1 x2 y2 facing' (facing: left, right, frontal or back)"

PROTOCOL = None


def square_box(box) -> tuple[float, float, float, float]:
    """App. G.1: the shorter edge of (x1, y1, x2, y2) enlarged about the centre to the longer one."""
    x1, y1, x2, y2 = (float(value) for value in box)
    half = max(x2 - x1, y2 - y1) / 2
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    return (centre_x - half, centre_y - half, centre_x + half, centre_y + half)


def read_boxes(boxes_path: Path) -> list[tuple[str, tuple[float, float, float, float], str]]:
    """Parses ``boxes.txt`` -> [(path relative to JPEGImages, (x1, y1, x2, y2), facing)], in file order."""
    if not boxes_path.is_file():
        raise FileNotFoundError(f"AwA box file not found: {boxes_path}; expected one line {_LINE_FORMAT} per "
                                "animal (see lmdis.data.animals)")
    entries = []
    with open(boxes_path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            where = f"{boxes_path}:{line_number}"
            if len(fields) != 6:
                raise ValueError(f"{where}: expected {_LINE_FORMAT}, got {len(fields)} fields: {line.strip()!r}")
            try:
                box = tuple(float(value) for value in fields[1:5])
            except ValueError:
                raise ValueError(f"{where}: expected 4 numbers x1 y1 x2 y2 after the path, "
                                 f"got {fields[1:5]!r}") from None
            x1, y1, x2, y2 = box
            if not all(math.isfinite(value) for value in box) or x2 <= x1 or y2 <= y1:
                raise ValueError(f"{where}: expected finite corners with x2 > x1 and y2 > y1, got {fields[1:5]!r}")
            facing = fields[5].lower()
            if facing not in FACINGS:
                raise ValueError(f"{where}: facing must be one of {FACINGS}, got {fields[5]!r}")
            entries.append((fields[0].replace("\\", "/"), box, facing))
    return entries


class AwAAnimalsDataset(CroppedDataset):
    """Left- and right-facing animals of AwA, square-cropped and all facing left (see the module docstring).

    Args:
        root: folder with ``JPEGImages/`` and ``boxes.txt``.
        split: ``"train"`` (the only one).
        image_size: side of the square crops (Table 6: 64).
        channels: 3 or 1.
        classes: the classes to keep (App. D: ``CLASSES``).
    Items: ``image`` (C, S, S), ``index``. ``flipped[i]`` says whether item i
    was mirrored (the animal faced right).
    """

    annotation_hint = "AwA animals have bounding boxes only"

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3, classes: tuple[str, ...] = CLASSES):
        super().__init__(image_size, channels, split, SPLITS, "animal")
        self.root = Path(root)
        images = self.root / "JPEGImages"
        if not images.is_dir():
            raise FileNotFoundError(f"AwA image folder not found: {images}; expected JPEGImages/<class>/*.jpg "
                                    f"and {BOXES_FILE} under {self.root}")
        self.paths, boxes, flipped = [], [], []
        for relative, box, facing in read_boxes(self.root / BOXES_FILE):
            if relative.split("/")[0] not in classes or facing not in ("left", "right"):
                continue
            path = images / relative
            if not path.is_file():
                raise FileNotFoundError(f"image {path} listed in {self.root / BOXES_FILE} not found; "
                                        "paths there are relative to JPEGImages/")
            self.paths.append(str(path))
            boxes.append(square_box(box))
            flipped.append(facing == "right")
        if not self.paths:
            raise ValueError(f"{self.root / BOXES_FILE} has no left- or right-facing animal of the classes {classes}")
        self.boxes = np.asarray(boxes, dtype=np.float64)  # (n, 4) square, pixel-edge frame
        self.flipped = np.asarray(flipped, dtype=bool)


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> Dataset:
    """The registry's entry point: :class:`AwAAnimalsDataset` with the five classes of App. D."""
    return AwAAnimalsDataset(root, split, image_size=image_size, channels=channels)
