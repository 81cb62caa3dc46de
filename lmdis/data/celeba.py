"""CelebA faces with the MAFL splits (Sec. 4.1, Appendix G.1, Table 6).

Reads the ORIGINAL CelebA distribution under a root folder; each file may sit
at the root or where the official archive puts it::

    root/
        img_align_celeba/000001.jpg ...    (or Img/img_align_celeba/)  178x218
        list_landmarks_align_celeba.txt    (or Anno/...)               5 points
        list_attr_celeba.txt               (or Anno/...)  optional, 40 attributes
        list_eval_partition.txt            (or Eval/...)  optional, see "train"
        MAFL/training.txt                  19,000 MAFL training file names
        MAFL/testing.txt                   1,000 MAFL test file names

Preparation (App. G.1): "We started from the cropped-and-aligned images
(218x178) ..., scaled them to 100x100 pixels and then cropped the 80x80 center
patches." The paper does not make the 178x218 image square first, so the
scaling to 100x100 does not keep the aspect ratio (x by 100/178, y by
100/218); the authors' released loader does the same. The 80x80 centre of
the 100x100 image is the box (17.8, 21.8, 160.2, 196.2) of the original
(pixel-edge frame), which is cropped and resized in one resampling; the
landmarks go through the same map (:func:`lmdis.data.images.box_to_normalised`).

Splits:

- ``"train"`` (unsupervised training, Sec. 4.1): "all facial images in the
  CelebA training set excluding those also appearing in the MAFL test set
  (then 161,962 images)": partition 0 of ``list_eval_partition.txt`` minus
  ``MAFL/testing.txt``. Without the partition file, every image of the
  landmark list minus the MAFL test images (201,599), with a warning;
- ``"mafl-train"``: the MAFL training images, to fit the landmark regressor;
- ``"mafl-test"``: the MAFL test images.

Every item carries the 5 CelebA landmarks (left eye, right eye, nose, left and
right mouth corner; "left" is the IMAGE left, as CelebA annotates it), taken
as pixel coordinates with centres at integers.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lmdis.data.base import CroppedDataset
from lmdis.data.images import box_to_normalised
from lmdis.data.protocol import Protocol

SPLITS = ("train", "mafl-train", "mafl-test")
IMAGE_SIZE = 80  # Table 6
PADDED_SIZE = 96  # Table 6: the model edge-pads the images to this side
POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
ATTRIBUTE_COUNT = 40
PROTOCOL = Protocol(dataset="celeba", point_names=POINT_NAMES, fit_split="mafl-train", test_split="mafl-test",
                    normaliser="points", reference_points=(0, 1))

ALIGNED_SIZE = (178, 218)  # (width, height) of img_align_celeba
SCALED_SIDE, CROP_SIDE = 100, 80  # App. G.1: scale to 100x100, keep the 80x80 centre
_MARGIN = (SCALED_SIDE - CROP_SIDE) / 2 / SCALED_SIDE  # 0.1 of each side
CROP_BOX = (_MARGIN * ALIGNED_SIZE[0], _MARGIN * ALIGNED_SIZE[1],
            (1 - _MARGIN) * ALIGNED_SIZE[0], (1 - _MARGIN) * ALIGNED_SIZE[1])  # pixel-edge frame of 178x218

TRAIN_PARTITION = "0"  # list_eval_partition.txt: 0 train, 1 validation, 2 test
_LAYOUT = {  # what -> where it may be under the root; the first that exists is used
    "images": ("img_align_celeba", "Img/img_align_celeba"),
    "landmarks": ("list_landmarks_align_celeba.txt", "Anno/list_landmarks_align_celeba.txt"),
    "attributes": ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt"),
    "partition": ("list_eval_partition.txt", "Eval/list_eval_partition.txt"),
    "mafl-train": ("MAFL/training.txt",),
    "mafl-test": ("MAFL/testing.txt",),
}
_DESCRIPTIONS = {
    "images": "the folder of aligned 178x218 CelebA images",
    "landmarks": "the CelebA landmark list of the aligned images",
    "attributes": "the CelebA attribute list",
    "partition": "the CelebA train/validation/test partition",
    "mafl-train": "the MAFL training list (one CelebA file name per line)",
    "mafl-test": "the MAFL test list (one CelebA file name per line)",
}


def _locate(root: Path, what: str, required: bool = True) -> Path | None:
    """The first existing path of ``_LAYOUT[what]`` under ``root``; FileNotFoundError if required and none."""
    candidates = [root / relative for relative in _LAYOUT[what]]
    found = next((path for path in candidates if path.exists()), None)
    if found is None and required:
        raise FileNotFoundError(f"{_DESCRIPTIONS[what]} not found: expected "
                                f"{' or '.join(str(path) for path in candidates)}")
    return found


def read_celeba_list(path: str | os.PathLike, columns: int) -> tuple[list[str], list[str], np.ndarray]:
    """Parses a CelebA annotation list (landmarks or attributes).

    Format: line 1 the number of entries, line 2 the ``columns`` column names,
    then ``filename v1 ... v<columns>`` per line, separated by any whitespace.

    Returns:
        (column names, file names in file order, (n, columns) float64 values).
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a malformed line (``file:line`` in the message), or a count
            on line 1 that does not match the entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA list not found: {path}")
    expected = f"'filename v1 ... v{columns}' ({columns} numbers after the file name)"
    names: list[str] = []
    rows: list[list[float]] = []
    with open(path) as handle:
        count_line = handle.readline().split()
        if len(count_line) != 1 or not count_line[0].isdigit():
            raise ValueError(f"{path}:1: expected the number of entries, got {' '.join(count_line)!r}")
        header = handle.readline().split()
        if len(header) != columns:
            raise ValueError(f"{path}:2: expected a header of {columns} column names, got {len(header)}: {header!r}")
        for line_number, line in enumerate(handle, start=3):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != columns + 1:
                raise ValueError(f"{path}:{line_number}: expected {expected}, got {len(fields)} fields: "
                                 f"{line.strip()!r}")
            try:
                rows.append([float(field) for field in fields[1:]])
            except ValueError:
                raise ValueError(f"{path}:{line_number}: expected {expected}, got {line.strip()!r}") from None
            names.append(fields[0])
    if len(names) != int(count_line[0]):
        raise ValueError(f"{path}:1: says {int(count_line[0])} entries, the file has {len(names)}")
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), columns)
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: expected finite values")
    return header, names, values


