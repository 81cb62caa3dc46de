"""Trainer: exact resume, atomic checkpoints, bad input, schedules, a real short run."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import math

import pytest
import torch

from lmdis.checkpoint import load_checkpoint, model_from_checkpoint
from lmdis.config import Config, ablation, preset
from lmdis.model import ModelConfig
from lmdis.networks import HourglassConfig
from lmdis.train import Trainer, learning_rate, recon_weight, run_directory, train_or_load
from lmdis.tps import apply_transform, sample_random_transform

REPO = Path(__file__).resolve().parents[1]


class RandomImages(torch.utils.data.Dataset):
    def __init__(self, count=32, channels=3, size=16, fill=None):
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(count, channels, size, size, generator=generator)
        if fill is not None:
            self.images.fill_(fill)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "index": index}


def tiny_config(steps=6) -> Config:
    config = Config(model=ModelConfig(num_landmarks=3, image_size=16, padded_size=24,
                                      detector=HourglassConfig([4, 8], skip_depth=1),
                                      descriptor=HourglassConfig([4, 8], skip_depth=1),
                                      decoder=HourglassConfig([4, 8], skip_depth=1),
                                      feature_channels=4, decoder_feature_channels=4, descriptor_dim=2,
                                      sigma_dec=(0.2,)))
    config.train.steps = steps
    config.train.batch_size = 4
    config.train.checkpoint_every = 3
    config.train.log_every = 2
    config.train.landmark_tps_warmup = 2
    config.train.landmark_tps_ratio = 0.5
    config.train.bn_recompute_images = 8
    config.train.lr_decay_steps = (4,)
    config.loss.recon_increase_steps = (3, 5)
    return config


def batch_norm_batch_sizes(trainer, network, images) -> list[int]:
    """Batch sizes the first batch-norm layer of ``network`` sees in one training-mode objective call."""
    trainer.model.train()
    norm = next(m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batches = []
    handle = norm.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    trainer.objective(images, 0, torch.Generator().manual_seed(5), False)
    handle.remove()
    return batches


def parameters_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_schedules_follow_appendix_g3():
    config = preset("celeba-10")
    assert learning_rate(config, 0) == pytest.approx(1e-3)
    assert learning_rate(config, 100_000) == pytest.approx(1e-4)
    assert learning_rate(config, 250_000) == pytest.approx(1e-5)
    # Table 7's 0.01 times 10 on the released form of Eq. (17): the authors' 0.1.
    assert config.loss.reconstruction_form == "released"
    assert recon_weight(config, 0) == pytest.approx(0.1)
    assert recon_weight(config, 150_000) == pytest.approx(1.0)
    assert recon_weight(config, 200_000) == pytest.approx(10.0)


def test_recon_increase_factors_multiply_at_their_boundaries():
    # The untuned compact version's 0.01 -> 0.1 -> 0.3: x10 at step 100, x3 at step 200.
    config = preset("mtfl-cpu").with_overrides([("loss", "lambda_recon", 0.01),
                                                ("loss", "recon_increase_steps", [100, 200]),
                                                ("loss", "recon_increase_factors", [10, 3])])
    assert [recon_weight(config, step) for step in (0, 99, 100, 199, 200, 10_000)] == pytest.approx(
        [0.01, 0.01, 0.1, 0.1, 0.3, 0.3])
    # No factors: x10 at each boundary, as in Table 7.
    default = config.with_overrides([("loss", "recon_increase_factors", [])])
    assert recon_weight(default, 200) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"recon_increase_factors=\[10.0\] has 1 factors for 2 raises"):
        config.with_overrides([("loss", "recon_increase_factors", [10])])
    with pytest.raises(ValueError, match="recon_increase_factors"):
        config.with_overrides([("loss", "recon_increase_factors", [10, 0])])


def averaged_config(weight_average):
    config = tiny_config()
    config.train.weight_average = weight_average
    return config


@pytest.mark.parametrize("weight_average", [0.0, 0.9])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, weight_average):
    dataset = RandomImages()
    tiny_config = lambda: averaged_config(weight_average)  # noqa: E731 (the test body reads one name)
    straight = Trainer(tiny_config(), dataset, tmp_path / "straight", device="cpu", progress=False, log=lambda s: None)
    straight.fit()

    class Crash(RuntimeError):
        pass

    def crash_after_first_checkpoint(trainer, values):
        if trainer.step == 4:
            raise Crash()

    interrupted = Trainer(tiny_config(), dataset, tmp_path / "resumed", device="cpu", progress=False, log=lambda s: None)
    interrupted.add_callback("on_step_end", crash_after_first_checkpoint)
    with pytest.raises(Crash):
        interrupted.fit()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 3

    messages = []
    resumed = Trainer(tiny_config(), dataset, tmp_path / "resumed", device="cpu", progress=False,
                      resume=True, log=messages.append)
    assert resumed.step == 3
    resumed.fit()
    assert any("resumed" in message and "step 3" in message for message in messages)
    for models in ((straight.model, resumed.model), (straight.evaluation_model, resumed.evaluation_model)):
        expected, actual = parameters_of(models[0]), parameters_of(models[1])
        assert expected.keys() == actual.keys()
        for name in expected:
            assert torch.equal(expected[name], actual[name]), name
    # The run used landmark control points after the warm-up at least once.
    assert any(entry.get("landmark_tps", 0) > 0 for entry in straight.history)


def test_weight_average_is_the_checkpointed_model(tmp_path):
    """The EMA recomputed by hand from the weights after each step; the checkpoint's model is the average."""
    config = averaged_config(0.8)
    trainer = Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None)
    by_hand = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    count = [0]

    def follow(trainer, values):
        keep = min(0.8, (1 + count[0]) / (10 + count[0]))
        for name, weight in trainer.model.named_parameters():
            by_hand[name] = keep * by_hand[name] + (1 - keep) * weight.detach()
        count[0] += 1

    trainer.add_callback("on_step_end", follow)
    trainer.fit()
    averaged = dict(trainer.evaluation_model.named_parameters())
    for name, expected in by_hand.items():
        torch.testing.assert_close(averaged[name], expected, rtol=1e-5, atol=1e-6)
        assert not torch.equal(averaged[name], dict(trainer.model.named_parameters())[name]), name
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["average_updates"] == config.train.steps
    for name, expected in by_hand.items():
        torch.testing.assert_close(checkpoint["model"][name], expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(checkpoint["training_model"][name], dict(trainer.model.named_parameters())[name])
    # Readers of a checkpoint get the average, with batch-norm statistics recomputed for it.
    model, _ = model_from_checkpoint(tmp_path / "checkpoint.pt")
    for name, expected in by_hand.items():
        torch.testing.assert_close(model.state_dict()[name], expected, rtol=1e-5, atol=1e-6)
    running = [key for key in checkpoint["model"] if key.endswith("running_mean")]
    # (the average never runs forward in training: without the recompute its statistics would be the initial zeros)
    assert running and all(checkpoint["model"][key].abs().sum() > 0 for key in running)


def test_nan_loss_raises_and_keeps_checkpoint(tmp_path):
    config = tiny_config(steps=3)
    Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None).fit()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    poisoned = Trainer(tiny_config(steps=6), RandomImages(fill=float("nan")), tmp_path, device="cpu",
                       progress=False, resume=True, log=lambda s: None)
    with pytest.raises(FloatingPointError, match="not finite at step 3"):
        poisoned.fit()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_resume_with_another_model_is_refused(tmp_path):
    Trainer(tiny_config(steps=3), RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None).fit()
    other = tiny_config()
    other.model.num_landmarks = 4
    with pytest.raises(ValueError, match="another model config"):
        Trainer(other, RandomImages(), tmp_path, device="cpu", progress=False, resume=True)


