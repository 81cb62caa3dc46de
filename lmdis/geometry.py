"""Landmarks from confidence maps and back: Eq. (1)-(4), (6), (11)-(12).

Convention (the whole package uses it): a landmark is an ``(x, y)`` pair, x
horizontal first, normalised by the image side so that the centre of pixel
column ``u`` (0-indexed) of a ``W``-wide map is at ``x = (u + 0.5) / W`` and
likewise ``y = (v + 0.5) / H``. The image therefore spans ``[0, 1]`` on both
axes, and Table 7's note ("coordinates normalised by the image edge length")
holds for square images, which is what every dataset prepares. Pixel
coordinates appear only at the edges (datasets, CSV output, plots).

Every public function checks the shapes of its tensor arguments and names
the argument, the shape it got and the one it expects
(:func:`lmdis.shapes.check_shape`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmdis.shapes import check_shape


def pixel_centres(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised coordinates of the ``size`` pixel centres along one axis: (size,).

    >>> pixel_centres(4).tolist()
    [0.125, 0.375, 0.625, 0.875]
    """
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) / size


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The (x, y) of every pixel centre: (H, W, 2) in the package convention.

    >>> coordinate_grid(2, 4)[1, 0].tolist()   # row 1, column 0: x first
    [0.125, 0.75]
    """
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

    >>> confidence_maps(torch.zeros(1, 4, 3, 3))[0, :, 0, 0].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    check_shape(raw_scores, "B, C, H, W", "raw_scores", "confidence_maps")
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

    >>> maps = torch.zeros(1, 1, 4, 4)
    >>> maps[0, 0, 1, 2] = maps[0, 0, 1, 3] = 1.0      # row 1, columns 2 and 3
    >>> means, variances = landmark_moments(maps)
    >>> means.tolist(), variances.tolist()
    ([[[0.75, 0.375]]], [[[0.015625, 0.0]]])
    """
    check_shape(maps, "B, K, H, W", "maps", "landmark_moments")
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
    """Eq. (3)-(4): the soft-argmax landmarks, (B, K, 2) normalised (x, y), of maps (B, K, H, W).

    >>> maps = torch.zeros(1, 1, 4, 4)
    >>> maps[0, 0, 3, 0] = 1.0                          # bottom-left pixel
    >>> landmarks_from_maps(maps).tolist()
    [[[0.125, 0.875]]]
    """
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

    >>> density = gaussian_maps(torch.full((1, 1, 2), 0.5), 0.1, 64, 64)
    >>> round(float(density.sum()) / 64**2, 4)          # integrates to one over the unit image
    1.0
    """
    sizes = check_shape(centres, "B, K, 2", "centres", "gaussian_maps")
    if isinstance(sigma, torch.Tensor) and sigma.dim():
        check_shape(sigma, "B, K", "sigma", "gaussian_maps", **sizes)
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

    >>> masks = gaussian_approximation(torch.full((1, 1, 2), 0.5), torch.full((1, 1, 2), 0.01), 32, 32)
    >>> round(float(masks.sum()), 4)                     # a pooling mask: sums to one
    1.0
    """
    sizes = check_shape(means, "B, K, 2", "means", "gaussian_approximation")
    check_shape(variances, "B, K, 2", "variances", "gaussian_approximation", **sizes)
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

    >>> maps = decoder_heatmaps(torch.tensor([[[0.375, 0.375]]]), 0.1, 4, 4)   # at the centre of pixel (1, 1)
    >>> maps.shape, maps[0, :, 1, 1].tolist()           # landmark and background: one half each
    (torch.Size([1, 2, 4, 4]), [0.5, 0.5])
    """
    check_shape(landmarks, "B, K, 2", "landmarks", "decoder_heatmaps")
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

    >>> heatmap_coverage(decoder_heatmaps(torch.tensor([[[0.5, 0.5]]]), 0.1, 4, 4)).tolist()
    [0.0]
    """
    check_shape(heatmaps, "B, C, H, W", "heatmaps", "heatmap_coverage")
    return (heatmaps[:, -1] < 0.5).flatten(1).float().mean(dim=1)


def landmark_mass(heatmaps: torch.Tensor) -> torch.Tensor:
    """Mean share of the decoder input that the landmark channels hold: 1 - mean background, (B,).

    >>> landmark_mass(torch.tensor([[[[0.25]], [[0.75]]]])).tolist()   # (1, K+1=2, 1, 1)
    [0.25]
    """
    check_shape(heatmaps, "B, C, H, W", "heatmaps", "landmark_mass")
    return 1 - heatmaps[:, -1].flatten(1).mean(dim=1)


def pad_with_edges(images: torch.Tensor, padded_size: int) -> torch.Tensor:
    """Pad square images to ``padded_size`` by replicating edge values (Table 6).

    Args:
        images: (B, C, S, S).
    Returns:
        (B, C, P, P) with the image centred; ``P - S`` must be even.

    >>> pad_with_edges(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), 4)[0, 0].tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
    """
    check_shape(images, "B, C, S, S", "images", "pad_with_edges")
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

    Args:
        points: (..., 2) normalised (x, y) in the padded frame.

    >>> padded_to_image_frame(torch.tensor([[0.5, 0.25]]), 64, 96).tolist()   # 16 pixels of margin
    [[0.5, 0.125]]
    """
    check_shape(points, "..., 2", "points", "padded_to_image_frame")
    margin = (padded_size - image_size) / 2
    return (points * padded_size - margin) / image_size


def image_to_padded_frame(points: torch.Tensor, image_size: int, padded_size: int) -> torch.Tensor:
    """Inverse of :func:`padded_to_image_frame`: (..., 2) image-frame points -> the padded frame.

    >>> image_to_padded_frame(torch.tensor([[0.5, 0.125]]), 64, 96).tolist()
    [[0.5, 0.25]]
    """
    check_shape(points, "..., 2", "points", "image_to_padded_frame")
    margin = (padded_size - image_size) / 2
    return (points * image_size + margin) / padded_size
