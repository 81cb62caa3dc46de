"""AFLW faces (Sec. 4.1, 4.2, Appendix G.1, Table 6), read from the original SQLite database.

Layout of the root (the ``aflw/data`` folder of the official archive)::

    root/
        aflw.sqlite                 tables Faces, FaceImages, FaceRect, FeatureCoords, FeatureCoordTypes
        flickr/0/image00002.jpg ... FaceImages.filepath is relative to flickr/
        aflw_test.txt               optional split list (see "Splits")
        aflw_train.txt              optional, only together with aflw_test.txt

Faces: the 5 points of the face protocol (Sec. 4.2: "we take the 5
always-visible landmarks") are the AFLW features ``LeftEyeCenter``,
``RightEyeCenter``, ``NoseCenter``, ``MouthLeftCorner`` and
``MouthRightCorner`` (looked up by name in ``FeatureCoordTypes``; left/right
as AFLW names them). A face is kept only when all 5 are in ``FeatureCoords``
(AFLW leaves invisible points out) and it has a ``FaceRect``; coordinates are
read as pixels with centres at integers.

Preparation (App. G.1): the face rectangle (x, y, w, h) is enlarged by h/4 at
the top and w/8 on the left and on the right, i.e. the crop box is
(x - w/8, y - h/4, x + 9w/8, y + h) in the pixel-edge frame; it is cropped
(edge pixels repeated where it leaves the image) and resized to 80x80 (the
aspect ratio is not kept when the rectangle is not square); the landmarks go
through the same map.

Splits (``SPLITS``: ``"train"``, ``"test"``). The paper uses the TCDCN/MTFL
split (10,122 training and 2,991 test faces), which AFLW does not ship:

- with ``aflw_test.txt`` in the root, ``"test"`` is the faces it lists and
  ``"train"`` those of ``aflw_train.txt`` if present, else every other
  eligible face. A line is an AFLW ``face_id`` (an integer), or an image
  file name (``FaceImages.file_id`` such as ``image00002.jpg``, or its
  ``filepath`` such as ``0/image00002.jpg``) standing for all the eligible
  faces in that image; blank lines and lines starting with ``#`` are
  ignored. Listed faces that lack one of the 5 points are left out with a
  warning;
- without it, a deterministic split by IMAGE (so the faces of one photo never
  straddle it): an image is in ``"test"`` when the CRC-32 of its file_id,
  divided by 2**32, is below ``DEFAULT_TEST_FRACTION`` = 2,991 / 13,113, the
  paper's test share. It depends on nothing but the file name, so it is the
  same on any copy or subset of the database. It is NOT the paper's split:
  errors are comparable with the paper's only through a split list.
"""
from __future__ import annotations

import os
import sqlite3
import warnings
import zlib
from pathlib import Path

import numpy as np

from lmdis.data.base import CroppedDataset
from lmdis.data.images import box_to_normalised
from lmdis.data.protocol import Protocol

SPLITS = ("train", "test")
IMAGE_SIZE = 80  # Table 6
PADDED_SIZE = 96  # Table 6: the model edge-pads the images to this side
POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
AFLW_FEATURES = ("LeftEyeCenter", "RightEyeCenter", "NoseCenter", "MouthLeftCorner", "MouthRightCorner")
PROTOCOL = Protocol(dataset="aflw", point_names=POINT_NAMES, fit_split="train", test_split="test",
                    normaliser="points", reference_points=(0, 1))

TOP_MARGIN = 1 / 4  # of the rectangle's height, App. G.1
SIDE_MARGIN = 1 / 8  # of its width, on the left and on the right
PAPER_TRAIN_FACES, PAPER_TEST_FACES = 10_122, 2_991  # Sec. 4.1
DEFAULT_TEST_FRACTION = PAPER_TEST_FACES / (PAPER_TRAIN_FACES + PAPER_TEST_FACES)
DATABASE_NAME, IMAGE_FOLDER = "aflw.sqlite", "flickr"
SPLIT_LISTS = {"test": "aflw_test.txt", "train": "aflw_train.txt"}


