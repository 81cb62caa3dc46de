"""Measurements of a trained detector outside the paper's protocol: what its landmarks follow, what they are.

- :func:`content_tracking_gain` and :func:`warp_tracking`: do the landmarks
  follow image content that moves, and the random warps of Eq. (8)?
- :func:`similarity_projection`: what perfectly pose-tracking landmarks
  could tell a regressor (the pose of a face, not its shape);
- :func:`nearest_annotated_points`: for each landmark, the annotated point
  it sits closest to, and how far (are the landmarks parts?);
- :func:`map_mass`: how many pixels' worth of confidence each channel of
  D (Eq. 2) holds: a landmark whose map saturates over a large region (a
  blob, which Eq. 5 can shrink only from its rim) stands out from the
  point-like ones;
- :func:`landmark_metrics`: a model on held-out images without annotations:
  per-axis variance (what Eq. 5 shrinks), nearest-neighbour distance (what
  Eq. 7 enlarges), equivariance error (Eq. 8) and reconstruction error,
  measured in the padded frame the detector and the losses work in (Table
  7's sigmas and lambdas refer to it), so they read like the training log.

Convention: landmarks are normalised ``(x, y)`` (see :mod:`lmdis.geometry`).
"""
from __future__ import annotations

import numpy as np
import torch

from lmdis.tps import TransformConfig, apply_transform, sample_random_transform, warp_images

__all__ = ["similarity_projection", "content_tracking_gain", "warp_tracking", "nearest_annotated_points",
           "map_mass", "per_axis_variance", "nearest_neighbour_distance", "mean_pairwise_distance",
           "equivariance_error", "landmark_metrics", "metrics_in_pixels"]


