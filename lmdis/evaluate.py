"""Evaluation of discovered landmarks: Sec. 4.2-4.3, Appendix C.2 and F.1.

Regression onto annotated landmarks (Sec. 4.2). A linear map WITHOUT bias,
mixing x and y, is fitted by least squares from the 2K discovered coordinates
to the 2M evaluated annotated ones on a labelled training split and applied to
the test split. Both sides are centred on the image centre first (package
convention minus 0.5), so "no bias" means no free offset, as in the authors'
protocol. With fewer images than unknowns (few-shot fits, App. F.1) the
system is underdetermined and the minimum-norm solution is taken.

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

Attribute recognition (Sec. 4.3, Table 3): a linear SVM per binary attribute
on the landmark coordinates (optionally concatenated with other features),
and a multi-class variant (MNIST digits).

Shapes: discovered landmarks (n, K, 2), annotated (n, N, 2), evaluated and
predicted (n, M, 2), all in the normalised (x, y) image frame of
:mod:`lmdis.geometry`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sklearn.linear_model import LinearRegression
from torch.utils.data import DataLoader, Dataset

FEW_SHOT_SIZES = (1, 5, 10, 50, 100, 200, 500)  # plus "all", App. F.1
FRONTAL_FRACTION = 2 / 3  # App. C.2 step 1: "more than 2/3 of the left-hand side ... landmarks"
# The 13 shape-related CelebA attributes of Table 3, in CelebA's spelling.
PAPER_ATTRIBUTES = ("Arched_Eyebrows", "Bags_Under_Eyes", "Big_Lips", "Big_Nose", "Double_Chin",
                    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Narrow_Eyes", "Oval_Face", "Pointy_Nose",
                    "Receding_Hairline", "Smiling")
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)  # searched by cross-validation on the training split


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


# --------------------------------------------------------------------------- attributes (Sec. 4.3)

def landmark_features(landmarks: np.ndarray, *extra: np.ndarray) -> np.ndarray:
    """(n, K, 2) landmark coordinates, flattened to 2K features, then any (n, D) extra features: (n, 2K + sum D)."""
    landmarks = np.asarray(landmarks, np.float64)
    blocks = [landmarks.reshape(len(landmarks), -1)]
    for index, block in enumerate(extra):
        block = np.asarray(block, np.float64).reshape(len(np.asarray(block)), -1)
        if len(block) != len(landmarks):
            raise ValueError(f"extra feature array {index} has {len(block)} rows, expected {len(landmarks)}")
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def _binary_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """(n, A) labels in {-1, 1} or {0, 1} -> bool."""
    labels = np.asarray(labels)
    values = set(np.unique(labels).tolist())
    if not (values <= {-1, 1} or values <= {0, 1}):
        raise ValueError(f"{what} must be in {{-1, 1}} or {{0, 1}}, got values {sorted(values)[:6]}")
    return labels > 0


def fit_linear_svm(features: np.ndarray, labels: np.ndarray, C: float | None = None, folds: int = 3, seed: int = 0):
    """A linear SVM on standardised features (Sec. 4.3); returns the fitted scikit-learn pipeline.

    ``C=None`` picks C from ``SVM_C_GRID`` by ``folds``-fold stratified
    cross-validation on these (training) samples only; the chosen value is
    the pipeline's ``linearsvc.C``. The primal formulation is solved
    (``dual=False``): many more samples than features here.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"the training labels hold a single class ({classes.tolist()}); an SVM needs two")
    pipeline = make_pipeline(StandardScaler(), LinearSVC(C=1.0 if C is None else C, dual=False, max_iter=10000))
    if C is not None:
        return pipeline.fit(features, labels)
    if counts.min() < folds:
        raise ValueError(f"class {classes[counts.argmin()]!r} has {counts.min()} training samples, fewer than the "
                         f"{folds} cross-validation folds; pass C=... to skip the search")
    search = GridSearchCV(pipeline, {"linearsvc__C": list(SVM_C_GRID)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return search.fit(features, labels).best_estimator_


def attribute_accuracy(train_features, train_labels, test_features, test_labels, names=None, C: float | None = None,
                       folds: int = 3, seed: int = 0) -> dict:
    """One linear SVM per binary attribute (Sec. 4.3, Table 3).

    Args:
        train_features, test_features: (n, D), e.g. :func:`landmark_features`.
        train_labels, test_labels: (n, A) in {-1, 1} or {0, 1}.
        names: A attribute names (default ``attribute_0``...).
        C, folds, seed: see :func:`fit_linear_svm` (per attribute).
    Returns:
        JSON-ready: ``names``, ``accuracy_percent`` and ``majority_percent``
        (always predicting the most frequent training value: the floor) and
        ``C`` per name, ``mean_percent`` (the "Average" column),
        ``mean_majority_percent``, ``n_train``, ``n_test``, ``features``.
    """
    train_features, test_features = np.asarray(train_features, np.float64), np.asarray(test_features, np.float64)
    train_labels = _binary_labels(np.atleast_2d(np.asarray(train_labels).T).T, "train_labels")
    test_labels = _binary_labels(np.atleast_2d(np.asarray(test_labels).T).T, "test_labels")
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError(f"features and labels disagree: train {len(train_features)} vs {len(train_labels)}, "
                         f"test {len(test_features)} vs {len(test_labels)}")
    if train_labels.shape[1] != test_labels.shape[1] or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"train and test differ: labels {train_labels.shape[1]} vs {test_labels.shape[1]} "
                         f"attributes, features {train_features.shape[1]} vs {test_features.shape[1]}")
    names = [f"attribute_{a}" for a in range(train_labels.shape[1])] if names is None else list(names)
    if len(names) != train_labels.shape[1]:
        raise ValueError(f"{len(names)} names for {train_labels.shape[1]} attributes")
    accuracy, majority, chosen = {}, {}, {}
    for column, name in enumerate(names):
        try:
            svm = fit_linear_svm(train_features, train_labels[:, column], C, folds, seed)
        except ValueError as error:
            raise ValueError(f"attribute {name!r}: {error}") from error
        accuracy[name] = float(100 * np.mean(svm.predict(test_features) == test_labels[:, column]))
        most_frequent = train_labels[:, column].mean() >= 0.5
        majority[name] = float(100 * np.mean(test_labels[:, column] == most_frequent))
        chosen[name] = float(svm.named_steps["linearsvc"].C)
    return {"names": names, "accuracy_percent": accuracy, "mean_percent": float(np.mean(list(accuracy.values()))),
            "majority_percent": majority, "mean_majority_percent": float(np.mean(list(majority.values()))),
            "C": chosen, "n_train": int(len(train_features)), "n_test": int(len(test_features)),
            "features": int(train_features.shape[1])}


def class_accuracy(train_features, train_labels, test_features, test_labels, C: float | None = None,
                   folds: int = 3, seed: int = 0) -> dict:
    """A multi-class linear SVM (one-vs-rest), e.g. MNIST digits from their landmarks.

    Args as :func:`attribute_accuracy`, with (n,) integer class labels.
    Returns:
        JSON-ready: ``accuracy_percent``, ``per_class_percent`` (test recall
        per class, keyed by ``str(label)``), ``classes``, ``confusion``
        (rows: true class, columns: predicted, in ``classes`` order), ``C``,
        ``n_train``, ``n_test``.
    """
    train_labels, test_labels = np.asarray(train_labels).ravel(), np.asarray(test_labels).ravel()
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError(f"features and labels disagree: train {len(train_features)} vs {len(train_labels)}, "
                         f"test {len(test_features)} vs {len(test_labels)}")
    svm = fit_linear_svm(np.asarray(train_features, np.float64), train_labels, C, folds, seed)
    predicted = svm.predict(np.asarray(test_features, np.float64))
    classes = np.unique(np.concatenate([train_labels, test_labels]))
    confusion = np.array([[np.sum((test_labels == truth) & (predicted == guess)) for guess in classes]
                          for truth in classes])
    per_class = {str(label.item()): float(100 * np.mean(predicted[test_labels == label] == label))
                 for label in classes if np.any(test_labels == label)}
    return {"accuracy_percent": float(100 * np.mean(predicted == test_labels)), "per_class_percent": per_class,
            "classes": [label.item() for label in classes], "confusion": confusion.tolist(),
            "C": float(svm.named_steps["linearsvc"].C), "n_train": int(len(train_labels)),
            "n_test": int(len(test_labels))}


# --------------------------------------------------------------------------- models and datasets

@torch.no_grad()
def detect_all(model, dataset: Dataset, batch_size: int = 64, device="cpu", num_workers: int = 0) -> np.ndarray:
    """Landmarks of every image of ``dataset`` (image frame, normalised): (n, K, 2)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=lambda items: torch.stack([item["image"] for item in items]))
    found = [model.detect(images.to(device)).cpu() for images in loader]
    return torch.cat(found).numpy()


class Discovered(NamedTuple):
    fit: np.ndarray  # (n_fit, K, 2) landmarks of the fit split
    test: np.ndarray  # (n_test, K, 2) landmarks of the test split


class Benchmark:
    """A dataset's evaluation protocol (:class:`lmdis.data.Protocol`) with its two splits opened once.

    The regressor is fitted on ``protocol.fit_split`` and tested on
    ``protocol.test_split`` (Sec. 4.2; flip-aware per App. C.2 where the
    protocol has ``flip_pairs``). ``report(model)`` can be called repeatedly
    (e.g. during training); with ``cache=True`` the images are decoded once.

    Args:
        dataset: a name with a protocol (:func:`lmdis.data.dataset_protocol`).
        root: where the dataset is (MTFL defaults to the shared data folder).
        image_size, channels: what the model takes.
        cache: keep the decoded splits in memory (:class:`lmdis.data.InMemoryDataset`).
    Raises:
        ValueError: a dataset without annotated landmarks.
    """

    def __init__(self, dataset: str, root=None, image_size: int | None = None, channels: int = 3, cache: bool = True):
        from lmdis.data import dataset_protocol, open_dataset

        protocol = dataset_protocol(dataset)
        options = {"image_size": image_size, "channels": channels}
        fit = open_dataset(dataset, root, split=protocol.fit_split, **options)
        test = open_dataset(dataset, root, split=protocol.test_split, **options)
        self._attach(fit, test, protocol, cache)

    @classmethod
    def from_datasets(cls, fit: Dataset, test: Dataset, protocol, cache: bool = False) -> Benchmark:
        """A benchmark on already-opened splits (each with ``annotated_landmarks()``)."""
        benchmark = cls.__new__(cls)
        benchmark._attach(fit, test, protocol, cache)
        return benchmark

    def _attach(self, fit: Dataset, test: Dataset, protocol, cache: bool) -> None:
        from lmdis.data import InMemoryDataset

        self.protocol = protocol
        self.fit_source, self.test_source = fit, test
        self.fit = InMemoryDataset(fit) if cache else fit
        self.test = InMemoryDataset(test) if cache else test
        self.fit_annotated = np.asarray(fit.annotated_landmarks(), np.float64)
        self.test_annotated = np.asarray(test.annotated_landmarks(), np.float64)
        for split, annotated in (("fit", self.fit_annotated), ("test", self.test_annotated)):
            if annotated.ndim != 3 or annotated.shape[1:] != (len(protocol.point_names), 2):
                raise ValueError(f"{protocol.dataset} {split} split annotations are {annotated.shape}, expected "
                                 f"(n, {len(protocol.point_names)}, 2) for points {protocol.point_names}")
        self.options = protocol_options(protocol)

    def describe(self) -> dict:
        """JSON-ready protocol facts: dataset, normaliser, reference and evaluated point names, flip_aware."""
        names = self.protocol.point_names
        evaluated = self.protocol.evaluated_points or range(len(names))
        reference = self.protocol.reference_points if self.protocol.normaliser == "points" else None
        return {"dataset": self.protocol.dataset, "normaliser": self.protocol.normaliser,
                "reference_points": None if reference is None else [names[i] for i in reference],
                "evaluated_points": [names[i] for i in evaluated], "flip_aware": bool(self.protocol.flip_pairs)}

    def discover(self, model, device="cpu", batch_size: int = 64) -> Discovered:
        """The model's landmarks on both splits."""
        fit = detect_all(model, self.fit, batch_size, device)
        return Discovered(fit, detect_all(model, self.test, batch_size, device))

    def regression(self, discovered: Discovered) -> dict:
        """:func:`regression_report` under this protocol, arrays included."""
        return regression_report(discovered.fit, self.fit_annotated, discovered.test, self.test_annotated,
                                 **self.options)

    def report(self, model, device="cpu", discovered: Discovered | None = None) -> dict:
        """JSON-ready: :meth:`describe` plus nme_percent, median_percent, n_train, n_test, K, M."""
        discovered = self.discover(model, device) if discovered is None else discovered
        return {**self.describe(), **json_ready(self.regression(discovered))}

    def mean_shape_report(self) -> dict:
        """JSON-ready floor: the mean training shape predicted for every test image."""
        return mean_shape_report(self.fit_annotated, self.test_annotated, **self.options)

    def few_shot(self, discovered: Discovered, sizes=FEW_SHOT_SIZES, repeats: int = 10, seed: int = 0) -> list[dict]:
        """:func:`few_shot_curve` on the fit split, scored on the test split."""
        return few_shot_curve(discovered.fit, self.fit_annotated, discovered.test, self.test_annotated, sizes,
                              repeats, seed, **self.options)

    def attribute_labels(self, split: str = "fit") -> tuple[list[str], np.ndarray]:
        """(names, (n, A) values) of the ``"fit"`` or ``"test"`` split's ``attributes()`` (CelebA)."""
        dataset = {"fit": self.fit_source, "test": self.test_source}[split]
        if not hasattr(dataset, "attributes"):
            raise ValueError(f"{self.protocol.dataset} ({type(dataset).__name__}) has no attribute labels; attribute "
                             f"recognition (Sec. 4.3) needs CelebA")
        names, values = dataset.attributes()
        values = np.asarray(values)
        if values.shape != (len(dataset), len(names)):
            raise ValueError(f"{self.protocol.dataset} {split} split attributes are {values.shape}, expected "
                             f"({len(dataset)}, {len(names)}): one row per image, one column per name")
        return list(names), values

    def attributes(self, discovered: Discovered, names=PAPER_ATTRIBUTES, C: float | None = None,
                   extra_fit=(), extra_test=()) -> dict:
        """Sec. 4.3: linear SVMs on the landmark coordinates (+ extra features), fit split -> test split.

        ``names``: attributes to recognise (default: Table 3's 13); both
        splits must offer ``attributes()`` (CelebA). The SVMs are trained on
        the protocol's fit split (the paper: "the CelebA training set") and
        tested on its test split (MAFL test). ``extra_fit`` / ``extra_test``:
        (n, D) feature arrays concatenated to the coordinates (Table 3's
        FaceNet + Ours rows). C as :func:`fit_linear_svm`.
        """
        fit_names, fit_values = self.attribute_labels("fit")
        test_names, test_values = self.attribute_labels("test")
        missing = [name for name in names if name not in fit_names or name not in test_names]
        if missing:
            raise ValueError(f"attributes {missing} are not among the dataset's {fit_names}")
        fit_columns = [fit_names.index(name) for name in names]
        test_columns = [test_names.index(name) for name in names]
        return attribute_accuracy(landmark_features(discovered.fit, *extra_fit), fit_values[:, fit_columns],
                                  landmark_features(discovered.test, *extra_test), test_values[:, test_columns],
                                  names, C)

    def figure(self, discovered: Discovered, path=None, count: int = 8, columns: int = 4):
        """Figure 9 style for ``count`` evenly spaced test images (:func:`lmdis.plotting.regression_figure`)."""
        from lmdis.plotting import regression_figure

        regression = self.regression(discovered)
        indices = np.linspace(0, len(self.test) - 1, min(count, len(self.test))).round().astype(int)
        images = torch.stack([self.test[int(i)]["image"] for i in indices])
        reference = self.describe()["reference_points"]
        unit = "% of the image side" if reference is None else f"% of the {'-'.join(reference)} distance"
        return regression_figure(images, discovered.test[indices], regression["targets"][indices],
                                 regression["predicted"][indices], regression["point_errors"][indices],
                                 columns=columns, path=path, error_label=f"error ({unit})")


# --------------------------------------------------------------------------- content tracking

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
    from lmdis.tps import apply_transform, sample_random_transform, warp_images

    generator = torch.Generator().manual_seed(seed)
    warp = sample_random_transform(len(images), transform, generator, device=images.device, dtype=images.dtype)
    landmarks = detect(images)
    mapped = apply_transform(detect(warp_images(images, warp)), warp)
    return {"residual": (mapped - landmarks).norm(dim=-1).mean(dim=0).cpu().numpy(),
            "locked": (apply_transform(landmarks, warp) - landmarks).norm(dim=-1).mean(dim=0).cpu().numpy()}
