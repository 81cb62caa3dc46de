"""Hourglass-style networks of Appendix G.2 (Figure 40), one configurable builder.

An hourglass has a mirrored encoder (max-pool 2x2 down) and decoder (nearest
x2 up); at every resolution a skip-link of 3x3 convolutions is ADDED to the
decoder's features. Every convolution is followed by batch normalisation and
LeakyReLU(0.2), except the final 1x1 output layer. ``hourglass_l`` (detector),
``hourglass_f`` (descriptor features) and ``hourglass_d`` (image decoder) are
instances of :class:`Hourglass` with different widths and skip depths.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

from lmdis.shapes import check_shape


PADDING_MODES = ("zeros", "replicate", "reflect")


@dataclass
class HourglassConfig:
    """Shape of one hourglass.

    ``widths[0]`` is the full-resolution width; each further entry adds one
    pooling level with that width, so ``len(widths) - 1`` poolings. The input
    side must be divisible by ``2 ** (len(widths) - 1)``.
    """

    widths: list[int] = field(default_factory=lambda: [32, 64, 64, 64])
    skip_depth: int = 3
    convs_per_level: int = 1
    # Border handling of every 3x3 convolution: "zeros" (the paper's 'same'
    # convolutions) or "replicate" / "reflect". Zero padding tells the
    # network where the frame is, so landmarks can anchor to the frame; but
    # it also breaks the symmetry between the K maps early on: with
    # "replicate" in the detector the MTFL landmarks bunched and the NME got
    # worse: 32 % at 1,400 steps against 25 % (docs/presets.md).
    padding_mode: str = "zeros"

    def __post_init__(self):
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")


def conv_block(in_channels: int, out_channels: int, padding_mode: str = "zeros") -> nn.Sequential:
    """3x3 'same' convolution, batch norm, LeakyReLU(0.2): (B, in, H, W) -> (B, out, H, W).

    >>> conv_block(3, 8)(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 8, 16, 16])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


def conv_stack(in_channels: int, out_channels: int, depth: int, padding_mode: str = "zeros") -> nn.Sequential:
    """``depth`` conv blocks, the first changing the width.

    >>> len(conv_stack(3, 8, depth=2))
    2
    """
    layers = [conv_block(in_channels, out_channels, padding_mode)]
    layers += [conv_block(out_channels, out_channels, padding_mode) for _ in range(depth - 1)]
    return nn.Sequential(*layers)


class Hourglass(nn.Module):
    """in (B, C_in, H, W) -> out (B, C_out, H, W).

    The output layer is a 1x1 convolution; ``output_norm`` adds batch norm on
    it (the detector's raw scores R of Eq. 1, as in the authors' code).

    >>> hourglass = Hourglass(3, 11, HourglassConfig([8, 16, 16], skip_depth=1))   # two poolings
    >>> hourglass(torch.rand(2, 3, 24, 24)).shape
    torch.Size([2, 11, 24, 24])
    >>> hourglass(torch.rand(2, 1, 24, 24))
    Traceback (most recent call last):
        ...
    ValueError: Hourglass: images must have shape (B, C=3, H, W), got (2, 1, 24, 24)
    """

    def __init__(self, in_channels: int, out_channels: int, config: HourglassConfig, output_norm: bool = False):
        super().__init__()
        self.in_channels = in_channels
        widths, depth, mode = config.widths, config.convs_per_level, config.padding_mode
        self.levels = len(widths) - 1
        self.stem = conv_stack(in_channels, widths[0], depth, mode)
        self.down = nn.ModuleList(conv_stack(widths[i], widths[i + 1], depth, mode) for i in range(self.levels))
        self.bottom = conv_stack(widths[-1], widths[-1], depth, mode)
        self.up = nn.ModuleList(conv_stack(widths[i + 1], widths[i], depth, mode) for i in range(self.levels))
        self.skips = nn.ModuleList(conv_stack(widths[i], widths[i], config.skip_depth, mode) for i in range(self.levels))
        head = [nn.Conv2d(widths[0], out_channels, 1, bias=not output_norm)]
        if output_norm:
            head.append(nn.BatchNorm2d(out_channels))
        self.head = nn.Sequential(*head)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_shape(images, "B, C, H, W", "images", "Hourglass", C=self.in_channels)
        side = 2**self.levels
        if images.shape[-1] % side or images.shape[-2] % side:
            raise ValueError(
                f"hourglass with {self.levels} poolings needs sides divisible by {side}, got {tuple(images.shape[-2:])}"
            )
        features = self.stem(images)
        encoded = []
        for down in self.down:
            encoded.append(features)
            features = down(F.max_pool2d(features, 2))
        features = self.bottom(features)
        for level in reversed(range(self.levels)):
            features = self.up[level](F.interpolate(features, scale_factor=2, mode="nearest"))
            features = features + self.skips[level](encoded[level])
        return self.head(features)
