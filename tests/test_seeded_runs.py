"""Ablations repeated over seeds (notebook 08) and the collapse measure of notebook 07.

lmdis.config.with_seed, lmdis.evaluate.seeds against the statistics module
and hand numbers, mean_pairwise_distance and metrics_in_pixels by hand, and
lmdis.train.train_or_load_all against runs trained one by one in this process.
"""
from __future__ import annotations

import math
import statistics

import pytest
import torch

from lmdis.config import preset, with_seed
from lmdis.evaluate.diagnostics import (landmark_metrics, mean_pairwise_distance, metrics_in_pixels,
                                        nearest_neighbour_distance)
from lmdis.evaluate.seeds import compare_to_reference, seed_summary
from lmdis.train import run_directory, train_or_load, train_or_load_all

from test_manipulation import tiny_images, tiny_model
from test_train import cached_run_config


# --------------------------------------------------------------------------- seeds of a config

def test_with_seed_changes_the_seed_and_the_name_only():
    base = preset("mnist-cpu")
    seeded = with_seed(base, 3)
    assert seeded.train.seed == 3 and seeded.name == "mnist-cpu-seed3"
    seeded.train.seed, seeded.name = base.train.seed, base.name
    assert seeded.to_dict() == base.to_dict()
    assert base.train.seed == 0, "a copy"
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            with_seed(base, bad)


def test_seed_summary_against_the_statistics_module():
    runs = [{"a": 1.0, "b": 10.0}, {"a": 2.0, "b": 10.0}, {"a": 4.0, "b": 13.0}]
    summary = seed_summary(runs)
    assert summary["a"]["mean"] == pytest.approx(statistics.mean([1, 2, 4]))
    assert summary["a"]["std"] == pytest.approx(statistics.stdev([1, 2, 4]))
    assert summary["b"]["std"] == pytest.approx(statistics.stdev([10, 10, 13]))
    assert (summary["a"]["min"], summary["a"]["max"], summary["a"]["count"]) == (1.0, 4.0, 3)
    assert summary["a"]["values"] == [1.0, 2.0, 4.0]
    assert seed_summary([{"a": 5.0}])["a"]["std"] == 0.0
    with pytest.raises(ValueError, match="at least one"):
        seed_summary([])
    with pytest.raises(ValueError, match="run 1 measured"):
        seed_summary([{"a": 1.0}, {"b": 1.0}])


def test_compare_to_reference_by_hand():
    summaries = {"full": seed_summary([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]),
                 "far": seed_summary([{"x": 3.5}, {"x": 4.0}, {"x": 4.5}]),      # above every reference seed
                 "near": seed_summary([{"x": 2.5}, {"x": 3.0}, {"x": 4.0}]),     # overlaps at 2.5-3.0
                 "below": seed_summary([{"x": 0.1}, {"x": 0.2}, {"x": 0.9}])}
    comparison = compare_to_reference(summaries, "full")
    assert list(comparison) == ["far", "near", "below"]
    assert comparison["far"]["x"] == {"difference": pytest.approx(2.0), "relative": pytest.approx(1.0),
                                      "separated": True}
    assert comparison["near"]["x"]["separated"] is False
    assert comparison["near"]["x"]["difference"] == pytest.approx(3.1666667 - 2.0)
    assert comparison["below"]["x"]["separated"] is True and comparison["below"]["x"]["difference"] < 0
    with pytest.raises(ValueError, match="reference 'none'"):
        compare_to_reference(summaries, "none")


# --------------------------------------------------------------------------- spread of the landmarks

def test_mean_pairwise_distance_by_hand():
    # Three points on a line at 0, 0.3 and 1.0: pairs 0.3, 1.0, 0.7.
    line = torch.tensor([[[0.0, 0.5], [0.3, 0.5], [1.0, 0.5]]])
    assert mean_pairwise_distance(line) == pytest.approx((0.3 + 1.0 + 0.7) / 3)
    # A 3-4-5 triangle, and an image whose landmarks all sit at one place.
    triangle = torch.tensor([[[0.0, 0.0], [0.3, 0.0], [0.3, 0.4]], [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]])
    assert mean_pairwise_distance(triangle) == pytest.approx((0.3 + 0.5 + 0.4) / 3 / 2)
    for shape in ((1, 1, 2), (2, 3), (1, 3, 3)):
        with pytest.raises(ValueError, match="K >= 2"):
            mean_pairwise_distance(torch.zeros(shape))


def test_two_tight_clusters_have_a_small_nearest_neighbour_but_a_large_pairwise_distance():
    pairs = torch.tensor([[[0.1, 0.1], [0.1, 0.1], [0.9, 0.9], [0.9, 0.9]]])
    assert nearest_neighbour_distance(pairs) == pytest.approx(0.0, abs=1e-6)
    assert mean_pairwise_distance(pairs) == pytest.approx(4 * 0.8 * math.sqrt(2) / 6)


def test_landmark_metrics_report_the_pairwise_distance():
    metrics = landmark_metrics(tiny_model(), tiny_images(6), batch_size=4)
    assert metrics["pairwise"] >= metrics["nearest_neighbour"] > 0   # the mean over pairs >= the mean minimum


def test_metrics_in_pixels_by_hand():
    metrics = {"variance": 0.0004, "nearest_neighbour": 0.1, "pairwise": 0.25, "equivariance": 0.05,
               "reconstruction": 0.07}
    pixels = metrics_in_pixels(metrics, 56)
    assert pixels == pytest.approx({"spread": 0.02 * 56, "nearest_neighbour": 5.6, "pairwise": 14.0,
                                    "equivariance": 2.8, "reconstruction": 0.07})
    with pytest.raises(ValueError, match="side"):
        metrics_in_pixels(metrics, 0)


# --------------------------------------------------------------------------- runs in worker processes

def test_runs_trained_in_two_workers_equal_runs_trained_here(tmp_path):
    images = [{"image": image} for image in torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(2))]
    configs = [with_seed(cached_run_config(3), seed) for seed in (0, 1)]
    logged = []
    trainers = train_or_load_all(configs, images, tag="tiny", root=tmp_path / "pool", device="cpu", workers=2,
                                 log=logged.append)
    assert [trainer.resumed_from for trainer in trainers] == [3, 3], "trained in the workers, loaded here"
    assert sum(line.startswith("tiny-seed") for line in logged) == 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = [train_or_load(config, images, tag="tiny", root=tmp_path / "here", device="cpu", log=lambda line: None)
                for config in configs]
    finally:
        torch.set_num_threads(threads)
    for pooled, local in zip(trainers, here):
        for name, value in local.model.state_dict().items():
            torch.testing.assert_close(pooled.model.state_dict()[name], value, msg=name)
    first, second = (trainer.model.state_dict() for trainer in here)
    assert any(not torch.equal(first[name], second[name]) for name in first), "the seeds give different runs"
    assert (run_directory(configs[0], "tiny", tmp_path / "pool") / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="workers"):
        train_or_load_all(configs, images, tag="tiny", root=tmp_path, workers=0)
