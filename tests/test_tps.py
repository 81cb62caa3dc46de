"""Tests of lmdis.tps against scikit-image, a float64 numpy solve and numpy image shifts.

``g`` maps points of the warped image back to the original: I'(p) = I(g(p)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.transform import ThinPlateSplineTransform

from lmdis.data import centre_crop
from lmdis.geometry import landmark_moments
from lmdis.tps import (
    RandomTransform,
    TransformConfig,
    apply_transform,
    evaluate_tps,
    fit_tps,
    sample_random_transform,
    warp_images,
)


def random_problem(seed: int, count: int = 10, queries: int = 25):
    """Control points in [0, 1]^2, targets offset by ~0.1, query points: float64 numpy."""
    rng = np.random.default_rng(seed)
    control = rng.random((count, 2))
    targets = control + 0.1 * rng.normal(size=control.shape)
    points = rng.random((queries, 2))
    return control, targets, points


def torch_tps(control: np.ndarray, targets: np.ndarray, points: np.ndarray, regularisation: float = 0.0):
    control_t = torch.tensor(control)[None]
    weights, affine = fit_tps(control_t, torch.tensor(targets)[None], regularisation)
    return evaluate_tps(torch.tensor(points)[None], control_t, weights, affine)[0].numpy()


def skimage_tps(control: np.ndarray, targets: np.ndarray) -> ThinPlateSplineTransform:
    if hasattr(ThinPlateSplineTransform, "from_estimate"):
        return ThinPlateSplineTransform.from_estimate(control, targets)
    transform = ThinPlateSplineTransform()
    assert transform.estimate(control, targets)
    return transform


def numpy_tps(control: np.ndarray, targets: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bookstein's system solved in float64 numpy with U(r) = r^2 log r (any log base
    gives the same interpolant: the kernel only changes by a factor)."""
    count = len(control)

    def kernel(a, b):
        r = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r > 0, r**2 * np.log(r), 0.0)

    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel(control, control)
    system[:count, count] = system[count, :count] = 1.0
    system[:count, count + 1:] = control
    system[count + 1:, :count] = control.T
    right = np.zeros((count + 3, 2))
    right[:count] = targets
    solution = np.linalg.solve(system, right)
    affine_part = solution[count] + points @ solution[count + 1:]
    return affine_part + kernel(points, control) @ solution[:count]