def test_wrong_channel_count_is_a_clear_error(tmp_path):
    trainer = Trainer(tiny_config(), RandomImages(channels=1), tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 16, 16\)"):
        trainer.fit()


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "lmdis", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_rejects_unknown_preset_and_missing_data(tmp_path):
    result = run_cli("train", "--preset", "nope", "--out", str(tmp_path))
    assert result.returncode == 2 and "unknown preset 'nope'" in result.stderr and "mnist-cpu" in result.stderr
    result = run_cli("train", "--preset", "mtfl-cpu", "--data", str(tmp_path / "absent"), "--out", str(tmp_path))
    assert result.returncode == 2 and "absent" in result.stderr


@pytest.mark.slow
def test_short_training_concentrates_and_separates_landmarks(tmp_path):
    """mnist-cpu for 150 steps on the embedded digits: the maps concentrate and the landmarks spread."""
    from lmdis.data import open_dataset

    config = preset("mnist-cpu")
    dataset = open_dataset("mnist-embedded", image_size=28, channels=1)
    trainer = Trainer(config, dataset, tmp_path, device="cpu", progress=False, log=lambda s: None)
    images = torch.stack([dataset[i]["image"] for i in range(64)])

    def measure():
        trainer.model.eval()
        with torch.no_grad():
            detection = trainer.model.detector(trainer.model.pad(images))
        points = detection.landmarks
        distances = torch.cdist(points, points) + torch.eye(points.shape[1]) * 10
        return detection.variances.mean().item(), distances.min(dim=2).values.mean().item()

    variance_before, nearest_before = measure()
    trainer.fit(150)
    variance_after, nearest_after = measure()
    # Untrained: near-uniform maps (per-axis variance 1/12 = 0.083), all landmarks at the centre.
    assert variance_before > 0.07 and nearest_before < 0.02, (variance_before, nearest_before)
    # Trained: variance down by more than 2.5x, neighbours over half a sigma_sep (0.08) apart.
    assert variance_after < 0.03, variance_after
    assert nearest_after > 0.05, nearest_after


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "lmdis", "train", "--preset", "mnist-cpu", "--out", str(out), "--steps", "4", "--no-progress",
         "--device", "cpu", "--set", "train.checkpoint_every=2", "--set", "train.bn_recompute_images=32"],
        capture_output=True, text=True, cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert checkpoint["step"] == 4
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and np.isfinite(summary["final"]["total"])


