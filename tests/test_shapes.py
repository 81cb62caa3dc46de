"""Bad input to the math core: each entry point names the argument, the shape it got and the one it expects."""
from __future__ import annotations

import re

import pytest
import torch

from lmdis.geometry import (confidence_maps, decoder_heatmaps, gaussian_approximation, gaussian_maps,
                            heatmap_coverage, landmark_moments, pad_with_edges, padded_to_image_frame)
from lmdis.losses import concentration_loss, equivariance_loss, reconstruction_loss, separation_loss
from lmdis.model import Detection, DescriptorExtractor, LandmarkDecoder, LandmarkDetector, ModelConfig, pooling_masks
from lmdis.networks import Hourglass, HourglassConfig
from lmdis.shapes import check_shape
from lmdis.tps import (RandomTransform, TransformConfig, apply_transform, evaluate_tps, fit_tps, regular_grid_points,
                       sample_random_transform, warp_images)

SMALL = ModelConfig(num_landmarks=3, channels=1, image_size=16, padded_size=24, detector=HourglassConfig([4, 8]),
                    descriptor=HourglassConfig([4, 8]), decoder=HourglassConfig([4, 8]), feature_channels=4,
                    decoder_feature_channels=4, descriptor_dim=2, sigma_dec=(0.2,))


def identity_spline(batch: int):
    """(control, weights, affine) of the identity thin-plate spline on a 3x3 grid."""
    control = regular_grid_points(3).expand(batch, -1, -1)
    return (control, *fit_tps(control, control))


def identity(batch: int) -> RandomTransform:
    return RandomTransform(*identity_spline(batch), angle=torch.zeros(batch), scale=torch.ones(batch),
                           translation=torch.zeros(batch, 2))


def flat_detection(batch: int, channels: int, side: int) -> Detection:
    maps = torch.full((batch, channels, side, side), 1 / channels)
    return Detection(maps, *landmark_moments(maps[:, :-1]))


