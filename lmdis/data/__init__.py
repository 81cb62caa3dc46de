"""Datasets: images in [0, 1] at a fixed square size, with their annotations.

The item format, the coordinate convention and the generic readers (image
folders, MTFL, MNIST) are in :mod:`lmdis.data.core`; :mod:`lmdis.data.protocol`
says how each dataset is evaluated. Everything public is re-exported here.
"""
from lmdis.data.core import *  # noqa: F401,F403
from lmdis.data.core import (  # noqa: F401  (private helpers the tests and dataset modules use)
    _check_channels, _check_size, _decode_image, _pil_to_tensor, _read_landmark_csv, _read_mtfl_list,
)
from lmdis.data.protocol import Protocol  # noqa: F401
