"""Protocols of Sec. 4.2-4.3, App. C.2 and F.1 against hand numbers and independent numpy computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.data import Protocol
from lmdis.evaluate import (
    Benchmark, Discovered, apply_regressor, attribute_accuracy, class_accuracy, few_shot_curve,
    fit_flip_aware_regressor, fit_regressor, frontal_view, landmark_features, mean_shape_report,
    normalised_errors, point_errors, regression_report, swap_left_right,
)
from lmdis.plotting import regression_figure

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


# --------------------------------------------------------------------------- Sec. 4.3 attributes

def test_attribute_svm_separable_is_perfect_and_random_is_chance():
    rng = np.random.default_rng(4)
    landmarks = rng.random((1200, 5, 2))
    direction = rng.standard_normal(10)
    separable = np.sign((landmarks.reshape(1200, 10) - 0.5) @ direction)
    random = rng.choice([-1, 1], 1200)
    labels = np.stack([separable, random], axis=1).astype(np.int8)
    features = landmark_features(landmarks)
    result = attribute_accuracy(features[:800], labels[:800], features[800:], labels[800:], ["shape", "noise"])
    assert result["accuracy_percent"]["shape"] > 97
    assert 40 < result["accuracy_percent"]["noise"] < 60
    assert result["mean_percent"] == pytest.approx(np.mean(list(result["accuracy_percent"].values())))
    assert result["C"]["shape"] in (0.001, 0.01, 0.1, 1.0, 10.0) and result["features"] == 10
    zero_one = attribute_accuracy(features[:800], (labels[:800] + 1) // 2, features[800:], (labels[800:] + 1) // 2,
                                  ["shape", "noise"])
    assert zero_one["accuracy_percent"] == result["accuracy_percent"]
    with pytest.raises(ValueError, match=r"\{-1, 1\}"):
        attribute_accuracy(features[:800], labels[:800] + 2, features[800:], labels[800:])


def test_attribute_from_extra_features_only():
    rng = np.random.default_rng(5)
    landmarks, extra = rng.random((600, 3, 2)), rng.standard_normal((600, 4))
    labels = np.where(extra[:, 2] > 0, 1, -1)
    alone = attribute_accuracy(landmark_features(landmarks[:400]), labels[:400], landmark_features(landmarks[400:]),
                               labels[400:], C=1.0)
    combined = attribute_accuracy(landmark_features(landmarks[:400], extra[:400]), labels[:400],
                                  landmark_features(landmarks[400:], extra[400:]), labels[400:], C=1.0)
    assert combined["features"] == 10 and combined["mean_percent"] > 95 > 70 > alone["mean_percent"]


def test_multi_class_svm_on_separated_blobs():
    rng = np.random.default_rng(6)
    labels = np.repeat([3, 7, 9], 100)
    centres = {3: [0.2, 0.2], 7: [0.8, 0.2], 9: [0.5, 0.8]}
    landmarks = np.array([centres[label] for label in labels])[:, None] + 0.05 * rng.standard_normal((300, 2, 2))
    order = rng.permutation(300)
    train, test = order[:200], order[200:]
    result = class_accuracy(landmark_features(landmarks[train]), labels[train], landmark_features(landmarks[test]),
                            labels[test])
    assert result["accuracy_percent"] > 98 and result["classes"] == [3, 7, 9]
    assert np.sum(result["confusion"]) == 100 and set(result["per_class_percent"]) == {"3", "7", "9"}


# --------------------------------------------------------------------------- Benchmark on fake data

class PointsAsImages(torch.utils.data.Dataset):
    """Items whose "image" is the discovered landmarks themselves, (1, K, 2); annotations and attributes."""

    def __init__(self, discovered, annotated, attributes=None):
        self.discovered = torch.as_tensor(discovered, dtype=torch.float32)[:, None]
        self.annotated = np.asarray(annotated, np.float32)
        if attributes is not None:
            self.attributes = lambda: (["Smiling", "Male"], attributes)

    def __len__(self):
        return len(self.annotated)

    def __getitem__(self, index):
        return {"image": self.discovered[index], "index": index, "landmarks": torch.from_numpy(self.annotated[index])}

    def annotated_landmarks(self):
        return self.annotated.copy()


class ReadPoints(torch.nn.Module):
    """A stand-in landmark detector: returns the points its "images" carry."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def detect(self, images):
        return images[:, 0]


def cat_like(count: int, seed: int):
    """9 annotated points of which 7 are evaluated, eyes 0 and 1; discovered = noisy linear map of them."""
    rng = np.random.default_rng(seed)
    annotated = 0.5 + 0.15 * rng.standard_normal((count, 9, 2))
    annotated[:, 0] += [-0.15, 0]
    annotated[:, 1] += [0.15, 0]
    mapping = rng.standard_normal((18, 20))
    discovered = ((annotated - 0.5).reshape(count, 18) @ mapping).reshape(count, 10, 2) / 10 + 0.5
    return discovered + 0.002 * rng.standard_normal(discovered.shape), annotated


CAT_LIKE = Protocol(dataset="fake-cat", point_names=tuple(f"p{i}" for i in range(9)), fit_split="train",
                    test_split="test", normaliser="points", reference_points=(0, 1),
                    evaluated_points=(0, 1, 2, 3, 4, 5, 6))


