"""lmdis.diagnostics: per-term landmark gradients, decoder coverage, confidence maps recorded during training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmdis.diagnostics import (ConfidenceMapRecorder, decoder_coverage, landmark_gradient_drift,
                               landmark_gradient_norms)
from lmdis.train import Trainer

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


def test_gradient_drift_is_the_norm_of_the_mean_gradient_over_warps(tmp_path):
    """Against autograd run draw by draw: the drift keeps what the warps share, the per-draw norm all of it."""
    config = tiny_config(steps=1)
    config.train.joint_detector_pass = False          # the originals' pass then never sees a warp
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    images = trainer.dataset.images[:4]
    drift = landmark_gradient_drift(trainer.objective, images, 3, torch.Generator().manual_seed(5), draws=3)
    generator = torch.Generator().manual_seed(5)
    by_draw = {"recon": [], "eqv": []}
    for _ in range(3):
        inspect = {}
        _, terms = trainer.objective(images, 3, generator, False, inspect=inspect)
        for term, weight in (("recon", config.loss.lambda_recon * 10), ("eqv", config.loss.lambda_eqv)):
            gradient, = torch.autograd.grad(weight * terms[term], inspect["landmarks"], retain_graph=True)
            by_draw[term].append(gradient.flatten(1))
    for term, gradients in by_draw.items():
        mean_norm = torch.stack(gradients).mean(0).norm(dim=1).mean()
        assert drift[term] == pytest.approx(float(mean_norm), rel=1e-4)
        per_draw = torch.stack([g.norm(dim=1).mean() for g in gradients]).mean()
        assert drift[f"{term}_per_draw"] == pytest.approx(float(per_draw), rel=1e-4)
    # The reconstruction of the originals is the same under every warp; equivariance is not.
    assert drift["recon"] == pytest.approx(drift["recon_per_draw"], rel=1e-4)
    assert drift["eqv"] < 0.95 * drift["eqv_per_draw"]
    with pytest.raises(ValueError, match="at least 2 draws"):
        landmark_gradient_drift(trainer.objective, images, 3, torch.Generator(), draws=1)


def test_decoder_coverage_per_sigma():
    corners = torch.tensor([[[0.1, 0.1], [0.9, 0.9]]])
    coverage = decoder_coverage(corners, (0.03,), 64, form="density")
    # A density above the background of 1 within d^2 < 2 s^2 ln(1 / (2 pi s^2)): two such discs.
    sigma = 0.03
    disc = np.pi * 2 * sigma**2 * np.log(1 / (2 * np.pi * sigma**2))
    assert coverage[0.03] == pytest.approx(2 * disc, rel=0.1)
    assert decoder_coverage(corners, (0.03,), 32, form="peak")[0.03] == 0.0


def test_confidence_map_recorder_keeps_the_chosen_steps(tmp_path):
    config = tiny_config(steps=3)
    config.train.checkpoint_every = 3
    trainer = Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False, log=lambda line: None)
    images = RandomImages().images[:2]
    recorder = ConfidenceMapRecorder(images, steps=[0, 2]).attach(trainer)
    trainer.fit()
    assert sorted(recorder.maps) == [0, 2]
    assert recorder.maps[0].shape == (2, 4, 24, 24) and recorder.landmarks[2].shape == (2, 3, 2)
    assert torch.allclose(recorder.maps[2].sum(dim=1), torch.ones(2, 24, 24), atol=1e-5)
    assert not torch.equal(recorder.maps[0], recorder.maps[2]), "training must change the maps"
    assert math.isfinite(float(recorder.landmarks[2].sum()))
