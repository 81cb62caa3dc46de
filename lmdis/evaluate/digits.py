"""Measurements for digit models without annotations (Appendix B): landmarks on the ink, and decoded digits read back.

MNIST has no annotated landmarks, so Appendix B's claims (landmarks on the
strokes, morphs between digits) are measured here:

- :func:`ink_at` / :func:`on_stroke`: the share of landmarks that sit on ink,
  with :func:`frame_fixed` as the control a model must beat: points that
  never move (each landmark's mean position in every image) also land on
  the ink of centred digits part of the time;
- :class:`PixelClassifier`: a multinomial logistic regression on raw pixels,
  fitted on real digits, that reads a decoded image (a reconstruction or a
  morph endpoint) back as a digit.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

__all__ = ["ink_at", "on_stroke", "frame_fixed", "PixelClassifier"]


def ink_at(images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) images and (B, K, 2) normalised (x, y) -> (B, K) bilinear intensity at each landmark.

    Pixel centres at (i + 0.5) / S (:mod:`lmdis.geometry`), i.e. ``grid_sample``
    with ``align_corners=False``; outside the image the intensity is 0.
    """
    if images.dim() != 4 or images.shape[1] != 1 or landmarks.dim() != 3 or landmarks.shape[0] != images.shape[0]:
        raise ValueError(f"expected images (B, 1, S, S) and landmarks (B, K, 2) for the same B, got "
                         f"{tuple(images.shape)} and {tuple(landmarks.shape)}")
    grid = landmarks[:, :, None, :].to(images.dtype) * 2 - 1                 # (B, K, 1, 2) in [-1, 1]
    return F.grid_sample(images, grid, mode="bilinear", align_corners=False)[:, 0, :, 0]


def on_stroke(images: torch.Tensor, landmarks: torch.Tensor, ink: float = 0.3) -> tuple[float, np.ndarray]:
    """(share of all (image, landmark) pairs on ink, (K,) share per landmark); ink: intensity threshold."""
    hits = (ink_at(images, landmarks) >= ink).float()
    return float(hits.mean()), hits.mean(dim=0).numpy()


def frame_fixed(landmarks: torch.Tensor) -> torch.Tensor:
    """The control: every image gets each landmark's mean position over the batch, (B, K, 2)."""
    return landmarks.mean(dim=0, keepdim=True).expand_as(landmarks).clone()


class PixelClassifier:
    """A digit reader: multinomial logistic regression on the pixels of (N, 1, S, S) images in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels, max_iter: int = 300):
        self.model = LogisticRegression(max_iter=max_iter).fit(self._features(images), np.asarray(labels))

    @classmethod
    def from_dataset(cls, dataset, max_iter: int = 300) -> "PixelClassifier":
        """Fitted on every item of a labelled data set (items with ``"image"`` and ``"label"``, e.g. MNIST)."""
        items = [dataset[index] for index in range(len(dataset))]
        if not items or "label" not in items[0]:
            raise ValueError("PixelClassifier.from_dataset needs a labelled data set (items with a 'label'), "
                             f"got {type(dataset).__name__} of {len(items)} items")
        return cls(torch.stack([item["image"] for item in items]), [item["label"] for item in items], max_iter)

    @staticmethod
    def _features(images: torch.Tensor) -> np.ndarray:
        return images.detach().cpu().reshape(len(images), -1).numpy().astype(np.float64)

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """(N,) predicted labels."""
        return self.model.predict(self._features(images))

    def accuracy(self, images: torch.Tensor, labels) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())
