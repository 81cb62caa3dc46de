"""Any folder of images, optionally with a landmark CSV: the ``folder`` data set, and writing one.

Layout: every image under ``root`` (recursively, sorted by path relative to
it; see :func:`lmdis.data.images.list_images`), and optionally a CSV with
the header ``path,x1,y1,...,xN,yN``, one row per image, ``path`` relative to
``root`` and the coordinates in pixels of the ORIGINAL image (centres at
integers). :func:`export_image_folder` writes any prepared data set in this
format, so ``lmdis prepare`` output trains and evaluates as ``folder``.
"""
from __future__ import annotations

import csv
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lmdis.data.base import ImageDataset
from lmdis.data.images import (image_size_of, list_images, load_image, normalised_to_pixel, pixel_to_normalised,
                               unreadable_images_error)

__all__ = ["SPLITS", "IMAGE_SIZE", "PROTOCOL", "ImageFolderDataset", "export_image_folder", "open_split"]

SPLITS = ()  # none: every image under the root
IMAGE_SIZE = 80  # the default side; the paper's most common (Table 6)
PROTOCOL = None  # an image folder names no evaluation protocol


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


class ImageFolderDataset(ImageDataset):
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

    annotation_hint = "pass landmarks_csv=... to annotate the images"

    def __init__(self, root: str | os.PathLike, image_size: int, channels: int = 3,
                 landmarks_csv: str | os.PathLike | None = None):
        super().__init__(image_size, channels)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        images = list_images(self.root)
        self.paths = [str(image) for image in images]
        self._landmarks = None if landmarks_csv is None else _read_landmark_csv(Path(landmarks_csv), self.root, images)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item = {"image": load_image(self.paths[index], self.channels, self.image_size), "index": index}
        if self._landmarks is not None:
            item["landmarks"] = torch.from_numpy(self._landmarks[index])
        return item


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


def open_split(root: str | os.PathLike, split: None = None, image_size: int = IMAGE_SIZE, channels: int = 3,
               landmarks_csv: str | os.PathLike | None = None) -> ImageFolderDataset:
    """The registry's entry point: :class:`ImageFolderDataset` (no splits)."""
    return ImageFolderDataset(root, image_size, channels, landmarks_csv)
