"""What shapes the landmarks during training (not in the paper), and how they form.

Two measurements of one batch, used by ``benchmarks/landmark_gradients.py``:

- :func:`landmark_gradient_norms`: the gradient that each weighted term of
  Eq. (15) sends to the detector's landmark coordinates (Eq. 3), the first
  place where the terms compete for the same numbers;
- :func:`decoder_coverage`: the share of the decoder's input pixels that the
  landmark channels own (Eq. 11-12), per sigma_dec: near 1 the heatmaps tile
  the frame, near the landmarks' own area they mark points.

And :class:`ConfidenceMapRecorder`, a :class:`~lmdis.train.Trainer` callback
that keeps the confidence maps D (Eq. 2) of fixed images at chosen steps
(Appendix F.2, Figure 39; :func:`lmdis.plotting.confidence_map_figure`
draws them). Measurements of a trained detector are in
:mod:`lmdis.evaluate.diagnostics`.
"""
from __future__ import annotations

import torch

from lmdis.geometry import decoder_heatmaps, heatmap_coverage
from lmdis.losses import LOSS_TERMS
from lmdis.train import Trainer, term_weights


def landmark_gradient_norms(objective, images: torch.Tensor, step: int, generator: torch.Generator,
                            use_landmark_tps: bool = False) -> dict[str, float]:
    """Norm of d(lambda_t L_t) / d(landmarks) and / d(maps) for every term t of Eq. (15).

    ``{term}``: against the landmarks (Eq. 3) of the original images, (B, K, 2)
    in the detector's frame; ``{term}_warped``: against those of the warped
    copies; ``{term}_maps``: against the confidence maps D (Eq. 2) of both.
    Concentration acts on the spread of the maps, not on their means, so its
    landmark gradient is zero by construction and its map gradient is not.
    Each norm is the mean over images of the per-image Frobenius norm, in loss
    units per unit of the tensor; ``total*`` is the norm of the sum (not the
    sum of the norms).

    Args:
        objective: a :class:`lmdis.train.LandmarkObjective`.
        images: (B, C, L, L) training images as the loader gives them.
        step: schedule position (sets lambda_recon).
        generator: random stream for the warp (use a separate one: training's is untouched).
    Returns:
        floats keyed ``recon``, ``recon_warped``, ``recon_maps``, ..., ``total``,
        ``total_warped``, ``total_maps``.
    """
    inspect: dict = {}
    _, terms = objective(images, step, generator, use_landmark_tps, inspect=inspect)
    weights = term_weights(objective.config, step)
    landmarks = [inspect["landmarks"], inspect["warped_landmarks"]]
    tensors = landmarks + list(inspect["maps"])
    totals = [torch.zeros_like(t) for t in tensors]
    norms: dict[str, float] = {}
    for term in (*LOSS_TERMS, "total"):
        if term == "total":
            gradients = totals
        else:
            weighted = weights[term] * terms[term]
            found = (torch.autograd.grad(weighted, tensors, retain_graph=True, allow_unused=True)
                     if weighted.requires_grad else [None] * len(tensors))
            gradients = [torch.zeros_like(t) if g is None else g for g, t in zip(found, tensors)]
            totals = [a + g for a, g in zip(totals, gradients)]
        norms[term] = float(gradients[0].flatten(1).norm(dim=1).mean())
        norms[f"{term}_warped"] = float(gradients[1].flatten(1).norm(dim=1).mean())
        # One (2B, ...) tensor with the joint pass, two (B, ...) without: 2B rows either way.
        norms[f"{term}_maps"] = float(torch.cat(gradients[2:]).flatten(1).norm(dim=1).mean())
    return norms


@torch.no_grad()
def decoder_coverage(landmarks: torch.Tensor, sigmas, size: int, form: str = "peak") -> dict[float, float]:
    """Mean share of pixels owned by landmark channels (background < 1/2) per sigma_dec.

    Args:
        landmarks: (B, K, 2) normalised (x, y) in the decoder's frame.
        sigmas: the sigma_dec levels; size: the decoder's side; form: Eq. (11)'s units.
    """
    return {float(sigma): float(heatmap_coverage(decoder_heatmaps(landmarks, sigma, size, size, form)).mean())
            for sigma in sigmas}


class ConfidenceMapRecorder:
    """Trainer callback: the confidence maps D of fixed images at chosen steps (Figure 39).

    ``recorder.attach(trainer)`` records step 0 (when the trainer is there)
    and registers itself for ``"on_step_end"``; afterwards ``maps[step]`` is
    (B, K+1, P, P) on the padded frame (last channel = background),
    ``landmarks[step]`` (B, K, 2) in the image frame and ``variances[step]``
    (B, K, 2) the per-axis variances in the padded frame. The maps are taken
    in eval mode, with the batch-norm running averages of that moment.
    """

    def __init__(self, images: torch.Tensor, steps):
        self.images = images
        self.steps = sorted(set(int(step) for step in steps))
        self.maps: dict[int, torch.Tensor] = {}
        self.landmarks: dict[int, torch.Tensor] = {}
        self.variances: dict[int, torch.Tensor] = {}

    def attach(self, trainer: Trainer) -> "ConfidenceMapRecorder":
        if trainer.step in self.steps:
            self.record(trainer.model, trainer.step)
        trainer.add_callback("on_step_end", self)
        return self

    @torch.no_grad()
    def record(self, model, step: int) -> None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        detection = model.detector(model.pad(self.images.to(device)))
        self.maps[step] = detection.maps.cpu()
        self.landmarks[step] = model.to_image_frame(detection.landmarks).cpu()
        self.variances[step] = detection.variances.cpu()
        model.train(was_training)

    def __call__(self, trainer: Trainer, terms: dict) -> None:
        if trainer.step in self.steps:
            self.record(trainer.model, trainer.step)
