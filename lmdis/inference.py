"""Landmarks of many image files, streamed to a CSV (``lmdis landmarks``).

DataLoader workers decode the files, each resized to the model's input with
its original size kept for the pixel coordinates. The detector runs in
batches under ``torch.inference_mode`` as an inference copy
(:class:`InferenceDetector`): every batch norm folded into the convolution
before it and channels-last memory, which oneDNN runs about 1.8x faster on a
CPU than the training layout (``benchmarks/landmarks_throughput.py``).
Rows are written as they come to a temporary file renamed at the end, so
memory stays bounded by a few batches whatever the number of files, and a
failure never leaves a partial CSV.
"""
from __future__ import annotations

import copy
import csv
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lmdis.data import decode_image, unreadable_images_error
from lmdis.geometry import pad_with_edges, padded_to_image_frame
from lmdis.model import LandmarkAutoencoder


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm2d into the Conv2d just before it in an ``nn.Sequential``, in place.

    The convolution gets the normalisation's affine map (and a bias), the
    normalisation becomes an identity: the same function with one pass over
    the feature map fewer. Only for inference: the running statistics are
    frozen into the weights.
    """
    for child in module.children():
        fold_batch_norm(child)
    if isinstance(module, nn.Sequential):
        for index in range(len(module) - 1):
            convolution, norm = module[index], module[index + 1]
            if isinstance(convolution, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[index] = fuse_conv_bn_eval(convolution.eval(), norm.eval())
                module[index + 1] = nn.Identity()
    return module


class InferenceDetector(nn.Module):
    """``model.detect`` for inference only: batch norm folded, channels-last memory.

    images (B, C, S, S) in [0, 1] -> landmarks (B, K, 2) in the image frame,
    equal to :meth:`lmdis.model.LandmarkAutoencoder.detect` in eval mode up
    to float rounding. The model itself is left as it is.
    """

    def __init__(self, model: LandmarkAutoencoder):
        super().__init__()
        self.image_size, self.padded_size = model.config.image_size, model.config.padded_size
        detector = fold_batch_norm(copy.deepcopy(model.detector).eval())
        self.detector = detector.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        padded = pad_with_edges(images, self.padded_size).contiguous(memory_format=torch.channels_last)  # (B, C, P, P)
        landmarks = self.detector(padded).landmarks                                                     # (B, K, 2)
        return padded_to_image_frame(landmarks, self.image_size, self.padded_size)


class ImageFiles(Dataset):
    """Image files decoded for a detector; a file that cannot be read is reported, not raised.

    Item ``i``: ``(i, image (C, S, S) or None, (width, height) or None,
    error message or None)``, so that one pass names every bad file.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], channels: int, image_size: int,
                 max_pixels: int | None = None):
        self.paths = [Path(path) for path in paths]
        self.channels, self.image_size, self.max_pixels = channels, image_size, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image, size = decode_image(self.paths[index], self.channels, self.image_size, self.max_pixels)
        except (ValueError, FileNotFoundError) as error:
            return index, None, None, str(error)
        return index, image, size, None


def _collate(items) -> dict:
    decoded = [item for item in items if item[1] is not None]
    return {"indices": [item[0] for item in decoded],
            "images": torch.stack([item[1] for item in decoded]) if decoded else None,
            "sizes": np.asarray([item[2] for item in decoded], dtype=np.float64).reshape(-1, 2),
            "errors": [item[3] for item in items if item[3] is not None]}


def default_workers(count: int, batch_size: int) -> int:
    """Decoding workers: none for a single batch (starting one costs more), else half the cores, at most 4."""
    if count <= batch_size:
        return 0
    return min(4, max(1, (os.cpu_count() or 1) // 2))


def write_landmarks_csv(model: LandmarkAutoencoder, paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                        batch_size: int = 64, num_workers: int | None = None, device="cpu",
                        max_pixels: int | None = None) -> dict:
    """Write ``path,x1,y1,...,xK,yK`` for every image file, in each image's own pixels.

    Pixel centres are at integers, 0-indexed (:func:`lmdis.data.normalised_to_pixel`).

    Args:
        model: the trained autoencoder; its config gives the input size and channels.
        paths: image files, written in this order.
        out: the CSV; replaced only when every file has been read.
        batch_size: images per detector call.
        num_workers: decoding processes (default :func:`default_workers`).
        max_pixels: the most pixels a file may have (default
            :data:`lmdis.data.images.MAX_IMAGE_PIXELS`).
    Returns:
        ``{"images": n, "K": K, "csv": out}``.
    Raises:
        ValueError: files that cannot be read (every one listed), or
            landmarks that are not finite; ``out`` is then left as it was.
    """
    config = model.config
    out = Path(out)
    dataset = ImageFiles(paths, config.channels, config.image_size, max_pixels)
    workers = default_workers(len(dataset), batch_size) if num_workers is None else num_workers
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        pin_memory=device.type == "cuda")
    detector = InferenceDetector(model).to(device)
    header = ["path", *[f"{axis}{i}" for i in range(1, config.num_landmarks + 1) for axis in ("x", "y")]]
    failures, non_finite = [], []
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", newline="", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle, torch.inference_mode():
            writer = csv.writer(handle)
            writer.writerow(header)
            for batch in loader:
                failures += batch["errors"]
                if failures or batch["images"] is None:
                    continue  # the CSV will not be written; decode on only to name every bad file
                found = detector(batch["images"].to(device, non_blocking=True)).cpu().double().numpy()  # (B, K, 2)
                pixels = found * batch["sizes"][:, None, :] - 0.5  # normalised_to_pixel per image, (B, K, 2)
                finite = np.isfinite(pixels).all(axis=(1, 2))
                non_finite += [str(dataset.paths[index]) for index, ok in zip(batch["indices"], finite) if not ok]
                writer.writerows([str(dataset.paths[index]), *[f"{value:.3f}" for value in row.reshape(-1)]]
                                 for index, row in zip(batch["indices"], pixels))
        if failures:
            raise unreadable_images_error(failures, len(dataset))
        if non_finite:
            raise ValueError(f"the model gives non-finite landmarks for {len(non_finite)} of {len(dataset)} images, "
                             f"e.g. {non_finite[0]}; no CSV was written")
        os.replace(handle.name, out)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return {"images": len(dataset), "K": config.num_landmarks, "csv": str(out)}
