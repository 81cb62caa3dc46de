"""lmdis.evaluate.content_tracking_gain against detectors whose answer is known by construction."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmdis.evaluate import content_tracking_gain


def blob_images(count=6, side=80, seed=0, sigma=3.0):
    """Gaussian blobs (sigma 3 px) at random places well inside the frame."""
    rng = np.random.default_rng(seed)
    grid = np.arange(side) + 0.5
    images = np.zeros((count, 1, side, side), dtype=np.float32)
    for image in images:
        cx, cy = rng.uniform(30, 50, size=2)
        image[0] = np.exp(-((grid[None, :] - cx) ** 2 + (grid[:, None] - cy) ** 2) / (2 * sigma**2))
    return torch.from_numpy(images)


def centroid(images):
    """Intensity-weighted centre, normalised (x, y), computed in numpy: one landmark on the blob."""
    array = images[:, 0].numpy().astype(np.float64)
    side = array.shape[-1]
    grid = (np.arange(side) + 0.5) / side
    mass = array.sum(axis=(1, 2))
    x = (array.sum(axis=1) * grid).sum(axis=1) / mass
    y = (array.sum(axis=2) * grid).sum(axis=1) / mass
    return torch.tensor(np.stack([x, y], axis=-1)[:, None, :])


def test_a_landmark_on_the_content_has_gain_one_a_fixed_one_zero():
    images = blob_images()

    def detect(crops):
        on_blob = centroid(crops)
        fixed = torch.full_like(on_blob, 0.3)
        half = 0.5 * on_blob + 0.5 * fixed
        return torch.cat([on_blob, fixed, half], dim=1)

    gains = content_tracking_gain(detect, images, size=32)
    for axis in ("x", "y"):
        np.testing.assert_allclose(gains[axis], [1.0, 0.0, 0.5], atol=0.03)


def test_windows_that_do_not_fit_are_an_error_naming_the_values():
    with pytest.raises(ValueError, match="window=0.95 and shift=0.1"):
        content_tracking_gain(centroid, blob_images(count=1), size=32, window=0.95, shift=0.1)
    with pytest.raises(ValueError, match="square"):
        content_tracking_gain(centroid, torch.zeros(1, 1, 10, 12), size=8)


def test_warp_tracking_separates_a_tracking_landmark_from_a_fixed_one():
    from lmdis.evaluate import warp_tracking
    from lmdis.tps import TransformConfig

    # Small blobs: under a non-affine warp the centroid of a blob of width sigma
    # is biased by O(sigma^2) (0.02 of the side at sigma = 3 px of 64, 0.001 at 1.5 of 256).
    images = blob_images(count=40, side=128, sigma=1.5)

    def detect(frames):
        on_blob = centroid(frames).float()
        return torch.cat([on_blob, torch.full_like(on_blob, 0.4)], dim=1)

    # TPS only, as the local deformation is what the similarity-free check isolates.
    transform = TransformConfig(grid_offset_std=0.05, translation_range=0.0, rotation_std_degrees=0.0,
                                log_scale_std=0.0)
    result = warp_tracking(detect, images, transform)
    residual, locked = result["residual"], result["locked"]
    # Independent check of "locked": the mean warp displacement of the blob centres
    # equals the fixed landmark's, up to where it sits (both a few % of the side).
    assert 0.01 < locked[1] < 0.1
    assert residual[1] == pytest.approx(locked[1], rel=1e-5)         # a fixed point ignores the warp
    assert residual[0] < 0.1 * locked[0]                            # the centroid follows the blob
    # The full transform moves content further (similarity included).
    full = warp_tracking(detect, images, TransformConfig())
    assert full["locked"][1] > 2 * locked[1]
    assert full["residual"][0] < 0.1 * full["locked"][0]
