"""What shapes the landmarks during training (not in the paper), and how they form.

Three measurements of one batch, used by ``benchmarks/landmark_gradients.py``:

- :func:`landmark_gradient_norms`: the gradient that each weighted term of
  Eq. (15) sends to the detector's landmark coordinates (Eq. 3), the first
  place where the terms compete for the same numbers;
- :func:`landmark_gradient_drift`: the part of that gradient which is the
  same under every draw of the warp, the push that persists over steps;
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


def _term_gradients(objective, images: torch.Tensor, step: int, generator: torch.Generator,
                    use_landmark_tps: bool) -> tuple[dict[str, list[torch.Tensor]], list[torch.Tensor]]:
    """Gradient of every weighted term of Eq. (15), and of their sum, on [landmarks, warped landmarks, *maps]."""
    inspect: dict = {}
    _, terms = objective(images, step, generator, use_landmark_tps, inspect=inspect)
    weights = term_weights(objective.config, step)
    tensors = [inspect["landmarks"], inspect["warped_landmarks"], *inspect["maps"]]
    totals = [torch.zeros_like(t) for t in tensors]
    gradients: dict[str, list[torch.Tensor]] = {}
    for term in LOSS_TERMS:
        weighted = weights[term] * terms[term]
        found = (torch.autograd.grad(weighted, tensors, retain_graph=True, allow_unused=True)
                 if weighted.requires_grad else [None] * len(tensors))
        gradients[term] = [torch.zeros_like(t) if g is None else g for g, t in zip(found, tensors)]
        totals = [a + g for a, g in zip(totals, gradients[term])]
    gradients["total"] = totals
    return gradients, tensors


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
    gradients, _ = _term_gradients(objective, images, step, generator, use_landmark_tps)
    norms: dict[str, float] = {}
    for term, (original, warped, *maps) in gradients.items():
        norms[term] = float(original.flatten(1).norm(dim=1).mean())
        norms[f"{term}_warped"] = float(warped.flatten(1).norm(dim=1).mean())
        # One ((1 + W) B, ...) tensor with the joint pass (W = train.warps_per_image), else B and W B rows.
        norms[f"{term}_maps"] = float(torch.cat(maps).flatten(1).norm(dim=1).mean())
    return norms


def landmark_gradient_drift(objective, images: torch.Tensor, step: int, generator: torch.Generator,
                            draws: int = 8, use_landmark_tps: bool = False) -> dict[str, float]:
    """How much of each term's landmark gradient is systematic: the same under every draw of the warp.

    For each term t of Eq. (15) and each image, the gradient g_t of
    lambda_t L_t on the original image's landmarks is taken under ``draws``
    independent warps. ``{term}``: the mean over images of the norm of the
    mean gradient over the draws, the push that persists from step to step
    on that image; ``{term}_per_draw``: the mean over images and draws of
    ||g_t||, what :func:`landmark_gradient_norms` reports. Their ratio is 1
    for a gradient that no warp changes (reconstruction of the original)
    and about 1 / sqrt(draws) for one that is pure warp noise with zero mean.

    Returns:
        floats keyed ``recon``, ``recon_per_draw``, ..., ``total_per_draw``.
    """
    if draws < 2:
        raise ValueError(f"the drift needs at least 2 draws of the warp, got {draws}")
    sums: dict[str, torch.Tensor] = {}
    per_draw: dict[str, float] = {}
    for _ in range(draws):
        gradients, _ = _term_gradients(objective, images, step, generator, use_landmark_tps)
        for term, (original, *_) in gradients.items():
            sums[term] = sums.get(term, 0) + original.detach() / draws
            per_draw[term] = per_draw.get(term, 0.0) + float(original.flatten(1).norm(dim=1).mean()) / draws
    drift = {term: float(mean.flatten(1).norm(dim=1).mean()) for term, mean in sums.items()}
    return {**drift, **{f"{term}_per_draw": value for term, value in per_draw.items()}}


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