_FACE_IMAGES = ("SELECT Faces.face_id, FaceImages.file_id, FaceImages.filepath FROM Faces "
                "JOIN FaceImages ON Faces.file_id = FaceImages.file_id ORDER BY Faces.face_id")


def _query(database: Path, sql: str) -> list[tuple]:
    """All rows of ``sql`` on the database opened read-only; sqlite errors become ValueError naming the file."""
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise ValueError(f"cannot read the AFLW tables (Faces, FaceImages, FaceRect, FeatureCoords, "
                         f"FeatureCoordTypes) of {database}: {error}") from error


def enlarged_box(rectangle) -> tuple[float, float, float, float]:
    """App. G.1: face rectangle (x, y, w, h) -> crop box (left, top, right, bottom), pixel-edge frame."""
    x, y, width, height = (float(value) for value in rectangle)
    return (x - SIDE_MARGIN * width, y - TOP_MARGIN * height, x + width + SIDE_MARGIN * width, y + height)


def in_default_test_split(file_id: str) -> bool:
    """The documented default split: CRC-32 of the image's file_id / 2**32 < ``DEFAULT_TEST_FRACTION``."""
    return zlib.crc32(file_id.encode("utf-8")) / 2 ** 32 < DEFAULT_TEST_FRACTION


def read_aflw_faces(database: str | os.PathLike) -> list[dict]:
    """Every face of ``aflw.sqlite`` with a rectangle and all of ``AFLW_FEATURES``.

    Returns:
        dicts sorted by face_id, each with ``face_id``, ``file_id``,
        ``filepath`` (relative to ``flickr/``), ``rect`` (x, y, w, h; the first
        FaceRect row where a face has several) and ``points`` (5, 2) float64
        pixel coordinates in the order of ``AFLW_FEATURES``.
    Raises:
        FileNotFoundError: no database at ``database``.
        ValueError: not an SQLite file, missing tables or feature types, or an
            empty rectangle.
    """
    database = Path(database)
    if not database.is_file():
        raise FileNotFoundError(f"AFLW database not found: {database} (expected the {DATABASE_NAME} of the "
                                f"AFLW archive, beside the {IMAGE_FOLDER}/ image folder)")
    types = dict(_query(database, "SELECT descr, feature_id FROM FeatureCoordTypes"))
    missing = [name for name in AFLW_FEATURES if name not in types]
    if missing:
        raise ValueError(f"{database}: FeatureCoordTypes has no feature {missing} (expected "
                         f"{AFLW_FEATURES}; found {sorted(types)})")
    feature_index = {types[name]: k for k, name in enumerate(AFLW_FEATURES)}
    rectangles = {}
    for face_id, x, y, width, height in _query(database, "SELECT face_id, x, y, w, h FROM FaceRect ORDER BY rowid"):
        rectangles.setdefault(face_id, (x, y, width, height))
    points: dict[int, np.ndarray] = {}
    for face_id, feature_id, x, y in _query(database, "SELECT face_id, feature_id, x, y FROM FeatureCoords"):
        if feature_id in feature_index:
            face_points = points.setdefault(face_id, np.full((len(AFLW_FEATURES), 2), np.nan))
            face_points[feature_index[feature_id]] = (x, y)
    faces = []
    for face_id, file_id, filepath in _query(database, _FACE_IMAGES):
        face_points, rectangle = points.get(face_id), rectangles.get(face_id)
        if face_points is None or rectangle is None or not np.isfinite(face_points).all():
            continue
        if not (rectangle[2] > 0 and rectangle[3] > 0):
            raise ValueError(f"{database}: FaceRect of face_id {face_id} is empty: (x, y, w, h) = {rectangle}")
        faces.append({"face_id": int(face_id), "file_id": str(file_id), "filepath": str(filepath).replace("\\", "/"),
                      "rect": tuple(float(value) for value in rectangle), "points": face_points})
    return faces


