"""lmdis.evaluate.benchmark: a protocol on fake data against numpy, and the evaluate command on MTFL."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.data import Protocol, shared_data_root
from lmdis.evaluate import Benchmark, Discovered

from test_evaluate_regression import PAIRS, ambiguous_bodies


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


def test_benchmark_figure_uses_the_scored_annotations(tmp_path):
    discovered, annotated = cat_like(40, seed=12)
    benchmark = Benchmark.from_datasets(PointsAsImages(discovered[:30], annotated[:30]),
                                        PointsAsImages(discovered[30:], annotated[30:]), CAT_LIKE)
    found = Discovered(discovered[:30], discovered[30:])
    benchmark.figure(found, tmp_path / "figure.png", count=3, columns=3)
    with Image.open(tmp_path / "figure.png") as picture:
        assert picture.size == (round(2.2 * 3.5 * 100), round(2.2 * 100))


# --------------------------------------------------------------------------- the evaluate command

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


# --------------------------------------------------------------------------- aggregate pictures

def test_aggregate_is_the_mean_image_and_the_sample_covariances():
    rng = np.random.default_rng(3)
    discovered, annotated = cat_like(150, seed=3)
    images = rng.random((150, 3, 8, 8)).astype(np.float32)

    class Faces(PointsAsImages):
        def __getitem__(self, index):
            return {"image": torch.from_numpy(images[index]), "index": index}

    protocol = CAT_LIKE
    split = Faces(discovered, annotated)
    benchmark = Benchmark.from_datasets(split, split, protocol)
    summary = benchmark.aggregate(Discovered(discovered, discovered))
    assert summary["count"] == 150
    np.testing.assert_allclose(summary["mean_image"].numpy(), images.mean(axis=0), atol=1e-6)
    for k in range(10):
        np.testing.assert_allclose(summary["landmark_cov"][k], np.cov(discovered[:, k].T), atol=1e-12)
    np.testing.assert_allclose(summary["annotated_mean"], annotated.mean(axis=0), atol=1e-7)   # stored as float32
    np.testing.assert_allclose(summary["annotated_cov"][4], np.cov(annotated[:, 4].T), atol=1e-8)


def test_aggregate_refuses_a_split_small_enough_to_show_individuals():
    from lmdis.evaluate import MIN_AGGREGATE_IMAGES

    discovered, annotated = cat_like(MIN_AGGREGATE_IMAGES - 1, seed=1)
    protocol = CAT_LIKE
    split = PointsAsImages(discovered, annotated)
    benchmark = Benchmark.from_datasets(split, split, protocol)
    with pytest.raises(ValueError, match=f"averages at least {MIN_AGGREGATE_IMAGES}"):
        benchmark.aggregate(Discovered(discovered, discovered))
