"""The regression protocol of Sec. 4.2, App. C.2 and F.1: discovered landmarks to annotated ones, in numpy.

A linear map WITHOUT bias, mixing x and y, is fitted by least squares from
the 2K discovered coordinates to the 2M evaluated annotated ones on a
labelled training split and applied to the test split. Both sides are
centred on the image centre first (package convention minus 0.5), so "no
bias" means no free offset, as in the authors' protocol. With fewer images
than unknowns (few-shot fits, App. F.1) the system is underdetermined and
the minimum-norm solution is taken.

Error of an image = mean over the M evaluated points of the Euclidean error,
divided by a normaliser: the distance between two annotated reference points
(inter-ocular for faces, bi-wheel for cars) or the image side (Human3.6M,
Table 4: "% regarding the edge length of the image"; coordinates are already
fractions of the side). Reported in %, averaged over test images.

Left/right ambiguity (App. C.2, Human3.6M). A front and a back view look
alike, so the discovered landmarks cannot tell the subject's left from right.
The test error of an image is the smaller of the errors against its
annotation and against the left/right-swapped annotation (footnote 6: swap
the coordinates of the two points of each pair, whole body at once), and the
regressor is trained iteratively: fit on the frontal views, then choose per
training image the assignment that fits better, refit on all, repeat until
the choice no longer changes.

Few-shot curve (App. F.1, Figure 38): the test error as a function of the
number of labelled training images the regressor is fitted on, over repeated
random draws.

Shapes: discovered landmarks (n, K, 2), annotated (n, N, 2), evaluated and
predicted (n, M, 2), all in the normalised (x, y) image frame of
:mod:`lmdis.geometry`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.linear_model import LinearRegression

__all__ = [
    "FEW_SHOT_SIZES", "FRONTAL_FRACTION", "fit_regressor", "apply_regressor", "select_points", "reference_lengths",
    "swap_left_right", "flip_choice", "assigned_annotations", "point_errors", "normalised_errors",
    "protocol_options", "frontal_view", "RegressorFit", "fit_flip_aware_regressor", "fit_protocol_regressor",
    "regression_report", "json_ready", "mean_shape_report", "few_shot_curve", "FIVE_POINT_TEMPLATE",
    "SyntheticCase", "synthetic_case",
]

FEW_SHOT_SIZES = (1, 5, 10, 50, 100, 200, 500)  # plus "all", App. F.1
FRONTAL_FRACTION = 2 / 3  # App. C.2 step 1: "more than 2/3 of the left-hand side ... landmarks"


# --------------------------------------------------------------------------- the linear map

def fit_regressor(discovered: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """Bias-free least squares from (n, K, 2) discovered to (n, M, 2) annotated landmarks.

    With n < 2K images the system is underdetermined; the minimum-norm
    solution is returned (LAPACK ``gelsd``, as ``np.linalg.lstsq``).

    Returns:
        W, (2K, 2M): ``annotated - 0.5 ~= (discovered - 0.5).reshape(n, 2K) @ W``.
    """
    discovered, annotated = np.asarray(discovered, np.float64), np.asarray(annotated, np.float64)
    if len(discovered) != len(annotated):
        raise ValueError(f"{len(discovered)} discovered vs {len(annotated)} annotated landmark sets")
    if len(discovered) == 0:
        raise ValueError("cannot fit a regressor on zero images")
    inputs = (discovered - 0.5).reshape(len(discovered), -1)  # (n, 2K)
    targets = (annotated - 0.5).reshape(len(annotated), -1)  # (n, 2M)
    regression = LinearRegression(fit_intercept=False).fit(inputs, targets)
    return regression.coef_.T


def apply_regressor(weights: np.ndarray, discovered: np.ndarray) -> np.ndarray:
    """(n, K, 2) discovered -> (n, M, 2) predicted annotated landmarks."""
    discovered = np.asarray(discovered, np.float64)
    if discovered.ndim != 3 or 2 * discovered.shape[1] != weights.shape[0]:
        raise ValueError(f"discovered landmarks {discovered.shape} do not fit a regressor for "
                         f"{weights.shape[0] // 2} landmarks (expected (n, {weights.shape[0] // 2}, 2))")
    predicted = (discovered - 0.5).reshape(len(discovered), -1) @ weights  # (n, 2M)
    return predicted.reshape(len(discovered), -1, 2) + 0.5


# --------------------------------------------------------------------------- errors

def select_points(annotated: np.ndarray, evaluated_points=None) -> np.ndarray:
    """(n, N, 2) -> (n, M, 2): the evaluated points (cat heads: 7 of 9); ``None`` keeps all."""
    annotated = np.asarray(annotated, np.float64)
    return annotated if evaluated_points is None else annotated[:, list(evaluated_points)]


def reference_lengths(annotated: np.ndarray, normaliser: str = "points", reference_points=(0, 1)) -> np.ndarray:
    """What each image's error is divided by, (n,).

    Args:
        annotated: (n, N, 2) all annotated points of each image.
        normaliser: ``"points"``: distance between the two ``reference_points``
            (inter-ocular, bi-wheel); ``"image"``: the image side, which is 1
            in normalised coordinates.
    """
    annotated = np.asarray(annotated, np.float64)
    if normaliser == "image":
        return np.ones(len(annotated))
    if normaliser != "points":
        raise ValueError(f"normaliser must be 'points' or 'image', got {normaliser!r}")
    first, second = reference_points
    lengths = np.linalg.norm(annotated[:, first] - annotated[:, second], axis=-1)
    if np.any(lengths <= 0):
        raise ValueError(f"{int(np.sum(lengths <= 0))} images have coincident reference points {reference_points}")
    return lengths


def swap_left_right(annotated: np.ndarray, flip_pairs) -> np.ndarray:
    """App. C.2, footnote 6: exchange the two points of every (left, right) pair, (..., N, 2)."""
    swapped = np.array(annotated, np.float64, copy=True)
    for left, right in flip_pairs:
        swapped[..., [left, right], :] = swapped[..., [right, left], :]
    return swapped


def _distances(predicted, annotated, evaluated_points) -> np.ndarray:
    """Euclidean distance of every predicted point to its evaluated annotation, (n, M)."""
    predicted = np.asarray(predicted, np.float64)
    targets = select_points(annotated, evaluated_points)
    if predicted.shape != targets.shape:
        raise ValueError(f"predicted points {predicted.shape} do not match the evaluated annotated points "
                         f"{targets.shape}")
    return np.linalg.norm(predicted - targets, axis=-1)


def flip_choice(predicted: np.ndarray, annotated: np.ndarray, flip_pairs, evaluated_points=None) -> np.ndarray:
    """App. C.2: per image, does the left/right-swapped annotation fit ``predicted`` better? (n,) bool.

    Ties keep the annotation as given. With no ``flip_pairs`` nothing is swapped.
    """
    plain = _distances(predicted, annotated, evaluated_points).mean(axis=1)
    if not flip_pairs:
        return np.zeros(len(plain), bool)
    swapped = _distances(predicted, swap_left_right(annotated, flip_pairs), evaluated_points).mean(axis=1)
    return swapped < plain


def assigned_annotations(annotated: np.ndarray, flipped: np.ndarray, flip_pairs) -> np.ndarray:
    """(n, N, 2) annotations with those of the ``flipped`` images left/right-swapped."""
    annotated = np.asarray(annotated, np.float64)
    if not flip_pairs:
        return annotated
    return np.where(np.asarray(flipped)[:, None, None], swap_left_right(annotated, flip_pairs), annotated)


def point_errors(predicted: np.ndarray, annotated: np.ndarray, reference_points=(0, 1), normaliser: str = "points",
                 evaluated_points=None, flip_pairs=()) -> np.ndarray:
    """Per image and evaluated point: Euclidean error / the image's normaliser, (n, M).

    Args:
        predicted: (n, M, 2) predicted evaluated points.
        annotated: (n, N, 2) ALL annotated points (the reference points need
            not be evaluated ones).
        reference_points, normaliser: see :func:`reference_lengths`; the
            length comes from the annotation as given (swapping labels does
            not change an image's scale).
        evaluated_points: indices of the M scored points (``None``: all N).
        flip_pairs: (left, right) index pairs; when given, each image is
            scored against the better of its annotation and the swapped one
            (App. C.2).
    """
    lengths = reference_lengths(annotated, normaliser, reference_points)  # (n,)
    targets = assigned_annotations(annotated, flip_choice(predicted, annotated, flip_pairs, evaluated_points),
                                   flip_pairs)
    return _distances(predicted, targets, evaluated_points) / lengths[:, None]


def normalised_errors(predicted: np.ndarray, annotated: np.ndarray, reference_points=(0, 1),
                      normaliser: str = "points", evaluated_points=None, flip_pairs=()) -> np.ndarray:
    """Per image: mean evaluated-point error / normaliser, (n,). Arguments as :func:`point_errors`."""
    return point_errors(predicted, annotated, reference_points, normaliser, evaluated_points, flip_pairs).mean(axis=1)


def protocol_options(protocol) -> dict:
    """The scoring keywords of :func:`point_errors` & co. from a :class:`lmdis.data.Protocol`."""
    return {"reference_points": protocol.reference_points, "normaliser": protocol.normaliser,
            "evaluated_points": protocol.evaluated_points, "flip_pairs": protocol.flip_pairs}


# --------------------------------------------------------------------------- flip-aware fit (App. C.2)

def frontal_view(annotated: np.ndarray, flip_pairs, fraction: float = FRONTAL_FRACTION) -> np.ndarray:
    """App. C.2 step 1: is each body seen from the front? (n,) bool.

    Frontal when MORE than ``fraction`` of the pairs have the subject's left
    point to the right of (larger x than) the right point, as the mirror
    image of a person facing the camera does. Pairs are (left, right).
    """
    annotated = np.asarray(annotated, np.float64)
    if not flip_pairs:
        raise ValueError("frontal_view needs at least one (left, right) flip pair")
    lefts = [left for left, _ in flip_pairs]
    rights = [right for _, right in flip_pairs]
    left_is_right_of_right = annotated[:, lefts, 0] > annotated[:, rights, 0]  # (n, pairs)
    return left_is_right_of_right.mean(axis=1) > fraction


class RegressorFit(NamedTuple):
    """A fitted regressor, with how the flip-aware iteration (App. C.2) went."""

    weights: np.ndarray  # (2K, 2M)
    flipped: np.ndarray  # (n,) bool: training annotations swapped in the final fit
    iterations: int  # refits after the initial frontal-only fit
    converged: bool  # the last assignment equals the one before it
    frontal_start: bool  # False: no frontal view among the images, the first fit used them all


def fit_flip_aware_regressor(discovered: np.ndarray, annotated: np.ndarray, flip_pairs, evaluated_points=None,
                             max_iterations: int = 50) -> RegressorFit:
    """The iterative regressor training of App. C.2.

    1. Heuristic orientation (:func:`frontal_view`).
    2. Fit on the frontal views only (all images when none is frontal, e.g.
       a one-image few-shot draw of a back view).
    3. Per training image, keep or swap its annotation, whichever the
       current regressor fits better (the test criterion); refit on all.
    4. Repeat 3 until the choice no longer changes (then the refit is the
       same model) or ``max_iterations`` refits.

    Args:
        discovered: (n, K, 2); annotated: (n, N, 2) all annotated points.
        flip_pairs: (left, right) index pairs into the N points.
        evaluated_points: the M regressed points (``None``: all).
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    annotated = np.asarray(annotated, np.float64)
    frontal = frontal_view(annotated, flip_pairs)
    start = frontal if frontal.any() else np.ones(len(annotated), bool)
    weights = fit_regressor(np.asarray(discovered)[start], select_points(annotated[start], evaluated_points))
    flipped, converged, iterations = None, False, 0
    while iterations < max_iterations:
        choice = flip_choice(apply_regressor(weights, discovered), annotated, flip_pairs, evaluated_points)
        if flipped is not None and np.array_equal(choice, flipped):
            converged = True
            break
        flipped = choice
        weights = fit_regressor(discovered, select_points(assigned_annotations(annotated, flipped, flip_pairs),
                                                          evaluated_points))
        iterations += 1
    return RegressorFit(weights, flipped, iterations, converged, bool(frontal.any()))


def fit_protocol_regressor(discovered: np.ndarray, annotated: np.ndarray, evaluated_points=None, flip_pairs=(),
                           max_iterations: int = 50) -> RegressorFit:
    """The regressor of a protocol: plain (Sec. 4.2) or flip-aware (App. C.2) when ``flip_pairs`` are given.

    A plain fit flips nothing and reports 0 iterations, converged.
    """
    if flip_pairs:
        return fit_flip_aware_regressor(discovered, annotated, flip_pairs, evaluated_points, max_iterations)
    weights = fit_regressor(discovered, select_points(annotated, evaluated_points))
    return RegressorFit(weights, np.zeros(len(annotated), bool), 0, True, False)


# --------------------------------------------------------------------------- reports

def regression_report(train_discovered, train_annotated, test_discovered, test_annotated, reference_points=(0, 1),
                      normaliser: str = "points", evaluated_points=None, flip_pairs=()) -> dict:
    """Fit on the training split, test on the test split (Sec. 4.2 / App. C.2).

    Returns a dict: JSON-ready ``nme_percent``, ``median_percent``,
    ``n_train``, ``n_test``, ``K``, ``M``, (flip-aware only)
    ``flip_iterations``, ``flip_converged``, ``flip_frontal_start``,
    ``test_flipped_fraction`` (see :class:`RegressorFit`); and
    arrays ``errors`` (n,), ``point_errors`` (n, M), ``predicted`` (n, M, 2),
    ``targets`` (n, M, 2, the annotation each test image was scored
    against), ``weights``.
    """
    train_discovered = np.asarray(train_discovered, np.float64)
    test_discovered = np.asarray(test_discovered, np.float64)
    fit = fit_protocol_regressor(train_discovered, train_annotated, evaluated_points, flip_pairs)
    predicted = apply_regressor(fit.weights, test_discovered)
    flipped = flip_choice(predicted, test_annotated, flip_pairs, evaluated_points)
    errors_by_point = point_errors(predicted, test_annotated, reference_points, normaliser, evaluated_points,
                                   flip_pairs)
    errors = errors_by_point.mean(axis=1)
    report = {
        "nme_percent": float(100 * errors.mean()),
        "median_percent": float(100 * np.median(errors)),
        "n_train": int(len(train_discovered)),
        "n_test": int(len(test_discovered)),
        "K": int(test_discovered.shape[1]),
        "M": int(predicted.shape[1]),
    }
    if flip_pairs:
        report.update(flip_iterations=fit.iterations, flip_converged=fit.converged,
                      flip_frontal_start=fit.frontal_start, test_flipped_fraction=float(flipped.mean()))
    report.update(errors=errors, point_errors=errors_by_point, predicted=predicted, weights=fit.weights,
                  targets=select_points(assigned_annotations(test_annotated, flipped, flip_pairs), evaluated_points))
    return report


def json_ready(report: dict) -> dict:
    """The scalar entries of a report (drops the arrays)."""
    return {key: value for key, value in report.items() if not isinstance(value, np.ndarray)}


def mean_shape_report(train_annotated, test_annotated, reference_points=(0, 1), normaliser: str = "points",
                      evaluated_points=None, flip_pairs=()) -> dict:
    """The floor: predict the mean training shape for every test image.

    With ``flip_pairs`` the mean is taken after swapping the training
    annotations whose swapped version is a frontal view (:func:`frontal_view`;
    a raw mean would average left and right), and test images are scored
    flip-aware.
    """
    train_annotated = np.asarray(train_annotated, np.float64)
    if flip_pairs:
        back_view = frontal_view(swap_left_right(train_annotated, flip_pairs), flip_pairs)
        train_annotated = assigned_annotations(train_annotated, back_view, flip_pairs)
    mean = select_points(train_annotated, evaluated_points).mean(axis=0, keepdims=True)  # (1, M, 2)
    predicted = np.repeat(mean, len(test_annotated), axis=0)
    errors = normalised_errors(predicted, test_annotated, reference_points, normaliser, evaluated_points, flip_pairs)
    return {"nme_percent": float(100 * errors.mean()), "n_test": int(len(test_annotated))}


def few_shot_curve(train_discovered, train_annotated, test_discovered, test_annotated, sizes=FEW_SHOT_SIZES,
                   repeats: int = 10, seed: int = 0, reference_points=(0, 1), normaliser: str = "points",
                   evaluated_points=None, flip_pairs=()) -> list[dict]:
    """Test error versus the number of labelled training images (App. F.1, Figure 38).

    For every size n in ``sizes`` smaller than the training split, ``repeats``
    regressors are fitted on n images drawn without replacement and scored
    on the whole test split; the full split ("all") is always added, once.
    Sizes below 2K give underdetermined fits: the minimum-norm solution is
    used (:func:`fit_regressor`); near n = 2K such a fit interpolates the
    training points and its test error can peak above that of smaller n
    (the paper does not say how it fitted below 2K). Draws for size n come
    from ``np.random.default_rng([seed, n])``, so they do not depend on the
    other sizes asked for.

    Returns:
        one dict per size, ascending: ``n``, ``repeats``, and the test NME in %
        over the draws: ``mean``, ``std``, ``min``, ``max``; and the floor on
        the same draws, the mean shape of the n images predicted for every
        test image: ``mean_shape_mean``, ``mean_shape_std``.
    """
    train_discovered = np.asarray(train_discovered, np.float64)
    train_annotated = np.asarray(train_annotated, np.float64)
    available = len(train_discovered)
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    if any(int(size) < 1 for size in sizes):
        raise ValueError(f"few-shot sizes must be positive, got {tuple(sizes)}")
    options = {"reference_points": reference_points, "normaliser": normaliser,
               "evaluated_points": evaluated_points, "flip_pairs": flip_pairs}
    curve = []
    for size in sorted({int(size) for size in sizes if int(size) < available}) + [available]:
        generator = np.random.default_rng([seed, size])
        draws = 1 if size == available else repeats
        results, floors = [], []
        for _ in range(draws):
            chosen = np.sort(generator.choice(available, size, replace=False))
            report = regression_report(train_discovered[chosen], train_annotated[chosen], test_discovered,
                                       test_annotated, **options)
            results.append(report["nme_percent"])
            floors.append(mean_shape_report(train_annotated[chosen], test_annotated, **options)["nme_percent"])
        results, floors = np.asarray(results), np.asarray(floors)
        curve.append({"n": size, "repeats": draws, "mean": float(results.mean()), "std": float(results.std()),
                      "min": float(results.min()), "max": float(results.max()),
                      "mean_shape_mean": float(floors.mean()), "mean_shape_std": float(floors.std())})
    return curve


# --------------------------------------------------------------------------- a case with a known answer

# Eyes, nose, mouth corners of an average aligned face crop, (x, y) image frame.
FIVE_POINT_TEMPLATE = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.55], [0.38, 0.70], [0.62, 0.70]])