def test_cli_landmarks_are_in_each_images_own_pixels(tmp_path):
    """The same picture saved at 32 and 64 px gives the same landmarks, scaled to each size."""
    from PIL import Image

    Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "run", device="cpu", progress=False,
            log=lambda s: None).fit()
    rng = np.random.default_rng(0)
    picture = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(picture).resize((32, 32), Image.NEAREST).save(folder / "a_small.png")
    Image.fromarray(picture).resize((64, 64), Image.NEAREST).save(folder / "b_large.png")
    out = tmp_path / "landmarks.csv"
    result = run_cli("landmarks", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                     "--images", str(folder), "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = out.read_text().strip().splitlines()
    assert lines[0] == "path,x1,y1,x2,y2,x3,y3"
    small = np.array(lines[1].split(",")[1:], float)
    large = np.array(lines[2].split(",")[1:], float)
    assert lines[1].startswith(str(folder / "a_small.png"))
    # pixel centres at integers: p_64 = (p_32 + 0.5) * 2 - 0.5
    np.testing.assert_allclose(large, (small + 0.5) * 2 - 0.5, atol=0.05)


def test_cli_landmarks_corrupt_image_is_named(tmp_path):
    Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "run", device="cpu", progress=False,
            log=lambda s: None).fit()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    result = run_cli("landmarks", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                     "--images", str(broken), "--out", str(tmp_path / "x.csv"), "--device", "cpu")
    assert result.returncode == 2 and "broken.png" in result.stderr


