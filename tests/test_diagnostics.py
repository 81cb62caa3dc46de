"""lmdis.diagnostics: per-term landmark gradients, decoder coverage, nearest annotated points."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmdis.diagnostics import decoder_coverage, landmark_gradient_norms, nearest_annotated_points
from lmdis.train import LandmarkObjective, Trainer, recon_weight

from test_train import RandomImages, tiny_config


def test_gradient_norms_decompose_the_objective(tmp_path):
    """Each term's gradient on the landmarks, and their sum equals the total's gradient."""
    config = tiny_config(steps=1)
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    images = trainer.dataset.images[:4]
    norms = landmark_gradient_norms(trainer.objective, images, 3, torch.Generator().manual_seed(0))
    assert set(norms) == {f"{term}{suffix}" for term in ("recon", "conc", "sep", "eqv", "total")
                          for suffix in ("", "_warped", "_maps")}
    assert all(norms[name] > 0 for name in ("recon", "sep", "eqv", "total"))
    assert all(norms[f"{name}_maps"] > 0 for name in ("recon", "conc", "sep", "eqv", "total"))
    assert norms["recon_warped"] == 0.0                 # the warped copies are not reconstructed
    assert norms["conc"] == 0.0                         # Eq. (5) acts on the spread, not on the means
    # Independent check: autograd of the weighted total against the same landmarks.
    inspect = {}
    total, _ = trainer.objective(images, 3, torch.Generator().manual_seed(0), False, inspect=inspect)
    gradient, = torch.autograd.grad(total, inspect["landmarks"])
    assert norms["total"] == pytest.approx(float(gradient.flatten(1).norm(dim=1).mean()), rel=1e-4)
    # Doubling lambda_recon doubles the reconstruction's share and nothing else.
    config.loss.lambda_recon *= 2
    doubled = landmark_gradient_norms(trainer.objective, images, 3, torch.Generator().manual_seed(0))
    assert doubled["recon"] == pytest.approx(2 * norms["recon"], rel=1e-4)
    assert doubled["eqv"] == pytest.approx(norms["eqv"], rel=1e-5)


def test_gradient_norms_without_a_decoder_have_no_reconstruction_term(tmp_path):
    config = tiny_config(steps=1)
    config.loss.lambda_recon = 0.0
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    norms = landmark_gradient_norms(trainer.objective, trainer.dataset.images[:4], 0, torch.Generator())
    assert norms["recon"] == 0.0 and norms["eqv"] > 0


def test_decoder_coverage_per_sigma():
    corners = torch.tensor([[[0.1, 0.1], [0.9, 0.9]]])
    coverage = decoder_coverage(corners, (0.03,), 64, form="density")
    # A density above the background of 1 within d^2 < 2 s^2 ln(1 / (2 pi s^2)): two such discs.
    sigma = 0.03
    disc = np.pi * 2 * sigma**2 * np.log(1 / (2 * np.pi * sigma**2))
    assert coverage[0.03] == pytest.approx(2 * disc, rel=0.1)
    assert decoder_coverage(corners, (0.03,), 32, form="peak")[0.03] == 0.0


def test_nearest_annotated_points_by_hand():
    # Two images, 2 landmarks, 3 annotated points; side 10 px.
    annotated = np.array([[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], [[0.2, 0.1], [0.6, 0.5], [0.9, 0.1]]])
    discovered = np.array([[[0.5, 0.6], [0.9, 0.9]], [[0.6, 0.7], [0.9, 0.3]]])
    rows = nearest_annotated_points(discovered, annotated, side=10)
    assert [row["nearest"] for row in rows] == [1, 2]
    assert rows[0]["mean_px"] == pytest.approx(1.5) and rows[0]["std_px"] == pytest.approx(0.5)
    assert rows[1]["mean_px"] == pytest.approx(1.0) and rows[1]["std_px"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same n"):
        nearest_annotated_points(discovered[:1], annotated, side=10)
