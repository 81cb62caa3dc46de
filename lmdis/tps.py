"""Random thin-plate-spline transforms for the equivariance constraint, Eq. (8).

The transform ``g`` maps a point of the warped image I' to the point of the
original image it is sampled from: ``I'(p) = I(g(p))`` (Sec. 3.2). The same
``g`` warps images (:func:`warp_images`) and maps landmarks detected on I'
back to I (:func:`apply_transform`), so Eq. (8) needs no inverse.

``g`` is a thin-plate spline (Bookstein 1989) with random control-point
offsets, followed by a random similarity about the image centre (Appendix
G.3). Control points are a regular grid or the landmarks of the current model
(Appendix F.3). Everything is batched and differentiable, in the package
coordinate convention (normalised ``(x, y)``, see :mod:`lmdis.geometry`), with
the shapes of the arguments checked where they enter
(:func:`lmdis.shapes.check_shape`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmdis.geometry import coordinate_grid
from lmdis.shapes import check_shape


def tps_radial_basis(squared_distance: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 of squared distances r^2 (any shape), with U(0) = 0 and a finite gradient there.

    >>> [round(u, 4) for u in tps_radial_basis(torch.tensor([0.0, 1.0, 4.0])).tolist()]   # 4 ln 4 at r^2 = 4
    [0.0, 0.0, 5.5452]
    """
    positive = squared_distance > 0
    safe = torch.where(positive, squared_distance, torch.ones_like(squared_distance))
    return torch.where(positive, safe * torch.log(safe), torch.zeros_like(squared_distance))


