"""Tests of lmdis.geometry against numpy loops and closed-form values.

Convention under test: the centre of pixel column u of a W-wide map is at
x = (u + 0.5) / W, and of row v of an H-high map at y = (v + 0.5) / H.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmdis.geometry import (
    confidence_maps,
    decoder_heatmaps,
    heatmap_coverage,
    landmark_mass,
    gaussian_approximation,
    gaussian_maps,
    image_to_padded_frame,
    landmark_moments,
    pad_with_edges,
    padded_to_image_frame,
)


def numpy_moments(maps: np.ndarray):
    """Weighted mean and per-axis variance over pixel centres, by explicit loops."""
    batch, count, height, width = maps.shape
    means = np.zeros((batch, count, 2))
    variances = np.zeros((batch, count, 2))
    for b in range(batch):
        for k in range(count):
            total = sum_x = sum_y = 0.0
            for v in range(height):
                for u in range(width):
                    weight = maps[b, k, v, u]
                    total += weight
                    sum_x += weight * (u + 0.5) / width
                    sum_y += weight * (v + 0.5) / height
            mean_x, mean_y = sum_x / total, sum_y / total
            var_x = var_y = 0.0
            for v in range(height):
                for u in range(width):
                    weight = maps[b, k, v, u]
                    var_x += weight * ((u + 0.5) / width - mean_x) ** 2
                    var_y += weight * ((v + 0.5) / height - mean_y) ** 2
            means[b, k] = mean_x, mean_y
            variances[b, k] = var_x / total, var_y / total
    return means, variances


def numpy_gaussian(centre, sigma: float, height: int, width: int) -> np.ndarray:
    """N((x, y); centre, sigma^2 I) at the pixel centres, (H, W)."""
    out = np.zeros((height, width))
    for v in range(height):
        for u in range(width):
            distance2 = ((u + 0.5) / width - centre[0]) ** 2 + ((v + 0.5) / height - centre[1]) ** 2
            out[v, u] = math.exp(-distance2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    return out


def test_confidence_maps_is_channel_softmax(device):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 4, 5, 7)) * 3
    exponentials = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected = exponentials / exponentials.sum(axis=1, keepdims=True)
    maps = confidence_maps(torch.tensor(scores, dtype=torch.float64, device=device)).cpu().numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, rtol=1e-12)


def test_landmark_moments_match_numpy_loops_on_non_square_maps(device):
    rng = np.random.default_rng(1)
    maps = rng.random((2, 3, 5, 8)) ** 3  # H=5 != W=8, uneven weights
    means, variances = landmark_moments(torch.tensor(maps, device=device))
    expected_means, expected_variances = numpy_moments(maps)
    np.testing.assert_allclose(means.cpu().numpy(), expected_means, rtol=1e-10)
    np.testing.assert_allclose(variances.cpu().numpy(), expected_variances, rtol=1e-10)


def test_landmark_moments_of_one_hot_map_is_the_pixel_centre():
    height, width, v, u = 5, 7, 3, 1
    maps = torch.zeros(1, 1, height, width, dtype=torch.float64)
    maps[0, 0, v, u] = 0.25  # any positive mass: moments are normalised by it
    means, variances = landmark_moments(maps)
    np.testing.assert_allclose(means[0, 0].numpy(), [(u + 0.5) / width, (v + 0.5) / height], atol=1e-15)
    np.testing.assert_allclose(variances[0, 0].numpy(), [0.0, 0.0], atol=1e-15)


def test_landmark_moments_of_uniform_map():
    height, width = 6, 10
    means, variances = landmark_moments(torch.full((1, 1, height, width), 3.0, dtype=torch.float64))
    np.testing.assert_allclose(means[0, 0].numpy(), [0.5, 0.5], atol=1e-15)
    # Variance of a discrete uniform over n equally spaced centres 1/n apart.
    expected = [(width**2 - 1) / (12 * width**2), (height**2 - 1) / (12 * height**2)]
    np.testing.assert_allclose(variances[0, 0].numpy(), expected, rtol=1e-12)


def test_gaussian_maps_match_density_formula(device):
    height, width = 6, 9
    centres = np.array([[[0.3, 0.6], [0.8, 0.1]]])  # (1, 2, 2)
    sigmas = np.array([[0.1, 0.25]])
    per_landmark = gaussian_maps(torch.tensor(centres, device=device), torch.tensor(sigmas, device=device),
                                 height, width).cpu().numpy()
    scalar = gaussian_maps(torch.tensor(centres, device=device), 0.2, height, width).cpu().numpy()
    for k in range(2):
        np.testing.assert_allclose(per_landmark[0, k], numpy_gaussian(centres[0, k], sigmas[0, k], height, width),
                                   rtol=1e-12)
        np.testing.assert_allclose(scalar[0, k], numpy_gaussian(centres[0, k], 0.2, height, width), rtol=1e-12)


def test_gaussian_approximation_sums_to_one_and_uses_mean_variance():
    size = 48
    means = torch.tensor([[[0.5, 0.5], [0.4, 0.6]]], dtype=torch.float64)
    variances = torch.tensor([[[0.006, 0.006], [0.004, 0.008]]], dtype=torch.float64)  # sigma ~0.077
    masks = gaussian_approximation(means, variances, size, size)
    np.testing.assert_allclose(masks.sum(dim=(2, 3)).numpy(), 1.0, atol=1e-3)
    # Eq. (6): sigma_det^2 = (sigma_u^2 + sigma_v^2) / 2 and the 1 / (W H) factor.
    expected = numpy_gaussian([0.4, 0.6], math.sqrt(0.006), size, size) / size**2
    np.testing.assert_allclose(masks[0, 1].numpy(), expected, rtol=1e-12)


def test_decoder_heatmaps_density_form_matches_numpy(device):
    height = width = 8
    sigma = 0.15
    landmarks = np.array([[[0.2, 0.3], [0.7, 0.6], [0.5, 0.9]]])
    maps = decoder_heatmaps(torch.tensor(landmarks, device=device), sigma, height, width, "density").cpu().numpy()
    raw = np.stack([numpy_gaussian(landmarks[0, k], sigma, height, width) for k in range(3)]
                   + [np.ones((height, width))])  # background channel is 1 before normalising
    expected = raw / raw.sum(axis=0, keepdims=True)
    assert maps.shape == (1, 4, height, width)
    np.testing.assert_allclose(maps[0], expected, rtol=1e-12)
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, rtol=1e-12)


def test_pad_with_edges_matches_numpy_edge_pad(device):
    rng = np.random.default_rng(2)
    images = rng.random((2, 3, 6, 6))
    padded = pad_with_edges(torch.tensor(images, device=device), 10).cpu().numpy()
    expected = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    np.testing.assert_array_equal(padded, expected)
    np.testing.assert_array_equal(pad_with_edges(torch.tensor(images), 6).numpy(), images)


@pytest.mark.parametrize("padded_size", [9, 4])
def test_pad_with_edges_rejects_odd_or_negative_margin(padded_size):
    with pytest.raises(ValueError, match=str(padded_size)):
        pad_with_edges(torch.zeros(1, 1, 6, 6), padded_size)


def test_frame_conversions_round_trip_and_hand_value():
    image_size, padded_size = 80, 96
    # Centre of padded pixel 8 is the centre of image pixel 0 (margin of 8 pixels).
    padded_point = torch.tensor([[[8.5 / padded_size, 8.5 / padded_size]]], dtype=torch.float64)
    image_point = padded_to_image_frame(padded_point, image_size, padded_size)
    np.testing.assert_allclose(image_point.numpy(), 0.5 / image_size, rtol=1e-12)
    # The padded frame's centre is the image's centre; its edge lies in the margin.
    corners = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]], dtype=torch.float64)
    np.testing.assert_allclose(padded_to_image_frame(corners, image_size, padded_size).numpy(),
                               [[[0.5, 0.5], [-0.1, 1.1]]], rtol=1e-12)
    points = torch.rand(2, 5, 2, dtype=torch.float64)
    there = image_to_padded_frame(points, image_size, padded_size)
    np.testing.assert_allclose(padded_to_image_frame(there, image_size, padded_size).numpy(), points.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(image_to_padded_frame(image_point, image_size, padded_size).numpy(),
                               padded_point.numpy(), rtol=1e-12)


def test_landmark_moments_gradcheck():
    generator = torch.Generator().manual_seed(3)
    maps = (torch.rand(1, 2, 6, 5, generator=generator, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: landmark_moments(m), (maps,))


def test_gaussian_maps_gradcheck():
    generator = torch.Generator().manual_seed(4)
    centres = torch.rand(1, 2, 2, generator=generator, dtype=torch.float64).requires_grad_()
    sigma = (0.2 + 0.1 * torch.rand(1, 2, generator=generator, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, s: gaussian_maps(c, s, 6, 6), (centres, sigma))


def _numpy_peak_heatmaps(landmarks, sigma, size):
    """exp(-d^2 / 2 sigma^2) per landmark and a background of 1, normalised over channels."""
    centres = (np.arange(size) + 0.5) / size
    grid_x, grid_y = np.meshgrid(centres, centres)
    raw = [np.exp(-((grid_x - x) ** 2 + (grid_y - y) ** 2) / (2 * sigma**2)) for x, y in landmarks]
    raw = np.stack(raw + [np.ones((size, size))])
    return raw / raw.sum(axis=0, keepdims=True)


def test_decoder_heatmaps_peak_form_matches_numpy(device):
    landmarks = np.array([[0.25, 0.3], [0.7, 0.65]])
    maps = decoder_heatmaps(torch.tensor(landmarks[None], device=device), 0.06, 48, 48, "peak").cpu().numpy()
    np.testing.assert_allclose(maps[0], _numpy_peak_heatmaps(landmarks, 0.06, 48), rtol=1e-12)


def test_decoder_heatmaps_released_form_matches_the_authors_normaliser():
    # exp(-d^2 / 2 s^2) / (2 pi s^4 (H W)^2) against 1 / (H W): at a landmark's
    # own pixel centre the ratio to the background is 1 / (2 pi s^4 H W).
    size, sigma = 80, 0.125
    landmark = torch.tensor([[[20.5 / size, 40.5 / size]]], dtype=torch.float64)  # on a pixel centre
    maps = decoder_heatmaps(landmark, sigma, size, size, "released")
    ratio = maps[0, 0, 40, 20] / maps[0, 1, 40, 20]
    assert float(ratio) == pytest.approx(1 / (2 * math.pi * sigma**4 * size * size), rel=1e-9)
    assert float(ratio) == pytest.approx(0.102, abs=1e-3)  # "about 0.1 of the background" (REFERENCE.md)


@pytest.mark.parametrize("sigma", [0.03, 0.06, 0.12, 0.25])
def test_peak_heatmaps_mark_points_at_every_width(sigma):
    """The regime chosen for Eq. (11): a landmark peaks at the background level
    (share 1/2 at its centre, 1/3 at sigma sqrt(2 ln 2)) and owns no pixel."""
    size = 96
    landmark = torch.tensor([[[48.5 / size, 48.5 / size]]], dtype=torch.float64)
    maps = decoder_heatmaps(landmark, sigma, size, size, "peak")
    assert float(maps[0, 0, 48, 48]) == pytest.approx(0.5, abs=1e-12)
    assert float(maps[0, 0].max()) == pytest.approx(0.5, abs=1e-12)
    assert float(heatmap_coverage(maps)) == 0.0
    # Far from the frame's edges the landmark's mass is the integral of
    # g / (1 + g), g = exp(-r^2 / 2 s^2): 2 pi s^2 ln 2 in normalised units.
    if sigma <= 0.12:
        assert float(landmark_mass(maps)) == pytest.approx(2 * math.pi * sigma**2 * math.log(2), rel=0.02)


def test_density_heatmaps_tile_the_frame_where_peak_ones_do_not():
    # Ten uniformly random landmarks on a 48x48 map; coverage checked against numpy.
    landmarks = torch.rand(16, 10, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    centres = (np.arange(48) + 0.5) / 48
    grid_x, grid_y = np.meshgrid(centres, centres)
    for sigma in (0.125, 0.25):
        squared = ((grid_x[None, None] - landmarks[..., 0, None, None].numpy()) ** 2
                   + (grid_y[None, None] - landmarks[..., 1, None, None].numpy()) ** 2)     # (B, K, H, W)
        gaussian = np.exp(-squared / (2 * sigma**2))
        for form, raw in (("density", gaussian / (2 * np.pi * sigma**2)), ("peak", gaussian)):
            background = 1 / (1 + raw.sum(axis=1))
            expected = (background < 0.5).mean(axis=(1, 2))
            maps = decoder_heatmaps(landmarks, sigma, 48, 48, form)
            np.testing.assert_allclose(heatmap_coverage(maps).numpy(), expected)
            if form == "density":
                assert expected.mean() > 0.8      # the channels tile the frame
    peak = decoder_heatmaps(landmarks, 0.06, 48, 48, "peak")
    assert float(heatmap_coverage(peak).mean()) < 0.05     # only where two landmarks overlap


def test_decoder_heatmaps_reject_unknown_forms_and_shapes():
    with pytest.raises(ValueError, match="unknown decoder heatmap form 'pdf'"):
        decoder_heatmaps(torch.zeros(1, 2, 2), 0.1, 4, 4, "pdf")
    with pytest.raises(ValueError, match=r"decoder_heatmaps: landmarks must have shape \(B, K, 2\), got \(2, 2\)"):
        decoder_heatmaps(torch.zeros(2, 2), 0.1, 4, 4)
