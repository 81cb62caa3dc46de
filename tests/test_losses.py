"""Tests of lmdis.losses: hand numbers, numpy loops, and the direction of the gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmdis.geometry import landmark_moments
from lmdis.losses import concentration_loss, equivariance_loss, reconstruction_loss, separation_loss

TWO_PI_E = 2 * math.pi * math.e

# (B=2, K=2, 2) per-axis variances chosen so that the three forms differ.
VARIANCES = np.array([[[0.01, 0.04], [0.09, 0.01]],
                      [[0.04, 0.04], [0.0025, 0.0225]]])


def per_image_mean(per_landmark: np.ndarray) -> float:
    return float(per_landmark.sum(axis=1).mean())


@pytest.mark.parametrize(
    "form, per_landmark",
    [
        # sigma_det^2 = (sigma_u^2 + sigma_v^2) / 2
        ("paper", TWO_PI_E * np.array([[0.025, 0.05], [0.04, 0.0125]])),
        # ((sigma_u + sigma_v) / 2)^2 with sigma = sqrt(variance)
        ("released", TWO_PI_E * np.array([[0.15**2, 0.2**2], [0.2**2, 0.1**2]])),
        # (sigma_u^2 + sigma_v^2)^2
        ("literal", TWO_PI_E * np.array([[0.05**2, 0.1**2], [0.08**2, 0.025**2]])),
    ],
)
def test_concentration_loss_forms_match_hand_values(form, per_landmark, device):
    loss = concentration_loss(torch.tensor(VARIANCES, device=device), form)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(per_image_mean(per_landmark), rel=1e-12)


def test_concentration_loss_rejects_unknown_form():
    with pytest.raises(ValueError, match="entropy"):
        concentration_loss(torch.tensor(VARIANCES), "entropy")


def test_separation_loss_matches_ordered_pair_loop(device):
    rng = np.random.default_rng(0)
    landmarks = rng.random((3, 4, 2))
    sigma_sep = 0.2
    per_image = []
    for points in landmarks:
        total = 0.0
        for k in range(len(points)):
            for other in range(len(points)):
                if k != other:
                    total += math.exp(-np.sum((points[other] - points[k]) ** 2) / (2 * sigma_sep**2))
        per_image.append(total)
    loss = separation_loss(torch.tensor(landmarks, device=device), sigma_sep)
    assert loss.item() == pytest.approx(np.mean(per_image), rel=1e-12)


def test_separation_loss_of_coincident_pair_counts_both_orders():
    landmarks = torch.tensor([[[0.3, 0.3], [0.3, 0.3]]], dtype=torch.float64)
    assert separation_loss(landmarks, 0.1).item() == pytest.approx(2.0, rel=1e-12)


def test_equivariance_loss_matches_numpy(device):
    rng = np.random.default_rng(1)
    mapped, landmarks = rng.random((2, 3, 4, 2))
    expected = ((mapped - landmarks) ** 2).sum(axis=(1, 2)).mean()
    loss = equivariance_loss(torch.tensor(mapped, device=device), torch.tensor(landmarks, device=device))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_reconstruction_loss_forms_match_numpy(device):
    rng = np.random.default_rng(2)
    images, reconstructions = rng.random((2, 3, 2, 5, 4))
    sigma_color = 0.1
    squared_error = ((images - reconstructions) ** 2).reshape(3, -1).sum(axis=1)
    paper = np.mean(squared_error / sigma_color**2 + math.log(2 * math.pi * sigma_color**2))
    released = np.mean(0.5 * squared_error)
    args = torch.tensor(images, device=device), torch.tensor(reconstructions, device=device)
    assert reconstruction_loss(*args, sigma_color, "paper").item() == pytest.approx(paper, rel=1e-12)
    assert reconstruction_loss(*args, sigma_color, "released").item() == pytest.approx(released, rel=1e-12)
    with pytest.raises(ValueError, match="l1"):
        reconstruction_loss(*args, sigma_color, "l1")


def test_separation_step_pushes_close_landmarks_apart():
    landmarks = torch.tensor([[[0.48, 0.5], [0.52, 0.51]]], dtype=torch.float64, requires_grad=True)
    before = (landmarks[0, 0] - landmarks[0, 1]).norm().item()
    separation_loss(landmarks, 0.06).backward()
    with torch.no_grad():
        moved = landmarks - 0.01 * landmarks.grad
    after = (moved[0, 0] - moved[0, 1]).norm().item()
    assert after > before + 1e-4


def test_concentration_step_through_softmax_reduces_variance():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 2, 6, 6, generator=generator, dtype=torch.float64, requires_grad=True)

    def variance_of(scores):
        maps = torch.softmax(scores.flatten(2), dim=-1).view_as(scores)
        return landmark_moments(maps)[1]

    variances = variance_of(logits)
    concentration_loss(variances).backward()
    with torch.no_grad():
        stepped = variance_of(logits - 1.0 * logits.grad)
    assert torch.all(stepped.sum(dim=-1) < variances.detach().sum(dim=-1))


def test_equivariance_gradient_moves_points_toward_targets():
    rng = np.random.default_rng(4)
    targets = torch.tensor(rng.random((1, 3, 2)))
    points = torch.tensor(rng.random((1, 3, 2)), requires_grad=True)
    equivariance_loss(points, targets).backward()
    # The gradient of sum ||p - t||^2 is 2 (p - t): a step of 0.25 halves every offset.
    with torch.no_grad():
        stepped = points - 0.25 * points.grad
    np.testing.assert_allclose((stepped - targets).numpy(), 0.5 * (points - targets).detach().numpy(), rtol=1e-12)
