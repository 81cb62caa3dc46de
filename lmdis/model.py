"""The landmark autoencoder of Sec. 3.1-3.4 (Figure 1): detector, descriptors, decoder.

Thin modules over the pure functions of :mod:`lmdis.geometry`: each holds its
parameters and calls them. Images enter in [0, 1] at ``image_size``; the
detector and the descriptor network run on the edge-padded ``padded_size``
frame (Table 6); landmarks are returned in the unpadded image's frame, in the
package convention (normalised ``(x, y)``, see :mod:`lmdis.geometry`). Every
entry point checks the shapes it is given (:func:`lmdis.shapes.check_shape`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from lmdis.geometry import (
    HEATMAP_FORMS,
    confidence_maps,
    decoder_heatmaps,
    gaussian_approximation,
    image_to_padded_frame,
    landmark_moments,
    pad_with_edges,
    padded_to_image_frame,
)
from lmdis.networks import Hourglass, HourglassConfig
from lmdis.shapes import check_shape


@dataclass
class ModelConfig:
    """Architecture (Sec. 3, Appendix G.2). Defaults: the paper's 80x80 K=10 model."""

    num_landmarks: int = 10
    channels: int = 3
    image_size: int = 80
    padded_size: int = 96
    detector: HourglassConfig = field(default_factory=lambda: HourglassConfig([32, 64, 64, 64], skip_depth=3))
    descriptor: HourglassConfig = field(default_factory=lambda: HourglassConfig([32, 64, 128, 256], skip_depth=3))
    decoder: HourglassConfig = field(default_factory=lambda: HourglassConfig([64, 128, 256, 512, 512], skip_depth=2))
    feature_channels: int = 64        # S of Eq. (9)
    descriptor_dim: int = 8           # C of Eq. (10), Table 7
    decoder_feature_channels: int = 64  # channels of F-tilde, Eq. (13)
    sigma_dec: tuple[float, ...] = (0.125, 0.177, 0.25, 0.354, 0.5)
    heatmap_form: str = "peak"        # units of Eq. (11): lmdis.geometry.decoder_heatmaps
    use_descriptors: bool = True      # False: the MNIST variant of Appendix B
    # Eq. (10) mask: "gaussian" (paper) or "softmax" (authors' code); level
    # on MTFL at 61k images, two seeds (docs/full_model_evidence.md).
    pooling: str = "gaussian"
    # Initial scale (batch-norm gamma) of the detector's raw scores R. With 1
    # (the usual init) the softmax maps start nearly flat and sharpen only as
    # gamma grows, which takes thousands of steps; short CPU runs start sharper.
    detector_output_gain: float = 1.0

    def __post_init__(self):
        for name in ("detector", "descriptor", "decoder"):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, HourglassConfig(**value))
        self.sigma_dec = tuple(self.sigma_dec)
        if self.pooling not in ("gaussian", "softmax"):
            raise ValueError(f"pooling must be 'gaussian' or 'softmax', got {self.pooling!r}")
        if self.heatmap_form not in HEATMAP_FORMS:
            raise ValueError(f"heatmap_form must be one of {HEATMAP_FORMS}, got {self.heatmap_form!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


@dataclass
class Detection:
    """What the detector finds in a batch of images.

    maps: D, (B, K+1, P, P) on the padded frame (last channel = background).
    landmarks: (B, K, 2) normalised (x, y) in the padded frame.
    variances: (B, K, 2) per-axis variances in the padded frame's units.
    """

    maps: torch.Tensor
    landmarks: torch.Tensor
    variances: torch.Tensor

    def rows(self, index: slice) -> "Detection":
        """The detection of the images ``index`` of the batch (a slice along B of all three tensors)."""
        return Detection(self.maps[index], self.landmarks[index], self.variances[index])


class Encoding(NamedTuple):
    """What the encoder gives for a batch, in both frames: the decoder's and the losses'.

    landmarks: (B, K, 2) normalised (x, y) in the unpadded image's frame,
        the frame the decoder draws in (Eq. 11).
    descriptors: (B, K+1, C), Eq. (10); None for a model without them (Appendix B).
    detection: the :class:`Detection` on the padded frame the detector and
        the landmark losses work in (maps, landmarks and variances there).
    """

    landmarks: torch.Tensor
    descriptors: torch.Tensor | None
    detection: Detection


class LandmarkDetector(nn.Module):
    """hourglass_l, Eq. (1)-(4): padded images (B, C, P, P) -> :class:`Detection`.

    >>> detection = LandmarkDetector(ModelConfig(num_landmarks=3, channels=1, detector=HourglassConfig([4, 8])))
    >>> found = detection(torch.rand(2, 1, 24, 24))
    >>> found.maps.shape, found.landmarks.shape, found.variances.shape
    (torch.Size([2, 4, 24, 24]), torch.Size([2, 3, 2]), torch.Size([2, 3, 2]))
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.channels = config.channels
        self.network = Hourglass(config.channels, config.num_landmarks + 1, config.detector, output_norm=True)
        nn.init.constant_(self.network.head[-1].weight, config.detector_output_gain)

    def forward(self, padded_images: torch.Tensor) -> Detection:
        check_shape(padded_images, "B, C, P, P", "padded_images", "LandmarkDetector", C=self.channels)
        raw_scores = self.network(padded_images)                       # (B, K+1, P, P), Eq. (1)
        maps = confidence_maps(raw_scores.float())                     # Eq. (2)
        landmarks, variances = landmark_moments(maps[:, :-1])          # Eq. (3)
        return Detection(maps, landmarks, variances)


def pooling_masks(detection: Detection, mode: str = "gaussian") -> torch.Tensor:
    """Soft masks for Eq. (10): (B, K+1, P, P), each summing to about one.

    ``gaussian``: D-bar_k of Eq. (6) for the landmarks and the exact
    normalised background D_{K+1} / zeta_{K+1}. ``softmax``: D_k / zeta_k for
    every channel (the authors' code).

    >>> maps = torch.full((1, 2, 4, 4), 0.5)                               # K = 1, flat
    >>> landmarks, variances = landmark_moments(maps[:, :1])
    >>> masks = pooling_masks(Detection(maps, landmarks, variances), "softmax")
    >>> masks.sum(dim=(2, 3)).tolist()
    [[1.0, 1.0]]
    """
    sizes = check_shape(detection.maps, "B, C, H, W", "detection.maps", "pooling_masks")
    check_shape(detection.landmarks, "B, K, 2", "detection.landmarks", "pooling_masks", B=sizes["B"],
                K=sizes["C"] - 1)
    check_shape(detection.variances, "B, K, 2", "detection.variances", "pooling_masks", B=sizes["B"],
                K=sizes["C"] - 1)
    maps = detection.maps
    normalised = maps / maps.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    if mode == "softmax":
        return normalised
    height, width = maps.shape[-2:]
    gaussians = gaussian_approximation(detection.landmarks, detection.variances, height, width)
    return torch.cat([gaussians, normalised[:, -1:]], dim=1)


class DescriptorExtractor(nn.Module):
    """hourglass_f and Eq. (9)-(10): per-landmark descriptors f, (B, K+1, C).

    Takes the padded images (B, C_in, P, P) and their :class:`Detection`.

    >>> config = ModelConfig(num_landmarks=3, channels=1, detector=HourglassConfig([4, 8]),
    ...                      descriptor=HourglassConfig([4, 8]), feature_channels=4, descriptor_dim=2)
    >>> padded = torch.rand(2, 1, 24, 24)
    >>> DescriptorExtractor(config)(padded, LandmarkDetector(config)(padded)).shape
    torch.Size([2, 4, 2])
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.channels, self.count = config.channels, config.num_landmarks + 1
        self.pooling = config.pooling
        self.network = Hourglass(config.channels, config.feature_channels, config.descriptor)
        count = config.num_landmarks + 1
        # Untied per-landmark linear maps W_k: S -> C (Eq. 10), one shared bias.
        self.projection = nn.Parameter(
            torch.randn(count, config.descriptor_dim, config.feature_channels) / config.feature_channels**0.5
        )
        self.bias = nn.Parameter(torch.zeros(config.descriptor_dim))

    def forward(self, padded_images: torch.Tensor, detection: Detection) -> torch.Tensor:
        sizes = check_shape(padded_images, "B, C, P, P", "padded_images", "DescriptorExtractor", C=self.channels)
        check_shape(detection.maps, "B, K+1, P, P", "detection.maps", "DescriptorExtractor",
                    **{"B": sizes["B"], "K+1": self.count, "P": sizes["P"]})
        features = self.network(padded_images).float()                         # F, (B, S, P, P)
        masks = pooling_masks(detection, self.pooling)                         # (B, K+1, P, P)
        pooled = torch.einsum("bkhw,bshw->bks", masks, features)               # (B, K+1, S)
        return torch.einsum("kcs,bks->bkc", self.projection, pooled) + self.bias  # (B, K+1, C)


class LandmarkDecoder(nn.Module):
    """Eq. (11)-(14): landmarks (+ descriptors) -> reconstructed image in (0, 1).

    For every sigma_dec the reconstructed map D-tilde (Eq. 11-12) and, with
    descriptors, the soft-unpooled features F-tilde (Eq. 13) are concatenated
    and decoded by hourglass_d with a sigmoid output (Eq. 14). Without
    descriptors (Appendix B) the decoder sees the maps only.

    >>> config = ModelConfig(num_landmarks=3, channels=1, image_size=16, decoder=HourglassConfig([4, 8]),
    ...                      use_descriptors=False, sigma_dec=(0.1, 0.2))
    >>> LandmarkDecoder(config)(torch.rand(2, 3, 2)).shape
    torch.Size([2, 1, 16, 16])
    >>> LandmarkDecoder(config)(torch.rand(2, 4, 2))
    Traceback (most recent call last):
        ...
    ValueError: LandmarkDecoder: landmarks must have shape (B, K=3, 2), got (2, 4, 2)
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        count = config.num_landmarks + 1
        per_sigma = count
        if config.use_descriptors:
            per_sigma += config.decoder_feature_channels
            # Untied per-landmark maps W-tilde_k: C -> S' (Eq. 13), one shared bias.
            self.unprojection = nn.Parameter(
                torch.randn(count, config.decoder_feature_channels, config.descriptor_dim) / config.descriptor_dim**0.5
            )
            self.bias = nn.Parameter(torch.zeros(config.decoder_feature_channels))
        self.network = Hourglass(per_sigma * len(config.sigma_dec), config.channels, config.decoder)

    def decoder_input(self, landmarks: torch.Tensor, descriptors: torch.Tensor | None) -> torch.Tensor:
        """The concatenation [D~^1, F~^1, ..., D~^M, F~^M] of Eq. (14): (B, M * (K+1 [+ S']), S, S).

        Args:
            landmarks: (B, K, 2) in the image frame.
            descriptors: (B, K+1, C) for a decoder with descriptors, else None.
        """
        return torch.cat(self.decoder_input_parts(landmarks, descriptors), dim=1)

    def decoder_input_parts(self, landmarks: torch.Tensor, descriptors: torch.Tensor | None) -> list[torch.Tensor]:
        """The parts of :meth:`decoder_input` before concatenation, in its order.

        Per sigma_dec: D~ (B, K+1, S, S) of Eq. (11)-(12), then, with
        descriptors, F~ (B, S', S, S) of Eq. (13).

        >>> config = ModelConfig(num_landmarks=3, channels=1, image_size=16, decoder=HourglassConfig([4, 8]),
        ...                      use_descriptors=False, sigma_dec=(0.1, 0.2))
        >>> [part.shape for part in LandmarkDecoder(config).decoder_input_parts(torch.rand(2, 3, 2), None)]
        [torch.Size([2, 4, 16, 16]), torch.Size([2, 4, 16, 16])]
        """
        size = self.config.image_size
        sizes = check_shape(landmarks, "B, K, 2", "landmarks", "LandmarkDecoder", K=self.config.num_landmarks)
        if self.config.use_descriptors:
            if descriptors is None:
                raise ValueError("this decoder uses landmark descriptors; pass them (or build with use_descriptors=False)")
            check_shape(descriptors, "B, K+1, C", "descriptors", "LandmarkDecoder",
                        **{"B": sizes["B"], "K+1": self.config.num_landmarks + 1, "C": self.config.descriptor_dim})
            codes = F.leaky_relu(
                torch.einsum("ksc,bkc->bks", self.unprojection, descriptors) + self.bias, 0.2
            )                                                                   # tau(W~_k f_k), (B, K+1, S')
        parts = []
        for sigma in self.config.sigma_dec:
            maps = decoder_heatmaps(landmarks, sigma, size, size, self.config.heatmap_form)  # D~, (B, K+1, S, S)
            parts.append(maps)
            if self.config.use_descriptors:
                parts.append(torch.einsum("bkhw,bks->bshw", maps, codes))      # F~, (B, S', S, S)
        return parts

    def forward(self, landmarks: torch.Tensor, descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """landmarks (B, K, 2) in the image frame -> images (B, C, S, S)."""
        return torch.sigmoid(self.network(self.decoder_input(landmarks, descriptors)).float())


class LandmarkAutoencoder(nn.Module):
    """The full model of Figure 1.

    ``detect`` gives landmarks of images; ``encode`` gives landmarks and
    descriptors; ``decode`` reconstructs from (possibly edited) landmarks.

    >>> small = HourglassConfig([4, 8], skip_depth=1)
    >>> model = LandmarkAutoencoder(ModelConfig(num_landmarks=3, channels=1, image_size=16, padded_size=24,
    ...                                         detector=small, descriptor=small, decoder=small, feature_channels=4,
    ...                                         decoder_feature_channels=4, descriptor_dim=2, sigma_dec=(0.2,))).eval()
    >>> model.detect(torch.rand(2, 1, 16, 16)).shape       # image frame
    torch.Size([2, 3, 2])
    >>> encoding = model.encode(torch.rand(2, 1, 16, 16))
    >>> encoding.landmarks.shape, encoding.descriptors.shape, encoding.detection.maps.shape
    (torch.Size([2, 3, 2]), torch.Size([2, 4, 2]), torch.Size([2, 4, 24, 24]))
    >>> model.decode(encoding.landmarks, encoding.descriptors).shape
    torch.Size([2, 1, 16, 16])
    >>> model.detect(torch.rand(2, 3, 16, 16))
    Traceback (most recent call last):
        ...
    ValueError: expected images of shape (B, 1, 16, 16), got (2, 3, 16, 16)
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.detector = LandmarkDetector(config)
        self.descriptor = DescriptorExtractor(config) if config.use_descriptors else None
        self.decoder = LandmarkDecoder(config)

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, C, P, P) edge-padded (Table 6); checks the input."""
        expected = (self.config.channels, self.config.image_size, self.config.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, expected))}), got {tuple(images.shape)}")
        return pad_with_edges(images, self.config.padded_size)

    def to_image_frame(self, points: torch.Tensor) -> torch.Tensor:
        return padded_to_image_frame(points, self.config.image_size, self.config.padded_size)

    def to_padded_frame(self, points: torch.Tensor) -> torch.Tensor:
        return image_to_padded_frame(points, self.config.image_size, self.config.padded_size)

    def detect(self, images: torch.Tensor) -> torch.Tensor:
        """Landmarks (B, K, 2) of images (B, C, S, S), in the image frame."""
        return self.to_image_frame(self.detector(self.pad(images)).landmarks)

    def encode(self, images: torch.Tensor, detection: Detection | None = None) -> Encoding:
        """The :class:`Encoding` of images (B, C, S, S): landmarks in both frames and descriptors.

        ``detection``: the detector's output on these images (padded), when
        it is already known (the training objective runs the detector on
        originals and warped copies together); otherwise it is computed here.
        """
        padded = self.pad(images)
        if detection is None:
            detection = self.detector(padded)
        descriptors = self.descriptor(padded, detection) if self.descriptor is not None else None
        return Encoding(self.to_image_frame(detection.landmarks), descriptors, detection)

    def decode(self, landmarks: torch.Tensor, descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, S, S) from landmarks (B, K, 2) in the image frame and descriptors (B, K+1, C) or None."""
        return self.decoder(landmarks, descriptors)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        encoding = self.encode(images)
        return self.decode(encoding.landmarks, encoding.descriptors)


# --------------------------------------------------------------------------- the shapes of Figure 1


class HourglassShapes(NamedTuple):
    """The tensors of one :class:`~lmdis.networks.Hourglass` forward pass, level by level (Figure 40).

    Level i works at 1 / 2^i of the input side; ``len(encoder) - 1`` poolings.

    input, output: (B, C_in, H, W) and (B, C_out, H, W) (after the 1x1 head).
    encoder: level i on the way down, (B, widths[i], H / 2^i, W / 2^i); level 0 is the stem.
    bottom: the lowest level after its own convolutions.
    skips: the skip branch of level i < L (added to the up-path), as encoder[i].
    decoder: level i < L on the way up, before its skip is added, as encoder[i].
    skip_depth, convs_per_level: 3x3 convolutions per skip branch and per level.
    """

    input: tuple[int, ...]
    encoder: tuple[tuple[int, ...], ...]
    bottom: tuple[int, ...]
    skips: tuple[tuple[int, ...], ...]
    decoder: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    skip_depth: int
    convs_per_level: int


class PipelineShapes(NamedTuple):
    """The shape of every tensor of Figure 1 in one forward pass, and of the hourglasses' levels.

    tensors: name -> shape, in the order of the forward pass: ``image`` I (B, C, S, S), ``padded``
        (B, C, P, P) (Table 6), ``raw_scores`` R (Eq. 1) and ``maps`` D (Eq. 2), (B, K+1, P, P),
        ``landmarks`` and ``variances`` (Eq. 3-4), (B, K, 2) in the padded frame, ``features`` F (Eq. 9),
        ``masks`` (Eq. 6, 10), ``descriptors`` f (Eq. 10), (B, K+1, C), ``heatmaps`` D~ (Eq. 11-12) and
        ``unpooled`` F~ (Eq. 13), each ONE sigma_dec's part (there are M of each), ``decoder_input``
        (Eq. 14) and ``reconstruction`` I~ (B, C, S, S). Without descriptors (Appendix B) features,
        masks, descriptors and unpooled are absent.
    hourglasses: ``detector`` (hourglass_l), ``descriptor`` (hourglass_f, with descriptors) and
        ``decoder`` (hourglass_d) -> :class:`HourglassShapes`.
    config: the :class:`ModelConfig` they come from.
    """

    tensors: dict[str, tuple[int, ...]]
    hourglasses: dict[str, HourglassShapes]
    config: ModelConfig


def _hourglass_hooks(network: Hourglass, record: dict) -> list:
    """Forward hooks that write the shapes of ``network``'s levels into ``record``; returns their handles."""
    def keep(key, index=0):
        def hook(module, inputs, output):
            record[key, index] = tuple(output.shape)
        return hook

    def keep_input(module, inputs):
        record["input", 0] = tuple(inputs[0].shape)

    handles = [network.register_forward_pre_hook(keep_input), network.stem.register_forward_hook(keep("encoder")),
               network.bottom.register_forward_hook(keep("bottom")), network.head.register_forward_hook(keep("output"))]
    for level in range(network.levels):
        handles += [network.down[level].register_forward_hook(keep("encoder", level + 1)),
                    network.skips[level].register_forward_hook(keep("skips", level)),
                    network.up[level].register_forward_hook(keep("decoder", level))]
    return handles


def _hourglass_shapes(network: Hourglass, record: dict) -> HourglassShapes:
    def levels(key, count):
        return tuple(record[key, level] for level in range(count))

    return HourglassShapes(record["input", 0], levels("encoder", network.levels + 1), record["bottom", 0],
                           levels("skips", network.levels), levels("decoder", network.levels), record["output", 0],
                           len(network.skips[0]) if network.levels else 0, len(network.stem))


def pipeline_shapes(config: ModelConfig, batch_size: int = 2) -> PipelineShapes:
    """Build the model of ``config`` and read every shape of Figure 1 off one forward pass.

    The model runs (eval mode, no gradients) on a batch of zero images;
    forward hooks on the three hourglasses record their levels, so the
    shapes are those the code produces, not a second account of them.
    :func:`lmdis.plotting.pipeline_figure` and ``hourglass_figure`` draw them.

    >>> small = HourglassConfig([4, 8], skip_depth=1)
    >>> shapes = pipeline_shapes(ModelConfig(num_landmarks=3, channels=1, image_size=16, padded_size=24,
    ...                                      detector=small, descriptor=small, decoder=small, feature_channels=4,
    ...                                      decoder_feature_channels=4, descriptor_dim=2, sigma_dec=(0.2,)))
    >>> shapes.tensors["maps"], shapes.tensors["descriptors"], shapes.tensors["decoder_input"]
    ((2, 4, 24, 24), (2, 4, 2), (2, 8, 16, 16))
    >>> [level[2] for level in shapes.hourglasses["detector"].encoder]     # sides: one pooling
    [24, 12]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"pipeline_shapes: batch_size must be a positive integer, got {batch_size!r}")
    model = LandmarkAutoencoder(config).eval()
    networks = {"detector": model.detector.network, "decoder": model.decoder.network}
    if model.descriptor is not None:
        networks["descriptor"] = model.descriptor.network
    records = {name: {} for name in networks}
    handles = [handle for name, network in networks.items() for handle in _hourglass_hooks(network, records[name])]
    images = torch.zeros(batch_size, config.channels, config.image_size, config.image_size)
    try:
        with torch.no_grad():
            encoding = model.encode(images)
            parts = model.decoder.decoder_input_parts(encoding.landmarks, encoding.descriptors)
            reconstruction = model.decode(encoding.landmarks, encoding.descriptors)
    finally:
        for handle in handles:
            handle.remove()
    detection = encoding.detection
    tensors = {"image": tuple(images.shape), "padded": records["detector"]["input", 0],
               "raw_scores": records["detector"]["output", 0], "maps": tuple(detection.maps.shape),
               "landmarks": tuple(detection.landmarks.shape), "variances": tuple(detection.variances.shape)}
    if model.descriptor is not None:
        tensors["features"] = records["descriptor"]["output", 0]
        tensors["masks"] = tuple(pooling_masks(detection, config.pooling).shape)
        tensors["descriptors"] = tuple(encoding.descriptors.shape)
    tensors["heatmaps"] = tuple(parts[0].shape)
    if model.descriptor is not None:
        tensors["unpooled"] = tuple(parts[1].shape)
    tensors["decoder_input"] = records["decoder"]["input", 0]
    tensors["reconstruction"] = tuple(reconstruction.shape)
    order = ("detector", "descriptor", "decoder")
    hourglasses = {name: _hourglass_shapes(networks[name], records[name]) for name in order if name in networks}
    return PipelineShapes(tensors, hourglasses, config)
