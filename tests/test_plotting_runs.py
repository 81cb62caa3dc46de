"""Figures of notebooks 07 and 08 (lmdis.plotting): markers land on the pixels of their landmarks, bars and
error bars show the numbers of lmdis.evaluate.seeds, curves the values they are given."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.container import ErrorbarContainer

from lmdis.evaluate.seeds import seed_summary
from lmdis.plotting import (confidence_map_figure, draw_outlined_landmarks, landmark_colours, landmark_rows_figure,
                            seed_bar_figure, training_curves_figure)


def test_outlined_landmarks_sit_on_their_pixels_in_their_colours():
    figure, ax = plt.subplots()
    landmarks = torch.tensor([[0.25, 0.5], [0.75, 0.1]])
    draw_outlined_landmarks(ax, landmarks, width=28, height=56)
    points = ax.collections[0]
    np.testing.assert_allclose(points.get_offsets(), [[7.0, 28.0], [21.0, 5.6]])
    np.testing.assert_allclose(points.get_facecolors(), landmark_colours(2))
    np.testing.assert_allclose(points.get_edgecolors()[0], [0, 0, 0, 1])
    plt.close(figure)


def test_confidence_map_figure_writes_the_notes_beside_the_landmarks():
    maps = torch.softmax(torch.rand(1, 3, 12, 12), dim=1)                    # K = 2, padded side 12
    landmarks = torch.tensor([[[0.5, 0.5], [0.25, 0.75]]])
    figure = confidence_map_figure(torch.rand(1, 1, 8, 8), {"a": maps, "b": maps}, {"a": landmarks, "b": landmarks},
                                   image_size=8, padded_size=12, notes={"b": "pairwise 1.0 px"})
    assert len(figure.axes) == 2 * 4
    last = figure.axes[-1]
    assert [text.get_text() for text in last.texts] == ["pairwise 1.0 px"]
    np.testing.assert_allclose(last.collections[-1].get_offsets(), [[4.0, 4.0], [2.0, 6.0]])
    plt.close(figure)


def test_landmark_rows_figure_has_a_row_per_model_and_the_landmarks_in_pixels():
    images = torch.rand(3, 1, 28, 28)
    rows = {"full": torch.full((3, 2, 2), 0.5), "w/o sep": torch.tensor([[[0.1, 0.2], [0.3, 0.4]]] * 3)}
    figure = landmark_rows_figure(images, rows)
    assert len(figure.axes) == 6
    np.testing.assert_allclose(figure.axes[3].collections[-1].get_offsets(), [[2.8, 5.6], [8.4, 11.2]])
    assert figure.axes[3].texts[0].get_text() == "w/o sep"
    plt.close(figure)
    with pytest.raises(ValueError, match="'full' has landmarks for 3 images, expected 2"):
        landmark_rows_figure(images[:2], rows)


def test_seed_bar_figure_draws_means_spreads_and_every_seed():
    summaries = {"full": seed_summary([{"x": 1.0, "y": 5.0}, {"x": 2.0, "y": 6.0}, {"x": 3.0, "y": 7.0}]),
                 "w/o sep": seed_summary([{"x": 0.5, "y": 1.0}, {"x": 0.5, "y": 2.0}, {"x": 0.8, "y": 3.0}])}
    figure = seed_bar_figure(summaries, {"x": "distance (px)", "y": "error (px)"}, titles={"x": "separation"})
    ax = figure.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([2.0, 0.6])
    assert ax.get_ylabel() == "distance (px)" and ax.get_title() == "separation"
    assert figure.axes[1].get_ylabel() == "error (px)"
    error_bars = next(container for container in ax.containers if isinstance(container, ErrorbarContainer))
    error_lines = error_bars.lines[2][0].get_segments()                      # one vertical segment per bar
    assert [segment[:, 1].tolist() for segment in error_lines] == [pytest.approx([1.0, 3.0]),
                                                                   pytest.approx([0.6 - np.std([0.5, 0.5, 0.8], ddof=1),
                                                                                  0.6 + np.std([0.5, 0.5, 0.8], ddof=1)])]
    seeds = np.concatenate([collection.get_offsets()[:, 1] for collection in ax.collections
                            if len(collection.get_offsets()) == 3])
    assert sorted(seeds.tolist()) == pytest.approx(sorted([1.0, 2.0, 3.0, 0.5, 0.5, 0.8]))
    plt.close(figure)


def test_training_curves_figure_plots_each_run_against_the_steps():
    figure = training_curves_figure([0, 10, 20], {"spread": {"a": [3.0, 2.0, 1.0], "b": [3.0, 3.0, 3.0]},
                                                  "variance": {"a": [0.1, 0.01, 0.001]}},
                                    {"spread": "px", "variance": "px²"}, log_scale=("variance",))
    left, right = figure.axes
    assert [line.get_ydata().tolist() for line in left.lines] == [[3.0, 2.0, 1.0], [3.0, 3.0, 3.0]]
    assert left.lines[0].get_xdata().tolist() == [0, 10, 20]
    assert right.get_yscale() == "log" and left.get_yscale() == "linear" and left.get_ylabel() == "px"
    plt.close(figure)
    with pytest.raises(ValueError, match="'a' has 2 values for 3 steps"):
        training_curves_figure([0, 1, 2], {"spread": {"a": [1.0, 2.0]}}, {"spread": "px"})