def test_random_zoom_samples_the_window_bilinearly():
    """On a horizontal ramp f(x) = x, bilinear sampling is exact: pixel u of the
    output shows x = left + side * (u + 0.5) / W of the input window."""
    from lmdis.train import random_zoom

    width = 16
    ramp = ((torch.arange(width) + 0.5) / width).expand(2, 1, width, width).clone()
    generator = torch.Generator().manual_seed(5)
    zoomed = random_zoom(ramp, (1.5, 2.5), generator)
    replay = torch.Generator().manual_seed(5)
    log_zoom = math.log(1.5) + torch.rand(2, generator=replay) * (math.log(2.5) - math.log(1.5))
    side = torch.exp(-log_zoom)
    centre = side[:, None] / 2 + torch.rand(2, 2, generator=replay) * (1 - side[:, None])
    for b in range(2):
        left = centre[b, 0] - side[b] / 2
        expected = left + side[b] * (torch.arange(width) + 0.5) / width
        # the ramp is exact inside the outermost half pixels (border replication beyond)
        inner = (expected > 0.5 / width) & (expected < 1 - 0.5 / width)
        torch.testing.assert_close(zoomed[b, 0, 3][inner], expected[inner], atol=1e-5, rtol=0)
        assert 1.5 - 1e-6 <= 1 / side[b] <= 2.5 + 1e-6
    with pytest.raises(ValueError, match="zoom_range"):
        random_zoom(ramp, (0.5, 2.0), generator)
    same = random_zoom(ramp, (1.0, 1.0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, ramp, atol=1e-6, rtol=0)


def test_warp_context_feeds_the_warped_branch_real_surroundings(tmp_path):
    config = tiny_config(steps=3)
    config.train.warp_context = 0.25
    assert config.context_size == 24                       # 16 + 2 * round(16 * 0.25)
    with pytest.raises(ValueError, match=r"24x24.*warp_context"):
        Trainer(config, RandomImages(size=16), tmp_path / "wrong", device="cpu", progress=False).fit(1)
    # An identity "random" transform: the warped branch must see the context's central
    # 24x24 (= all of it), the plain branch the 16x16 centre edge-padded to 24.
    t = config.transform
    t.grid_offset_std = t.landmark_offset_std = t.translation_range = t.rotation_std_degrees = t.log_scale_std = 0.0
    data = RandomImages(size=24)
    trainer = Trainer(config, data, tmp_path / "run", device="cpu", progress=False)
    seen = []
    trainer.model.detector.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    images = data.images[:4]
    trainer.objective(images, 0, torch.Generator().manual_seed(0), use_landmark_tps=False)
    centre = images[..., 4:20, 4:20]
    edge_padded = torch.nn.functional.pad(centre, (4, 4, 4, 4), mode="replicate")
    assert len(seen) == 1                                    # one detector pass on the 2B batch
    torch.testing.assert_close(seen[0][:4], edge_padded)
    torch.testing.assert_close(seen[0][4:], images, atol=1e-4, rtol=0)  # float32 TPS solve
    # Training and the BN recomputation at the checkpoint run on the 24x24 data; the
    # saved model detects on 16x16 images.
    trainer.fit()
    model, saved = model_from_checkpoint(trainer.checkpoint_path)
    assert saved.train.warp_context == 0.25
    assert model.detect(centre).shape == (4, 3, 2)


def test_zero_recon_weight_trains_the_detector_alone(tmp_path):
    """Table 1c's "w/o L_recon": lambda_recon = 0 runs neither descriptor nor decoder."""
    config = tiny_config(steps=2)
    config.loss.lambda_recon = 0.0
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    decoded = []
    trainer.model.descriptor.register_forward_hook(lambda *args: decoded.append("descriptor"))
    trainer.model.decoder.register_forward_hook(lambda *args: decoded.append("decoder"))
    values = trainer.train_step(trainer.dataset.images[:4])
    assert decoded == []
    assert values["recon"] == 0.0
    lambdas = config.loss
    expected = lambdas.lambda_conc * values["conc"] + lambdas.lambda_sep * values["sep"] + lambdas.lambda_eqv * values["eqv"]
    assert values["total"] == pytest.approx(expected, rel=1e-5)
    assert all(p.grad is None for p in trainer.model.decoder.parameters())
    assert all(p.grad is not None for p in trainer.model.detector.parameters())
    # A positive weight runs both again.
    config.loss.lambda_recon = 0.01
    trainer.train_step(trainer.dataset.images[:4])
    assert decoded == ["descriptor", "decoder"]


@pytest.mark.parametrize("detector_only", [False, True])
def test_batch_norm_statistics_are_the_exact_mean_over_the_subset(tmp_path, detector_only):
    """G.3: running statistics = the average of the batch means the layer saw (hook-recorded)."""
    from lmdis.train import recompute_batch_norm

    config = tiny_config()
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    model = trainer.model
    norms = {"detector": next(m for m in model.detector.modules() if isinstance(m, torch.nn.BatchNorm2d)),
             "decoder": next(m for m in model.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d))}
    for norm in norms.values():                      # stale statistics to be replaced
        norm.running_mean.fill_(5.0)
    seen = {name: [] for name in norms}
    for name, norm in norms.items():
        norm.register_forward_pre_hook(lambda module, args, name=name: seen[name].append(
            args[0].detach().double().mean(dim=(0, 2, 3))))
    recompute_batch_norm(model, trainer.dataset, images=12, batch_size=4, seed=3, device="cpu",
                         detector_only=detector_only)
    assert len(seen["detector"]) == 3                # 12 images in batches of 4
    expected = torch.stack(seen["detector"]).mean(dim=0)
    torch.testing.assert_close(norms["detector"].running_mean.double(), expected, atol=1e-6, rtol=1e-5)
    if detector_only:
        assert seen["decoder"] == []
        assert torch.all(norms["decoder"].running_mean == 5.0)   # left as it was
    else:
        torch.testing.assert_close(norms["decoder"].running_mean.double(),
                                   torch.stack(seen["decoder"]).mean(dim=0), atol=1e-6, rtol=1e-5)