def read_file_name_list(path: str | os.PathLike) -> list[str]:
    """A MAFL list: the first field of each non-empty line, a CelebA file name (anything after it is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MAFL list not found: {path}")
    names, seen = [], {}
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            name = fields[0]
            if not name.lower().endswith((".jpg", ".png")):
                raise ValueError(f"{path}:{line_number}: expected a CelebA file name such as '000001.jpg' "
                                 f"first on the line, got {line.strip()!r}")
            if name in seen:
                raise ValueError(f"{path}:{line_number}: {name!r} is listed twice (first on line {seen[name]})")
            seen[name] = line_number
            names.append(name)
    return names


def read_partition(path: str | os.PathLike) -> dict[str, str]:
    """``list_eval_partition.txt`` (``filename 0|1|2`` per line) -> {file name: partition}."""
    path = Path(path)
    partition = {}
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{line_number}: expected 'filename 0|1|2' (train, validation, test), "
                                 f"got {line.strip()!r}")
            partition[fields[0]] = fields[1]
    return partition


def _split_names(root: Path, split: str, annotated: dict[str, int]) -> list[str]:
    """The file names of ``split``, each checked against the landmark list."""
    if split != "train":
        list_path = _locate(root, split)
        names = read_file_name_list(list_path)
        unknown = [name for name in names if name not in annotated]
        if unknown:
            raise ValueError(f"{list_path}: {len(unknown)} file name(s) are not in the landmark list, "
                             f"e.g. {unknown[0]!r}")
        return names
    mafl_test = set(read_file_name_list(_locate(root, "mafl-test")))
    partition_path = _locate(root, "partition", required=False)
    if partition_path is None:
        warnings.warn(f"no list_eval_partition.txt under {root}: the CelebA 'train' split is every annotated "
                      f"image minus the MAFL test images, not the paper's CelebA training partition",
                      stacklevel=3)
        return [name for name in annotated if name not in mafl_test]
    partition = read_partition(partition_path)
    return [name for name in annotated if partition.get(name) == TRAIN_PARTITION and name not in mafl_test]


class CelebADataset(CroppedDataset):
    """CelebA aligned faces, prepared as in App. G.1, with their 5 landmarks.

    Args:
        root: the CelebA folder (layout in the module docstring).
        split: one of ``SPLITS``.
        image_size: S, the side of the returned images (80 in Table 6).
        channels: 3 or 1.
    Raises:
        FileNotFoundError: a file the split needs is missing (the message names
            the paths tried).
        ValueError: an unknown split, or a malformed list (``file:line``).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3):
        super().__init__(image_size, channels, split, SPLITS, "CelebA")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"CelebA folder not found: {self.root}")
        image_folder = _locate(self.root, "images")
        _, annotated_names, points = read_celeba_list(_locate(self.root, "landmarks"), 2 * len(POINT_NAMES))
        annotated = {name: row for row, name in enumerate(annotated_names)}
        self.file_names = _split_names(self.root, split, annotated)
        if not self.file_names:
            raise ValueError(f"the CelebA split {split!r} under {self.root} is empty")
        rows = [annotated[name] for name in self.file_names]
        pixels = points[rows].reshape(len(rows), len(POINT_NAMES), 2)  # (n, 5, 2) in the 178x218 image
        self._landmarks = box_to_normalised(pixels, CROP_BOX).astype(np.float32)
        self.paths = [str(image_folder / name) for name in self.file_names]
        self.boxes = [CROP_BOX] * len(self.paths)
        self.expected_original_size = ALIGNED_SIZE
        self.original_size_hint = "(the aligned images of img_align_celeba)"

    def attributes(self) -> tuple[list[str], np.ndarray]:
        """The 40 CelebA attributes of every face (Sec. 4.3), from ``list_attr_celeba.txt``.

        Returns:
            (the 40 attribute names, (n, 40) int8 values in {-1, 1} in item order).
        Raises:
            FileNotFoundError: the attribute list is absent.
            ValueError: a malformed list, a value other than -1/1, or a face it lacks.
        """
        path = _locate(self.root, "attributes")
        names, file_names, values = read_celeba_list(path, ATTRIBUTE_COUNT)
        bad = np.argwhere((values != 1) & (values != -1))
        if len(bad):
            row, column = bad[0]
            raise ValueError(f"{path}: expected attribute values -1 or 1, got {values[row, column]:g} for "
                             f"{file_names[row]!r} ({names[column]})")
        row_of = {name: row for row, name in enumerate(file_names)}
        missing = [name for name in self.file_names if name not in row_of]
        if missing:
            raise ValueError(f"{path} has no row for {len(missing)} image(s) of the {self.split!r} split, "
                             f"e.g. {missing[0]!r}")
        return names, values[[row_of[name] for name in self.file_names]].astype(np.int8)


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> CelebADataset:
    """The registry's entry point: :class:`CelebADataset` (``split`` in ``SPLITS``)."""
    return CelebADataset(root, split, image_size=image_size, channels=channels)
