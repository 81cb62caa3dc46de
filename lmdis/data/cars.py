"""Profile cars from PASCAL3D+ (Sec. 4.1 "Cars", App. G.1, Table 6), read from the original release.

Expected layout under ``root`` (``PASCAL3D+_release1.1`` as unpacked)::

    Annotations/car_imagenet/<name>.mat    Images/car_imagenet/<name>.JPEG
    Annotations/car_pascal/<name>.mat      Images/car_pascal/<name>.jpg

Each ``.mat`` holds a MATLAB struct ``record`` with ``record.filename`` (the
image's file name) and ``record.objects(i)`` with ``.class``,
``.viewpoint.azimuth`` (degrees; ``.azimuth_coarse`` when the fine one is
empty) and ``.anchors.<name>.location`` ([x y], MATLAB's 1-based pixel
coordinates) / ``.status`` (1 = visible). Other fields are not read.

Preparation (the paper fixes the idea, lmdis fixes the numbers):

- profile car = a ``car`` object whose azimuth is within
  ``AZIMUTH_TOLERANCE`` (15 deg) of 90 or 270 deg AND whose six anchors of one
  side are all visible (status 1 with a location): the front and back wheel,
  front light, back trunk and the upper corners of the windshield and rear
  window of that side. These are the "6 target landmarks" of Sec. 4.2, in the
  order of ``POINT_NAMES``; their meaning does not depend on the side seen.
  (The paper gives no angle; 15 deg yields views where one side is seen
  nearly flat, cf. its 630 profile cars.)
- crop: the bounding box of the six points, enlarged on all four sides by
  ``CROP_MARGIN`` (10 %) of its longer side, the paper's "slight margins"
  (they also take in the wheels below their centres), then scaled to a
  square without keeping the aspect ratio (64x64, Table 6; the model pads to
  96 with edge values). Where the box passes the image border, edge pixels
  are repeated.
- direction: the paper flips only the AwA animals, so cars keep the
  direction they face (both occur). ``face_left=True`` flips right-facing
  cars (front wheel right of the back wheel) so that all face left.
- splits: the paper's 567 / 63 split is not published; an image goes to
  ``test`` when ``zlib.crc32(name) % 10 == 0`` for its file name without the
  extension (about 10 %; all cars of an image on the same side), else to
  ``train``.

Evaluation (Table 2): the error is divided by the bi-wheel distance, the
distance between the two wheel centres (``PROTOCOL.reference_points``).
"""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from lmdis.data.base import CroppedDataset
from lmdis.data.images import box_to_normalised
from lmdis.data.protocol import Protocol

SPLITS = ("train", "test")
IMAGE_SIZE = 64  # Table 6
PADDED_SIZE = 96  # Table 6: the model edge-pads the images to this side
SOURCES = ("car_imagenet", "car_pascal")
POINT_NAMES = ("front_wheel", "back_wheel", "front_light", "back_trunk", "upper_windshield", "upper_rearwindow")
SIDE_ANCHORS = {  # the PASCAL3D+ anchor names of each side, in the order of POINT_NAMES
    side: (f"{side}_front_wheel", f"{side}_back_wheel", f"{side}_front_light", f"{side}_back_trunk",
           f"upper_{side}_windshield", f"upper_{side}_rearwindow")
    for side in ("left", "right")
}
BI_WHEEL = (0, 1)  # front and back wheel: the error normaliser of Table 2
PROFILE_AZIMUTHS = (90.0, 270.0)
AZIMUTH_TOLERANCE = 15.0  # degrees either side of a profile azimuth
CROP_MARGIN = 0.1  # fraction of the landmark box's longer side added on every side
TEST_MODULUS = 10  # crc32(image file name without extension) % 10 == 0 -> test
VISIBLE = 1  # PASCAL3D+ anchor status of a visible, located point

PROTOCOL = Protocol(dataset="car", point_names=POINT_NAMES, fit_split="train", test_split="test",
                    normaliser="points", reference_points=BI_WHEEL)


