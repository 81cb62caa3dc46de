"""What every data set shares: the checks of its constructor, crops by box, a decoded copy, the collate.

:class:`ImageDataset` is the base of every reader: its constructor checks the
split (against the reader's ``SPLITS``), the image size and the channel
count, and :meth:`~ImageDataset.annotated_landmarks` says which data sets
have no annotations. :class:`CroppedDataset` cuts items from original images
by per-item boxes, the preparation of most paper data sets (App. G.1).
:class:`InMemoryDataset` keeps a decoded copy for training, and
:func:`collate_images` stacks the images of items into a batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lmdis.data.images import check_channels, check_image_size, load_crop, unreadable_images_error

__all__ = ["ImageDataset", "CroppedDataset", "InMemoryDataset", "collate_images"]


class ImageDataset(Dataset):
    """Items in the format of :mod:`lmdis.data`, images ``image_size`` square with ``channels`` channels.

    Args:
        image_size: S, the side of every returned image.
        channels: 3 or 1.
        split: the split to read, one of ``splits``; only for data sets with splits.
        splits: the data set's splits (its module's ``SPLITS``).
        name: how error messages call the data set (``"CelebA"``).
    Raises:
        ValueError: an unknown split, a channel count other than 1 or 3, or
            a size that is not a positive int (checked in that order).
    """

    _landmarks: np.ndarray | None = None  # (n, N, 2) normalised, in item order, when annotated
    annotation_hint = "this data set has no landmark annotations"

    def __init__(self, image_size: int, channels: int, split: str | None = None,
                 splits: Sequence[str] | None = None, name: str = ""):
        if splits is not None:
            if split not in splits:
                raise ValueError(f"unknown {name} split {split!r}, expected one of {tuple(splits)}")
            self.split = split
        check_channels(channels)
        check_image_size(image_size)
        self.image_size = image_size
        self.channels = channels

    def annotated_landmarks(self) -> np.ndarray:
        """(n, N, 2) float32 normalised landmarks of every item, in item order.

        Raises:
            ValueError: the data set has no landmark annotations (the message says why).
        """
        if self._landmarks is None:
            raise ValueError(f"{type(self).__name__} has no landmark annotations ({self.annotation_hint})")
        return self._landmarks.copy()


class CroppedDataset(ImageDataset):
    """Items cut from original images by per-item boxes (the paper data sets' preparation).

    Subclasses call the constructor of :class:`ImageDataset`, then fill
    ``paths`` (original image files), ``boxes`` ((n, 4) crop boxes,
    pixel-edge frame, see :func:`~lmdis.data.images.load_crop`), optionally
    ``_landmarks`` ((n, N, 2) normalised in the crop, already mirrored for
    flipped items) and ``flipped`` ((n,) bool: mirror the crop horizontally).
    """

    paths: list[str]
    boxes: Sequence
    flipped: np.ndarray | None = None
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


def collate_images(items: Sequence[dict]) -> torch.Tensor:
    """The images of data set items as one batch (B, C, S, S); the ``collate_fn`` of lmdis's loaders."""
    return torch.stack([item["image"] for item in items])