class SyntheticCase(NamedTuple):
    """Discovered and annotated landmarks whose regression error is known in advance (:func:`synthetic_case`)."""

    fit_discovered: np.ndarray     # (n_fit, K, 2)
    fit_annotated: np.ndarray      # (n_fit, 5, 2)
    test_discovered: np.ndarray    # (n_test, K, 2)
    test_annotated: np.ndarray     # (n_test, 5, 2)
    inverse_map_nme_percent: float  # test error of the exact inverse of the mixing map (the sample's value)
    expected_nme_percent: float    # its expectation, 100 noise sqrt(pi / 2)


def synthetic_case(n_fit: int = 2000, n_test: int = 1000, num_landmarks: int = 10, noise: float = 0.02,
                   pose: float = 0.05, seed: int = 0) -> SyntheticCase:
    """Five-point faces and landmarks that carry them up to a known error, for the protocol of Sec. 4.2.

    Annotations: :data:`FIVE_POINT_TEMPLATE` under a random similarity
    (scale exp(N(0, pose)), rotation N(0, pose) rad, shift N(0, pose) of the
    side) plus independent shape noise of ``pose / 4`` per coordinate.
    Discovered landmarks: the annotations corrupted by ``noise`` times each
    image's inter-ocular distance per coordinate, then sent through one fixed
    random linear map from 2 x 5 to 2K coordinates (both centred on the
    image centre). The exact inverse of that map recovers the corrupted
    annotations, whose error per point is the length of a 2-D Gaussian of
    standard deviation ``noise`` in inter-ocular units: ``noise * sqrt(pi / 2)``
    on average (Rayleigh mean). The fitted regressor can only do as well or
    better: it also shrinks the noise towards the mean shape, by about the
    ratio of the noise variance to the shape variance (small at the
    default, large when ``noise`` approaches ``pose / 4`` over the
    inter-ocular distance).

    >>> case = synthetic_case(noise=0.02)
    >>> round(case.expected_nme_percent, 2), round(case.inverse_map_nme_percent, 2)
    (2.51, 2.51)
    """
    if num_landmarks < 5:
        raise ValueError(f"num_landmarks must be >= 5 for a map from 5 annotated points to be invertible, "
                         f"got {num_landmarks}")
    rng = np.random.default_rng(seed)
    count = n_fit + n_test
    scale = np.exp(rng.normal(0, pose, count))[:, None, None]
    angle = rng.normal(0, pose, count)
    rotation = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1),
                         np.stack([np.sin(angle), np.cos(angle)], -1)], -2)        # (n, 2, 2)
    centred = FIVE_POINT_TEMPLATE - 0.5
    annotated = 0.5 + scale * np.einsum("nij,pj->npi", rotation, centred) + rng.normal(0, pose, (count, 1, 2))
    annotated = annotated + rng.normal(0, pose / 4, annotated.shape)
    inter_ocular = np.linalg.norm(annotated[:, 0] - annotated[:, 1], axis=-1)[:, None, None]
    corrupted = annotated + noise * inter_ocular * rng.normal(0, 1, annotated.shape)
    mixing = rng.normal(0, 1, (10, 2 * num_landmarks)) / np.sqrt(10)
    discovered = 0.5 + ((corrupted - 0.5).reshape(count, 10) @ mixing).reshape(count, num_landmarks, 2)
    inverse_error = (np.linalg.norm(corrupted - annotated, axis=-1) / inter_ocular[..., 0]).mean(axis=1)
    return SyntheticCase(discovered[:n_fit], annotated[:n_fit], discovered[n_fit:], annotated[n_fit:],
                         float(100 * inverse_error[n_fit:].mean()), float(100 * noise * np.sqrt(np.pi / 2)))