def translation(shift, batch: int = 1, device=None, dtype=torch.float64) -> RandomTransform:
    """g(p) = p + shift: identity TPS (zero weights, identity affine), no rotation or scaling."""

    def tensor(values):
        return torch.tensor(values, dtype=dtype, device=device)

    return RandomTransform(
        control=tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).expand(batch, -1, -1),
        weights=torch.zeros(batch, 3, 2, dtype=dtype, device=device),
        affine=tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).expand(batch, -1, -1),  # rows: a_0, then x, y
        angle=torch.zeros(batch, dtype=dtype, device=device),
        scale=torch.ones(batch, dtype=dtype, device=device),
        translation=tensor(shift).expand(batch, 2),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tps_matches_skimage(seed):
    control, targets, points = random_problem(seed)
    expected = skimage_tps(control, targets)(points)
    # skimage's kernel is r^2 log(r^2 + 1e-8): agreement to ~1e-7 in normalised units.
    np.testing.assert_allclose(torch_tps(control, targets, points), expected, atol=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
def test_tps_matches_numpy_solve(seed):
    control, targets, points = random_problem(seed, count=7)
    np.testing.assert_allclose(torch_tps(control, targets, points), numpy_tps(control, targets, points),
                               atol=1e-10)


def test_tps_with_zero_offsets_is_identity():
    control, _, points = random_problem(5)
    np.testing.assert_allclose(torch_tps(control, control, points), points, atol=1e-10)


def test_tps_interpolates_control_points_exactly():
    control, targets, _ = random_problem(6)
    np.testing.assert_allclose(torch_tps(control, targets, control), targets, atol=1e-10)


def test_similarity_part_matches_formula():
    rng = np.random.default_rng(7)
    points = rng.random((1, 6, 2))
    angle, scale, shift = 0.3, 1.2, np.array([0.05, -0.1])
    transform = translation(shift.tolist())
    transform.angle = torch.tensor([angle], dtype=torch.float64)
    transform.scale = torch.tensor([scale], dtype=torch.float64)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    expected = scale * (points[0] - 0.5) @ rotation.T + 0.5 + shift
    np.testing.assert_allclose(apply_transform(torch.tensor(points), transform)[0].numpy(), expected, atol=1e-12)


def test_warp_by_whole_pixels_shifts_image(device):
    height, width, right, down = 10, 12, 3, 2
    rng = np.random.default_rng(8)
    images = rng.random((2, 3, height, width))
    transform = translation([right / width, down / height], batch=2, device=device)
    warped = warp_images(torch.tensor(images, device=device), transform).cpu().numpy()
    # I'(v, u) = I(v + down, u + right): the content moves up and left.
    expected = np.roll(images, shift=(-down, -right), axis=(2, 3))
    np.testing.assert_allclose(warped[..., :height - down, :width - right],
                               expected[..., :height - down, :width - right], atol=1e-10)
    # Beyond the edge the border is replicated.
    np.testing.assert_allclose(warped[..., -1, -1], images[..., -1, -1], atol=1e-10)


def test_warp_with_context_pulls_in_real_pixels_not_the_border():
    # Frame 8x8 at the centre of a 14x14 context (margin 3): a shift by 2 frame
    # pixels reads context pixels 2 further on, where the plain warp of the
    # cropped frame replicates its last column.
    frame, margin, right, down = 8, 3, 2, 1
    context = np.random.default_rng(10).random((2, 3, frame + 2 * margin, frame + 2 * margin))
    transform = translation([right / frame, down / frame], batch=2)
    warped = warp_images(torch.tensor(context), transform, size=frame,
                         context_scale=frame / (frame + 2 * margin)).numpy()
    expected = context[..., margin + down:margin + down + frame, margin + right:margin + right + frame]
    np.testing.assert_allclose(warped, expected, atol=1e-10)
    plain = warp_images(torch.tensor(context[..., margin:-margin, margin:-margin].copy()), transform).numpy()
    assert np.abs(plain[..., -1] - expected[..., -1]).max() > 0.1   # replicated border differs from the real pixels


def test_warp_beyond_the_image_equals_warping_the_edge_padded_image():
    # The trainer warps the loaded images straight into the padded frame
    # (context_scale = P / S > 1): the same as warping the replicate-padded image.
    size, padded = 10, 16
    images = torch.tensor(np.random.default_rng(12).random((3, 3, size, size)))
    transform = sample_random_transform(3, TransformConfig(), torch.Generator().manual_seed(3), dtype=torch.float64)
    direct = warp_images(images, transform, size=padded, context_scale=padded / size)
    via_padding = warp_images(torch.nn.functional.pad(images, (3, 3, 3, 3), mode="replicate"), transform)
    np.testing.assert_allclose(direct.numpy(), via_padding.numpy(), atol=1e-10)


def test_identity_warp_with_context_is_the_centre_crop():
    context = np.random.default_rng(11).random((1, 3, 16, 16))
    transform = translation([0.0, 0.0])
    warped = warp_images(torch.tensor(context), transform, size=10, context_scale=10 / 16).numpy()
    np.testing.assert_allclose(warped, context[..., 3:13, 3:13], atol=1e-10)
    np.testing.assert_array_equal(centre_crop(torch.tensor(context), 10).numpy(), context[..., 3:13, 3:13])
    with pytest.raises(ValueError, match="even margin"):
        centre_crop(torch.tensor(context), 9)


def test_warp_by_half_pixel_averages_neighbours():
    height, width = 5, 8
    images = np.random.default_rng(9).random((1, 1, height, width))
    warped = warp_images(torch.tensor(images), translation([0.5 / width, 0.0])).numpy()
    expected = 0.5 * (images[..., :-1] + images[..., 1:])
    np.testing.assert_allclose(warped[..., :-1], expected, atol=1e-10)


def test_sample_random_transform_grid_mode():
    config = TransformConfig(grid_size=4)
    first = sample_random_transform(3, config, torch.Generator().manual_seed(0), dtype=torch.float64)
    again = sample_random_transform(3, config, torch.Generator().manual_seed(0), dtype=torch.float64)
    ticks = np.linspace(0, 1, 4)
    grid = np.stack(np.meshgrid(ticks, ticks, indexing="xy"), axis=-1).reshape(-1, 2)  # (x, y), x fastest
    assert first.control.shape == (3, 16, 2) and first.weights.shape == (3, 16, 2)
    assert first.affine.shape == (3, 3, 2) and first.translation.shape == (3, 2)
    np.testing.assert_allclose(first.control[1].numpy(), grid, atol=1e-12)
    points = torch.rand(3, 20, 2, dtype=torch.float64)
    np.testing.assert_array_equal(apply_transform(points, first).numpy(), apply_transform(points, again).numpy())
    assert not torch.allclose(first.angle[0], first.angle[1])  # one draw per image


def test_sample_random_transform_with_zero_strength_is_identity():
    config = TransformConfig(grid_size=3, grid_offset_std=0.0, landmark_offset_std=0.0, translation_range=0.0,
                             rotation_std_degrees=0.0, log_scale_std=0.0)
    points = torch.rand(2, 9, 2, dtype=torch.float64)
    grid = sample_random_transform(2, config, torch.Generator().manual_seed(1), dtype=torch.float64)
    np.testing.assert_allclose(apply_transform(points, grid).numpy(), points.numpy(), atol=1e-10)
    landmarks = torch.rand(2, 4, 2, dtype=torch.float64)
    moved = sample_random_transform(2, config, torch.Generator().manual_seed(1), landmarks=landmarks,
                                    dtype=torch.float64)
    np.testing.assert_allclose(apply_transform(points, moved).numpy(), points.numpy(), atol=1e-8)


def test_sample_random_transform_with_coincident_landmarks_is_finite():
    landmarks = torch.full((2, 5, 2), 0.5)
    transform = sample_random_transform(2, TransformConfig(), torch.Generator().manual_seed(2), landmarks=landmarks)
    assert transform.control.shape == (2, 9, 2)  # landmarks + four fixed corners
    points = torch.rand(2, 30, 2, generator=torch.Generator().manual_seed(3))
    mapped = apply_transform(points, transform)
    assert torch.isfinite(mapped).all()
    assert (mapped - points).abs().max() < 2.0


def test_evaluate_and_apply_transform_gradcheck_in_points():
    generator = torch.Generator().manual_seed(4)
    transform = sample_random_transform(1, TransformConfig(grid_size=3), generator, dtype=torch.float64)
    points = (0.05 + 0.9 * torch.rand(1, 4, 2, generator=generator, dtype=torch.float64)).requires_grad_()

    def tps(p):
        return evaluate_tps(p, transform.control, transform.weights, transform.affine)

    assert torch.autograd.gradcheck(tps, (points,))
    assert torch.autograd.gradcheck(lambda p: apply_transform(p, transform), (points,))


def test_fit_tps_gradcheck_in_targets():
    control, targets, points = random_problem(10, count=5, queries=3)
    control_t, points_t = torch.tensor(control)[None], torch.tensor(points)[None]

    def through_fit(target):
        weights, affine = fit_tps(control_t, target)
        return evaluate_tps(points_t, control_t, weights, affine)

    assert torch.autograd.gradcheck(through_fit, (torch.tensor(targets)[None].requires_grad_(),))


def test_warp_and_apply_transform_agree_on_a_blob():
    """Eq. (8) end to end: a blob at p in I shows up in I' = I o g at p' with g(p') = p.

    The soft-argmax of the warped blob is biased by the warp's curvature by
    O(sigma^2) (~0.004 here at sigma = 0.02, ~0.012 at 0.04), so the blob is small.
    """
    size, sigma = 64, 0.02
    centre = np.array([0.45, 0.55])
    xs = (np.arange(size) + 0.5) / size
    blob = np.exp(-((xs[None, :] - centre[0]) ** 2 + (xs[:, None] - centre[1]) ** 2) / (2 * sigma**2))
    batch = 4
    images = torch.tensor(np.broadcast_to(blob, (batch, 1, size, size)).copy())
    config = TransformConfig(grid_size=5, grid_offset_std=0.04, translation_range=0.1,
                             rotation_std_degrees=10.0, log_scale_std=math.log(1.1))
    transform = sample_random_transform(batch, config, torch.Generator().manual_seed(5), dtype=torch.float64)
    warped = warp_images(images, transform)
    found, _ = landmark_moments(warped)                  # (B, 1, 2) blob centre in I'
    assert (found - torch.tensor(centre)).abs().max() > 0.02  # the warp did move the blob
    mapped = apply_transform(found, transform)           # back to I
    np.testing.assert_allclose(mapped[:, 0].numpy(), np.broadcast_to(centre, (batch, 2)), atol=0.006)


def _affine_transform(matrix, batch=1):
    """g(p) = A p (no TPS bending, no similarity), as a RandomTransform."""
    control = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64).expand(batch, -1, -1)
    affine = torch.zeros(batch, 3, 2, dtype=torch.float64)
    affine[:, 1:] = torch.tensor(matrix, dtype=torch.float64).T
    zeros = torch.zeros(batch, dtype=torch.float64)
    return RandomTransform(control, torch.zeros(batch, 3, 2, dtype=torch.float64), affine, zeros,
                           torch.ones(batch, dtype=torch.float64), torch.zeros(batch, 2, dtype=torch.float64))


