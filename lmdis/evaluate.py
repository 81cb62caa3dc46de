"""Evaluation by regression onto annotated landmarks (Sec. 4.2).

A linear map WITHOUT bias, mixing x and y, is fitted by least squares from the
2K discovered coordinates to the 2N annotated ones on a labelled training
split and applied to the test split. Both sides are centred on the image
centre first (package convention minus 0.5), so "no bias" means no free
offset, as in the authors' protocol. The error of an image is the mean
Euclidean point error divided by a normaliser (the inter-ocular distance for
faces), reported in % averaged over images.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LinearRegression
from torch.utils.data import DataLoader, Dataset


def fit_regressor(discovered: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """Bias-free least squares from (n, K, 2) discovered to (n, N, 2) annotated landmarks.

    Returns:
        W, (2K, 2N): ``annotated - 0.5 ~= (discovered - 0.5).reshape(n, 2K) @ W``.
    """
    discovered, annotated = np.asarray(discovered, np.float64), np.asarray(annotated, np.float64)
    if len(discovered) != len(annotated):
        raise ValueError(f"{len(discovered)} discovered vs {len(annotated)} annotated landmark sets")
    inputs = (discovered - 0.5).reshape(len(discovered), -1)
    targets = (annotated - 0.5).reshape(len(annotated), -1)
    regression = LinearRegression(fit_intercept=False).fit(inputs, targets)
    return regression.coef_.T


def apply_regressor(weights: np.ndarray, discovered: np.ndarray) -> np.ndarray:
    """(n, K, 2) discovered -> (n, N, 2) predicted annotated landmarks."""
    discovered = np.asarray(discovered, np.float64)
    predicted = (discovered - 0.5).reshape(len(discovered), -1) @ weights
    return predicted.reshape(len(discovered), -1, 2) + 0.5


def normalised_errors(predicted: np.ndarray, annotated: np.ndarray, reference_points=(0, 1)) -> np.ndarray:
    """Per image: mean point distance / distance between two annotated points, (n,)."""
    predicted, annotated = np.asarray(predicted, np.float64), np.asarray(annotated, np.float64)
    point_errors = np.linalg.norm(predicted - annotated, axis=-1).mean(axis=1)
    first, second = reference_points
    normaliser = np.linalg.norm(annotated[:, first] - annotated[:, second], axis=-1)
    if np.any(normaliser <= 0):
        raise ValueError(f"{int(np.sum(normaliser <= 0))} images have coincident reference points {reference_points}")
    return point_errors / normaliser


@torch.no_grad()
def detect_all(model, dataset: Dataset, batch_size: int = 64, device="cpu", num_workers: int = 0) -> np.ndarray:
    """Landmarks of every image of ``dataset`` (image frame, normalised): (n, K, 2)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=lambda items: torch.stack([item["image"] for item in items]))
    found = [model.detect(images.to(device)).cpu() for images in loader]
    return torch.cat(found).numpy()


def regression_report(train_discovered, train_annotated, test_discovered, test_annotated,
                      reference_points=(0, 1)) -> dict:
    """Fit on the training split, test on the test split: a JSON-ready summary."""
    weights = fit_regressor(train_discovered, train_annotated)
    predicted = apply_regressor(weights, test_discovered)
    errors = normalised_errors(predicted, test_annotated, reference_points)
    return {
        "nme_percent": float(100 * errors.mean()),
        "median_percent": float(100 * np.median(errors)),
        "n_train": int(len(train_discovered)),
        "n_test": int(len(test_discovered)),
        "K": int(np.asarray(test_discovered).shape[1]),
        "errors": errors,
        "predicted": predicted,
    }


def mean_shape_report(train_annotated, test_annotated, reference_points=(0, 1)) -> dict:
    """The floor: predict the mean training shape for every test image."""
    mean = np.asarray(train_annotated, np.float64).mean(axis=0, keepdims=True)
    predicted = np.repeat(mean, len(test_annotated), axis=0)
    errors = normalised_errors(predicted, test_annotated, reference_points)
    return {"nme_percent": float(100 * errors.mean()), "n_test": int(len(test_annotated))}


class MTFLBenchmark:
    """The MTFL protocol of Sec. 4.2, with its splits decoded once.

    Fits the regressor on ``training_clean`` and tests on ``testing``; errors
    are normalised by the inter-ocular distance. ``report(model)`` can be
    called repeatedly (e.g. during training) without re-reading the images.
    """

    def __init__(self, root, image_size: int, channels: int = 3):
        from lmdis.data import InMemoryDataset, open_dataset

        options = {"image_size": image_size, "channels": channels}
        self.labelled = InMemoryDataset(open_dataset("mtfl", root, split="training_clean", **options))
        self.test = InMemoryDataset(open_dataset("mtfl", root, split="testing", **options))
        self.labelled_annotated = self.labelled.annotated_landmarks()
        self.test_annotated = self.test.annotated_landmarks()

    def mean_shape_nme_percent(self) -> float:
        return mean_shape_report(self.labelled_annotated, self.test_annotated)["nme_percent"]

    def report(self, model, device="cpu") -> dict:
        """JSON-ready: nme_percent, median_percent, n_train, n_test, K."""
        from lmdis.data import MTFL_INTEROCULAR

        report = regression_report(detect_all(model, self.labelled, device=device), self.labelled_annotated,
                                   detect_all(model, self.test, device=device), self.test_annotated,
                                   MTFL_INTEROCULAR)
        return {key: value for key, value in report.items() if key not in ("errors", "predicted")}
