"""lmdis.evaluate.attributes: the linear SVMs of Sec. 4.3 on features whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from lmdis.evaluate import attribute_accuracy, class_accuracy, landmark_features


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
