"""Landmarks from confidence maps and back: Eq. (1)-(4), (6), (11)-(12).

Convention (the whole package uses it): a landmark is an ``(x, y)`` pair, x
horizontal first, normalised by the image side so that the centre of pixel
column ``u`` (0-indexed) of a ``W``-wide map is at ``x = (u + 0.5) / W`` and
likewise ``y = (v + 0.5) / H``. The image therefore spans ``[0, 1]`` on both
axes, and Table 7's note ("coordinates normalised by the image edge length")
holds for square images, which is what every dataset prepares. Pixel
coordinates appear only at the edges (datasets, CSV output, plots).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pixel_centres(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised coordinates of the ``size`` pixel centres along one axis: (size,)."""
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) / size


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The (x, y) of every pixel centre: (H, W, 2) in the package convention."""
    ys = pixel_centres(height, device, dtype)
    xs = pixel_centres(width, device, dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def confidence_maps(raw_scores: torch.Tensor) -> torch.Tensor:
    """Eq. (2): softmax across the K+1 channels (last = background).

    Args:
        raw_scores: R, (B, K+1, H, W).
    Returns:
        D, (B, K+1, H, W), summing to one over channels at every pixel.
    """
    return torch.softmax(raw_scores, dim=1)


def landmark_moments(maps: torch.Tensor, eps: float = 1e-12):
    """Eq. (3) and the variances of Sec. 3.2 for each map taken as a density.

    Each map is normalised by its own mass ``zeta_k`` and its mean and per-axis
    variance are taken over the pixel centres.

    Args:
        maps: (B, K, H, W) non-negative weights (pass ``D[:, :K]``, without
            the background channel).
    Returns:
        means: (B, K, 2) weighted mean (x, y), Eq. (3).
        variances: (B, K, 2) (sigma_u^2, sigma_v^2) in normalised units^2.
    Convention: normalised (x, y), see the module docstring.
    """
    _, _, height, width = maps.shape
    xs = pixel_centres(width, maps.device, maps.dtype)   # (W,)
    ys = pixel_centres(height, maps.device, maps.dtype)  # (H,)
    mass_x = maps.sum(dim=2)                              # (B, K, W) marginal over rows
    mass_y = maps.sum(dim=3)                              # (B, K, H) marginal over columns
    zeta = mass_x.sum(dim=2).clamp_min(eps)               # (B, K)
    mean_x = (mass_x * xs).sum(dim=2) / zeta
    mean_y = (mass_y * ys).sum(dim=2) / zeta
    var_x = (mass_x * (xs - mean_x[..., None]) ** 2).sum(dim=2) / zeta
    var_y = (mass_y * (ys - mean_y[..., None]) ** 2).sum(dim=2) / zeta
    return torch.stack([mean_x, mean_y], dim=-1), torch.stack([var_x, var_y], dim=-1)


def landmarks_from_maps(maps: torch.Tensor) -> torch.Tensor:
    """Eq. (3)-(4): the soft-argmax landmarks, (B, K, 2) normalised (x, y)."""
    return landmark_moments(maps)[0]


def gaussian_maps(
    centres: torch.Tensor, sigma: torch.Tensor | float, height: int, width: int
) -> torch.Tensor:
    """Isotropic Gaussian densities N((u, v); centre, sigma^2 I) on the pixel centres.

    The density is in normalised units, so it integrates to one over the unit
    image; summing it over pixels gives about ``H * W``.

    Args:
        centres: (B, K, 2) normalised (x, y).
        sigma: scalar or (B, K) standard deviation in normalised units.
    Returns:
        (B, K, H, W) density values.
    """
    grid = coordinate_grid(height, width, centres.device, centres.dtype)  # (H, W, 2)
    sigma = torch.as_tensor(sigma, dtype=centres.dtype, device=centres.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(centres.shape[:2])
    variance = (sigma**2)[..., None, None]                                  # (B, K, 1, 1)
    offset = grid[None, None] - centres[:, :, None, None, :]               # (B, K, H, W, 2)
    squared_distance = (offset**2).sum(dim=-1)                              # (B, K, H, W)
    return torch.exp(-squared_distance / (2 * variance)) / (2 * math.pi * variance)


def gaussian_approximation(
    means: torch.Tensor, variances: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Eq. (6): D-bar_k = (1/WH) N((u, v); (x_k, y_k), sigma_det^2 I).

    ``sigma_det^2 = (sigma_u^2 + sigma_v^2) / 2``. Each map sums to about one
    over the pixels, so it is a soft pooling mask (Eq. 10).

    Args:
        means, variances: (B, K, 2) from :func:`landmark_moments`.
    Returns:
        (B, K, H, W).
    """
    sigma_det = (variances.mean(dim=-1)).clamp_min(1e-12).sqrt()  # (B, K)
    return gaussian_maps(means, sigma_det, height, width) / (height * width)


def decoder_heatmaps(landmarks: torch.Tensor, sigma_dec: float, height: int, width: int) -> torch.Tensor:
    """Eq. (11)-(12): reconstructed confidence map D-tilde for one sigma_dec.

    Raw maps are the Gaussian densities at the landmarks plus a constant
    background channel equal to one; they are normalised across the K+1
    channels.

    Args:
        landmarks: (B, K, 2) normalised (x, y) in the decoder's frame.
        sigma_dec: standard deviation in normalised units (fraction of the side).
    Returns:
        (B, K+1, H, W), summing to one over channels.
    """
    raw = gaussian_maps(landmarks, sigma_dec, height, width)          # (B, K, H, W)
    background = torch.ones_like(raw[:, :1])                           # (B, 1, H, W)
    raw = torch.cat([raw, background], dim=1)
    return raw / raw.sum(dim=1, keepdim=True)


def pad_with_edges(images: torch.Tensor, padded_size: int) -> torch.Tensor:
    """Pad square images to ``padded_size`` by replicating edge values (Table 6).

    Args:
        images: (B, C, S, S).
    Returns:
        (B, C, P, P) with the image centred; ``P - S`` must be even.
    """
    size = images.shape[-1]
    margin = padded_size - size
    if margin < 0 or margin % 2:
        raise ValueError(
            f"padded size {padded_size} must be >= the image size {size} with an even difference"
        )
    if margin == 0:
        return images
    half = margin // 2
    return F.pad(images, (half, half, half, half), mode="replicate")


def padded_to_image_frame(points: torch.Tensor, image_size: int, padded_size: int) -> torch.Tensor:
    """Map normalised points of the padded frame to the unpadded image's frame.

    ``x_image = (x_padded * P - (P - S) / 2) / S``; points in the margin fall
    outside [0, 1].
    """
    margin = (padded_size - image_size) / 2
    return (points * padded_size - margin) / image_size


def image_to_padded_frame(points: torch.Tensor, image_size: int, padded_size: int) -> torch.Tensor:
    """Inverse of :func:`padded_to_image_frame`."""
    margin = (padded_size - image_size) / 2
    return (points * image_size + margin) / padded_size