# --------------------------------------------------------------------------- selection rules

def is_profile_azimuth(azimuth: float, tolerance: float = AZIMUTH_TOLERANCE) -> bool:
    """True when ``azimuth`` (degrees, any turn) lies within ``tolerance`` of 90 or 270 degrees."""
    return any(abs((azimuth - centre + 180.0) % 360.0 - 180.0) <= tolerance for centre in PROFILE_AZIMUTHS)


def split_of(image_name: str) -> str:
    """``"test"`` for about one image name (without extension) in ten, by CRC-32; else ``"train"``."""
    return "test" if zlib.crc32(image_name.encode("utf-8")) % TEST_MODULUS == 0 else "train"


def landmark_crop_box(points_px: np.ndarray, margin: float = CROP_MARGIN) -> tuple[float, float, float, float]:
    """The crop of App. G.1: the points' bounding box plus ``margin`` x its longer side on every side.

    Args:
        points_px: (N, 2) pixel (u, v), centres at integers (0-indexed).
    Returns:
        (left, top, right, bottom) in the pixel-edge frame (pixel u spans [u, u + 1]).
    """
    low, high = points_px.min(axis=0) + 0.5, points_px.max(axis=0) + 0.5  # centre -> edge frame
    pad = margin * float(np.max(high - low))
    return (low[0] - pad, low[1] - pad, high[0] + pad, high[1] + pad)


# --------------------------------------------------------------------------- .mat records

def _is_empty(value) -> bool:
    return isinstance(value, np.ndarray) and value.size == 0


def _number(value) -> float | None:
    """A MATLAB scalar as a float; None for an empty or non-finite value."""
    if _is_empty(value):
        return None
    try:
        number = float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _field(struct, name: str, where: str):
    if not hasattr(struct, name):
        fields = getattr(struct, "_fieldnames", None)
        raise ValueError(f"{where}: no field {name!r} (fields: {fields}); expected the PASCAL3D+ record layout "
                         "record.objects(i).class/.viewpoint.azimuth/.anchors.<name>.location/.status")
    return getattr(struct, name)


def _azimuth(viewpoint) -> float | None:
    if _is_empty(viewpoint):
        return None
    for name in ("azimuth", "azimuth_coarse"):
        value = _number(getattr(viewpoint, name, np.empty(0)))
        if value is not None:
            return value
    return None


def _visible_side(anchors, where: str) -> tuple[str, np.ndarray] | None:
    """(side, (6, 2) 1-based [x y]) for the side whose six anchors are all visible, else None."""
    if _is_empty(anchors):
        return None
    found = {}
    for side, names in SIDE_ANCHORS.items():
        points = []
        for name in names:
            anchor = _field(anchors, name, f"{where}.anchors")
            location = np.asarray(_field(anchor, "location", f"{where}.anchors.{name}"), dtype=np.float64)
            status = _number(_field(anchor, "status", f"{where}.anchors.{name}"))
            if location.size == 0 or status != VISIBLE:
                break
            if location.size != 2 or not np.all(np.isfinite(location)):
                raise ValueError(f"{where}.anchors.{name}.location: expected [x y] (2 finite numbers), "
                                 f"got {location.tolist()!r}")
            points.append(location.reshape(2))
        else:
            found[side] = np.stack(points)
    if len(found) != 1:  # neither side fully visible, or (not a profile) both
        return None
    return next(iter(found.items()))


