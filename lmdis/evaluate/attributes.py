"""Attribute recognition from landmarks (Sec. 4.3, Table 3): linear SVMs on the coordinates.

A linear SVM per binary attribute on the landmark coordinates (optionally
concatenated with other features), trained on the training split with C
chosen by cross-validation there, and a multi-class variant (MNIST digits).
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

__all__ = ["PAPER_ATTRIBUTES", "SVM_C_GRID", "landmark_features", "fit_linear_svm", "attribute_accuracy",
           "class_accuracy"]

# The 13 shape-related CelebA attributes of Table 3, in CelebA's spelling.
PAPER_ATTRIBUTES = ("Arched_Eyebrows", "Bags_Under_Eyes", "Big_Lips", "Big_Nose", "Double_Chin",
                    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Narrow_Eyes", "Oval_Face", "Pointy_Nose",
                    "Receding_Hairline", "Smiling")
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)  # searched by cross-validation on the training split


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
