"""A data set's evaluation on a model: its two splits read once, the model's landmarks, every report.

:class:`Benchmark` opens the fit and test splits of a data set's
:class:`~lmdis.data.protocol.Protocol`, runs the detector over them
(:func:`detect_all`) and hands the landmarks to the protocol's numpy
functions: the regression (:mod:`lmdis.evaluate.regression`), the few-shot
curve, the attribute SVMs (:mod:`lmdis.evaluate.attributes`) and the
Figure 9 picture (:func:`lmdis.plotting.regression_figure`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lmdis.data import InMemoryDataset, collate_images, dataset_protocol, open_dataset
from lmdis.evaluate.attributes import PAPER_ATTRIBUTES, attribute_accuracy, landmark_features
from lmdis.evaluate.regression import (FEW_SHOT_SIZES, few_shot_curve, json_ready, mean_shape_report,
                                       protocol_options, regression_report)
from lmdis.plotting import aggregate_figure, regression_figure

__all__ = ["detect_all", "Discovered", "Benchmark", "MIN_AGGREGATE_IMAGES"]

# The fewest images an aggregate picture averages: a mean of this many
# aligned crops shows no individual (research-only face sets, e.g. MTFL).
MIN_AGGREGATE_IMAGES = 100


@torch.no_grad()
def detect_all(model, dataset: Dataset, batch_size: int = 64, device="cpu", num_workers: int = 0) -> np.ndarray:
    """Landmarks of every image of ``dataset`` (image frame, normalised): (n, K, 2)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_images)
    found = [model.detect(images.to(device)).cpu() for images in loader]
    return torch.cat(found).numpy()


class Discovered(NamedTuple):
    """A model's landmarks on a benchmark's two splits, image frame, normalised."""

    fit: np.ndarray  # (n_fit, K, 2) landmarks of the fit split
    test: np.ndarray  # (n_test, K, 2) landmarks of the test split


