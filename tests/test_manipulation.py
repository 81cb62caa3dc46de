"""Landmark manipulation (Sec. 4.4) and the widget panels' glue (lmdis.manipulation)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.manipulation import (
    ManipulationPanel,
    MorphingPanel,
    decode_with_landmarks,
    encode_image,
    interpolate,
    morph_sequence,
    move_landmarks,
    render_png,
)
from lmdis.model import LandmarkAutoencoder, ModelConfig
from lmdis.networks import HourglassConfig


def tiny_model_config(use_descriptors: bool) -> ModelConfig:
    return ModelConfig(num_landmarks=3, channels=1, image_size=16, padded_size=24,
                       detector=HourglassConfig([4, 8], skip_depth=1),
                       descriptor=HourglassConfig([4, 8], skip_depth=1),
                       decoder=HourglassConfig([4, 8], skip_depth=1),
                       feature_channels=4, decoder_feature_channels=4, descriptor_dim=2,
                       sigma_dec=(0.2,), use_descriptors=use_descriptors)


def tiny_model(use_descriptors: bool = False) -> LandmarkAutoencoder:
    torch.manual_seed(0)
    return LandmarkAutoencoder(tiny_model_config(use_descriptors)).eval()


def tiny_images(count: int = 4) -> torch.Tensor:
    return torch.rand(count, 1, 16, 16, generator=torch.Generator().manual_seed(3))


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# --------------------------------------------------------------------------- pure functions

def test_interpolate_endpoints_and_midpoint_by_hand():
    start = torch.tensor([[0.1, 0.2], [0.7, 0.9]])
    end = torch.tensor([[0.5, 0.2], [0.3, 0.1]])
    assert torch.equal(interpolate(start, end, 0.0), start)
    assert torch.equal(interpolate(start, end, 1.0), end)
    assert torch.allclose(interpolate(start, end, 0.5), torch.tensor([[0.3, 0.2], [0.5, 0.5]]))
    assert torch.allclose(interpolate(start, end, 0.25), torch.tensor([[0.2, 0.2], [0.6, 0.7]]))
    assert interpolate(None, None, 0.3) is None


def test_interpolate_rejects_mismatched_ends():
    with pytest.raises(ValueError, match="both ends or neither"):
        interpolate(torch.zeros(3, 2), None, 0.5)
    with pytest.raises(ValueError, match="shapes"):
        interpolate(torch.zeros(3, 2), torch.zeros(4, 2), 0.5)


def test_move_landmarks_moves_only_the_chosen_ones():
    landmarks = torch.tensor([[0.1, 0.2], [0.4, 0.5], [0.8, 0.9]])
    moved = move_landmarks(landmarks, 1, 0.05, -0.1)
    assert torch.allclose(moved, torch.tensor([[0.1, 0.2], [0.45, 0.4], [0.8, 0.9]]))
    assert torch.equal(landmarks, torch.tensor([[0.1, 0.2], [0.4, 0.5], [0.8, 0.9]])), "input must not change"
    several = move_landmarks(landmarks[None], [0, 2], -0.1, 0.0)[0]
    assert torch.allclose(several, torch.tensor([[0.0, 0.2], [0.4, 0.5], [0.7, 0.9]]))
    with pytest.raises(IndexError, match="out of range for 3 landmarks"):
        move_landmarks(landmarks, 3, 0.1, 0.1)


@pytest.mark.parametrize("use_descriptors", [False, True])
def test_decoded_image_changes_only_when_a_landmark_moves(use_descriptors):
    model = tiny_model(use_descriptors)
    landmarks, descriptors = encode_image(model, tiny_images(1)[0])
    assert landmarks.shape == (3, 2)
    assert (descriptors is None) == (not use_descriptors)
    reference = decode_with_landmarks(model, landmarks, descriptors)
    assert reference.shape == (1, 16, 16)
    unchanged = decode_with_landmarks(model, move_landmarks(landmarks, 0, 0.0, 0.0), descriptors)
    assert torch.equal(unchanged, reference)
    changed = decode_with_landmarks(model, move_landmarks(landmarks, 0, 0.2, 0.1), descriptors)
    assert (changed - reference).abs().max() > 1e-4
    batched = decode_with_landmarks(model, landmarks[None].repeat(2, 1, 1),
                                    None if descriptors is None else descriptors[None].repeat(2, 1, 1))
    assert batched.shape == (2, 1, 16, 16)
    assert torch.allclose(batched[1], reference, atol=1e-6)


def test_morph_sequence_ends_are_the_two_reconstructions():
    model = tiny_model(use_descriptors=True)
    source, target = tiny_images(2)
    images, landmarks = morph_sequence(model, source, target, count=5)
    assert images.shape == (5, 1, 16, 16) and landmarks.shape == (5, 3, 2)
    with torch.no_grad():
        expected = model(torch.stack([source, target]))
    assert torch.allclose(images[0], expected[0], atol=1e-5)
    assert torch.allclose(images[-1], expected[1], atol=1e-5)
    assert torch.allclose(landmarks[2], (landmarks[0] + landmarks[-1]) / 2, atol=1e-6)


def test_render_png_size_and_landmark_dots():
    image = torch.zeros(1, 4, 4)
    plain = png_pixels(render_png(image, scale=8))
    assert plain.shape == (32, 32, 3) and plain.max() == 0
    dotted = png_pixels(render_png(image, torch.tensor([[0.5, 0.5]]), scale=8))
    assert dotted[16, 16].max() > 0 and dotted[1, 1].max() == 0


# --------------------------------------------------------------------------- the widget panels

def test_manipulation_panel_redraws_when_a_slider_moves():
    model = tiny_model()
    panel = ManipulationPanel(model, tiny_images(1)[0], scale=4)
    assert set(panel.sliders) == {"dx1", "dy1", "dx2", "dy2", "dx3", "dy3", "dx", "dy"}
    first = panel.output.value
    assert png_pixels(first).shape == (64, 64, 3)
    panel.sliders["dx2"].value = 0.2
    assert panel.output.value != first
    assert torch.allclose(panel.landmarks(), move_landmarks(panel.original, 1, 0.2, 0.0))
    expected = render_png(decode_with_landmarks(model, panel.landmarks()), panel.landmarks(),
                          original=panel.original, scale=4)
    assert panel.output.value == expected
    panel.reset()
    assert torch.equal(panel.landmarks(), panel.original)


def test_manipulation_panel_moves_the_selected_landmarks_together():
    panel = ManipulationPanel(tiny_model(), tiny_images(1)[0], scale=4)
    panel.sliders["dy"].value = 0.1
    assert torch.equal(panel.landmarks(), panel.original), "nothing selected: the group sliders move nothing"
    before = panel.output.value
    panel.selector.value = (0, 2)
    assert torch.allclose(panel.landmarks(), move_landmarks(panel.original, [0, 2], 0.0, 0.1))
    assert panel.output.value != before


def test_morphing_panel_slider_interpolates():
    model = tiny_model(use_descriptors=True)
    source, target = tiny_images(2)
    panel = MorphingPanel(model, source, target, scale=4)
    at_source = panel.output.value
    panel.sliders["t"].value = 1.0
    assert panel.output.value != at_source
    assert torch.allclose(panel.landmarks(), encode_image(model, target)[0])
    panel.sliders["t"].value = 0.0
    assert panel.output.value == at_source


def test_descriptor_swap_pairs_every_geometry_with_every_appearance():
    from lmdis.manipulation import descriptor_swap

    model, images = tiny_model(use_descriptors=True), tiny_images(3)
    swapped = descriptor_swap(model, images)
    assert swapped.shape == (3, 3, 1, 16, 16)
    with torch.no_grad():
        encoding = model.encode(images)
        for i in range(3):
            for j in range(3):
                expected = model.decode(encoding.landmarks[i:i + 1], encoding.descriptors[j:j + 1])[0]
                torch.testing.assert_close(swapped[i, j], expected, atol=1e-5, rtol=1e-5)
    # Different descriptors change the image: the swap is not the reconstruction.
    assert (swapped[0, 1] - swapped[0, 0]).abs().max() > 1e-6


def test_descriptor_swap_refuses_a_model_without_descriptors():
    from lmdis.manipulation import descriptor_swap

    with pytest.raises(ValueError, match="needs a model with descriptors"):
        descriptor_swap(tiny_model(use_descriptors=False), tiny_images(2))