CASES = {
    "confidence_maps": (lambda: confidence_maps(torch.zeros(2, 3)),
                        "confidence_maps: raw_scores must have shape (B, C, H, W), got (2, 3)"),
    "landmark_moments": (lambda: landmark_moments(torch.zeros(3, 4, 4)),
                         "landmark_moments: maps must have shape (B, K, H, W), got (3, 4, 4)"),
    "gaussian_maps": (lambda: gaussian_maps(torch.zeros(1, 2, 3), 0.1, 4, 4),
                      "gaussian_maps: centres must have shape (B, K, 2), got (1, 2, 3)"),
    "gaussian_maps sigma": (lambda: gaussian_maps(torch.zeros(1, 2, 2), torch.ones(1, 3), 4, 4),
                            "gaussian_maps: sigma must have shape (B=1, K=2), got (1, 3)"),
    "gaussian_approximation": (lambda: gaussian_approximation(torch.zeros(1, 2, 2), torch.zeros(1, 3, 2), 4, 4),
                               "gaussian_approximation: variances must have shape (B=1, K=2, 2), got (1, 3, 2)"),
    "decoder_heatmaps": (lambda: decoder_heatmaps(torch.zeros(3, 2), 0.1, 4, 4),
                         "decoder_heatmaps: landmarks must have shape (B, K, 2), got (3, 2)"),
    "heatmap_coverage": (lambda: heatmap_coverage(torch.zeros(2, 4, 4)),
                         "heatmap_coverage: heatmaps must have shape (B, C, H, W), got (2, 4, 4)"),
    "pad_with_edges": (lambda: pad_with_edges(torch.zeros(1, 1, 4, 6), 8),
                       "pad_with_edges: images must have shape (B, C, S, S), got (1, 1, 4, 6)"),
    "padded_to_image_frame": (lambda: padded_to_image_frame(torch.zeros(3), 80, 96),
                              "padded_to_image_frame: points must have shape (..., 2), got (3,)"),
    "concentration_loss": (lambda: concentration_loss(torch.zeros(2, 3)),
                           "concentration_loss: variances must have shape (B, K, 2), got (2, 3)"),
    "separation_loss": (lambda: separation_loss(torch.zeros(2, 3, 3), 0.1),
                        "separation_loss: landmarks must have shape (B, K, 2), got (2, 3, 3)"),
    "equivariance_loss": (lambda: equivariance_loss(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2)),
                          "equivariance_loss: landmarks must have shape (B=2, K=3, 2), got (2, 4, 2)"),
    "reconstruction_loss": (lambda: reconstruction_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5)),
                            "reconstruction_loss: reconstructions must have shape (B=1, C=1, H=4, W=4), "
                            "got (1, 1, 4, 5)"),
    "fit_tps": (lambda: fit_tps(torch.zeros(1, 4, 2), torch.zeros(1, 5, 2)),
                "fit_tps: targets must have shape (B=1, N=4, 2), got (1, 5, 2)"),
    "evaluate_tps": (lambda: evaluate_tps(torch.zeros(2, 5, 2), *identity_spline(1)),
                     "evaluate_tps: points must have shape (B=1, M, 2), got (2, 5, 2)"),
    "apply_transform": (lambda: apply_transform(torch.zeros(2, 5, 2), identity(1)),
                        "apply_transform: points must have shape (B=1, M, 2), got (2, 5, 2)"),
    "warp_images": (lambda: warp_images(torch.zeros(2, 1, 4, 4), identity(1)),
                    "warp_images: images must have shape (B=1, C, H, W), got (2, 1, 4, 4)"),
    "sample_random_transform": (lambda: sample_random_transform(2, TransformConfig(), torch.Generator(),
                                                                landmarks=torch.zeros(3, 4, 2)),
                                "sample_random_transform: landmarks must have shape (B=2, K, 2), got (3, 4, 2)"),
    "Hourglass": (lambda: Hourglass(3, 2, HourglassConfig([4, 8]))(torch.zeros(1, 1, 8, 8)),
                  "Hourglass: images must have shape (B, C=3, H, W), got (1, 1, 8, 8)"),
    "LandmarkDetector": (lambda: LandmarkDetector(SMALL)(torch.zeros(1, 3, 24, 24)),
                         "LandmarkDetector: padded_images must have shape (B, C=1, P, P), got (1, 3, 24, 24)"),
    "pooling_masks": (lambda: pooling_masks(Detection(torch.zeros(1, 4, 6, 6), torch.zeros(1, 2, 2),
                                                      torch.zeros(1, 2, 2))),
                      "pooling_masks: detection.landmarks must have shape (B=1, K=3, 2), got (1, 2, 2)"),
    "DescriptorExtractor": (lambda: DescriptorExtractor(SMALL)(torch.zeros(1, 1, 24, 24), flat_detection(1, 3, 24)),
                            "DescriptorExtractor: detection.maps must have shape (B=1, K+1=4, P=24, P=24), "
                            "got (1, 3, 24, 24)"),
    "LandmarkDecoder": (lambda: LandmarkDecoder(SMALL)(torch.zeros(1, 3, 2), torch.zeros(1, 4, 3)),
                        "LandmarkDecoder: descriptors must have shape (B=1, K+1=4, C=2), got (1, 4, 3)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_shape_names_the_function_the_argument_and_both_shapes(case):
    call, message = CASES[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_check_shape_binds_letters_and_reads_leading_dimensions():
    assert check_shape(torch.zeros(2, 5, 5), "B, S, S", "x", "f") == {"B": 2, "S": 5}
    with pytest.raises(ValueError, match=r"f: x must have shape \(B, S, S\), got \(2, 5, 4\)"):
        check_shape(torch.zeros(2, 5, 4), "B, S, S", "x", "f")
    assert check_shape(torch.zeros(7, 3, 2), "..., 2", "x", "f") == {}
    assert check_shape(torch.zeros(2), "..., 2", "x", "f") == {}
    with pytest.raises(TypeError, match=r"f: x must be a tensor of shape \(B, 2\), got list"):
        check_shape([[0.0, 0.0]], "B, 2", "x", "f")