def _pairwise_squared_distance(points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """(B, M, 2), (B, N, 2) -> (B, M, N)."""
    return ((points[:, :, None, :] - control[:, None, :, :]) ** 2).sum(dim=-1)


def _affine_basis(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) -> (B, N, 3) rows [1, x, y]."""
    return torch.cat([torch.ones_like(points[..., :1]), points], dim=-1)


def fit_tps(control: torch.Tensor, targets: torch.Tensor, regularisation: float = 0.0):
    """Solve the thin-plate spline that maps ``control`` to ``targets``.

    Solves ``[[K + lambda I, P], [P^T, 0]] [w; a] = [Y; 0]`` with
    ``K_ij = U(||c_i - c_j||)`` and ``P = [1, c]``. With ``regularisation = 0``
    the spline interpolates the control points exactly; a small positive value
    keeps the system solvable when control points nearly coincide (landmarks
    early in training).

    Args:
        control: (B, N, 2) control points, N >= 3 and not all collinear.
        targets: (B, N, 2) where they must map to.
    Returns:
        weights (B, N, 2) and affine (B, 3, 2), for :func:`evaluate_tps`.

    >>> control = regular_grid_points(3)[None]                           # (1, 9, 2)
    >>> weights, affine = fit_tps(control, control + 0.25)               # a pure shift
    >>> weights.abs().max().item() < 1e-5, [round(a, 5) for a in affine[0, 0].tolist()]   # no bending; a_0 = the shift
    (True, [0.25, 0.25])
    """
    sizes = check_shape(control, "B, N, 2", "control", "fit_tps")
    check_shape(targets, "B, N, 2", "targets", "fit_tps", **sizes)
    batch, count, _ = control.shape
    kernel = tps_radial_basis(_pairwise_squared_distance(control, control))  # (B, N, N)
    if regularisation:
        kernel = kernel + regularisation * torch.eye(count, dtype=control.dtype, device=control.device)
    basis = _affine_basis(control)                                            # (B, N, 3)
    zeros = torch.zeros(batch, 3, 3, dtype=control.dtype, device=control.device)
    system = torch.cat(
        [torch.cat([kernel, basis], dim=2), torch.cat([basis.transpose(1, 2), zeros], dim=2)], dim=1
    )                                                                         # (B, N+3, N+3)
    right = torch.cat([targets, torch.zeros(batch, 3, 2, dtype=control.dtype, device=control.device)], dim=1)
    solution = torch.linalg.solve(system, right)                              # (B, N+3, 2)
    return solution[:, :count], solution[:, count:]


def evaluate_tps(points: torch.Tensor, control: torch.Tensor, weights: torch.Tensor, affine: torch.Tensor):
    """f(p) = a_0 + A p + sum_i w_i U(||p - c_i||) for points (B, M, 2) -> (B, M, 2).

    ``control`` (B, N, 2), ``weights`` (B, N, 2) and ``affine`` (B, 3, 2) as
    :func:`fit_tps` returns them.

    >>> control = regular_grid_points(3)[None]
    >>> targets = control + 0.05 * torch.randn(1, 9, 2, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(evaluate_tps(control, control, *fit_tps(control, targets)), targets, atol=1e-5))
    True
    """
    sizes = check_shape(control, "B, N, 2", "control", "evaluate_tps")
    check_shape(weights, "B, N, 2", "weights", "evaluate_tps", **sizes)
    check_shape(affine, "B, 3, 2", "affine", "evaluate_tps", B=sizes["B"])
    check_shape(points, "B, M, 2", "points", "evaluate_tps", B=sizes["B"])
    radial = tps_radial_basis(_pairwise_squared_distance(points, control))   # (B, M, N)
    return _affine_basis(points) @ affine + radial @ weights


@dataclass
class RandomTransform:
    """One sampled ``g`` per image: a TPS, then a similarity about (0.5, 0.5).

    ``g(p) = scale * R(angle) (tps(p) - c) + c + translation`` with c the
    image centre. Fields are batched tensors; build with
    :func:`sample_random_transform` or directly (tests do).
    """

    control: torch.Tensor      # (B, N, 2)
    weights: torch.Tensor      # (B, N, 2)
    affine: torch.Tensor       # (B, 3, 2)
    angle: torch.Tensor        # (B,) radians
    scale: torch.Tensor        # (B,)
    translation: torch.Tensor  # (B, 2)


def apply_transform(points: torch.Tensor, transform: RandomTransform) -> torch.Tensor:
    """g(points): (B, M, 2) normalised (x, y) -> (B, M, 2), one transform per image of the batch.

    >>> control = regular_grid_points(3)[None]
    >>> shift = RandomTransform(control, *fit_tps(control, control), angle=torch.zeros(1), scale=torch.ones(1),
    ...                         translation=torch.tensor([[0.25, 0.0]]))   # identity TPS, then a shift
    >>> apply_transform(torch.tensor([[[0.5, 0.5]]]), shift).tolist()
    [[[0.75, 0.5]]]
    """
    check_shape(points, "B, M, 2", "points", "apply_transform", B=transform.control.shape[0])
    deformed = evaluate_tps(points, transform.control, transform.weights, transform.affine)
    cos, sin = torch.cos(transform.angle), torch.sin(transform.angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    centred = deformed - 0.5
    rotated = centred @ rotation.transpose(1, 2) * transform.scale[:, None, None]
    return rotated + 0.5 + transform.translation[:, None, :]


def warp_images(images: torch.Tensor, transform: RandomTransform, size: int | None = None,
                context_scale: float = 1.0) -> torch.Tensor:
    """I'(p) = I(g(p)) with bilinear sampling and border replication.

    With ``context_scale`` s < 1 the input is a larger context image whose
    central fraction s is the frame ``g`` is defined on: a frame point q lies
    at 0.5 + (q - 0.5) s of the context, so the warp pulls in the real
    surrounding pixels where the plain warp would replicate the border.

    Args:
        images: (B, C, H, W); the context image when ``context_scale`` < 1.
        size: side of the output (default: the input's, which needs square images when given).
    Returns:
        (B, C, size, size) warped images, (B, C, H, W) without ``size``.

    >>> control = regular_grid_points(3)[None]
    >>> identity = RandomTransform(control, *fit_tps(control, control), angle=torch.zeros(1),
    ...                            scale=torch.ones(1), translation=torch.zeros(1, 2))
    >>> images = torch.rand(1, 1, 8, 8)
    >>> bool(torch.allclose(warp_images(images, identity), images, atol=1e-5))
    True
    """
    check_shape(images, "B, C, H, W", "images", "warp_images", B=transform.control.shape[0])
    batch, _, height, width = images.shape
    if size is not None:
        height = width = size
    grid = coordinate_grid(height, width, images.device, images.dtype).reshape(1, -1, 2)
    source = apply_transform(grid.expand(batch, -1, -1), transform)    # (B, H*W, 2), frame units
    source = 0.5 + (source - 0.5) * context_scale                       # context units
    # grid_sample with align_corners=False puts -1/+1 at the outer pixel edges,
    # which is exactly 2 * x - 1 in the package convention.
    sample_grid = (2 * source - 1).reshape(batch, height, width, 2)
    return F.grid_sample(images, sample_grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class TransformConfig:
    """Parameters of the random transform (Appendix G.3, F.3), normalised units.

    The paper states the scale as "Gaussian in the base-2 log scale with std
    1.25", which read literally would scale images by 2.4x at one sigma; the
    authors' code draws ``scale = exp(N(0, ln 1.25))``, which we follow
    (``log_scale_std = ln 1.25``).

    The control-point offsets are the authors' N(0, 0.1^2) and N(0, 0.05^2)
    in their [-1, 1] units, i.e. 0.05 and 0.025 of the side here. The same
    numbers read in [0, 1] units (``grid_offset_std=0.1``) fold the warp:
    its Jacobian is negative on about a fifth of the frame
    (:func:`folded_fraction`), against about 2 % at 0.05.
    """

    grid_size: int = 7
    grid_offset_std: float = 0.05
    landmark_offset_std: float = 0.025
    translation_range: float = 0.15
    rotation_std_degrees: float = 10.0
    log_scale_std: float = math.log(1.25)
    landmark_regularisation: float = 1e-4


def regular_grid_points(grid_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """grid_size x grid_size control points spanning [0, 1]^2: (grid_size^2, 2), x varying fastest.

    >>> regular_grid_points(2).tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    ticks = torch.linspace(0, 1, grid_size, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)


def sample_random_transform(
    batch: int,
    config: TransformConfig,
    generator: torch.Generator,
    landmarks: torch.Tensor | None = None,
    device=None,
    dtype=torch.float32,
) -> RandomTransform:
    """Draw one random ``g`` per image.

    With ``landmarks`` (B, K, 2) the TPS control points are those landmarks
    (offsets ``landmark_offset_std``) plus the four frame corners held fixed,
    which pins the spline's affine part and keeps the solve well-posed when
    landmarks cluster; without, a regular ``grid_size^2`` grid (offsets
    ``grid_offset_std``). Random numbers come from ``generator`` (a CPU
    generator, so training resumes exactly on any device).

    >>> transform = sample_random_transform(4, TransformConfig(), torch.Generator().manual_seed(0))
    >>> transform.control.shape, transform.angle.shape   # the 7x7 grid, one angle per image
    (torch.Size([4, 49, 2]), torch.Size([4]))
    """
    if landmarks is not None:
        check_shape(landmarks, "B, K, 2", "landmarks", "sample_random_transform", B=batch)

    def normal(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype).to(device)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, dtype=dtype).to(device)

    if landmarks is None:
        control = regular_grid_points(config.grid_size, device, dtype).expand(batch, -1, -1)
        targets = control + config.grid_offset_std * normal(*control.shape)
        regularisation = 0.0
    else:
        corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], device=device, dtype=dtype)
        moving = landmarks.detach().to(dtype)
        control = torch.cat([moving, corners.expand(batch, -1, -1)], dim=1)
        offsets = config.landmark_offset_std * normal(*moving.shape)
        targets = control + torch.cat([offsets, torch.zeros_like(corners).expand(batch, -1, -1)], dim=1)
        regularisation = config.landmark_regularisation
    weights, affine = fit_tps(control, targets, regularisation)
    angle = math.radians(config.rotation_std_degrees) * normal(batch)
    scale = torch.exp(config.log_scale_std * normal(batch))
    translation = config.translation_range * (2 * uniform(batch, 2) - 1)
    return RandomTransform(control, weights, affine, angle, scale, translation)