def test_folded_fraction_of_known_maps():
    from lmdis.tps import folded_fraction

    assert float(folded_fraction(_affine_transform([[1.0, 0.0], [0.0, 1.0]]))) == 0.0
    assert float(folded_fraction(_affine_transform([[-1.0, 0.0], [0.0, 1.0]]))) == 1.0   # a mirror
    assert float(folded_fraction(_affine_transform([[0.5, 2.0], [1.0, 0.5]]))) == 1.0    # det = -1.75


def test_folded_fraction_matches_a_numpy_jacobian_of_a_random_spline():
    from lmdis.tps import folded_fraction

    generator = torch.Generator().manual_seed(4)
    transform = sample_random_transform(3, TransformConfig(grid_offset_std=0.1), generator, dtype=torch.float64)
    size = 32
    centres = (np.arange(size) + 0.5) / size
    grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)
    step = 1e-4

    def g(points):
        return apply_transform(torch.tensor(points, dtype=torch.float64)[None].expand(3, -1, -1), transform).numpy()

    dx = (g(grid + [step, 0]) - g(grid - [step, 0])) / (2 * step)
    dy = (g(grid + [0, step]) - g(grid - [0, step])) / (2 * step)
    expected = ((dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]) < 0).mean(axis=1)
    np.testing.assert_allclose(folded_fraction(transform, size).numpy(), expected, atol=2 / size**2)


def test_default_offsets_are_the_authors_and_rarely_fold():
    """0.05 of the side (the authors' 0.1 in [-1, 1] units) folds about 2 % of a
    7x7-grid warp; the same number read in [0, 1] units folds about a fifth."""
    from lmdis.tps import folded_fraction

    assert TransformConfig().grid_offset_std == 0.05 and TransformConfig().landmark_offset_std == 0.025
    generator = torch.Generator().manual_seed(0)
    folded = {std: float(folded_fraction(sample_random_transform(128, TransformConfig(grid_offset_std=std),
                                                                 generator)).mean()) for std in (0.05, 0.1)}
    assert folded[0.05] < 0.04 and folded[0.1] > 0.15
