"""lmdis.evaluate.diagnostics: content and warp tracking against detectors whose answer is known by
construction, the similarity projection against skimage, nearest annotated points and the landmark
metrics by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmdis.evaluate import (content_tracking_gain, equivariance_error, landmark_metrics, map_mass,
                            nearest_annotated_points, nearest_neighbour_distance, per_axis_variance,
                            similarity_projection, warp_tracking)
from lmdis.tps import TransformConfig

from test_manipulation import tiny_images, tiny_model


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


def test_similarity_projection_matches_skimage_and_keeps_similar_shapes():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(2)
    template = rng.random((5, 2))
    points = rng.random((6, 5, 2))
    projected = similarity_projection(points, template)
    for image, moved in zip(points, projected):
        transform = SimilarityTransform.from_estimate(template, image)
        np.testing.assert_allclose(moved, transform(template), atol=1e-10)
    # a shape that IS a similarity of the template is reproduced exactly; a
    # reflected one is not (no reflection allowed)
    angle, scale, shift = 0.7, 1.9, np.array([0.3, -0.2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    similar = scale * template @ rotation.T + shift
    np.testing.assert_allclose(similarity_projection(similar[None], template)[0], similar, atol=1e-12)
    mirrored = template * np.array([-1.0, 1.0])
    assert np.abs(similarity_projection(mirrored[None], template)[0] - mirrored).max() > 0.05
    with pytest.raises(ValueError, match=r"\(6, 4, 2\).*template"):
        similarity_projection(points[:, :4], template)
    with pytest.raises(ValueError, match="coincide"):
        similarity_projection(points, np.full((5, 2), 0.3))


def test_nearest_annotated_points_by_hand():
    # Two images, 2 landmarks, 3 annotated points; side 10 px.
    annotated = np.array([[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], [[0.2, 0.1], [0.6, 0.5], [0.9, 0.1]]])
    discovered = np.array([[[0.5, 0.6], [0.9, 0.9]], [[0.6, 0.7], [0.9, 0.3]]])
    rows = nearest_annotated_points(discovered, annotated, side=10)
    assert [row["nearest"] for row in rows] == [1, 2]
    assert rows[0]["mean_px"] == pytest.approx(1.5) and rows[0]["std_px"] == pytest.approx(0.5)
    assert rows[1]["mean_px"] == pytest.approx(1.0) and rows[1]["std_px"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same n"):
        nearest_annotated_points(discovered[:1], annotated, side=10)


# --------------------------------------------------------------------------- landmark metrics, against hand numbers

def test_map_mass_against_numpy_softmax():
    # Random logits through a channel softmax (Eq. 2); each channel's summed
    # confidence per image, averaged over images, computed in numpy.
    logits = np.random.default_rng(0).normal(size=(3, 4, 5, 6)) * 3
    maps = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = maps.sum(axis=(2, 3)).mean(axis=0)
    found = map_mass(torch.from_numpy(maps))
    np.testing.assert_allclose(found, expected, rtol=1e-6)
    assert found.sum() == pytest.approx(5 * 6)


def test_map_mass_of_a_blob_and_a_point():
    # A landmark owning a 4x4 box, another owning one pixel, the background the rest of 8x8.
    maps = torch.zeros(2, 3, 8, 8)
    maps[:, 0, 2:6, 2:6] = 1
    maps[:, 1, 0, 0] = 1
    maps[:, 2] = 1 - maps[:, 0] - maps[:, 1]
    assert map_mass(maps).tolist() == [16.0, 1.0, 47.0]
    with pytest.raises(ValueError, match="maps must be"):
        map_mass(maps[0])


def test_per_axis_variance_is_the_mean():
    variances = torch.tensor([[[0.01, 0.03], [0.02, 0.02]]])
    assert per_axis_variance(variances) == pytest.approx(0.02)


def test_nearest_neighbour_distance_by_hand():
    # Three points on a line at 0, 0.3 and 1.0: nearest distances 0.3, 0.3, 0.7.
    landmarks = torch.tensor([[[0.0, 0.5], [0.3, 0.5], [1.0, 0.5]]])
    assert nearest_neighbour_distance(landmarks) == pytest.approx((0.3 + 0.3 + 0.7) / 3)
    with pytest.raises(ValueError, match="K >= 2"):
        nearest_neighbour_distance(torch.zeros(1, 1, 2))


def test_equivariance_error_by_hand():
    landmarks = torch.tensor([[[0.5, 0.5], [0.2, 0.2]]])
    mapped = torch.tensor([[[0.8, 0.9], [0.2, 0.2]]])  # first off by (0.3, 0.4): distance 0.5
    assert equivariance_error(mapped, landmarks) == pytest.approx(0.25)


def test_landmark_metrics_with_the_identity_transform_has_no_equivariance_error():
    identity = TransformConfig(grid_offset_std=0.0, translation_range=0.0, rotation_std_degrees=0.0,
                               log_scale_std=0.0)
    metrics = landmark_metrics(tiny_model(), tiny_images(6), identity, batch_size=4)
    assert metrics["equivariance"] < 1e-5
    assert 0 < metrics["variance"] < 1 / 12 + 1e-6
    assert metrics["nearest_neighbour"] > 0 and metrics["reconstruction"] > 0
    moved = landmark_metrics(tiny_model(), tiny_images(6), TransformConfig(), batch_size=4)
    assert moved["equivariance"] > 1e-4