def folded_fraction(transform: RandomTransform, size: int = 64) -> torch.Tensor:
    """Share of the frame where ``g`` folds (negative Jacobian determinant), per image.

    The Jacobian is taken by central differences (step 1e-3 of the side) at
    the ``size`` x ``size`` pixel centres. Returns (B,) fractions in [0, 1].

    >>> folded_fraction(sample_random_transform(2, TransformConfig(grid_offset_std=0.0, rotation_std_degrees=0.0),
    ...                                         torch.Generator().manual_seed(0))).tolist()   # a similarity: no fold
    [0.0, 0.0]
    """
    batch = transform.control.shape[0]
    grid = coordinate_grid(size, size, transform.control.device, transform.control.dtype)
    step = 1e-3
    points = grid.reshape(1, -1, 2).expand(batch, -1, -1)
    shift_x = torch.tensor([step, 0.0], dtype=grid.dtype, device=grid.device)
    shift_y = torch.tensor([0.0, step], dtype=grid.dtype, device=grid.device)
    d_dx = (apply_transform(points + shift_x, transform) - apply_transform(points - shift_x, transform)) / (2 * step)
    d_dy = (apply_transform(points + shift_y, transform) - apply_transform(points - shift_y, transform)) / (2 * step)
    determinant = d_dx[..., 0] * d_dy[..., 1] - d_dx[..., 1] * d_dy[..., 0]   # (B, size^2)
    return (determinant < 0).float().mean(dim=1)