def read_split_list(path: str | os.PathLike, database: str | os.PathLike) -> set[int]:
    """The face_ids an ``aflw_*.txt`` list names (format in the module docstring), eligible or not.

    Raises:
        ValueError: a line that is neither a face_id nor an image of the
            database (``file:line`` in the message).
    """
    path, database = Path(path), Path(database)
    all_faces = {face_id for (face_id,) in _query(database, "SELECT face_id FROM Faces")}
    faces_of_image: dict[str, set[int]] = {}
    for face_id, file_id, filepath in _query(database, _FACE_IMAGES):
        for key in (str(file_id), str(filepath).replace("\\", "/")):
            faces_of_image.setdefault(key, set()).add(face_id)
    listed: set[int] = set()
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if entry.isdigit() and int(entry) in all_faces:
                listed.add(int(entry))
            elif entry.replace("\\", "/") in faces_of_image:
                listed |= faces_of_image[entry.replace("\\", "/")]
            else:
                raise ValueError(f"{path}:{line_number}: expected an AFLW face_id or an image file name of "
                                 f"{database} (e.g. 'image00002.jpg' or '0/image00002.jpg'), got {entry!r}")
    return listed


def _select_split(root: Path, split: str, faces: list[dict]) -> list[dict]:
    """The faces of ``split``: from the split lists when ``aflw_test.txt`` exists, else the default split."""
    test_list, train_list = root / SPLIT_LISTS["test"], root / SPLIT_LISTS["train"]
    if not test_list.is_file():
        if train_list.is_file():
            raise FileNotFoundError(f"found {train_list} but not {test_list}: a training list needs the test list")
        wanted_test = split == "test"
        return [face for face in faces if in_default_test_split(face["file_id"]) == wanted_test]
    database = root / DATABASE_NAME
    test_ids = read_split_list(test_list, database)
    train_ids = read_split_list(train_list, database) if train_list.is_file() else None
    if train_ids is not None and train_ids & test_ids:
        raise ValueError(f"{train_list} and {test_list} share {len(train_ids & test_ids)} face(s), "
                         f"e.g. face_id {min(train_ids & test_ids)}")
    if split == "test":
        listed, chosen = test_list, [face for face in faces if face["face_id"] in test_ids]
        wanted = test_ids
    elif train_ids is not None:
        listed, chosen = train_list, [face for face in faces if face["face_id"] in train_ids]
        wanted = train_ids
    else:
        return [face for face in faces if face["face_id"] not in test_ids]
    if len(chosen) < len(wanted):
        warnings.warn(f"{len(wanted) - len(chosen)} face(s) listed in {listed} lack a rectangle or one of "
                      f"{AFLW_FEATURES}; they are left out", stacklevel=3)
    return chosen


class AFLWDataset(CroppedDataset):
    """AFLW faces cropped as in App. G.1, with the 5 protocol landmarks.

    Args:
        root: the folder with ``aflw.sqlite`` and ``flickr/`` (module docstring).
        split: ``"train"`` or ``"test"``.
        image_size: S, the side of the returned images (80 in Table 6).
        channels: 3 or 1.
    Attributes:
        face_ids: the AFLW face_id of each item.
        paths: the image file of each item (an image with several faces recurs).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3):
        super().__init__(image_size, channels, split, SPLITS, "AFLW")
        self.root = Path(root)
        faces = _select_split(self.root, split, read_aflw_faces(self.root / DATABASE_NAME))
        if not faces:
            raise ValueError(f"the AFLW split {split!r} under {self.root} has no face with all of {AFLW_FEATURES}")
        self.face_ids = [face["face_id"] for face in faces]
        self.paths = [str(self.root / IMAGE_FOLDER / face["filepath"]) for face in faces]
        self.boxes = [enlarged_box(face["rect"]) for face in faces]
        self._landmarks = np.stack([box_to_normalised(face["points"], box)
                                    for face, box in zip(faces, self.boxes)]).astype(np.float32)  # (n, 5, 2)


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> AFLWDataset:
    """The registry's entry point: :class:`AFLWDataset` (``split`` in ``SPLITS``)."""
    return AFLWDataset(root, split, image_size=image_size, channels=channels)