def similarity_projection(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The template moved onto each point set by its least-squares similarity transform.

    The 2-D similarity (scale, rotation, translation; no reflection) that
    minimises ``sum_m ||s R t_m + b - p_m||^2`` is found in closed form with
    complex numbers: ``z = a w + b`` with ``a = <w_c, z_c> / <w_c, w_c>``
    on the centred sets. It is what perfectly pose-tracking landmarks could
    tell a regressor: the pose of a face, not its shape.

    Args:
        points: (n, M, 2) point sets, (x, y).
        template: (M, 2), e.g. the mean training shape.
    Returns:
        (n, M, 2) the transformed template for each set.
    """
    points, template = np.asarray(points, np.float64), np.asarray(template, np.float64)
    if points.ndim != 3 or points.shape[1:] != template.shape:
        raise ValueError(f"point sets {points.shape} do not match the template {template.shape} (expected (n, M, 2))")
    z = points[..., 0] + 1j * points[..., 1]                    # (n, M)
    w = template[:, 0] + 1j * template[:, 1]                    # (M,)
    z_mean = z.mean(axis=1, keepdims=True)
    w_centred = w - w.mean()
    spread = (np.abs(w_centred) ** 2).sum()
    if spread <= np.finfo(np.float64).eps * max(1.0, float((np.abs(w) ** 2).sum())):  # zero up to rounding
        raise ValueError("the template's points all coincide; a similarity transform needs at least two distinct points")
    a = (np.conj(w_centred) * (z - z_mean)).sum(axis=1, keepdims=True) / spread
    moved = a * w_centred + z_mean                               # (n, M)
    return np.stack([moved.real, moved.imag], axis=-1)


@torch.no_grad()
def content_tracking_gain(detect, images: torch.Tensor, size: int, window: float = 0.8,
                          shift: float = 0.1) -> dict[str, np.ndarray]:
    """How far landmarks follow image content that moves inside the frame (not in the paper).

    Two windows of side ``window`` (a fraction of the images' side) are cut
    from each image, the second ``shift`` further along one axis; both are
    resized to ``size`` and detected. Content moves by ``shift / window`` of
    the window's side between them, so a landmark fixed on the object moves
    by that much and one fixed to the frame not at all. The gain of a
    landmark is its mean measured move over the expected move: 1 = follows
    the content, 0 = a fixed template. Cropping shows real pixels at the
    borders, so, unlike the warps of Eq. (8), the frame gives no hint of the
    move: this tells whether the equivariance loss was met by tracking the
    object or by reading the frame.

    Args:
        detect: images (B, C, size, size) -> landmarks (B, K, 2), normalised (x, y), e.g. ``model.detect``.
        images: (B, C, H, W) with H = W, larger than ``size`` for full detail.
    Returns:
        ``{"x": (K,), "y": (K,)}`` gains per landmark.
    """
    side = images.shape[-1]
    if images.dim() != 4 or images.shape[-2] != side:
        raise ValueError(f"expected square images (B, C, H, H), got {tuple(images.shape)}")
    width, step = round(window * side), round(shift * side)
    margin = side - width - step
    if width < 2 or step < 1 or margin < 0:
        raise ValueError(f"window={window} and shift={shift} of a {side}-pixel image leave no room for two windows")
    start = margin // 2

    def detected(top, left):
        crop = images[..., top:top + width, left:left + width]
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True,
                                               align_corners=False)
        return detect(crop).cpu().numpy()

    expected = step / width
    gains = {}
    for axis, (first, second) in {"x": ((start, 0), (start, step)), "y": ((0, start), (step, start))}.items():
        index = 0 if axis == "x" else 1
        moved = detected(*first)[..., index] - detected(*second)[..., index]   # (B, K)
        gains[axis] = moved.mean(axis=0) / expected
    return gains


@torch.no_grad()
def warp_tracking(detect, images: torch.Tensor, transform, seed: int = 0) -> dict[str, np.ndarray]:
    """How much of the random warps of Eq. (8) a detector follows (not in the paper).

    Each image is warped by one ``g`` drawn from ``transform``
    (:class:`lmdis.tps.TransformConfig`, seeded), and two distances are
    measured per landmark, as fractions of the side:

    - ``residual``: ||g(x'_k) - x_k||, the (unsquared) error Eq. (8) penalises;
    - ``locked``: ||g(x_k) - x_k||, the error of a landmark fixed to the frame
      (it ignores the warp), i.e. how far the warp moved the content.

    ``residual / locked`` near 0 means the landmark follows the warp, near 1
    that it ignores it. Run it once with the full transform and once with the
    similarity switched off to see whether the local TPS deformation is tracked.

    Args:
        detect: images (B, C, S, S) -> landmarks (B, K, 2), normalised (x, y), in the frame it is given.
        images: (B, C, S, S), the frame the transform acts on.
    Returns:
        ``{"residual": (K,), "locked": (K,)}`` means over the images.
    """
    generator = torch.Generator().manual_seed(seed)
    warp = sample_random_transform(len(images), transform, generator, device=images.device, dtype=images.dtype)
    landmarks = detect(images)
    mapped = apply_transform(detect(warp_images(images, warp)), warp)
    return {"residual": (mapped - landmarks).norm(dim=-1).mean(dim=0).cpu().numpy(),
            "locked": (apply_transform(landmarks, warp) - landmarks).norm(dim=-1).mean(dim=0).cpu().numpy()}


def nearest_annotated_points(discovered: np.ndarray, annotated: np.ndarray, side: float) -> list[dict]:
    """For each discovered landmark, its nearest annotated point on average, and how far.

    Args:
        discovered: (n, K, 2) normalised landmarks; annotated: (n, M, 2) normalised points.
        side: the image side in pixels the distances are reported in.
    Returns:
        K dicts: ``landmark``, ``nearest`` (index into the M points), ``mean_px``
        and ``std_px`` of that distance over the n images, and ``mean_px_all``
        (the mean distance to each of the M points, for context).
    """
    discovered = np.asarray(discovered, np.float64)
    annotated = np.asarray(annotated, np.float64)
    if discovered.ndim != 3 or annotated.ndim != 3 or discovered.shape[0] != annotated.shape[0] \
            or discovered.shape[2] != 2 or annotated.shape[2] != 2:
        raise ValueError(f"expected discovered (n, K, 2) and annotated (n, M, 2) for the same n, got "
                         f"{discovered.shape} and {annotated.shape}")
    distance = np.linalg.norm(discovered[:, :, None, :] - annotated[:, None, :, :], axis=-1) * side  # (n, K, M)
    mean = distance.mean(axis=0)                                                                    # (K, M)
    rows = []
    for k in range(discovered.shape[1]):
        nearest = int(mean[k].argmin())
        rows.append({"landmark": k, "nearest": nearest, "mean_px": float(mean[k, nearest]),
                     "std_px": float(distance[:, k, nearest].std()), "mean_px_all": mean[k].tolist()})
    return rows


def map_mass(maps: torch.Tensor) -> np.ndarray:
    """Mean over images of each channel's summed confidence, in pixels: (B, K+1, H, W) -> (K+1,).

    Each pixel's K+1 confidences sum to 1 (Eq. 2), so the entries sum to
    H * W: a channel's mass is the number of pixels it would own if each
    pixel went to one channel. A landmark concentrated on a few pixels holds
    a few tens; a blob that owns a digit's box holds hundreds.

    >>> maps = torch.zeros(1, 3, 2, 2); maps[0, 0, 0, 0] = 1; maps[0, 2] = 1 - maps[0, 0]
    >>> map_mass(maps).tolist()
    [1.0, 0.0, 3.0]
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be (B, K+1, H, W), got {tuple(maps.shape)}")
    return maps.detach().float().flatten(2).sum(dim=2).mean(dim=0).cpu().numpy()


def per_axis_variance(variances: torch.Tensor) -> float:
    """Mean of the per-axis variances (sigma_u^2, sigma_v^2), (B, K, 2) -> float.

    A uniform map over the frame gives 1/12 ~= 0.083; a landmark concentrated
    on a few pixels gives ~1e-3 or less.
    """
    return float(variances.mean())


def nearest_neighbour_distance(landmarks: torch.Tensor) -> float:
    """Mean over images and landmarks of the distance to the closest other landmark.

    Args:
        landmarks: (B, K, 2) normalised (x, y), K >= 2.
    """
    if landmarks.dim() != 3 or landmarks.shape[1] < 2:
        raise ValueError(f"landmarks must be (B, K, 2) with K >= 2, got {tuple(landmarks.shape)}")
    distances = torch.cdist(landmarks, landmarks)                                       # (B, K, K)
    distances = distances + torch.diag(torch.full((landmarks.shape[1],), float("inf")))  # exclude k' = k
    return float(distances.min(dim=2).values.mean())


def mean_pairwise_distance(landmarks: torch.Tensor) -> float:
    """Mean over images and over the K (K - 1) / 2 pairs k < k' of ||x_k - x_k'||: the spread of the landmarks.

    Zero when every landmark of an image sits at one place, the degenerate
    solution the separation loss (Eq. 7) exists to prevent (Appendix F.2,
    Figure 39). :func:`nearest_neighbour_distance` is small as soon as two
    landmarks share a place; this is small only when they all do.

    Args:
        landmarks: (B, K, 2) normalised (x, y), K >= 2.
    """
    if landmarks.dim() != 3 or landmarks.shape[1] < 2 or landmarks.shape[2] != 2:
        raise ValueError(f"landmarks must be (B, K, 2) with K >= 2, got {tuple(landmarks.shape)}")
    count = landmarks.shape[1]
    first, second = torch.triu_indices(count, count, offset=1)                          # the pairs k < k'
    return float((landmarks[:, first] - landmarks[:, second]).norm(dim=-1).mean())


def equivariance_error(mapped_warped_landmarks: torch.Tensor, landmarks: torch.Tensor) -> float:
    """Mean distance ||g(x'_k, y'_k) - (x_k, y_k)|| over images and landmarks (Eq. 8, not squared).

    Args:
        mapped_warped_landmarks: (B, K, 2) landmarks of the warped images mapped back through g.
        landmarks: (B, K, 2) landmarks of the original images.
    """
    return float((mapped_warped_landmarks - landmarks).norm(dim=-1).mean())


@torch.no_grad()
def landmark_metrics(model, images: torch.Tensor, transform: TransformConfig | None = None, seed: int = 0,
                     batch_size: int = 100) -> dict[str, float]:
    """Measure a trained model on images it did not train on (no annotations needed).

    Each image is warped once by a random grid-TPS transform drawn with
    ``seed`` (the same transforms for every model compared).

    Args:
        model: a :class:`~lmdis.model.LandmarkAutoencoder` (used in eval mode).
        images: (N, C, S, S) in [0, 1].
        transform: the random transform (default: the paper's, Appendix G.3).
    Returns:
        ``variance`` (per axis), ``nearest_neighbour``, ``pairwise``
        (:func:`mean_pairwise_distance`), ``equivariance`` (padded frame,
        fraction of its side) and ``reconstruction`` (mean squared error per
        pixel, intensities in [0, 1]).
    """
    model = model.eval()
    device = next(model.parameters()).device
    transform = transform or TransformConfig()
    generator = torch.Generator().manual_seed(seed)
    variances, landmarks, mapped, squared_errors = [], [], [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        encoding = model.encode(batch)
        detection = encoding.detection                                     # the padded frame
        warp = sample_random_transform(len(batch), transform, generator, device=device)
        warped = model.detector(warp_images(model.pad(batch), warp))
        reconstruction = model.decode(encoding.landmarks, encoding.descriptors)
        variances.append(detection.variances.cpu())
        landmarks.append(detection.landmarks.cpu())
        mapped.append(apply_transform(warped.landmarks, warp).cpu())
        squared_errors.append(((reconstruction - batch) ** 2).flatten(1).mean(dim=1).cpu())
    landmarks = torch.cat(landmarks)
    return {
        "variance": per_axis_variance(torch.cat(variances)),
        "nearest_neighbour": nearest_neighbour_distance(landmarks),
        "pairwise": mean_pairwise_distance(landmarks),
        "equivariance": equivariance_error(torch.cat(mapped), landmarks),
        "reconstruction": float(torch.cat(squared_errors).mean()),
    }


PIXEL_UNITS = {"spread": "px", "nearest_neighbour": "px", "pairwise": "px", "equivariance": "px",
               "reconstruction": "squared intensity"}


def metrics_in_pixels(metrics: dict[str, float], side: int) -> dict[str, float]:
    """:func:`landmark_metrics` in pixels of a frame ``side`` pixels wide (the padded frame they are measured in).

    Distances (``nearest_neighbour``, ``pairwise``, ``equivariance``) are
    multiplied by ``side``; ``variance`` (a fraction of the side, squared)
    becomes ``spread``, its square root in pixels: the standard deviation of
    a confidence map along one axis (what Eq. 5 shrinks). ``reconstruction``
    stays a mean squared error per pixel of intensities in [0, 1]. The
    units are :data:`PIXEL_UNITS`.
    """
    if side < 1:
        raise ValueError(f"side must be a positive number of pixels, got {side}")
    converted = {"spread": float(np.sqrt(metrics["variance"])) * side}
    for key in ("nearest_neighbour", "pairwise", "equivariance"):
        if key in metrics:
            converted[key] = metrics[key] * side
    converted["reconstruction"] = metrics["reconstruction"]
    return converted
