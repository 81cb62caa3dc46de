"""Landmark manipulation (Sec. 4.4), the widget panels' glue, cached runs and the ablation metrics."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.config import Config, preset
from lmdis.experiments import (
    ConfidenceMapRecorder,
    ablation,
    ablation_configs,
    equivariance_error,
    landmark_metrics,
    nearest_neighbour_distance,
    per_axis_variance,
    run_directory,
    shortened,
    split_data,
    train_or_load,
)
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
from lmdis.tps import TransformConfig


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


# --------------------------------------------------------------------------- metrics, against hand numbers

def test_per_axis_variance_is_the_mean():
    variances = torch.tensor([[[0.01, 0.03], [0.02, 0.02]]])
    assert per_axis_variance(variances) == pytest.approx(0.02)


def test_nearest_neighbour_distance_by_hand():
    # Three points on a line at 0, 0.3 and 1.0: nearest distances 0.3, 0.3, 0.7.
    landmarks = torch.tensor([[[0.0, 0.5], [0.3, 0.5], [1.0, 0.5]]])
    assert nearest_neighbour_distance(landmarks) == pytest.approx((0.3 + 0.3 + 0.7) / 3)
    with pytest.raises(ValueError, match="K >= 2"):
        nearest_neighbour_distance(torch.zeros(1, 1, 2))


def test_equivariance_error_by_hand():
    landmarks = torch.tensor([[[0.5, 0.5], [0.2, 0.2]]])
    mapped = torch.tensor([[[0.8, 0.9], [0.2, 0.2]]])  # first off by (0.3, 0.4): distance 0.5
    assert equivariance_error(mapped, landmarks) == pytest.approx(0.25)


def test_landmark_metrics_with_the_identity_transform_has_no_equivariance_error():
    identity = TransformConfig(grid_offset_std=0.0, translation_range=0.0, rotation_std_degrees=0.0,
                               log_scale_std=0.0)
    metrics = landmark_metrics(tiny_model(), tiny_images(6), identity, batch_size=4)
    assert metrics["equivariance"] < 1e-5
    assert 0 < metrics["variance"] < 1 / 12 + 1e-6
    assert metrics["nearest_neighbour"] > 0 and metrics["reconstruction"] > 0
    moved = landmark_metrics(tiny_model(), tiny_images(6), TransformConfig(), batch_size=4)
    assert moved["equivariance"] > 1e-4


# --------------------------------------------------------------------------- configs for the ablations

def test_ablation_zeroes_one_term_and_sets_the_tps_ratio():
    base = preset("mnist-cpu")
    no_sep = ablation(base, without="sep")
    assert no_sep.loss.lambda_sep == 0 and no_sep.loss.lambda_conc == base.loss.lambda_conc
    assert no_sep.name == "mnist-cpu-no-sep" and base.loss.lambda_sep == 20
    grid_only = ablation(base, tps_ratio=(1, 0))
    assert grid_only.train.landmark_tps_ratio == 0.0 and grid_only.name == "mnist-cpu-tps-1-0"
    assert ablation(base, tps_ratio=(7, 3)).train.landmark_tps_ratio == pytest.approx(0.3)
    with pytest.raises(ValueError, match="without must be one of"):
        ablation(base, without="colour")
    with pytest.raises(ValueError, match="tps_ratio"):
        ablation(base, tps_ratio=(0, 0))


def test_shortened_scales_the_schedule():
    short = shortened(preset("mnist-cpu"), 150)  # the preset: 600 steps, decay 450, raise 200, warm-up 200
    assert short.train.steps == 150
    assert short.train.lr_decay_steps == (112,)
    assert short.loss.recon_increase_steps == (50,)
    assert short.train.landmark_tps_warmup == 50
    assert short.train.checkpoint_every == 100 and preset("mnist-cpu").train.steps == 600
    with pytest.raises(ValueError, match="positive"):
        shortened(preset("mnist-cpu"), 0)


# --------------------------------------------------------------------------- cached runs

class TinyImages(torch.utils.data.Dataset):
    def __init__(self, count=16):
        self.images = tiny_images(count)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "index": index}


def tiny_config(steps: int = 4) -> Config:
    config = Config(model=tiny_model_config(use_descriptors=False), name="tiny")
    config.train.steps = steps
    config.train.batch_size = 4
    config.train.checkpoint_every = steps
    config.train.log_every = steps
    config.train.bn_recompute_images = 8
    return config


def test_train_or_load_trains_once_then_loads(tmp_path):
    config, data = tiny_config(), TinyImages()
    first = train_or_load(config, data, tag="tiny", root=tmp_path, device="cpu", log=lambda line: None)
    assert first.step == 4 and first.resumed_from is None and not first.model.training
    checkpoint = run_directory(config, "tiny", tmp_path) / "checkpoint.pt"
    assert first.checkpoint_path == checkpoint
    written = checkpoint.stat().st_mtime_ns

    steps_run = []
    second = train_or_load(config, data, tag="tiny", root=tmp_path, device="cpu", log=lambda line: None,
                           callbacks={"on_step_end": lambda trainer, terms: steps_run.append(trainer.step)})
    assert steps_run == [], "a finished run must not be optimised again"
    assert second.step == 4 and second.resumed_from == 4
    assert checkpoint.stat().st_mtime_ns == written, "loading must not rewrite the checkpoint"
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name
    optimiser_steps = {int(state["step"]) for state in second.optimizer.state_dict()["state"].values()}
    assert optimiser_steps == {4}, "Adam's step counts stay those of the first run"


def test_train_or_load_keeps_configs_and_tags_apart(tmp_path):
    config = tiny_config()
    other_steps, other_sep = tiny_config(steps=2), ablation(tiny_config(), without="sep")
    folders = {run_directory(c, t, tmp_path) for c, t in
               [(config, "a"), (config, "b"), (other_steps, "a"), (other_sep, "a")]}
    assert len(folders) == 4
    train_or_load(config, TinyImages(), tag="a", root=tmp_path, device="cpu", log=lambda line: None)
    with pytest.raises(ValueError, match=r"another config \(differs in \[.*'train.steps'\]\)"):
        train_or_load(other_steps, TinyImages(), tag="a", out_dir=run_directory(config, "a", tmp_path),
                      device="cpu", log=lambda line: None)


def test_train_or_load_resumes_an_unfinished_run(tmp_path):
    config, data = tiny_config(steps=4), TinyImages()
    config.train.checkpoint_every = 2

    class Interrupted(Exception):
        pass

    def interrupt(trainer, terms):
        if trainer.step == 3:  # after the checkpoint at step 2, before the one at 4
            raise Interrupted

    with pytest.raises(Interrupted):
        train_or_load(config, data, tag="x", root=tmp_path, device="cpu", log=lambda line: None,
                      callbacks={"on_step_end": interrupt})
    steps_run = []
    resumed = train_or_load(config, data, tag="x", root=tmp_path, device="cpu", log=lambda line: None,
                            callbacks={"on_step_end": lambda trainer, terms: steps_run.append(trainer.step)})
    assert resumed.resumed_from == 2 and steps_run == [3, 4] and resumed.step == 4


def test_confidence_map_recorder_keeps_the_chosen_steps(tmp_path):
    from lmdis.train import Trainer

    config = tiny_config(steps=3)
    trainer = Trainer(config, TinyImages(), tmp_path, device="cpu", progress=False, log=lambda line: None)
    images = tiny_images(2)
    recorder = ConfidenceMapRecorder(images, steps=[0, 2]).attach(trainer)
    trainer.fit()
    assert sorted(recorder.maps) == [0, 2]
    assert recorder.maps[0].shape == (2, 4, 24, 24) and recorder.landmarks[2].shape == (2, 3, 2)
    assert torch.allclose(recorder.maps[2].sum(dim=1), torch.ones(2, 24, 24), atol=1e-5)
    assert not torch.equal(recorder.maps[0], recorder.maps[2]), "training must change the maps"
    assert math.isfinite(float(recorder.landmarks[2].sum()))


def test_split_data_holds_out_every_tenth_image_of_the_chosen_digits():
    config = preset("mnist-cpu")
    split = split_data(config, digits=[3, 8])
    assert (len(split.training), len(split.held_out)) == (900, 100)  # 500 embedded images per digit
    assert set(split.training.indices).isdisjoint(split.held_out.indices)
    assert {split.held_out[i]["label"] for i in range(len(split.held_out))} == {3, 8}
    assert split.tag == "mnist-embedded-digits38-holdout10"
    images = split.held_out_images(4, labels={8})
    assert images.shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="no image has a label"):
        split_data(config, digits=[11])


def test_ablation_configs_list_each_run_once():
    runs = ablation_configs(preset("mnist-cpu"))
    assert list(runs) == ["full (7:3)", "w/o conc", "w/o sep", "w/o eqv", "TPS 1:0", "TPS 1:1"]
    assert runs["w/o eqv"].loss.lambda_eqv == 0 and runs["TPS 1:1"].train.landmark_tps_ratio == 0.5
    assert runs["full (7:3)"].to_dict() == preset("mnist-cpu").to_dict()