def test_joint_detector_pass_is_the_two_passes_with_shared_statistics(tmp_path):
    """Originals and warped copies as one 2B batch: with frozen statistics (eval
    mode) exactly the two separate passes; in training mode one batch-norm
    batch of 2B images."""
    config = tiny_config(steps=1)
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    images = trainer.dataset.images[:4]
    trainer.model.eval()
    results = {}
    for joint in (True, False):
        for tps in (False, True):
            config.train.joint_detector_pass = joint
            inspect = {}
            _, terms = trainer.objective(images, 0, torch.Generator().manual_seed(5), tps, inspect=inspect)
            results[joint, tps] = terms, inspect
    for tps in (False, True):
        for name in ("conc", "sep", "eqv", "recon"):
            torch.testing.assert_close(results[True, tps][0][name], results[False, tps][0][name],
                                       atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(results[True, tps][1]["warped_landmarks"],
                                   results[False, tps][1]["warped_landmarks"], atol=1e-6, rtol=0)
    config.train.joint_detector_pass = True
    assert batch_norm_batch_sizes(trainer, trainer.model.detector, images) == [8]


def test_recon_batch_size_reconstructs_the_first_images_only(tmp_path):
    """train.recon_batch_size = 2 of 4: Eq. (17) is 0.5 ||I - I~||^2 averaged
    over the first two originals (numpy, from the model's own forward pass in
    eval mode), the detector's terms are those of the whole batch, and in
    training mode the decoder's batch norm sees two images."""
    config = tiny_config(steps=1)
    config.loss.reconstruction_form = "released"
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    images = trainer.dataset.images[:4]
    trainer.model.eval()
    terms = {}
    for count in (0, 2):
        config.train.recon_batch_size = count
        _, terms[count] = trainer.objective(images, 0, torch.Generator().manual_seed(5), False)
    with torch.no_grad():
        drawn = trainer.model(images).double().numpy()
    originals = images.double().numpy()
    per_image = 0.5 * ((originals - drawn) ** 2).reshape(4, -1).sum(axis=1)
    assert terms[2]["recon"].item() == pytest.approx(per_image[:2].mean(), rel=1e-5)
    assert terms[0]["recon"].item() == pytest.approx(per_image.mean(), rel=1e-5)
    assert abs(per_image[:2].mean() - per_image.mean()) > 1e-4          # the two are told apart
    for name in ("conc", "sep", "eqv"):
        torch.testing.assert_close(terms[2][name], terms[0][name])
    assert batch_norm_batch_sizes(trainer, trainer.model.decoder, images) == [2]
    config.train.recon_batch_size = 5
    with pytest.raises(ValueError, match="train.recon_batch_size=5 exceeds train.batch_size=4"):
        config.validate()


def test_time_budget_runs_the_schedule_as_fractions_of_the_budget(tmp_path):
    config = tiny_config(steps=100)
    config.train.lr_decay_steps = (80,)
    config.train.landmark_tps_warmup = 50
    config.loss.recon_increase_steps = (30,)
    config.train.checkpoint_every = 1000
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False, minutes=10)
    assert trainer.schedule_step() == 0
    trainer.train_seconds = 0.3 * 600                       # 30 % of the budget spent after 0 steps
    assert trainer.schedule_step() == 30
    values = trainer.train_step(trainer.dataset.images[:4])
    assert values["lr"] == pytest.approx(config.train.learning_rate)
    assert values["landmark_tps"] == 0.0                    # warm-up (50 % of the budget) not reached
    trainer.train_seconds = 0.85 * 600
    assert trainer.schedule_step() == 85
    values = trainer.train_step(trainer.dataset.images[:4])
    assert values["lr"] == pytest.approx(0.1 * config.train.learning_rate)   # the decay at 80 % is reached
    assert trainer.step == 2
    # The budget ends training before train.steps; the seconds and the budget are checkpointed.
    trainer.train_seconds = 600 - 1e-9
    trainer.fit()
    assert trainer.step == 3 and trainer.budget_spent()
    resumed = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False, resume=True)
    assert resumed.budget_seconds == 600 and resumed.train_seconds == trainer.train_seconds
    assert resumed.step == 3 and resumed.budget_spent()
    resumed.fit()
    assert resumed.step == 3
    with pytest.raises(ValueError, match="positive minutes, got 0"):
        Trainer(config, RandomImages(), tmp_path / "other", device="cpu", progress=False, minutes=0)


