"""Regression protocol of Sec. 4.2 against numpy, and the evaluate command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmdis.data import shared_data_root
from lmdis.evaluate import (apply_regressor, fit_regressor, mean_shape_report, normalised_errors, regression_report,
                            similarity_projection)


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


def test_similarity_projection_matches_skimage_and_keeps_similar_shapes():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(2)
    template = rng.random((5, 2))
    points = rng.random((6, 5, 2))
    projected = similarity_projection(points, template)
    for image, moved in zip(points, projected):
        transform = SimilarityTransform.from_estimate(template, image)
        np.testing.assert_allclose(moved, transform(template), atol=1e-10)
    # a shape that IS a similarity of the template is reproduced exactly; a
    # reflected one is not (no reflection allowed)
    angle, scale, shift = 0.7, 1.9, np.array([0.3, -0.2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    similar = scale * template @ rotation.T + shift
    np.testing.assert_allclose(similarity_projection(similar[None], template)[0], similar, atol=1e-12)
    mirrored = template * np.array([-1.0, 1.0])
    assert np.abs(similarity_projection(mirrored[None], template)[0] - mirrored).max() > 0.05
    with pytest.raises(ValueError, match=r"\(6, 4, 2\).*template"):
        similarity_projection(points[:, :4], template)
    with pytest.raises(ValueError, match="coincide"):
        similarity_projection(points, np.full((5, 2), 0.3))


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


def untrained_checkpoint(path):
    """A freshly initialised tiny model in the checkpoint format of lmdis.train."""
    from test_train import tiny_config

    from lmdis.model import LandmarkAutoencoder

    config = tiny_config()
    torch.manual_seed(0)
    torch.save({"model": LandmarkAutoencoder(config.model).state_dict(), "config": config.to_dict(), "step": 0}, path)
    return path


@pytest.mark.skipif(shared_data_root() is None, reason="../shared/data (MTFL) not present")
def test_evaluate_command_on_mtfl(tmp_path):
    from test_train import RandomImages, Trainer, run_cli, tiny_config

    Trainer(tiny_config(steps=3), RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None).fit()
    figure = tmp_path / "figures" / "mtfl.png"
    result = run_cli("evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--dataset", "mtfl",
                     "--data", str(shared_data_root() / "mtfl"), "--device", "cpu", "--few-shot",
                     "--few-shot-repeats", "3", "--figure", str(figure))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_test"] == 2995 and summary["n_train"] == 7653 and summary["K"] == 3
    assert summary["mean_shape_nme_percent"] == pytest.approx(31.7, abs=0.1)
    assert 0 < summary["nme_percent"] < 100
    assert summary["normaliser"] == "points" and summary["reference_points"] == ["left_eye", "right_eye"]
    assert summary["M"] == 5 and not summary["flip_aware"]
    curve = summary["few_shot"]
    assert [point["n"] for point in curve] == [1, 5, 10, 50, 100, 200, 500, 7653]
    assert [point["repeats"] for point in curve] == [3] * 7 + [1]
    assert curve[-1]["mean"] == pytest.approx(summary["nme_percent"], rel=1e-9)
    assert summary["figure"] == str(figure) and figure.is_file()
    assert Path(summary["landmark_figure"]).is_file()


def test_evaluate_command_refuses_data_without_annotations_or_attributes(tmp_path):
    from test_train import run_cli

    checkpoint = str(untrained_checkpoint(tmp_path / "checkpoint.pt"))
    result = run_cli("evaluate", "--checkpoint", checkpoint, "--dataset", "mnist-embedded", "--device", "cpu")
    assert result.returncode == 2 and "no annotated landmarks" in result.stderr and not result.stdout
    if shared_data_root() is not None:
        result = run_cli("evaluate", "--checkpoint", checkpoint, "--dataset", "mtfl", "--attributes",
                         "--data", str(shared_data_root() / "mtfl"), "--device", "cpu")
        assert result.returncode == 2 and "no attribute labels" in result.stderr and not result.stdout
