"""Tests of lmdis.model and lmdis.config: shapes, bad input, pooling masks, presets.

The model is tiny (16x16 images padded to 24, one pooling level) so every
test runs in well under a second on a CPU.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from lmdis.config import Config, preset, preset_names
from lmdis.model import Detection, LandmarkAutoencoder, ModelConfig, pooling_masks
from lmdis.networks import Hourglass, HourglassConfig


def tiny_config(**overrides) -> ModelConfig:
    small = HourglassConfig([4, 8], skip_depth=1)
    values = dict(num_landmarks=3, channels=3, image_size=16, padded_size=24, detector=small, descriptor=small,
                  decoder=small, feature_channels=4, descriptor_dim=2, decoder_feature_channels=4, sigma_dec=(0.2,))
    values.update(overrides)
    return ModelConfig(**values)


@pytest.mark.parametrize("use_descriptors", [True, False])
def test_autoencoder_shapes(use_descriptors, device):
    torch.manual_seed(0)
    config = tiny_config(use_descriptors=use_descriptors)
    model = LandmarkAutoencoder(config).to(device)
    images = torch.rand(2, 3, 16, 16, device=device)
    landmarks, descriptors, detection = model.encode(images)
    assert landmarks.shape == (2, 3, 2)
    assert detection.maps.shape == (2, 4, 24, 24)
    assert detection.landmarks.shape == detection.variances.shape == (2, 3, 2)
    if use_descriptors:
        assert descriptors.shape == (2, 4, 2)
    else:
        assert descriptors is None
    reconstruction = model(images)
    assert reconstruction.shape == (2, 3, 16, 16)
    assert ((reconstruction > 0) & (reconstruction < 1)).all()
    assert model.detect(images).shape == (2, 3, 2)


def test_landmarks_are_soft_argmax_of_maps_in_image_frame():
    torch.manual_seed(1)
    model = LandmarkAutoencoder(tiny_config(use_descriptors=False)).eval()
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        landmarks, _, detection = model.encode(images)
    maps = detection.maps[0, :-1].double().numpy()  # (K, 24, 24) without the background
    centres = (np.arange(24) + 0.5) / 24
    mass = maps.sum(axis=(1, 2))
    padded_x = (maps * centres[None, None, :]).sum(axis=(1, 2)) / mass
    padded_y = (maps * centres[None, :, None]).sum(axis=(1, 2)) / mass
    # 4-pixel margin on each side of the 16-pixel image.
    expected = np.stack([(padded_x * 24 - 4) / 16, (padded_y * 24 - 4) / 16], axis=-1)
    np.testing.assert_allclose(landmarks[0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_decoder_with_descriptors_requires_them():
    model = LandmarkAutoencoder(tiny_config())
    with pytest.raises(ValueError, match="descriptors"):
        model.decode(torch.rand(1, 3, 2))


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 20, 20), (3, 16, 16)])
def test_autoencoder_rejects_wrong_input_shape(shape):
    model = LandmarkAutoencoder(tiny_config())
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        model(torch.rand(*shape))


def test_hourglass_rejects_non_divisible_side():
    network = Hourglass(3, 2, HourglassConfig([4, 8, 8], skip_depth=1))
    with pytest.raises(ValueError, match="divisible by 4"):
        network(torch.rand(1, 3, 6, 6))
    assert network(torch.rand(1, 3, 8, 12)).shape == (1, 2, 8, 12)


@pytest.mark.parametrize("padding_mode", ["replicate", "reflect"])
def test_hourglass_border_padding_hides_the_frame(padding_mode):
    """A constant image stays constant through every layer unless the borders are zero-padded."""
    image = torch.full((2, 3, 16, 16), 0.7)
    outputs = {}
    for mode in ("zeros", padding_mode):
        torch.manual_seed(0)
        network = Hourglass(3, 2, HourglassConfig([4, 8, 8], skip_depth=1, padding_mode=mode)).eval()
        with torch.no_grad():
            outputs[mode] = network(image)
    spread = lambda out: (out - out[..., :1, :1]).abs().amax().item()  # noqa: E731
    assert spread(outputs["zeros"]) > 1e-3          # zero padding marks the frame
    assert spread(outputs[padding_mode]) < 1e-6     # border padding does not
    with pytest.raises(ValueError, match="padding_mode.*'circular'"):
        HourglassConfig([4, 8], padding_mode="circular")


@pytest.mark.parametrize("mode", ["gaussian", "softmax"])
def test_pooling_masks_sum_to_one_per_channel(mode):
    generator = torch.Generator().manual_seed(2)
    maps = torch.softmax(torch.randn(2, 4, 32, 32, generator=generator, dtype=torch.float64), dim=1)
    landmarks = 0.4 + 0.2 * torch.rand(2, 3, 2, generator=generator, dtype=torch.float64)
    variances = torch.full((2, 3, 2), 0.005, dtype=torch.float64)  # sigma ~0.07, well inside
    masks = pooling_masks(Detection(maps, landmarks, variances), mode)
    assert masks.shape == (2, 4, 32, 32)
    np.testing.assert_allclose(masks.sum(dim=(2, 3)).numpy(), 1.0, atol=1e-3)
    background = maps[:, -1].numpy()
    np.testing.assert_allclose(masks[:, -1].numpy(), background / background.sum(axis=(1, 2), keepdims=True),
                               rtol=1e-12)


def test_model_config_rejects_bad_values():
    with pytest.raises(ValueError, match="pooling"):
        tiny_config(pooling="max")
    with pytest.raises(ValueError, match="channels"):
        tiny_config(channels=2)


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match="nope") as error:
        preset("nope")
    for name in preset_names():
        assert name in str(error.value)


@pytest.mark.parametrize("name", preset_names())
def test_config_round_trips_through_dict_json_and_torch_load(name):
    config = preset(name)
    assert config.name == name
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # tuples come back as lists
    buffer = io.BytesIO()
    torch.save({"config": config.to_dict()}, buffer)
    buffer.seek(0)
    assert Config.from_dict(torch.load(buffer, weights_only=True)["config"]) == config


def test_from_dict_rejects_unknown_keys():
    values = preset("mnist-cpu").to_dict()
    values["loss"]["lambda_typo"] = 1.0
    with pytest.raises(ValueError, match="lambda_typo"):
        Config.from_dict(values)
    values = preset("mnist-cpu").to_dict()
    values["optimiser"] = {}
    with pytest.raises(ValueError, match="optimiser"):
        Config.from_dict(values)


def test_from_dict_rejects_schedules_that_are_not_number_lists():
    # "--set train.zoom_range=1,1" arrives as the string "1,1": an error naming the setting, not a crash at step 0.
    values = preset("mtfl-cpu").to_dict()
    values["train"]["zoom_range"] = "1,1"
    with pytest.raises(ValueError, match=r"train\.zoom_range.*\[1\.0, 1\.6\]"):
        Config.from_dict(values)
    values["train"]["zoom_range"] = [1.0, 1.2, 1.4]
    with pytest.raises(ValueError, match="two numbers"):
        Config.from_dict(values)
    values = preset("mtfl-cpu").to_dict()
    values["loss"]["recon_increase_steps"] = ["3000"]
    with pytest.raises(ValueError, match="loss.recon_increase_steps"):
        Config.from_dict(values)
    values["loss"]["recon_increase_steps"] = [3000, 6000]
    assert Config.from_dict(values).loss.recon_increase_steps == (3000, 6000)
