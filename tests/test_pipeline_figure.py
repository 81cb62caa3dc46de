"""Figure 1 with real shapes: lmdis.model.pipeline_shapes against a forward pass, and the figures that draw it.

The oracle for every shape is the model run by hand, call by call, on a
batch of random images; the hourglass levels are checked against the sizes
the config implies (a pooling halves the side). Figures run headless (the
conftest selects Agg).
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lmdis.config import preset
from lmdis.model import LandmarkAutoencoder, pipeline_shapes
from lmdis.plotting import equivariance_figure, gradient_arrows, hourglass_figure, pipeline_figure

PRESETS = ("mtfl-cpu", "mnist-cpu")


def forward_by_hand(config, batch: int) -> dict[str, tuple[int, ...]]:
    """The shapes of Figure 1's tensors, from calling the model's parts one by one."""
    torch.manual_seed(0)
    model = LandmarkAutoencoder(config).eval()
    images = torch.rand(batch, config.channels, config.image_size, config.image_size)
    with torch.no_grad():
        padded = model.pad(images)
        encoding = model.encode(images)
        shapes = {"image": images.shape, "padded": padded.shape, "raw_scores": model.detector.network(padded).shape,
                  "maps": encoding.detection.maps.shape, "landmarks": encoding.detection.landmarks.shape,
                  "variances": encoding.detection.variances.shape}
        if config.use_descriptors:
            shapes["features"] = model.descriptor.network(padded).shape
            shapes["masks"] = encoding.detection.maps.shape          # one mask per channel of D, Eq. (10)
            shapes["descriptors"] = encoding.descriptors.shape
        decoder_input = model.decoder.decoder_input(encoding.landmarks, encoding.descriptors)
        side = config.image_size
        shapes["heatmaps"] = (batch, config.num_landmarks + 1, side, side)
        if config.use_descriptors:
            shapes["unpooled"] = (batch, config.decoder_feature_channels, side, side)
        shapes["decoder_input"] = decoder_input.shape
        shapes["reconstruction"] = model.decode(encoding.landmarks, encoding.descriptors).shape
    return {name: tuple(shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("name", PRESETS)
def test_pipeline_shapes_equal_those_of_a_forward_pass(name):
    config = preset(name).model
    traced = pipeline_shapes(config, batch_size=3)
    assert traced.tensors == forward_by_hand(config, 3)
    assert list(traced.tensors) == list(forward_by_hand(config, 3))          # in the order of the forward pass
    per_sigma = config.num_landmarks + 1 + (config.decoder_feature_channels if config.use_descriptors else 0)
    assert traced.tensors["decoder_input"][1] == len(config.sigma_dec) * per_sigma   # M (K+1 [+ S']), Eq. (14)
    assert set(traced.hourglasses) == ({"detector", "descriptor", "decoder"} if config.use_descriptors
                                       else {"detector", "decoder"})
    assert traced.config is config


def test_the_two_presets_differ_where_their_configs_do():
    faces, digits = (pipeline_shapes(preset(name).model) for name in PRESETS)
    assert faces.tensors["padded"] == (2, 3, 48, 48) and digits.tensors["padded"] == (2, 1, 56, 56)
    assert "descriptors" in faces.tensors and "descriptors" not in digits.tensors


@pytest.mark.parametrize("name", PRESETS)
def test_hourglass_levels_follow_the_config(name):
    config = preset(name).model
    traced = pipeline_shapes(config, batch_size=1)
    frames = {"detector": (config.channels, config.padded_size, config.num_landmarks + 1),
              "descriptor": (config.channels, config.padded_size, config.feature_channels),
              "decoder": (traced.tensors["decoder_input"][1], config.image_size, config.channels)}
    for network, shapes in traced.hourglasses.items():
        settings = getattr(config, network)
        channels_in, side, channels_out = frames[network]
        expected = tuple((1, width, side // 2**level, side // 2**level) for level, width in enumerate(settings.widths))
        assert shapes.input == (1, channels_in, side, side)
        assert shapes.encoder == expected
        assert shapes.bottom == expected[-1]
        assert shapes.skips == shapes.decoder == expected[:-1]
        assert shapes.output == (1, channels_out, side, side)
        assert (shapes.skip_depth, shapes.convs_per_level) == (settings.skip_depth, settings.convs_per_level)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_pipeline_shapes_refuses_a_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        pipeline_shapes(preset("mnist-cpu").model, batch_size=batch_size)


def figure_text(figure) -> str:
    return "\n".join(text.get_text() for ax in figure.axes for text in ax.texts)


@pytest.mark.parametrize("name", PRESETS)
def test_pipeline_figure_draws_every_traced_shape_headless(name):
    assert matplotlib.get_backend().lower() == "agg"
    shapes = pipeline_shapes(preset(name).model)
    figure = pipeline_figure(shapes)
    text = figure_text(figure)
    for shape in shapes.tensors.values():
        assert "(B, " + ", ".join(map(str, shape[1:])) + ")" in text, shape
    assert ("descriptors f" in text) == ("descriptors" in shapes.tensors)
    assert f"sides {'-'.join(str(level[2]) for level in shapes.hourglasses['detector'].encoder)}" in text
    plt.close(figure)


@pytest.mark.parametrize("name", PRESETS)
def test_hourglass_figure_labels_every_level(name):
    shapes = pipeline_shapes(preset(name).model)
    figure, axes = plt.subplots(1, len(shapes.hourglasses))
    for ax, (network, hourglass) in zip(axes, shapes.hourglasses.items()):
        assert hourglass_figure(hourglass, network, ax=ax) is figure
        labels = [text.get_text() for text in ax.texts]
        for level in hourglass.encoder:
            assert f"{level[1]} ch, {level[2]}x{level[3]}" in labels
        assert labels.count(f"skip: {hourglass.skip_depth} conv{'s' if hourglass.skip_depth > 1 else ''}, added") \
            == len(hourglass.skips)
        assert "out (B, " + ", ".join(map(str, hourglass.output[1:])) + ")" in labels
        assert ax.get_title() == network
    plt.close(figure)


def test_equivariance_figure_titles_the_distance_in_pixels():
    image = torch.rand(3, 20, 20)
    landmarks = torch.rand(4, 2)
    shifted = landmarks + torch.tensor([3.0, 4.0]) / 20                    # 5 pixels off, every point
    figure = equivariance_figure(image, landmarks, torch.rand(2, 3, 20, 20), torch.rand(2, 4, 2),
                                 torch.stack([landmarks, shifted]))
    assert len(figure.axes) == 2 * 3
    assert [figure.axes[index].get_title() for index in (4, 5)] == ["|g(x') - x| = 0.0 px", "|g(x') - x| = 5.0 px"]
    plt.close(figure)
    with pytest.raises(ValueError, match="one entry per warped image"):
        equivariance_figure(image, landmarks, torch.rand(2, 3, 20, 20), torch.rand(3, 4, 2), torch.rand(2, 4, 2))


def test_gradient_arrows_start_at_the_landmarks_and_end_where_told():
    landmarks = torch.tensor([[0.25, 0.5], [0.75, 0.25]])
    arrows = torch.tensor([[0.1, 0.0], [0.0, -0.2]])
    figure = gradient_arrows(torch.rand(1, 10, 20), landmarks, arrows, reference=landmarks + 0.05)
    ax = figure.axes[0]
    drawn = [(annotation.xyann, annotation.xy) for annotation in ax.texts]
    pixels = np.array([20, 10])
    np.testing.assert_allclose([start for start, _ in drawn], landmarks.numpy() * pixels)
    np.testing.assert_allclose([end for _, end in drawn], (landmarks + arrows).numpy() * pixels)
    plt.close(figure)
    with pytest.raises(ValueError, match=r"both be \(K, 2\)"):
        gradient_arrows(torch.rand(1, 10, 20), landmarks, arrows[:1])


def test_loss_terms_figure_keeps_coinciding_schedule_lines_apart():
    from lmdis.plotting import loss_terms_figure

    history = [{"step": step, "recon": 10.0 / step, "total": 5.0 / step} for step in (10, 20, 30)]
    schedule = {"lambda_recon x10": ((20,), "tab:red"), "warm-up ends": ((20,), "tab:green"),
                "after the run": ((99,), "tab:blue")}
    figure = loss_terms_figure(history, {"recon": "recon", "total": "total"}, schedule=schedule)
    ax = figure.axes[0]
    lines = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_color() for line in lines] == ["tab:red", "tab:green"]
    np.testing.assert_allclose([line.get_xdata() for line in lines], [[20, 20], [20, 20]])
    np.testing.assert_allclose([line.get_ydata() for line in lines], [[0.5, 1], [0, 0.5]])   # halves: 2 drawn
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["lambda_recon x10", "warm-up ends", "mean over the logging interval"]   # none for step 99
    assert ax.get_yscale() == "log" and [a.get_title() for a in figure.axes] == ["recon", "total"]
    plt.close(figure)
    with pytest.raises(ValueError, match="at least one history entry"):
        loss_terms_figure([], {"recon": "recon"})
