"""MTFL faces (Zhang et al., ECCV 2014): 80x80 crops with 5 landmarks, the evaluation set of Sec. 4.2.

Layout of the root (the MTFL release)::

    root/
        training.txt         'relative/path.jpg x1 x2 x3 x4 x5 y1 y2 y3 y4 y5' per face
        training_clean.txt   the same without the misaligned net_7876 entries
        testing.txt          the 2,995 test faces
        AFLW/ lfw_5590/ net_7876/   the crops the lists name

Coordinates are pixels of the 80x80 crops (centres at integers). The
protocol fits the regressor on ``training_clean`` and tests on ``testing``,
with the error divided by the inter-ocular distance.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lmdis.data.base import ImageDataset
from lmdis.data.images import decode_image, pixel_to_normalised
from lmdis.data.protocol import Protocol

__all__ = ["SPLITS", "IMAGE_SIZE", "POINT_NAMES", "INTEROCULAR", "PROTOCOL", "MTFLDataset", "open_split"]

SPLITS = ("training", "training_clean", "testing", "all")
# "all" is every listed face, training.txt then testing.txt: for unsupervised
# training on the test faces' domain (the AFLW crops, whose faces are 1.5x
# larger than the training crops'). Training never reads the annotations; the
# regressor is still fitted on training_clean and scored on testing.
_SPLIT_LISTS = {"all": ("training", "testing")}
IMAGE_SIZE = 80  # the list files give pixel coordinates in these 80x80 crops
POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
INTEROCULAR = (0, 1)  # indices of the two eyes: the error normaliser of Sec. 4.2
PROTOCOL = Protocol(dataset="mtfl", point_names=POINT_NAMES, fit_split="training_clean", test_split="testing",
                    normaliser="points", reference_points=INTEROCULAR)
_LINE_FORMAT = "'relative/path.jpg x1 x2 x3 x4 x5 y1 y2 y3 y4 y5' (a path, then 5 x's, then 5 y's)"


def _read_mtfl_list(list_path: Path) -> tuple[list[str], np.ndarray]:
    """Parses an MTFL list file -> (relative paths with '/', (n, 5, 2) float32 normalised landmarks)."""
    paths, landmarks = [], []
    with open(list_path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{list_path}:{line_number}"
            if len(fields) != 1 + 2 * len(POINT_NAMES):
                raise ValueError(f"{where}: expected {_LINE_FORMAT}, got {len(fields)} fields: {line.strip()!r}")
            try:
                values = np.asarray([float(field) for field in fields[1:]])
            except ValueError:
                raise ValueError(f"{where}: expected {_LINE_FORMAT}, got non-numbers: {line.strip()!r}") from None
            points_px = values.reshape(2, len(POINT_NAMES)).T  # (5, 2): all x's first, then all y's
            paths.append(fields[0].replace("\\", "/"))
            landmarks.append(pixel_to_normalised(points_px, IMAGE_SIZE, IMAGE_SIZE))
    if not paths:
        raise ValueError(f"{list_path} lists no images; expected lines {_LINE_FORMAT}")
    return paths, np.stack(landmarks).astype(np.float32)


class MTFLDataset(ImageDataset):
    """MTFL faces (80x80 crops) with 5 landmarks, ordered as ``POINT_NAMES``.

    Args:
        root: folder holding ``{split}.txt`` and the image folders it refers to
            (``AFLW/``, ``lfw_5590/``, ``net_7876/``).
        split: one of ``SPLITS``. ``training_clean`` is ``training``
            without the misaligned net_7876 entries; the protocol (Sec. 4.2)
            fits the regressor on it and tests on ``testing``. ``all`` is
            ``training`` followed by ``testing`` (read from both list files).
        image_size: S; 80 keeps the crops as they are.
        channels: 3 or 1.
    Raises:
        FileNotFoundError: the list file is missing.
        ValueError: an unknown split or a malformed line (file:line in the message).
    """

    def __init__(self, root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3):
        super().__init__(image_size, channels, split, SPLITS, "MTFL")
        self.root = Path(root)
        relatives, landmarks = [], []
        for name in _SPLIT_LISTS.get(split, (split,)):
            list_path = self.root / f"{name}.txt"
            if not list_path.is_file():
                raise FileNotFoundError(f"MTFL list file not found: {list_path}; the root should contain "
                                        f"{', '.join(s + '.txt' for s in SPLITS if s not in _SPLIT_LISTS)} "
                                        f"and the image folders they list")
            paths, points = _read_mtfl_list(list_path)
            relatives += paths
            landmarks.append(points)
        self._landmarks = np.concatenate(landmarks)
        self.paths = [str(self.root / relative) for relative in relatives]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        image, original_size = decode_image(Path(path), self.channels, self.image_size)
        if original_size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"MTFL image {path} is {original_size[0]}x{original_size[1]}, expected the "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE} crops the list file's coordinates refer to")
        return {"image": image, "index": index, "landmarks": torch.from_numpy(self._landmarks[index])}


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> MTFLDataset:
    """The registry's entry point: :class:`MTFLDataset` (``split`` in ``SPLITS``)."""
    return MTFLDataset(root, split, image_size=image_size, channels=channels)