class Benchmark:
    """A dataset's evaluation protocol (:class:`lmdis.data.Protocol`) with its two splits opened once.

    The regressor is fitted on ``protocol.fit_split`` and tested on
    ``protocol.test_split`` (Sec. 4.2; flip-aware per App. C.2 where the
    protocol has ``flip_pairs``). ``report(model)`` can be called repeatedly
    (e.g. during training); with ``cache=True`` the images are decoded once.

    Args:
        dataset: a name with a protocol (:func:`lmdis.data.dataset_protocol`).
        root: where the dataset is (MTFL defaults to the shared data folder).
        image_size, channels: what the model takes.
        cache: keep the decoded splits in memory (:class:`lmdis.data.InMemoryDataset`).
    Raises:
        ValueError: a dataset without annotated landmarks.
    """

    def __init__(self, dataset: str, root=None, image_size: int | None = None, channels: int = 3, cache: bool = True):
        protocol = dataset_protocol(dataset)
        options = {"image_size": image_size, "channels": channels}
        fit = open_dataset(dataset, root, split=protocol.fit_split, **options)
        test = open_dataset(dataset, root, split=protocol.test_split, **options)
        self._attach(fit, test, protocol, cache)

    @classmethod
    def from_datasets(cls, fit: Dataset, test: Dataset, protocol, cache: bool = False) -> Benchmark:
        """A benchmark on already-opened splits (each with ``annotated_landmarks()``)."""
        benchmark = cls.__new__(cls)
        benchmark._attach(fit, test, protocol, cache)
        return benchmark

    def _attach(self, fit: Dataset, test: Dataset, protocol, cache: bool) -> None:
        self.protocol = protocol
        self.fit_source, self.test_source = fit, test
        self.fit = InMemoryDataset(fit) if cache else fit
        self.test = InMemoryDataset(test) if cache else test
        self.fit_annotated = np.asarray(fit.annotated_landmarks(), np.float64)
        self.test_annotated = np.asarray(test.annotated_landmarks(), np.float64)
        for split, annotated in (("fit", self.fit_annotated), ("test", self.test_annotated)):
            if annotated.ndim != 3 or annotated.shape[1:] != (len(protocol.point_names), 2):
                raise ValueError(f"{protocol.dataset} {split} split annotations are {annotated.shape}, expected "
                                 f"(n, {len(protocol.point_names)}, 2) for points {protocol.point_names}")
        self.options = protocol_options(protocol)

    def describe(self) -> dict:
        """JSON-ready protocol facts: dataset, normaliser, reference and evaluated point names, flip_aware."""
        names = self.protocol.point_names
        evaluated = self.protocol.evaluated_points or range(len(names))
        reference = self.protocol.reference_points if self.protocol.normaliser == "points" else None
        return {"dataset": self.protocol.dataset, "normaliser": self.protocol.normaliser,
                "reference_points": None if reference is None else [names[i] for i in reference],
                "evaluated_points": [names[i] for i in evaluated], "flip_aware": bool(self.protocol.flip_pairs)}

    def discover(self, model, device="cpu", batch_size: int = 64) -> Discovered:
        """The model's landmarks on both splits."""
        fit = detect_all(model, self.fit, batch_size, device)
        return Discovered(fit, detect_all(model, self.test, batch_size, device))

    def regression(self, discovered: Discovered) -> dict:
        """:func:`regression_report` under this protocol, arrays included."""
        return regression_report(discovered.fit, self.fit_annotated, discovered.test, self.test_annotated,
                                 **self.options)

    def report(self, model, device="cpu", discovered: Discovered | None = None) -> dict:
        """JSON-ready: :meth:`describe` plus nme_percent, median_percent, n_train, n_test, K, M."""
        discovered = self.discover(model, device) if discovered is None else discovered
        return {**self.describe(), **json_ready(self.regression(discovered))}

    def mean_shape_report(self) -> dict:
        """JSON-ready floor: the mean training shape predicted for every test image."""
        return mean_shape_report(self.fit_annotated, self.test_annotated, **self.options)

    def few_shot(self, discovered: Discovered, sizes=FEW_SHOT_SIZES, repeats: int = 10, seed: int = 0) -> list[dict]:
        """:func:`few_shot_curve` on the fit split, scored on the test split."""
        return few_shot_curve(discovered.fit, self.fit_annotated, discovered.test, self.test_annotated, sizes,
                              repeats, seed, **self.options)

    def attribute_labels(self, split: str = "fit") -> tuple[list[str], np.ndarray]:
        """(names, (n, A) values) of the ``"fit"`` or ``"test"`` split's ``attributes()`` (CelebA)."""
        dataset = {"fit": self.fit_source, "test": self.test_source}[split]
        if not hasattr(dataset, "attributes"):
            raise ValueError(f"{self.protocol.dataset} ({type(dataset).__name__}) has no attribute labels; attribute "
                             f"recognition (Sec. 4.3) needs CelebA")
        names, values = dataset.attributes()
        values = np.asarray(values)
        if values.shape != (len(dataset), len(names)):
            raise ValueError(f"{self.protocol.dataset} {split} split attributes are {values.shape}, expected "
                             f"({len(dataset)}, {len(names)}): one row per image, one column per name")
        return list(names), values

    def attributes(self, discovered: Discovered, names=PAPER_ATTRIBUTES, C: float | None = None,
                   extra_fit=(), extra_test=()) -> dict:
        """Sec. 4.3: linear SVMs on the landmark coordinates (+ extra features), fit split -> test split.

        ``names``: attributes to recognise (default: Table 3's 13); both
        splits must offer ``attributes()`` (CelebA). The SVMs are trained on
        the protocol's fit split (the paper: "the CelebA training set") and
        tested on its test split (MAFL test). ``extra_fit`` / ``extra_test``:
        (n, D) feature arrays concatenated to the coordinates (Table 3's
        FaceNet + Ours rows). C as :func:`fit_linear_svm`.
        """
        fit_names, fit_values = self.attribute_labels("fit")
        test_names, test_values = self.attribute_labels("test")
        missing = [name for name in names if name not in fit_names or name not in test_names]
        if missing:
            raise ValueError(f"attributes {missing} are not among the dataset's {fit_names}")
        fit_columns = [fit_names.index(name) for name in names]
        test_columns = [test_names.index(name) for name in names]
        return attribute_accuracy(landmark_features(discovered.fit, *extra_fit), fit_values[:, fit_columns],
                                  landmark_features(discovered.test, *extra_test), test_values[:, test_columns],
                                  names, C)

    def aggregate(self, discovered: Discovered, split: str = "test", batch_size: int = 256) -> dict:
        """A split summarised without showing any image of it: the mean image and each point's spread.

        Returns ``count``, ``mean_image`` (C, H, W) float tensor, the mean
        (K, 2) and covariance (K, 2, 2) of the discovered landmarks
        (``landmark_mean``, ``landmark_cov``) and of the annotated points
        (``annotated_mean``, ``annotated_cov``, (M, 2) and (M, 2, 2)), image
        frame, normalised. Refuses splits of fewer than
        :data:`MIN_AGGREGATE_IMAGES` images.
        """
        dataset, landmarks, annotated = {"fit": (self.fit, discovered.fit, self.fit_annotated),
                                         "test": (self.test, discovered.test, self.test_annotated)}[split]
        if len(dataset) < MIN_AGGREGATE_IMAGES:
            raise ValueError(f"the {split} split has {len(dataset)} images; an aggregate averages at least "
                             f"{MIN_AGGREGATE_IMAGES} so that no individual image shows")
        if len(landmarks) != len(dataset):
            raise ValueError(f"{len(landmarks)} discovered landmark sets for the {len(dataset)} images of the "
                             f"{split} split")
        total = None
        for images in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_images):
            batch_sum = images.double().sum(dim=0)
            total = batch_sum if total is None else total + batch_sum
        landmarks, annotated = np.asarray(landmarks, np.float64), np.asarray(annotated, np.float64)

        def covariance(points):                                   # (n, P, 2) -> (P, 2, 2)
            centred = points - points.mean(axis=0)
            return np.einsum("npi,npj->pij", centred, centred) / (len(points) - 1)

        return {"count": len(dataset), "mean_image": (total / len(dataset)).float(),
                "landmark_mean": landmarks.mean(axis=0), "landmark_cov": covariance(landmarks),
                "annotated_mean": annotated.mean(axis=0), "annotated_cov": covariance(annotated)}

    def aggregate_figure(self, discovered: Discovered, split: str = "test", ax=None):
        """:meth:`aggregate` drawn by :func:`lmdis.plotting.aggregate_figure`; returns (figure, aggregate)."""
        summary = self.aggregate(discovered, split)
        figure = aggregate_figure(summary["mean_image"], summary["landmark_mean"], summary["landmark_cov"],
                                  summary["annotated_mean"], summary["annotated_cov"], ax=ax,
                                  title=f"mean of {summary['count']} {self.protocol.dataset} {split} images")
        return figure, summary

    def figure(self, discovered: Discovered, path=None, count: int = 8, columns: int = 4):
        """Figure 9 style for ``count`` evenly spaced test images (:func:`lmdis.plotting.regression_figure`)."""
        regression = self.regression(discovered)
        indices = np.linspace(0, len(self.test) - 1, min(count, len(self.test))).round().astype(int)
        images = collate_images([self.test[int(i)] for i in indices])
        reference = self.describe()["reference_points"]
        unit = "% of the image side" if reference is None else f"% of the {'-'.join(reference)} distance"
        return regression_figure(images, discovered.test[indices], regression["targets"][indices],
                                 regression["predicted"][indices], regression["point_errors"][indices],
                                 columns=columns, path=path, error_label=f"error ({unit})")
