"""What shapes the landmarks during training (not in the paper).

Two measurements of one batch, used by ``benchmarks/landmark_gradients.py``:

- :func:`landmark_gradient_norms`: the gradient that each weighted term of
  Eq. (15) sends to the detector's landmark coordinates (Eq. 3), the first
  place where the terms compete for the same numbers;
- :func:`decoder_coverage`: the share of the decoder's input pixels that the
  landmark channels own (Eq. 11-12), per sigma_dec: near 1 the heatmaps tile
  the frame, near the landmarks' own area they mark points.

And :func:`nearest_annotated_points`, which says whether discovered landmarks
are parts: for each landmark, the annotated point it sits closest to and how
far, over a set of faces.
"""
from __future__ import annotations

import numpy as np
import torch

from lmdis.geometry import decoder_heatmaps, heatmap_coverage
from lmdis.train import LOSS_TERMS, term_weights

TERM_NAMES = LOSS_TERMS


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
    for term in (*TERM_NAMES, "total"):
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


def nearest_annotated_points(discovered: np.ndarray, annotated: np.ndarray, side: float) -> list[dict]:
    """For each discovered landmark, its nearest annotated point on average, and how far.

    Args:
        discovered: (n, K, 2) normalised landmarks; annotated: (n, M, 2) normalised points.
        side: the image side in pixels the distances are reported in.
    Returns:
        K dicts: ``landmark``, ``nearest`` (index into the M points), ``mean_px``
        and ``std_px`` of that distance over the n images, and ``mean_px_all``
        (the mean distance to each of the M points, for context).
    """
    discovered = np.asarray(discovered, np.float64)
    annotated = np.asarray(annotated, np.float64)
    if discovered.ndim != 3 or annotated.ndim != 3 or discovered.shape[0] != annotated.shape[0] \
            or discovered.shape[2] != 2 or annotated.shape[2] != 2:
        raise ValueError(f"expected discovered (n, K, 2) and annotated (n, M, 2) for the same n, got "
                         f"{discovered.shape} and {annotated.shape}")
    distance = np.linalg.norm(discovered[:, :, None, :] - annotated[:, None, :, :], axis=-1) * side  # (n, K, M)
    mean = distance.mean(axis=0)                                                                    # (K, M)
    rows = []
    for k in range(discovered.shape[1]):
        nearest = int(mean[k].argmin())
        rows.append({"landmark": k, "nearest": nearest, "mean_px": float(mean[k, nearest]),
                     "std_px": float(distance[:, k, nearest].std()), "mean_px_all": mean[k].tolist()})
    return rows
