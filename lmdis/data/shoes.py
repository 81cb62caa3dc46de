"""Shoes from UT Zappos50K (Sec. 4.1 "Shoes", App. G.1, Table 6), read from the original release.

Expected layout: ``root`` is the unpacked ``ut-zap50k-images`` folder (or the
folder containing it)::

    ut-zap50k-images/<Category>/<Subcategory>/<Brand>/<name>.jpg

50,025 JPEGs of 102x136 pixels (App. G.1), shoes seen from the side on white.
There are no landmark annotations: ``PROTOCOL`` is None.

Preparation (App. G.1): each image is scaled to 64x64 WITHOUT keeping its
aspect ratio (the paper scales 102x136 "to 64x64": the aspect changes by
4:3), centred on an 80x80 white canvas (the "white margins"), and the
colours are mapped linearly from [0, 1] to [0.1, 0.9] (so the white margin is
0.9) to keep the decoder's sigmoid out of saturation. Both steps belong to
the dataset because Table 6 lists shoes at 80x80, like CelebA: the model then
pads the 80x80 image to 96 with edge values, which are white here too. For
another ``image_size`` S the shoe takes round(0.8 S) pixels.

Splits (Sec. 4.1 follows Thewlis et al.: 49,525 training and 500 test
images; their list is not published): the images are sorted by path relative
to the ``ut-zap50k-images`` folder, and the 500 at positions
``(2 i + 1) n // 1000`` (i = 0..499, evenly spread over the sorted
categories) form ``test``; the rest is ``train``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from lmdis.data.base import ImageDataset
from lmdis.data.images import list_images, open_image, pil_to_tensor

SPLITS = ("train", "test")
IMAGE_SIZE = 80  # Table 6: a 64x64 shoe on white margins
PADDED_SIZE = 96  # Table 6: the model edge-pads the images to this side
FOLDER = "ut-zap50k-images"
TEST_SIZE = 500
CONTENT_FRACTION = 64 / 80  # the shoe's share of the side, App. G.1
COLOUR_RANGE = (0.1, 0.9)  # App. G.1: [0, 1] -> [0.1, 0.9]
WHITE = 255

PROTOCOL = None


def test_positions(count: int, test_size: int = TEST_SIZE) -> np.ndarray:
    """Positions in the sorted image list that form the test split: ``(2 i + 1) count // (2 test_size)``."""
    if count <= test_size:
        raise ValueError(f"need more than {test_size} shoe images to hold {test_size} out, found {count}")
    return (2 * np.arange(test_size) + 1) * count // (2 * test_size)


def shoe_on_white(image: Image.Image, size: int) -> Image.Image:
    """App. G.1: the image scaled to round(0.8 size) square (aspect not kept), centred on a white size x size RGB."""
    content = round(CONTENT_FRACTION * size)
    canvas = Image.new("RGB", (size, size), (WHITE, WHITE, WHITE))
    offset = (size - content) // 2
    canvas.paste(image.convert("RGB").resize((content, content), Image.Resampling.BILINEAR), (offset, offset))
    return canvas


class ZapposShoesDataset(ImageDataset):
    """UT Zappos50K shoes prepared as in App. G.1 (see the module docstring); no landmarks.

    Args:
        root: the ``ut-zap50k-images`` folder or its parent.
        split: ``"train"`` or ``"test"``.
        image_size: side of the output (Table 6: 80; the shoe takes 80 %).
        channels: 3 or 1.
        test_size: images held out for ``test`` (the paper: 500).
    Items: ``image`` (C, S, S) with values in [0.1, 0.9], ``index``.
    """

    annotation_hint = "UT Zappos50K shoes are not annotated"

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3, test_size: int = TEST_SIZE):
        super().__init__(image_size, channels, split, SPLITS, "shoes")
        folder = Path(root)
        if (folder / FOLDER).is_dir():
            folder = folder / FOLDER
        if not folder.is_dir():
            raise FileNotFoundError(f"UT Zappos50K folder not found: {folder}; expected {FOLDER}/<Category>/"
                                    "<Subcategory>/<Brand>/*.jpg (or its parent)")
        images = list_images(folder)  # sorted by relative path
        held_out = np.zeros(len(images), dtype=bool)
        held_out[test_positions(len(images), test_size)] = True
        keep = held_out if split == "test" else ~held_out
        self.root = folder
        self.paths = [str(image) for image, kept in zip(images, keep) if kept]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = Path(self.paths[index])
        if not path.is_file():
            raise FileNotFoundError(f"shoe image not found: {path}")
        with open_image(path) as image:
            try:
                prepared = shoe_on_white(image, self.image_size)
            except (OSError, SyntaxError, ValueError) as error:
                raise ValueError(f"cannot read image {path}: {error}") from error
        low, high = COLOUR_RANGE
        image = low + (high - low) * pil_to_tensor(prepared, self.channels, None)
        return {"image": image, "index": index}


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE,
               channels: int = 3) -> ZapposShoesDataset:
    """The registry's entry point: :class:`ZapposShoesDataset` with the paper's 500 test images."""
    return ZapposShoesDataset(root, split, image_size=image_size, channels=channels)