def test_benchmark_matches_a_numpy_computation_of_the_protocol():
    discovered, annotated = cat_like(160, seed=8)
    benchmark = Benchmark.from_datasets(PointsAsImages(discovered[:100], annotated[:100]),
                                        PointsAsImages(discovered[100:], annotated[100:]), CAT_LIKE)
    report = benchmark.report(ReadPoints())
    # independent: explicit normal equations on the 7 evaluated points, errors point by point
    inputs = (discovered[:100].astype(np.float32).astype(np.float64) - 0.5).reshape(100, 20)
    targets = (annotated[:100, :7].astype(np.float32).astype(np.float64) - 0.5).reshape(100, 14)
    weights = np.linalg.solve(inputs.T @ inputs, inputs.T @ targets)
    test_inputs = (discovered[100:].astype(np.float32).astype(np.float64) - 0.5).reshape(60, 20)
    predicted = (test_inputs @ weights).reshape(60, 7, 2) + 0.5
    truth = annotated[100:].astype(np.float32).astype(np.float64)
    expected = []
    for image in range(60):
        distances = [np.hypot(*(predicted[image, p] - truth[image, p])) for p in range(7)]
        expected.append(np.mean(distances) / np.hypot(*(truth[image, 0] - truth[image, 1])))
    assert report["nme_percent"] == pytest.approx(100 * np.mean(expected), rel=1e-6)
    assert (report["n_train"], report["n_test"], report["K"], report["M"]) == (100, 60, 10, 7)
    assert report["evaluated_points"] == [f"p{i}" for i in range(7)]
    assert report["reference_points"] == ["p0", "p1"] and report["normaliser"] == "points"
    mean_shape = annotated[:100, :7].astype(np.float32).astype(np.float64).mean(axis=0)  # (7, 2)
    floor = np.mean(np.linalg.norm(mean_shape - truth[:, :7], axis=-1).mean(axis=1)
                    / np.linalg.norm(truth[:, 0] - truth[:, 1], axis=-1))
    assert benchmark.mean_shape_report()["nme_percent"] == pytest.approx(100 * floor, rel=1e-5)


def test_benchmark_flip_aware_protocol_and_attributes(tmp_path):
    discovered, annotated, swapped, _ = ambiguous_bodies(200, seed=9)
    varied = discovered[:, 0, 0] > np.median(discovered[:, 0, 0])  # a linear function of the features
    attributes = np.stack([np.where(swapped, 1, -1), np.where(varied, 1, -1)], 1).astype(np.int8)
    protocol = Protocol(dataset="fake-body", point_names=tuple("abcdef"), fit_split="train", test_split="test",
                        normaliser="image", reference_points=None, flip_pairs=PAIRS)
    benchmark = Benchmark.from_datasets(PointsAsImages(discovered[:150], annotated[:150], attributes[:150]),
                                        PointsAsImages(discovered[150:], annotated[150:], attributes[150:]), protocol)
    found = benchmark.discover(ReadPoints())
    report = benchmark.report(ReadPoints(), discovered=found)
    assert report["flip_aware"] and report["flip_converged"] and report["nme_percent"] < 1e-3
    assert report["reference_points"] is None
    summary = benchmark.attributes(found, names=("Male",), C=1.0)
    assert summary["names"] == ["Male"] and summary["accuracy_percent"]["Male"] > 90
    plain = Benchmark.from_datasets(PointsAsImages(discovered[:150], annotated[:150]),
                                    PointsAsImages(discovered[150:], annotated[150:]), protocol)
    with pytest.raises(ValueError, match="no attribute labels"):
        plain.attributes(found)
    with pytest.raises(ValueError, match="not among"):
        benchmark.attributes(found, names=("Bald",))


def test_benchmark_rejects_mismatched_annotations_and_unannotated_datasets():
    discovered, annotated = cat_like(20, seed=10)
    with pytest.raises(ValueError, match=r"expected \(n, 9, 2\)"):
        Benchmark.from_datasets(PointsAsImages(discovered, annotated[:, :5]), PointsAsImages(discovered, annotated),
                                CAT_LIKE)
    with pytest.raises(ValueError, match="no annotated landmarks"):
        Benchmark("mnist-embedded")


# --------------------------------------------------------------------------- Figure 9

def test_regression_figure_writes_a_png_of_the_documented_size(tmp_path):
    rng = np.random.default_rng(11)
    images = torch.rand(5, 3, 24, 24)
    annotated = rng.random((5, 4, 2))
    predicted = annotated + 0.02 * rng.standard_normal((5, 4, 2))
    errors = np.linalg.norm(predicted - annotated, axis=-1) / 0.3
    path = tmp_path / "regression.png"
    figure = regression_figure(images, rng.random((5, 6, 2)), annotated, predicted, errors, columns=4, path=path)
    assert figure is not None
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (round(2.2 * 4.5 * 100), round(2.2 * 2 * 100))
    with pytest.raises(ValueError, match="one entry per image"):
        regression_figure(images[:4], rng.random((5, 6, 2)), annotated, predicted, errors)


def test_benchmark_figure_uses_the_scored_annotations(tmp_path):
    discovered, annotated = cat_like(40, seed=12)
    benchmark = Benchmark.from_datasets(PointsAsImages(discovered[:30], annotated[:30]),
                                        PointsAsImages(discovered[30:], annotated[30:]), CAT_LIKE)
    found = Discovered(discovered[:30], discovered[30:])
    benchmark.figure(found, tmp_path / "figure.png", count=3, columns=3)
    with Image.open(tmp_path / "figure.png") as picture:
        assert picture.size == (round(2.2 * 3.5 * 100), round(2.2 * 100))