def test_cli_minutes_trains_inside_the_budget(tmp_path):
    from lmdis.cli import main

    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist-cpu", "--out", str(out), "--minutes", "0.0001", "--no-progress"]) == 0
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert checkpoint["step"] == 1 and checkpoint["budget_seconds"] == pytest.approx(0.006)
    assert main(["train", "--preset", "mnist-cpu", "--out", str(tmp_path / "bad"), "--minutes", "-1"]) == 2


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_diverged_run_saves_nothing_and_names_the_step_and_the_kept_checkpoint(tmp_path, part):
    """Weights (or Adam moments) that turn infinite between checkpoints are never written."""
    config = tiny_config(steps=9)

    def diverge(trainer, values):
        if trainer.step == 6:
            if part == "model":
                next(trainer.model.detector.parameters()).data.fill_(float("inf"))
            else:
                next(iter(trainer.optimizer.state.values()))["exp_avg"].fill_(float("nan"))

    trainer = Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None)
    trainer.add_callback("on_step_end", diverge)
    with pytest.raises(FloatingPointError) as error:
        trainer.fit()
    message = str(error.value)
    assert "diverged by step 6" in message and f"{tmp_path / 'checkpoint.pt'} (step 3) is kept unchanged" in message
    assert ("the model is not finite" if part == "model" else "the optimiser state is not finite") in message
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["step"] == 3


def test_diverged_first_checkpoint_leaves_no_file(tmp_path):
    config = tiny_config(steps=3)
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False, log=lambda s: None)
    trainer.add_callback("on_step_end", lambda trainer, values: next(trainer.model.parameters()).data.fill_(
        float("nan")) if trainer.step == 3 else None)
    with pytest.raises(FloatingPointError, match="no checkpoint was written"):
        trainer.fit()
    assert not (tmp_path / "run").exists()


def test_trainer_checks_its_config(tmp_path):
    config = tiny_config()
    config.train.checkpoint_every = 0
    with pytest.raises(ValueError, match=r"train\.checkpoint_every=0: expected a positive integer"):
        Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False)


# --------------------------------------------------------------------------- cached runs (train_or_load)

def cached_run_config(steps: int = 4) -> Config:
    """tiny_config with one checkpoint, at the end."""
    config = tiny_config(steps)
    config.name = "tiny"
    config.train.checkpoint_every = steps
    config.train.log_every = steps
    return config


def test_train_or_load_trains_once_then_loads(tmp_path):
    config, data = cached_run_config(), RandomImages(count=16)
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