def read_profile_cars(mat_path: Path, tolerance: float = AZIMUTH_TOLERANCE):
    """The profile cars of one PASCAL3D+ annotation file.

    Returns:
        (image file name, [(object index 0-based, side, (6, 2) pixel (u, v) 0-indexed), ...]).
    Raises:
        ValueError: an unreadable file, or one without the ``record`` layout
            (the file and the field are named).
    """
    import scipy.io

    try:
        content = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises several types for corrupt or non-MATLAB files
        raise ValueError(f"cannot read {mat_path} as a MATLAB file: {error}") from error
    if "record" not in content:
        raise ValueError(f"{mat_path}: no variable 'record'; expected a PASCAL3D+ annotation "
                         "(record.filename, record.objects)")
    record = content["record"]
    filename = _field(record, "filename", f"{mat_path}: record")
    if not isinstance(filename, str) or not filename:
        raise ValueError(f"{mat_path}: record.filename must be the image file name, got {filename!r}")
    cars = []
    for index, item in enumerate(np.atleast_1d(_field(record, "objects", f"{mat_path}: record"))):
        where = f"{mat_path}: record.objects({index + 1})"
        if _field(item, "class", where) != "car":
            continue
        azimuth = _azimuth(_field(item, "viewpoint", where))
        if azimuth is None or not is_profile_azimuth(azimuth, tolerance):
            continue
        visible = _visible_side(_field(item, "anchors", where), where)
        if visible is not None:
            side, points = visible
            cars.append((index, side, points - 1.0))  # MATLAB's 1-based pixels -> centres at 0..W-1
    return filename, cars


# --------------------------------------------------------------------------- dataset

class PascalCarsDataset(CroppedDataset):
    """Profile cars of PASCAL3D+ with their 6 side landmarks (see the module docstring).

    Args:
        root: the PASCAL3D+ release folder (``Annotations/``, ``Images/``).
        split: ``"train"`` or ``"test"``.
        image_size: side of the square crops (Table 6: 64).
        channels: 3 or 1.
        face_left: flip right-facing cars horizontally (not in the paper).
        tolerance: degrees from 90/270 still counted as a profile.
    Items: ``image`` (C, S, S), ``index``, ``landmarks`` (6, 2) normalised in
    the crop, in the order of ``POINT_NAMES``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3, face_left: bool = False, tolerance: float = AZIMUTH_TOLERANCE):
        super().__init__(image_size, channels, split, SPLITS, "car")
        self.root = Path(root)
        self.paths, self.sources, self.sides, boxes, landmarks = [], [], [], [], []
        for source in SOURCES:
            annotations = self.root / "Annotations" / source
            if not annotations.is_dir():
                raise FileNotFoundError(f"PASCAL3D+ annotation folder not found: {annotations}; the root should be "
                                        f"the release folder with Annotations/{{{','.join(SOURCES)}}}/*.mat and "
                                        f"Images/{{{','.join(SOURCES)}}}/")
            for mat_path in sorted(annotations.glob("*.mat")):
                filename, cars = read_profile_cars(mat_path, tolerance)
                if not cars or split_of(Path(filename).stem) != split:
                    continue
                image_path = self.root / "Images" / source / filename
                if not image_path.is_file():
                    raise FileNotFoundError(f"image {image_path} named by {mat_path} (record.filename) not found; "
                                            f"expected Images/{source}/{filename} under {self.root}")
                for index, side, points in cars:
                    box = landmark_crop_box(points)
                    self.paths.append(str(image_path))
                    self.sources.append(f"{mat_path}: record.objects({index + 1})")
                    self.sides.append(side)
                    boxes.append(box)
                    landmarks.append(box_to_normalised(points, box))
        if not self.paths:
            raise ValueError(f"no profile car (azimuth within {tolerance} deg of 90/270, six anchors of one side "
                             f"visible) in the {split!r} split under {self.root / 'Annotations'}")
        self.boxes = np.asarray(boxes, dtype=np.float64)  # (n, 4) pixel-edge frame of the originals
        self._landmarks = np.stack(landmarks).astype(np.float32)  # (n, 6, 2)
        front_x, back_x = self._landmarks[:, 0, 0], self._landmarks[:, 1, 0]
        self.flipped = (front_x > back_x) if face_left else np.zeros(len(self.paths), dtype=bool)
        self._landmarks[self.flipped, :, 0] = 1.0 - self._landmarks[self.flipped, :, 0]  # mirror: x -> 1 - x


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> Dataset:
    """The registry's entry point: :class:`PascalCarsDataset` with the paper's settings."""
    return PascalCarsDataset(root, split, image_size=image_size, channels=channels)
