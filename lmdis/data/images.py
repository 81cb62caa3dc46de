"""Image files and crops: the coordinate conversions, decoding under a pixel limit, boxes, folders.

What every data set reads its images with. Coordinates follow the package
convention (see :mod:`lmdis.data`): normalised ``(x, y)`` with pixel centres
at ``(u + 0.5) / W``; annotation files give pixels with centres at integers,
which :func:`pixel_to_normalised` and :func:`box_to_normalised` convert.
Images come back as float32 tensors (C, H, W) in [0, 1].
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "LISTED_FAILURES", "pixel_to_normalised", "normalised_to_pixel",
    "box_to_normalised", "check_channels", "check_image_size", "pil_to_tensor", "open_image", "decode_image",
    "load_image", "image_size_of", "load_crop", "unreadable_images_error", "list_images", "centre_crop",
    "ASTRONAUT_EYES", "LFW_SUBSET_EYES", "MTFL_MEAN_EYES", "aligned_face_crop",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# The most pixels an image file may declare; more is an error naming the file
# and its size. A 218 KB PNG can declare 15000x15000 pixels, which decode to
# 0.6 GiB of RGB (and the float copy to 2.5 GiB). PIL's own warning threshold,
# about 0.25 GiB of RGB; change it here or with the command line's
# --max-image-pixels.
MAX_IMAGE_PIXELS = 89_478_485

# An error listing this many unreadable files at most (and how many more there are).
LISTED_FAILURES = 50

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

def check_channels(channels: int) -> None:
    """ValueError unless ``channels`` is 1 (grayscale) or 3 (RGB)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def check_image_size(size: int | None) -> None:
    """ValueError unless ``size`` is None (keep the stored size) or a positive int."""
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"image size must be a positive int, got {size!r}")


def pil_to_tensor(image: Image.Image, channels: int, size: int | None) -> torch.Tensor:
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
def open_image(path: Path, max_pixels: int | None = None):
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
                             f"of {limit:,} (lmdis.data.images.MAX_IMAGE_PIXELS, --max-image-pixels)")
        yield image


def decode_image(path: Path, channels: int, size: int | None,
                 max_pixels: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`load_image`, plus the original (width, height)."""
    check_channels(channels)
    check_image_size(size)
    with open_image(path, max_pixels) as image:
        try:
            return pil_to_tensor(image, channels, size), image.size
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
    image, _ = decode_image(Path(path), channels, size, max_pixels)
    return image


def image_size_of(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file, read from its header without decoding the pixels."""
    with open_image(Path(path), max_pixels) as image:
        return image.size


# An error listing this many unreadable files at most (and how many more there are).

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
    check_channels(channels)
    check_image_size(size)
    left, top, right, bottom = (float(value) for value in box)
    if not (math.isfinite(left + top + right + bottom) and right > left and bottom > top):
        raise ValueError(f"crop box of {path} must have right > left and bottom > top, got {tuple(box)}")
    path = Path(path)
    with open_image(path, max_pixels) as image:
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
    return pil_to_tensor(resized, channels, None), image.size


# Mean (x, y) of the two annotated eyes over the 2,995 MTFL test crops, normalised:
# where an aligned crop puts a face's eyes, so a photograph matches the
# framing a face model is evaluated on. The training images frame faces
# smaller (mean eyes (0.412, 0.337), (0.606, 0.335): inter-ocular 0.19 of the
# side against 0.29); on the astronaut photograph the zoo face model
# reconstructs the test framing better (mean squared error 0.018 per pixel
# against 0.025), so the test framing is the default.
MTFL_MEAN_EYES = ((0.358, 0.344), (0.648, 0.337))

# Eye centres (u, v), pixels with centres at integers, of scikit-image's
# public-domain photographs: ``skimage.data.astronaut()`` (512x512, located by
# hand on the pupils), and the faces of ``skimage.data.lfw_subset()`` (25x25
# tight crops, one position for all: the darkest pixel of each half of rows
# 7-10 in the mean of its 100 faces).
ASTRONAUT_EYES = ((202.0, 100.0), (246.0, 103.0))
LFW_SUBSET_EYES = ((6.0, 8.0), (15.0, 8.0))


def aligned_face_crop(image, eyes_px, size: int = 80, channels: int = 3, template=MTFL_MEAN_EYES) -> torch.Tensor:
    """A face of any photograph cut out with the framing of a face data set, from its two eye positions.

    The similarity (rotation, uniform scale, shift) that takes ``template``
    (normalised crop coordinates of the two eyes, default the MTFL mean)
    to ``eyes_px`` defines the crop; it is sampled bilinearly after a
    Gaussian blur against aliasing (sigma = (scale - 1) / 2 source pixels,
    as ``skimage.transform.rescale`` does), with edge pixels repeated
    outside the photograph.

    Args:
        image: (H, W, 3) or (H, W) array, uint8 or float in [0, 1].
        eyes_px: ((u, v) of the eye on the image's left, (u, v) of the other),
            pixel coordinates with pixel centres at integers.
        size: side of the square crop; channels: 3 (grey repeated) or 1 (luma).
    Returns:
        float32 (channels, size, size) in [0, 1].
    """
    from skimage.color import rgb2gray
    from skimage.filters import gaussian
    from skimage.transform import SimilarityTransform, warp

    check_channels(channels)
    check_image_size(size)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {array.shape}")
    array = array.astype(np.float64) / 255.0 if array.dtype == np.uint8 else array.astype(np.float64)
    array = array[..., :3] if array.ndim == 3 else array
    eyes = np.asarray(eyes_px, np.float64)
    if eyes.shape != (2, 2) or not np.isfinite(eyes).all() or np.allclose(eyes[0], eyes[1]):
        raise ValueError(f"eyes_px must be two distinct (u, v) points, got {eyes_px!r}")
    target = np.asarray(template, np.float64) * size - 0.5          # the eyes in output pixel coordinates
    if hasattr(SimilarityTransform, "from_estimate"):               # scikit-image >= 0.26
        transform = SimilarityTransform.from_estimate(target, eyes)  # output pixel -> photograph pixel
    else:
        transform = SimilarityTransform()
        transform.estimate(target, eyes)
    blur = max((transform.scale - 1) / 2, 0)
    if blur > 0:
        array = gaussian(array, sigma=blur, channel_axis=-1 if array.ndim == 3 else None, preserve_range=True)
    crop = warp(array, transform, output_shape=(size, size), order=1, mode="edge")
    if channels == 1:
        crop = rgb2gray(crop) if crop.ndim == 3 else crop
        crop = crop[None]
    else:
        crop = np.repeat(crop[None], 3, axis=0) if crop.ndim == 2 else crop.transpose(2, 0, 1)
    return torch.from_numpy(np.clip(crop, 0, 1).astype(np.float32))


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` pixels of (B, C, L, L) images; L - size must be even."""
    side = images.shape[-1]
    if side < size or (side - size) % 2:
        raise ValueError(f"cannot take a centred {size}x{size} crop of {side}x{side} images (need an even margin)")
    start = (side - size) // 2
    return images[..., start:start + size, start:start + size]
