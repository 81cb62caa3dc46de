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


HEATMAP_FORMS = ("peak", "density", "released")


def decoder_heatmaps(landmarks: torch.Tensor, sigma_dec: float, height: int, width: int,
                     form: str = "peak") -> torch.Tensor:
    """Eq. (11)-(12): reconstructed confidence map D-tilde for one sigma_dec.

    A raw map per landmark plus a constant background channel, normalised
    across the K+1 channels (Eq. 12). Eq. (11) does not say in which units its
    Gaussian is taken, and that sets the ratio of a landmark's peak to the
    background, which decides what the decoder's input looks like:

    - ``peak`` (default): ``exp(-d^2 / 2 sigma^2)`` against a background of
      one at every sigma_dec: a landmark's share is one half at its centre and
      one third at ``sigma * sqrt(2 ln 2)``, so away from overlaps the
      background keeps at least half of every pixel and the input marks
      points. Chosen by measurement (docs/full_model.md).
    - ``density``: the density ``N(p; x_k, sigma^2 I)`` in normalised units
      against one, peaking at ``1 / (2 pi sigma^2)`` times the background
      (10x at sigma = 0.125): the K channels tile the frame, so landmarks that
      split the image into cells are rewarded.
    - ``released``: the authors' code, ``exp(-d^2/2 sigma^2) / (2 pi sigma^4
      (H W)^2)`` against ``1 / (H W)``: each landmark a weak bump (peak 0.1 of
      the background at sigma = 0.125 on 80x80) that fades with sigma and size.

    Args:
        landmarks: (B, K, 2) normalised (x, y) in the decoder's frame.
        sigma_dec: standard deviation in normalised units (fraction of the side).
        form: one of :data:`HEATMAP_FORMS`.
    Returns:
        (B, K+1, H, W), summing to one over channels.
    """
    if landmarks.dim() != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be (B, K, 2), got {tuple(landmarks.shape)}")
    density = gaussian_maps(landmarks, sigma_dec, height, width)        # (B, K, H, W), normalised units
    background_level = 1.0
    if form == "peak":
        raw = density * (2 * math.pi * sigma_dec**2)
    elif form == "density":
        raw = density
    elif form == "released":
        raw = density / (sigma_dec**2 * (height * width) ** 2)
        background_level = 1.0 / (height * width)
    else:
        raise ValueError(f"unknown decoder heatmap form {form!r}; expected one of {HEATMAP_FORMS}")
    background = torch.full_like(raw[:, :1], background_level)          # (B, 1, H, W)
    raw = torch.cat([raw, background], dim=1)
    return raw / raw.sum(dim=1, keepdim=True)


def heatmap_coverage(heatmaps: torch.Tensor) -> torch.Tensor:
    """Share of the pixels that the landmark channels own (background below 1/2).

    Args:
        heatmaps: (B, K+1, H, W) from :func:`decoder_heatmaps` (last = background).
    Returns:
        (B,) fractions in [0, 1].
    """
    return (heatmaps[:, -1] < 0.5).flatten(1).float().mean(dim=1)


def landmark_mass(heatmaps: torch.Tensor) -> torch.Tensor:
    """Mean share of the decoder input that the landmark channels hold: 1 - mean background, (B,)."""
    return 1 - heatmaps[:, -1].flatten(1).mean(dim=1)


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
