"""lmdis.evaluate.regression: the protocols of Sec. 4.2, App. C.2 and F.1 against hand numbers and numpy."""
from __future__ import annotations

import numpy as np
import pytest

from lmdis.evaluate import (
    apply_regressor, few_shot_curve, fit_flip_aware_regressor, fit_regressor, frontal_view, mean_shape_report,
    normalised_errors, point_errors, regression_report, swap_left_right,
)

PAIRS = ((0, 1), (2, 3), (4, 5))  # (left, right) of a 6-point "body"


# --------------------------------------------------------------------------- errors by hand

def test_evaluated_subset_and_reference_distance_by_hand():
    annotated = np.array([[[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])  # reference (0, 1): length 2
    predicted = np.array([[[0.3, 0.4], [1.0, 1.6]]])  # evaluates points 0 and 2: errors 0.5 and 0.6
    errors = point_errors(predicted, annotated, reference_points=(0, 1), evaluated_points=(0, 2))
    np.testing.assert_allclose(errors, [[0.25, 0.3]])
    np.testing.assert_allclose(normalised_errors(predicted, annotated, (0, 1), evaluated_points=(0, 2)), [0.275])
    with pytest.raises(ValueError, match="do not match the evaluated"):
        point_errors(predicted, annotated)  # 2 predicted points vs 4 annotated without a subset


def test_image_normaliser_is_the_image_side():
    annotated = np.array([[[0.5, 0.5], [0.5, 0.5]],  # coincident points: no reference distance needed
                          [[0.2, 0.2], [0.8, 0.8]]])
    predicted = annotated + np.array([[[0.1, 0.0], [0.0, 0.3]], [[0.0, 0.0], [0.03, 0.04]]])
    # errors in fractions of the side: (0.1 + 0.3) / 2 and (0 + 0.05) / 2
    np.testing.assert_allclose(normalised_errors(predicted, annotated, None, normaliser="image"), [0.2, 0.025])
    with pytest.raises(ValueError, match="normaliser"):
        normalised_errors(predicted, annotated, normaliser="diagonal")


def test_swap_and_frontal_heuristic_by_hand():
    points = np.arange(12.0).reshape(1, 6, 2)
    swapped = swap_left_right(points, PAIRS)
    np.testing.assert_array_equal(swapped[0, :, 0], [2, 0, 6, 4, 10, 8])
    np.testing.assert_array_equal(swap_left_right(swapped, PAIRS), points)
    # left x > right x for 3/3 pairs: frontal; for 2/3: not MORE than 2/3, so not frontal
    xs = np.array([[0.7, 0.3, 0.7, 0.3, 0.7, 0.3],
                   [0.7, 0.3, 0.7, 0.3, 0.3, 0.7],
                   [0.3, 0.7, 0.3, 0.7, 0.3, 0.7]])
    bodies = np.stack([xs, np.full_like(xs, 0.5)], axis=-1)
    np.testing.assert_array_equal(frontal_view(bodies, PAIRS), [True, False, False])


def test_flip_aware_error_takes_the_better_assignment():
    annotated = np.array([[[0.6, 0.5], [0.4, 0.5], [0.5, 0.9]]])
    predicted = np.array([[[0.4, 0.5], [0.6, 0.5], [0.5, 0.8]]])  # left and right exchanged, third off by 0.1
    plain = normalised_errors(predicted, annotated, normaliser="image")
    aware = normalised_errors(predicted, annotated, normaliser="image", flip_pairs=((0, 1),))
    np.testing.assert_allclose(plain, [(0.2 + 0.2 + 0.1) / 3])
    np.testing.assert_allclose(aware, [0.1 / 3])


def test_flip_aware_mean_shape_floor_aligns_left_and_right():
    front = np.array([[[0.7, 0.2], [0.3, 0.2], [0.7, 0.5], [0.3, 0.5], [0.6, 0.9], [0.4, 0.9]]])
    train = np.concatenate([front, swap_left_right(front, PAIRS)])  # the same body seen from the back
    aware = mean_shape_report(train, front, None, "image", flip_pairs=PAIRS)
    assert aware["nme_percent"] == pytest.approx(0, abs=1e-12)
    # a raw mean collapses every pair to its midpoint: errors 0.2, 0.2, 0.2, 0.2, 0.1, 0.1
    assert mean_shape_report(train, front, None, "image")["nme_percent"] == pytest.approx(100 / 6)


# --------------------------------------------------------------------------- App. C.2 iterative fit

def ambiguous_bodies(count: int, seed: int):
    """Discovered = a linear map of the view-canonical body; annotations swapped left/right at random.

    Returns (discovered (n, 8, 2), annotated (n, 6, 2), swapped (n,), the map (12, 16)).
    """
    rng = np.random.default_rng(seed)
    template = np.array([[0.65, 0.2], [0.35, 0.2], [0.7, 0.5], [0.3, 0.5], [0.6, 0.85], [0.4, 0.85]])
    canonical = template + 0.03 * rng.standard_normal((count, 6, 2))
    crossed = rng.random(count) < 0.3  # legs crossed: the heuristic of step 1 misses these
    canonical[crossed, 4, 0], canonical[crossed, 5, 0] = canonical[crossed, 5, 0], canonical[crossed, 4, 0]
    mapping = 0.5 * rng.standard_normal((12, 16))
    discovered = ((canonical - 0.5).reshape(count, 12) @ mapping).reshape(count, 8, 2) + 0.5
    swapped = rng.random(count) < 0.5
    annotated = np.where(swapped[:, None, None], swap_left_right(canonical, PAIRS), canonical)
    return discovered, annotated, swapped, mapping


def test_flip_aware_fit_recovers_the_map_where_the_plain_fit_cannot():
    discovered, annotated, swapped, mapping = ambiguous_bodies(300, seed=0)
    train, test = slice(0, 200), slice(200, 300)
    options = {"reference_points": None, "normaliser": "image"}

    fit = fit_flip_aware_regressor(discovered[train], annotated[train], PAIRS)
    assert fit.converged and fit.frontal_start
    np.testing.assert_array_equal(fit.flipped, swapped[train])
    # the data span 12 of 16 input dimensions: least squares' minimum-norm answer is pinv(map)
    np.testing.assert_allclose(fit.weights, np.linalg.pinv(mapping), atol=1e-8)

    aware = regression_report(discovered[train], annotated[train], discovered[test], annotated[test],
                              flip_pairs=PAIRS, **options)
    plain = regression_report(discovered[train], annotated[train], discovered[test], annotated[test], **options)
    assert aware["nme_percent"] < 1e-6
    assert aware["test_flipped_fraction"] == pytest.approx(swapped[test].mean())
    assert plain["nme_percent"] > 5  # left/right are ~30 % of the side apart


def test_flip_aware_fit_starts_from_all_images_without_a_frontal_one():
    discovered, annotated, swapped, _ = ambiguous_bodies(60, seed=1)
    back = swapped & ~frontal_view(annotated, PAIRS)
    fit = fit_flip_aware_regressor(discovered[back], annotated[back], PAIRS)
    assert not fit.frontal_start and fit.converged
    predicted = apply_regressor(fit.weights, discovered)
    assert normalised_errors(predicted, annotated, None, "image", flip_pairs=PAIRS).max() < 1e-6


# --------------------------------------------------------------------------- App. F.1 few-shot

def noisy_linear(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    discovered = 0.5 + 0.1 * rng.standard_normal((count, 5, 2))
    mapping = rng.standard_normal((10, 6))
    annotated = ((discovered - 0.5).reshape(count, 10) @ mapping).reshape(count, 3, 2) + 0.5
    return discovered, annotated + 0.005 * rng.standard_normal(annotated.shape)


BY_SIDE = {"reference_points": None, "normaliser": "image"}


def test_few_shot_error_falls_with_more_labels_and_all_is_the_full_fit():
    discovered, annotated = noisy_linear(800)
    train, test = slice(0, 600), slice(600, 800)
    curve = few_shot_curve(discovered[train], annotated[train], discovered[test], annotated[test],
                           sizes=(1, 5, 20, 100, 500, 1000), repeats=5, seed=3, **BY_SIDE)
    assert [point["n"] for point in curve] == [1, 5, 20, 100, 500, 600]  # 1000 > available is dropped
    means = [point["mean"] for point in curve]
    assert all(earlier > later for earlier, later in zip(means, means[1:]))
    assert curve[-1]["repeats"] == 1 and curve[-1]["std"] == 0
    full = regression_report(discovered[train], annotated[train], discovered[test], annotated[test], **BY_SIDE)
    assert curve[-1]["mean"] == pytest.approx(full["nme_percent"], rel=1e-12)
    for point in curve[:-1]:
        assert point["repeats"] == 5 and point["min"] <= point["mean"] <= point["max"] and point["std"] > 0


def test_few_shot_draws_are_reproducible_from_the_seed():
    discovered, annotated = noisy_linear(300)
    args = (discovered[:200], annotated[:200], discovered[200:], annotated[200:])
    first = few_shot_curve(*args, sizes=(5, 20), repeats=4, seed=7, **BY_SIDE)
    assert first == few_shot_curve(*args, sizes=(20, 5), repeats=4, seed=7, **BY_SIDE)  # whatever the other sizes
    assert first != few_shot_curve(*args, sizes=(5, 20), repeats=4, seed=8, **BY_SIDE)
    # the 5-image draws, rebuilt by hand from the documented generator
    generator = np.random.default_rng([7, 5])
    by_hand, floors = [], []
    for _ in range(4):
        chosen = np.sort(generator.choice(200, 5, replace=False))
        inputs = (discovered[chosen] - 0.5).reshape(5, 10)
        weights = np.linalg.pinv(inputs) @ (annotated[chosen] - 0.5).reshape(5, 6)  # minimum-norm solution
        predicted = ((discovered[200:] - 0.5).reshape(100, 10) @ weights).reshape(100, 3, 2) + 0.5
        errors = np.linalg.norm(predicted - annotated[200:], axis=-1).mean(axis=1)
        by_hand.append(100 * np.mean(errors))  # in % of the image side
        mean_shape = annotated[chosen].mean(axis=0)  # the floor on the same draw
        floors.append(100 * np.linalg.norm(mean_shape - annotated[200:], axis=-1).mean())
    assert first[0]["mean"] == pytest.approx(np.mean(by_hand), rel=1e-8)
    assert first[0]["max"] == pytest.approx(np.max(by_hand), rel=1e-8)
    assert first[0]["mean_shape_mean"] == pytest.approx(np.mean(floors), rel=1e-8)
    assert first[0]["mean_shape_std"] == pytest.approx(np.std(floors), rel=1e-8)


def test_underdetermined_fit_is_the_minimum_norm_solution():
    rng = np.random.default_rng(2)
    discovered, annotated = rng.random((3, 4, 2)), rng.random((3, 2, 2))
    inputs = (discovered - 0.5).reshape(3, 8)
    expected = np.linalg.pinv(inputs) @ (annotated - 0.5).reshape(3, 4)
    np.testing.assert_allclose(fit_regressor(discovered, annotated), expected, atol=1e-10)


# --------------------------------------------------------------------------- against numpy, by hand

def test_regressor_is_bias_free_least_squares():
    rng = np.random.default_rng(0)
    discovered = rng.random((50, 4, 2))
    annotated = rng.random((50, 3, 2))
    weights = fit_regressor(discovered, annotated)
    inputs = (discovered - 0.5).reshape(50, -1)
    expected, *_ = np.linalg.lstsq(inputs, (annotated - 0.5).reshape(50, -1), rcond=None)
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    np.testing.assert_allclose(apply_regressor(weights, discovered), (inputs @ expected).reshape(50, 3, 2) + 0.5)


def test_linearly_related_landmarks_are_recovered_exactly():
    rng = np.random.default_rng(1)
    annotated = 0.5 + 0.2 * rng.standard_normal((40, 5, 2))
    mixing = rng.standard_normal((10, 20))  # 5 points -> 10 discovered landmarks, x and y mixed
    discovered = ((annotated - 0.5).reshape(40, 10) @ mixing).reshape(40, 10, 2) + 0.5
    report = regression_report(discovered[:30], annotated[:30], discovered[30:], annotated[30:])
    assert report["nme_percent"] < 1e-6
    assert report["n_test"] == 10 and report["K"] == 10


def test_normalised_error_by_hand():
    annotated = np.array([[[0.0, 0.0], [1.0, 0.0], [0.5, 0.5]]])
    predicted = annotated + np.array([[[0.1, 0.0], [0.0, 0.0], [0.0, 0.2]]])
    # mean point error (0.1 + 0 + 0.2) / 3 = 0.1, inter-ocular distance 1
    np.testing.assert_allclose(normalised_errors(predicted, annotated), [0.1])
    with pytest.raises(ValueError, match="coincident"):
        normalised_errors(predicted, np.zeros((1, 3, 2)))


def test_mean_shape_floor_by_hand():
    train = np.array([[[0.2, 0.5], [0.8, 0.5]], [[0.4, 0.5], [0.6, 0.5]]])  # mean: (0.3,.5),(0.7,.5)
    test = np.array([[[0.3, 0.5], [0.7, 0.5]]])
    assert mean_shape_report(train, test)["nme_percent"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- the case with a known answer

def test_synthetic_case_without_noise_is_recovered_exactly():
    from lmdis.evaluate import synthetic_case

    case = synthetic_case(n_fit=300, n_test=200, noise=0.0)
    weights, *_ = np.linalg.lstsq((case.fit_discovered - 0.5).reshape(300, -1),
                                  (case.fit_annotated - 0.5).reshape(300, -1), rcond=None)
    predicted = 0.5 + ((case.test_discovered - 0.5).reshape(200, -1) @ weights).reshape(200, 5, 2)
    np.testing.assert_allclose(predicted, case.test_annotated, atol=1e-10)
    assert regression_report(case.fit_discovered, case.fit_annotated, case.test_discovered,
                             case.test_annotated)["nme_percent"] < 1e-8


@pytest.mark.parametrize("noise", [0.01, 0.02])
def test_synthetic_case_error_is_the_rayleigh_mean_of_its_noise(noise):
    from lmdis.evaluate import synthetic_case

    case = synthetic_case(noise=noise, n_test=4000)
    # The sample's inverse-map error against the expectation noise * sqrt(pi / 2).
    assert case.expected_nme_percent == pytest.approx(100 * noise * 1.2533141, rel=1e-6)
    assert case.inverse_map_nme_percent == pytest.approx(case.expected_nme_percent, rel=0.03)
    # The fitted map does as well as the exact inverse, or a little better (shrinkage).
    measured = regression_report(case.fit_discovered, case.fit_annotated, case.test_discovered,
                                 case.test_annotated)["nme_percent"]
    assert 0.9 * case.inverse_map_nme_percent < measured <= case.inverse_map_nme_percent * 1.01
    floor = mean_shape_report(case.fit_annotated, case.test_annotated)["nme_percent"]
    assert floor > 5 * measured


def test_synthetic_case_refuses_fewer_landmarks_than_points():
    from lmdis.evaluate import synthetic_case

    with pytest.raises(ValueError, match="num_landmarks must be >= 5"):
        synthetic_case(num_landmarks=4)
