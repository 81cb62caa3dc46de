"""The training objective of Sec. 3.2 and 3.5: Eq. (5), (7), (8), (15), (17).

All coordinates are normalised by the image edge length (Table 7's note), in
the package convention ``(x, y)`` in [0, 1] (see :mod:`lmdis.geometry`). Every
loss returns a scalar: the per-image sum over landmarks, averaged over the
batch, so the lambdas of Table 7 apply unchanged. Each checks the shapes of
its arguments (:func:`lmdis.shapes.check_shape`).
"""
from __future__ import annotations

import math

import torch

from lmdis.shapes import check_shape

# The terms of Eq. (15): L = lambda_recon L_recon + lambda_conc L_conc + lambda_sep L_sep + lambda_eqv L_eqv.
LOSS_TERMS = ("recon", "conc", "sep", "eqv")
CONCENTRATION_FORMS = ("paper", "released", "literal")


def concentration_loss(variances: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """Eq. (5): the concentration constraint, summed over landmarks.

    ``paper`` (default) is the stated meaning of Eq. (5): the exponential of
    the entropy of the isotropic Gaussian N(x_k, sigma_det^2 I) with
    ``sigma_det^2 = (sigma_u^2 + sigma_v^2) / 2``, i.e. ``2 pi e sigma_det^2``.
    ``released`` is the authors' code: ``2 pi e ((sigma_u + sigma_v) / 2)^2``.
    ``literal`` is Eq. (5) as printed: ``2 pi e (sigma_u^2 + sigma_v^2)^2``.

    Args:
        variances: (B, K, 2) per-axis variances (sigma_u^2, sigma_v^2).
    Returns:
        scalar, mean over the batch of the sum over the K landmarks.

    >>> variances = torch.full((1, 2, 2), 1 / (2 * math.pi * math.e))   # two landmarks
    >>> round(concentration_loss(variances).item(), 6)
    2.0
    """
    check_shape(variances, "B, K, 2", "variances", "concentration_loss")
    if form == "paper":
        per_landmark = 2 * math.pi * math.e * variances.mean(dim=-1)
    elif form == "released":
        sigma_bar = variances.clamp_min(0).sqrt().mean(dim=-1)
        per_landmark = 2 * math.pi * math.e * sigma_bar**2
    elif form == "literal":
        per_landmark = 2 * math.pi * math.e * variances.sum(dim=-1) ** 2
    else:
        raise ValueError(f"unknown concentration form {form!r}; expected one of {CONCENTRATION_FORMS}")
    return per_landmark.sum(dim=1).mean()


def separation_loss(landmarks: torch.Tensor, sigma_sep: float) -> torch.Tensor:
    """Eq. (7): sum over ordered pairs k != k' of exp(-||x_k' - x_k||^2 / (2 sigma_sep^2)).

    Args:
        landmarks: (B, K, 2) normalised (x, y).
        sigma_sep: in normalised units (Table 7).
    Returns:
        scalar, mean over the batch.

    >>> separation_loss(torch.full((1, 2, 2), 0.5), sigma_sep=0.06).item()   # two coinciding: both ordered pairs
    2.0
    """
    check_shape(landmarks, "B, K, 2", "landmarks", "separation_loss")
    difference = landmarks[:, :, None, :] - landmarks[:, None, :, :]       # (B, K, K, 2)
    squared_distance = (difference**2).sum(dim=-1)                          # (B, K, K)
    kernel = torch.exp(-squared_distance / (2 * sigma_sep**2))
    off_diagonal = 1 - torch.eye(landmarks.shape[1], device=landmarks.device, dtype=landmarks.dtype)
    return (kernel * off_diagonal).sum(dim=(1, 2)).mean()


def equivariance_loss(mapped_warped_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Eq. (8): sum_k ||g(x'_k, y'_k) - (x_k, y_k)||^2.

    Args:
        mapped_warped_landmarks: (B, K, 2) landmarks of the warped image I'
            already mapped back through g (see :func:`lmdis.tps.apply_transform`).
        landmarks: (B, K, 2) landmarks of the original image.
    Returns:
        scalar, mean over the batch. Gradients flow through both branches.

    >>> equivariance_loss(torch.tensor([[[0.5, 0.5]]]), torch.tensor([[[0.25, 0.5]]])).item()
    0.0625
    """
    sizes = check_shape(mapped_warped_landmarks, "B, K, 2", "mapped_warped_landmarks", "equivariance_loss")
    check_shape(landmarks, "B, K, 2", "landmarks", "equivariance_loss", **sizes)
    return ((mapped_warped_landmarks - landmarks) ** 2).sum(dim=(1, 2)).mean()


RECONSTRUCTION_FORMS = ("paper", "released")


def reconstruction_loss(
    images: torch.Tensor, reconstructions: torch.Tensor, sigma_color: float = 0.05, form: str = "paper"
) -> torch.Tensor:
    """Eq. (17): Gaussian negative log-likelihood of I under N(I-tilde, sigma_color^2).

    ``paper``: ``||I - I~||_F^2 / sigma_color^2 + ln(2 pi sigma_color^2)`` per
    image (Table 7's lambda_recon refers to this form). ``released``: the
    authors' code, ``0.5 ||I - I~||_F^2``.

    Args:
        images, reconstructions: (B, C, H, W) in [0, 1].
    Returns:
        scalar, mean over the batch.

    >>> reconstruction_loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), form="released").item()
    2.0
    """
    sizes = check_shape(images, "B, C, H, W", "images", "reconstruction_loss")
    check_shape(reconstructions, "B, C, H, W", "reconstructions", "reconstruction_loss", **sizes)
    squared_error = ((images - reconstructions) ** 2).flatten(1).sum(dim=1)  # (B,)
    if form == "paper":
        per_image = squared_error / sigma_color**2 + math.log(2 * math.pi * sigma_color**2)
    elif form == "released":
        per_image = 0.5 * squared_error
    else:
        raise ValueError(f"unknown reconstruction form {form!r}; expected one of {RECONSTRUCTION_FORMS}")
    return per_image.mean()
