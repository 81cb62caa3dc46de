"""Cat heads (Zhang, Sun and Tang, ECCV 2008; Sec. 4.1, 4.2, Appendix G.1, Table 6).

Layout of the root (the CAT dataset as distributed)::

    root/
        CAT_00/00000001_000.jpg        the photos
        CAT_00/00000001_000.jpg.cat    '9 x1 y1 ... x9 y9': the 9 points in pixels
        ...
        CAT_06/...
        cat_test.txt                   optional split list (see "Splits")
        cat_train.txt                  optional, only together with cat_test.txt

Points, in file order: left eye, right eye, mouth, then three per ear going
round it (ear-1 base, ear-2 tip, ear-3 base), left ear then right ear.
Coordinates are read as pixels with centres at integers. Images without a
``.cat`` file are not used.

Protocol (Sec. 4.2, footnote 3): "9 annotated landmarks in total. We do not
use the 2 at the ears": the 2 ear TIPS (ear-2, indices 4 and 7) are left out
and the 7 others evaluated -- as the authors' released evaluation does (it
keeps points 1-4, 6-7 and 9 of 9). The error is normalised by the distance
between the eyes ("biocular distance", Table 2).

Preparation (App. G.1: "We figured out the bounding box for cropping each
image according to the landmarks and then scaled the cropped images to
80x80"; the margin is not given): the crop is the square centred on the
bounding box of all 9 points, its side the longer side of that box enlarged
by ``CROP_MARGIN`` of it on each side, so every point lies inside with a
margin and the aspect ratio is kept. Edge pixels are repeated where the
square leaves the photo. The landmarks go through the same map.

Splits (``SPLITS``: ``"train"``, ``"test"``). The paper trains on 7,747 and
tests on 1,257 images without saying which:

- with ``cat_test.txt`` in the root, ``"test"`` is the images it lists and
  ``"train"`` those of ``cat_train.txt`` if present, else every other
  annotated image; a line is an image path relative to the root, e.g.
  ``CAT_06/00001400_000.jpg`` (blank lines and ``#`` comments ignored);
- without it, by folder: ``TEST_FOLDERS`` = ``CAT_06`` is the test set and
  CAT_00..CAT_05 the training set, the folder boundary closest to the
  paper's 14 % test share. It is NOT the paper's split.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmdis.data.base import CroppedDataset
from lmdis.data.images import box_to_normalised
from lmdis.data.protocol import Protocol

SPLITS = ("train", "test")
IMAGE_SIZE = 80  # Table 6
PADDED_SIZE = 96  # Table 6: the model edge-pads the images to this side
POINT_NAMES = ("left_eye", "right_eye", "mouth", "left_ear_1", "left_ear_2", "left_ear_3",
               "right_ear_1", "right_ear_2", "right_ear_3")
EAR_TIPS = (4, 7)  # left_ear_2, right_ear_2: not evaluated (Sec. 4.2, footnote 3)
EVALUATED_POINTS = tuple(k for k in range(len(POINT_NAMES)) if k not in EAR_TIPS)
PROTOCOL = Protocol(dataset="cat", point_names=POINT_NAMES, fit_split="train", test_split="test",
                    normaliser="points", reference_points=(0, 1), evaluated_points=EVALUATED_POINTS)

FOLDERS = tuple(f"CAT_{k:02d}" for k in range(7))
TEST_FOLDERS = ("CAT_06",)
CROP_MARGIN = 0.15  # of the landmarks' box side, on each side (our choice: App. G.1 gives none)
SPLIT_LISTS = {"test": "cat_test.txt", "train": "cat_train.txt"}
_CAT_FORMAT = f"'{len(POINT_NAMES)} x1 y1 ... x{len(POINT_NAMES)} y{len(POINT_NAMES)}' (the count, then the points)"


def read_cat_annotation(path: str | os.PathLike) -> np.ndarray:
    """Parses a ``.cat`` file -> (9, 2) float64 pixel (u, v) of the points in file order.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not ``9`` followed by 18 numbers (``file:line`` in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cat annotation not found: {path}")
    lines = [(number, line.strip()) for number, line in enumerate(path.read_text().splitlines(), start=1)
             if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"{path}: expected one line {_CAT_FORMAT}, found {len(lines)} non-empty lines")
    line_number, line = lines[0]
    where, fields = f"{path}:{line_number}", line.split()
    if len(fields) != 1 + 2 * len(POINT_NAMES) or fields[0] != str(len(POINT_NAMES)):
        raise ValueError(f"{where}: expected {_CAT_FORMAT}, got {len(fields)} fields: {line[:80]!r}")
    try:
        values = np.array([float(field) for field in fields[1:]], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: expected {_CAT_FORMAT}, got {line[:80]!r}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: expected finite coordinates, got {line[:80]!r}")
    return values.reshape(len(POINT_NAMES), 2)


def landmark_crop_box(points_px: np.ndarray, margin: float = CROP_MARGIN) -> tuple[float, float, float, float]:
    """The crop of App. G.1 from the points: a square around their bounding box, ``margin`` of its side added.

    Args:
        points_px: (N, 2) pixel (u, v), centres at integers.
    Returns:
        (left, top, right, bottom) in the pixel-edge frame (pixel u spans [u, u + 1]).
    """
    points_px = np.asarray(points_px, dtype=np.float64)
    low, high = points_px.min(axis=0), points_px.max(axis=0) + 1  # edges of the outermost pixels
    centre = (low + high) / 2
    half = (1 + 2 * margin) * float(np.max(high - low)) / 2
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def _read_image_list(path: Path, annotated: set[str]) -> list[str]:
    """The relative image paths an ``cat_*.txt`` list names, each checked against the annotated images."""
    names, seen = [], set()
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            entry = line.strip().replace("\\", "/")
            if not entry or entry.startswith("#"):
                continue
            if entry not in annotated:
                raise ValueError(f"{path}:{line_number}: expected the path of an annotated image relative to "
                                 f"{path.parent}, e.g. 'CAT_06/00001400_000.jpg', got {entry!r}")
            if entry not in seen:
                seen.add(entry)
                names.append(entry)
    return names


def _split_images(root: Path, split: str, annotated: list[str]) -> list[str]:
    """The relative image paths of ``split`` (module docstring), sorted."""
    test_list, train_list = root / SPLIT_LISTS["test"], root / SPLIT_LISTS["train"]
    if not test_list.is_file():
        if train_list.is_file():
            raise FileNotFoundError(f"found {train_list} but not {test_list}: a training list needs the test list")
        in_test = [name.split("/")[0] in TEST_FOLDERS for name in annotated]
        return [name for name, test in zip(annotated, in_test) if test == (split == "test")]
    known = set(annotated)
    test = set(_read_image_list(test_list, known))
    if split == "test":
        return sorted(test)
    if train_list.is_file():
        train = set(_read_image_list(train_list, known))
        shared = train & test
        if shared:
            raise ValueError(f"{train_list} and {test_list} share {len(shared)} image(s), e.g. {min(shared)!r}")
        return sorted(train)
    return [name for name in annotated if name not in test]


class CatHeadDataset(CroppedDataset):
    """Cat heads cropped from their landmarks (App. G.1), with the 9 annotated points.

    Args:
        root: the folder with ``CAT_00`` ... ``CAT_06`` (module docstring).
        split: ``"train"`` or ``"test"``.
        image_size: S, the side of the returned images (80 in Table 6).
        channels: 3 or 1.
    Raises:
        FileNotFoundError: no CAT_* folder, or an annotation without its image.
        ValueError: an unknown split, a malformed ``.cat`` file or list line
            (``file:line`` in the message), or an empty split.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3):
        super().__init__(image_size, channels, split, SPLITS, "cat")
        self.root = Path(root)
        folders = [self.root / name for name in FOLDERS if (self.root / name).is_dir()]
        if not folders:
            raise FileNotFoundError(f"no CAT dataset folders ({FOLDERS[0]} ... {FOLDERS[-1]}) in {self.root}")
        annotations = [path for folder in folders for path in sorted(folder.glob("*.jpg.cat"))]
        annotated = [path.relative_to(self.root).as_posix()[:-len(".cat")] for path in annotations]
        for annotation, relative in zip(annotations, annotated):
            if not (self.root / relative).is_file():
                raise FileNotFoundError(f"image of the annotation {annotation} not found: {self.root / relative}")
        self.relative_paths = _split_images(self.root, split, annotated)
        if not self.relative_paths:
            raise ValueError(f"the cat split {split!r} under {self.root} is empty (folders found: "
                             f"{[folder.name for folder in folders]})")
        points = [read_cat_annotation(self.root / f"{relative}.cat") for relative in self.relative_paths]
        self.boxes = [landmark_crop_box(face_points) for face_points in points]
        self._landmarks = np.stack([box_to_normalised(face_points, box)
                                    for face_points, box in zip(points, self.boxes)]).astype(np.float32)  # (n, 9, 2)
        self.paths = [str(self.root / relative) for relative in self.relative_paths]


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE,
               channels: int = 3) -> CatHeadDataset:
    """The registry's entry point: :class:`CatHeadDataset` (``split`` in ``SPLITS``)."""
    return CatHeadDataset(root, split, image_size=image_size, channels=channels)