def test_train_or_load_returns_the_weight_average(tmp_path):
    config, data = cached_run_config(), RandomImages(count=16)
    config.train.weight_average = 0.9
    for _ in range(2):   # trained, then loaded
        trainer = train_or_load(config, data, tag="tiny", root=tmp_path, device="cpu", log=lambda line: None)
        saved = load_checkpoint(trainer.checkpoint_path)
        for name, value in trainer.model.state_dict().items():
            assert torch.equal(value, saved["model"][name]), name
        assert any(not torch.equal(saved["model"][name], saved["training_model"][name])
                   for name, _ in trainer.model.named_parameters())


def test_train_or_load_keeps_configs_and_tags_apart(tmp_path):
    config = cached_run_config()
    other_steps, other_sep = cached_run_config(steps=2), ablation(cached_run_config(), without="sep")
    folders = {run_directory(c, t, tmp_path) for c, t in
               [(config, "a"), (config, "b"), (other_steps, "a"), (other_sep, "a")]}
    assert len(folders) == 4
    train_or_load(config, RandomImages(count=16), tag="a", root=tmp_path, device="cpu", log=lambda line: None)
    with pytest.raises(ValueError, match=r"another config \(differs in \[.*'train.steps'\]\)"):
        train_or_load(other_steps, RandomImages(count=16), tag="a", out_dir=run_directory(config, "a", tmp_path),
                      device="cpu", log=lambda line: None)


def test_train_or_load_resumes_an_unfinished_run(tmp_path):
    config, data = cached_run_config(steps=4), RandomImages(count=16)
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


class _RecordingStream(io.StringIO):
    """A stand-in for a non-terminal stdout that records what was flushed."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())
        super().flush()


def test_plain_log_lines_are_flushed_as_they_are_written(tmp_path, monkeypatch):
    # A log file is block-buffered: without a flush per line, `train > log`
    # shows nothing until the buffer fills or the run ends.
    stream = _RecordingStream()
    monkeypatch.setattr(sys, "stdout", stream)
    config = tiny_config(steps=2)
    config.train.log_every = 1
    Trainer(config, RandomImages(), tmp_path, device="cpu", progress=False).fit()
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert any("step 1/2" in text and "step 2/2" not in text for text in stream.flushed)


def test_warps_per_image_averages_eq8_over_independent_warps(tmp_path):
    """train.warps_per_image = 2: each original is warped twice by independent
    draws of g, Eq. (8) is the mean over both copies (numpy, from the same
    draws of the generator), and in training mode the detector's batch norm
    sees the originals and both copies as one batch of 3B."""
    config = tiny_config(steps=1)
    config.train.warps_per_image = 2
    trainer = Trainer(config, RandomImages(), tmp_path / "run", device="cpu", progress=False)
    images = trainer.dataset.images[:4]
    trainer.model.eval()
    for use_landmark_tps in (False, True):
        inspect = {}
        _, terms = trainer.objective(images, 0, torch.Generator().manual_seed(5), use_landmark_tps,
                                     inspect=inspect)
        warped = inspect["warped_landmarks"]
        assert warped.shape == (8,) + inspect["landmarks"].shape[1:]
        # With landmark control points each copy's TPS is anchored on its original's landmarks.
        control = inspect["landmarks"].detach().repeat(2, 1, 1) if use_landmark_tps else None
        transform = sample_random_transform(8, config.transform, torch.Generator().manual_seed(5), landmarks=control)
        assert not torch.allclose(transform.weights[:4], transform.weights[4:])      # two different warps
        mapped = apply_transform(warped, transform).detach().double().numpy()
        original = inspect["landmarks"].detach().double().numpy()
        per_copy = ((mapped - np.concatenate([original, original])) ** 2).sum(axis=(1, 2))
        assert terms["eqv"].item() == pytest.approx(per_copy.mean(), rel=1e-5)
        assert abs(per_copy[:4].mean() - per_copy[4:].mean()) > 1e-6                 # the copies are told apart
    assert batch_norm_batch_sizes(trainer, trainer.model.detector, images) == [12]
