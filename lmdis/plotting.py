"""Figures: landmarks drawn on images, one colour per landmark (Figure 2, 19 style).

Every function takes an optional ``ax`` (or writes a whole figure) and returns
the figure. Landmarks come in the package convention (normalised ``(x, y)``,
see :mod:`lmdis.geometry`) and are drawn at pixel centres.
"""
from __future__ import annotations

from pathlib import Path


import numpy as np
import torch


def landmark_colours(count: int) -> np.ndarray:
    """``count`` distinct RGBA colours, the same for landmark k in every figure."""
    from matplotlib import colormaps

    return colormaps["tab10" if count <= 10 else "tab20"](np.arange(count) % (10 if count <= 10 else 20))


def _to_numpy_image(image) -> np.ndarray:
    image = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def show_landmarks(image, landmarks, ax=None, marker: str = "x", size: float = 40):
    """Draw ``landmarks`` (K, 2) on ``image`` (C, H, W) or (H, W[, C]); returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    picture = _to_numpy_image(image)
    height, width = picture.shape[:2]
    points = np.asarray(landmarks.detach().cpu() if isinstance(landmarks, torch.Tensor) else landmarks)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
              extent=(0, width, height, 0), interpolation="nearest")
    ax.scatter(points[:, 0] * width, points[:, 1] * height, c=landmark_colours(len(points)),
               marker=marker, s=size, linewidths=2)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    return ax.figure


def landmark_grid(images, landmarks, columns: int = 8, path: str | Path | None = None, title: str | None = None):
    """A grid of images with their landmarks; saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    count = len(images)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index < count:
            show_landmarks(images[index], landmarks[index], ax=ax, size=18)
        else:
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
        plt.close(figure)
    return figure
