"""Tests of lmdis.plotting: figures come back, pixels land where the convention says."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.plotting import confidence_map_figure, landmark_colours, regression_figure, show_confidence_maps


def test_show_confidence_maps_colours_each_channel():
    maps = torch.zeros(3, 5, 7)
    maps[1, 2, 4] = 0.25  # a one-hot channel: its peak takes landmark 1's colour at full strength
    figure, axes = plt.subplots(1, 2)
    returned = show_confidence_maps(maps, torch.tensor([[0.1, 0.1], [4.5 / 7, 2.5 / 5], [0.9, 0.9]]), ax=axes[0])
    assert returned is figure
    picture = np.asarray(axes[0].images[0].get_array())
    assert picture.shape == (5, 7, 3)
    np.testing.assert_allclose(picture[2, 4], landmark_colours(3)[1, :3])
    assert picture.sum() == pytest.approx(landmark_colours(3)[1, :3].sum())
    offsets = axes[0].collections[-1].get_offsets()
    np.testing.assert_allclose(offsets[1], [4.5, 2.5])  # pixel-centre convention: (u + 0.5, v + 0.5)
    assert not axes[1].images and not axes[1].collections
    plt.close(figure)


def test_show_confidence_maps_draws_raw_values_without_normalising():
    maps = torch.zeros(2, 4, 5)
    maps[0, 1, 2] = 0.5
    figure = show_confidence_maps(maps, normalise=False)
    picture = np.asarray(figure.axes[0].images[0].get_array())
    np.testing.assert_allclose(picture[1, 2], 0.5 * landmark_colours(2)[0, :3], rtol=1e-6)
    plt.close(figure)


def test_show_confidence_maps_without_landmarks_and_bad_shape():
    figure = show_confidence_maps(np.ones((2, 4, 4)))
    assert len(figure.axes) == 1
    plt.close(figure)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        show_confidence_maps(torch.ones(1, 2, 4, 4))


def test_images_three_pixels_high_keep_their_layout():
    from lmdis.plotting import _to_numpy_image

    tensor = torch.arange(3 * 3 * 5, dtype=torch.float32).reshape(3, 3, 5)   # (C, H, W), H = 3
    np.testing.assert_array_equal(_to_numpy_image(tensor), tensor.numpy().transpose(1, 2, 0))
    array = np.arange(3 * 5 * 3, dtype=np.float32).reshape(3, 5, 3)          # (H, W, C), H = 3
    np.testing.assert_array_equal(_to_numpy_image(array), array)
    chw = np.zeros((3, 8, 6))                                                # numpy (C, H, W)
    assert _to_numpy_image(chw).shape == (8, 6, 3)
    assert _to_numpy_image(torch.zeros(1, 4, 4)).shape == (4, 4)


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


def test_confidence_map_figure_has_a_row_per_stage_and_a_column_per_channel():
    maps = torch.softmax(torch.rand(2, 4, 12, 12), dim=1)                   # K = 3, padded side 12
    landmarks = torch.rand(2, 3, 2)
    figure = confidence_map_figure(torch.rand(2, 1, 8, 8), {"start": maps, "end": maps.flip(1)},
                                   {"start": landmarks, "end": landmarks}, image_size=8, padded_size=12, index=1)
    assert len(figure.axes) == 2 * (4 + 1)
    assert [ax.get_title() for ax in figure.axes[:5]] == ["1", "2", "3", "bg", "landmarks"]
    plt.close(figure)


# --------------------------------------------------------------------------- aggregate pictures

def test_covariance_ellipse_contains_the_expected_share_of_samples():
    from lmdis.plotting import covariance_ellipse

    covariance = np.array([[4.0, 1.5], [1.5, 1.0]])
    width, height, angle = covariance_ellipse(covariance, n_std=1.0)
    samples = np.random.default_rng(0).multivariate_normal([0, 0], covariance, 200_000)
    theta = np.radians(angle)
    u = samples @ np.array([np.cos(theta), np.sin(theta)])
    v = samples @ np.array([-np.sin(theta), np.cos(theta)])
    inside = ((u / (width / 2)) ** 2 + (v / (height / 2)) ** 2 <= 1).mean()
    assert inside == pytest.approx(1 - np.exp(-0.5), abs=0.005)   # chi-square, 2 dof, at 1
    assert width >= height
    assert covariance_ellipse(np.diag([9.0, 1.0]), n_std=2.0)[:2] == pytest.approx((12.0, 4.0))


def test_covariance_ellipse_refuses_a_non_2x2_matrix():
    from lmdis.plotting import covariance_ellipse

    with pytest.raises(ValueError, match="must be 2x2"):
        covariance_ellipse(np.eye(3))


def test_aggregate_figure_draws_one_ellipse_per_point():
    from matplotlib.patches import Ellipse
    from lmdis.plotting import aggregate_figure

    cov = np.tile(np.eye(2) * 1e-3, (4, 1, 1))
    figure = aggregate_figure(torch.rand(3, 16, 16), np.full((4, 2), 0.5), cov, np.full((2, 2), 0.4), cov[:2])
    assert sum(isinstance(patch, Ellipse) for patch in figure.axes[0].patches) == 6


def test_few_shot_figure_draws_the_curve_the_floor_and_the_reference():
    from lmdis.plotting import few_shot_figure

    curve = [{"n": n, "mean": m, "std": 1.0, "min": m - 2, "max": m + 2} for n, m in [(1, 30.0), (10, 20.0), (100, 8.0)]]
    figure = few_shot_figure(curve, floor=25.0, num_landmarks=10, reference=7.5, reference_label="expected")
    ax = figure.axes[0]
    line = ax.lines[0]
    assert list(line.get_xdata()) == [1, 10, 100] and list(line.get_ydata()) == [30.0, 20.0, 8.0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "mean training shape (25.0 %)" in labels and "expected (7.5 %)" in labels
    plt.close(figure)


def test_manipulation_figure_draws_input_reconstruction_and_each_edit_with_its_change():
    from lmdis.plotting import manipulation_figure

    image = torch.rand(3, 12, 12)
    landmarks = torch.tensor([[0.25, 0.25], [0.75, 0.75]])
    moved = landmarks.clone()
    moved[0, 0] += 0.25
    brighter = image.clamp(max=0.8) + 0.2
    figure = manipulation_figure(image, landmarks, image.clamp(max=0.8), {"moved": (moved, brighter)})
    axes = figure.axes
    assert len(axes) == 6
    assert [axes[i].get_title() for i in range(3)] == ["input", "reconstruction", "moved"]
    change = axes[5].images[0].get_array()
    np.testing.assert_allclose(np.asarray(change), 0.2, atol=1e-6)
    # one moved landmark: one grey line from where it was (plus its white outline)
    assert len(axes[2].lines) == 2
    plt.close(figure)
