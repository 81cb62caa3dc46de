"""The data a config trains on: decoded once at the loading size, and split into training and held-out sets.

``config`` here is a :class:`lmdis.config.Config`; only its data settings
are read (``train.dataset``, ``train.split``, ``model.channels``,
``model.image_size`` and ``Config.context_size``, the side images are
loaded at), so this module needs nothing of the model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from lmdis.data.base import InMemoryDataset, collate_images
from lmdis.data.images import centre_crop
from lmdis.data.registry import open_dataset

__all__ = ["training_dataset", "DataSplit", "digit_indices", "split_data", "CentreCropped"]


def training_dataset(config, data: str | os.PathLike | None = None, dataset: str | None = None) -> InMemoryDataset:
    """The preset's data set (or ``dataset``) read from ``data``, at ``config.context_size``, cached in memory."""
    name = dataset or config.train.dataset
    options = {"image_size": config.context_size, "channels": config.model.channels}
    if config.train.split:
        options["split"] = config.train.split
    return InMemoryDataset(open_dataset(name, root=data, **options))


@dataclass
class DataSplit:
    """A preset's data as a training set and a held-out set, and the tag naming them for ``train_or_load``."""

    training: Dataset
    held_out: Dataset
    tag: str

    def held_out_images(self, count: int | None = None, labels=None) -> torch.Tensor:
        """(N, C, S, S): ``count`` held-out images (all of them when None), as many of each label as possible.

        Items with a ``"label"`` (MNIST digits) are taken label by label:
        the first ``count // n`` held-out images of each of the n labels, and
        one more of each of the first ``count % n`` labels (sorted), so that
        the embedded MNIST, which is sorted by digit, gives every digit and
        not only the first few. A label with fewer images gives all it has.
        ``labels`` keeps only those labels. Unlabelled items (faces): the
        first ``count``. The images keep their held-out order.

        Raises:
            ValueError: ``count`` is not a positive integer, or no held-out
                image has a label in ``labels``.
        """
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count must be a positive integer or None, got {count!r}")
        items = [self.held_out[index] for index in range(len(self.held_out))]
        if labels is not None:
            items = [item for item in items if item.get("label") in labels]
            if not items:
                raise ValueError(f"no held-out image with a label in {labels}")
        if count is None or not items or "label" not in items[0]:
            return collate_images(items[:count])
        positions: dict[int, list[int]] = {}
        for position, item in enumerate(items):
            positions.setdefault(int(item["label"]), []).append(position)
        present = sorted(positions)
        quota = {label: count // len(present) + (rank < count % len(present)) for rank, label in enumerate(present)}
        chosen = sorted(position for label in present for position in positions[label][:quota[label]])
        return collate_images([items[position] for position in chosen])


_DECODED: dict[tuple, Dataset] = {}


def _decoded_dataset(config, data: str | None) -> Dataset:
    """The decoded training data, kept for the next split (a notebook splits the same data several times)."""
    key = (config.train.dataset, config.train.split, data, config.context_size, config.model.channels)
    if key not in _DECODED:
        _DECODED.clear()  # one data set at a time: MNIST is 4 MB, a face set much more
        _DECODED[key] = training_dataset(config, data)
    return _DECODED[key]


def _wanted_digits(digits) -> set[int]:
    return {int(digits)} if isinstance(digits, int) else {int(d) for d in digits}


def digit_indices(dataset: Dataset, digits, name: str = "this data set") -> list[int]:
    """Positions of the items of ``dataset`` whose ``"label"`` is one of ``digits`` (an int or several), in order.

    ``name`` names the data set in the error messages.

    Raises:
        ValueError: the items have no label (not MNIST), or none has one of ``digits``.
    """
    wanted = _wanted_digits(digits)
    if len(dataset) == 0 or "label" not in dataset[0]:
        raise ValueError(f"digits={sorted(wanted)} needs a labelled data set (MNIST), "
                         f"not {name!r}")
    indices = [i for i in range(len(dataset)) if dataset[i]["label"] in wanted]
    if not indices:
        raise ValueError(f"no image has a label in {sorted(wanted)}")
    return indices


def split_data(config, data: str | os.PathLike | None = None, digits=None, held_out_every: int = 10) -> DataSplit:
    """The data ``config`` trains on (``config.train.dataset`` read from ``data``), split in two.

    Every ``held_out_every``-th image is held out (for the embedded MNIST,
    sorted by digit, both sets keep the digits' proportions). ``digits``
    keeps only those MNIST digits (Appendix B.1 trains one model per digit).
    """
    dataset = _decoded_dataset(config, None if data is None else str(data))
    indices = list(range(len(dataset)))
    tag = config.train.dataset + (f"-{config.train.split}" if config.train.split else "")
    tag += "" if data is None else f"-{data}"
    if digits is not None:
        wanted = _wanted_digits(digits)
        indices = digit_indices(dataset, wanted, config.train.dataset)
        tag += "-digits" + "".join(str(d) for d in sorted(wanted))
    held_out = indices[::held_out_every]
    training = [index for position, index in enumerate(indices) if position % held_out_every]
    held_out_set = Subset(dataset, held_out)
    if config.train.warp_context:  # loaded with surroundings for the warps: hold out the training view
        held_out_set = CentreCropped(held_out_set, config.model.image_size)
    return DataSplit(Subset(dataset, training), held_out_set, f"{tag}-holdout{held_out_every}")


class CentreCropped(Dataset):
    """Items of ``dataset`` with their ``"image"`` cropped to the central ``size`` x ``size``."""

    def __init__(self, dataset: Dataset, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = dict(self.dataset[index])
        item["image"] = centre_crop(item["image"][None], self.size)[0]
        return item
