"""Streamed landmarks: the inference detector, the CSV written as it goes, failures that leave no CSV."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.data import load_image, normalised_to_pixel
from lmdis.inference import InferenceDetector, fold_batch_norm, write_landmarks_csv
from lmdis.model import LandmarkAutoencoder

from test_train import tiny_config


@pytest.fixture
def model() -> LandmarkAutoencoder:
    """A tiny autoencoder whose batch norms hold non-trivial statistics and affine maps."""
    torch.manual_seed(0)
    model = LandmarkAutoencoder(tiny_config().model)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.2)
    return model.eval()


def write_folder(folder: Path, count: int, sizes=((16, 16), (40, 24), (9, 31))) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    paths = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        path = folder / f"{index:03d}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_folded_batch_norm_computes_the_same_function(model):
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model.detect(images)
        torch.testing.assert_close(InferenceDetector(model)(images), expected, atol=1e-5, rtol=0)
    folded = fold_batch_norm(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval())
    assert isinstance(folded[1], torch.nn.Identity)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in InferenceDetector(model).modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the model is left as it was


@pytest.mark.parametrize("workers, batch_size", [(0, 4), (2, 3)])
def test_rows_are_each_images_landmarks_in_its_own_pixels(model, tmp_path, workers, batch_size):
    """Against the per-image computation: decode, model.detect, normalised_to_pixel with the file's size."""
    paths = write_folder(tmp_path / "images", 7)
    out = tmp_path / "landmarks.csv"
    summary = write_landmarks_csv(model, paths, out, batch_size=batch_size, num_workers=workers)
    assert summary == {"images": 7, "K": 3, "csv": str(out)}
    rows = read_rows(out)
    assert rows[0] == ["path", "x1", "y1", "x2", "y2", "x3", "y3"]
    for path, row in zip(paths, rows[1:], strict=True):
        with torch.no_grad():
            points = model.detect(load_image(path, 3, 16)[None])[0].double().numpy()
        width, height = Image.open(path).size
        assert row[0] == str(path)
        np.testing.assert_allclose(np.array(row[1:], float), normalised_to_pixel(points, width, height).reshape(-1),
                                   atol=2e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "landmarks.csv"]  # no temporary file left


def test_unreadable_files_are_all_named_and_the_old_csv_is_kept(model, tmp_path):
    paths = write_folder(tmp_path / "images", 5)
    paths[1].write_bytes(b"")
    paths[3].write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "landmarks.csv"
    out.write_text("previous results\n")
    with pytest.raises(ValueError) as error:
        write_landmarks_csv(model, paths, out, batch_size=2, num_workers=1)
    message = str(error.value)
    assert message.startswith("2 of 5 images cannot be read") and "001.png" in message and "003.png" in message
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "landmarks.csv"]


def test_non_finite_landmarks_write_no_csv(model, tmp_path, monkeypatch):
    paths = write_folder(tmp_path / "images", 3)
    forward = InferenceDetector.forward

    def one_nan(self, images):
        landmarks = forward(self, images)
        landmarks[-1, 0, 0] = float("nan")
        return landmarks

    monkeypatch.setattr(InferenceDetector, "forward", one_nan)
    with pytest.raises(ValueError, match=r"non-finite landmarks for 1 of 3 images, e\.g\. .*002\.png"):
        write_landmarks_csv(model, paths, tmp_path / "landmarks.csv", batch_size=8, num_workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
