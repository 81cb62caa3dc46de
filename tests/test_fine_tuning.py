"""Fine-tuning: a run that starts from another model's weights (``Trainer(init_state=...)``, ``train --init``)."""
from __future__ import annotations

import json

import pytest
import torch

from lmdis.checkpoint import load_checkpoint
from lmdis.train import Trainer
from lmdis.zoo import ZOO_FOLDER, load_zoo_file

from test_train import RandomImages, run_cli, tiny_config


def test_a_new_run_starts_from_the_given_weights_with_a_fresh_optimiser(tmp_path):
    source = Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "source", device="cpu", progress=False)
    source.fit()
    weights = {name: tensor.clone() for name, tensor in source.model.state_dict().items()}

    tuned = Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "tuned", device="cpu", progress=False,
                    init_state=weights)
    assert tuned.step == 0 and not tuned.optimizer.state
    for name, tensor in tuned.model.state_dict().items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=0, msg=name)
    fresh = Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "fresh", device="cpu", progress=False)
    # The same seed without init_state does not give those weights: they came from the source run.
    assert any(not torch.equal(tensor, weights[name]) for name, tensor in fresh.model.state_dict().items())


def test_a_resumed_run_keeps_its_own_weights_and_not_the_initial_ones(tmp_path):
    run = Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "run", device="cpu", progress=False)
    run.fit()
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    other = Trainer(tiny_config(steps=3), RandomImages(), tmp_path / "other", device="cpu", progress=False)
    resumed = Trainer(tiny_config(steps=6), RandomImages(), tmp_path / "run", device="cpu", progress=False,
                      resume=True, init_state=other.model.state_dict())
    assert resumed.step == 3
    for name, tensor in resumed.model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0, msg=name)


def test_initial_weights_that_do_not_fit_name_the_tensors(tmp_path):
    bigger = tiny_config()
    bigger.model.num_landmarks = 4
    state = Trainer(bigger, RandomImages(), tmp_path / "big", device="cpu", progress=False).model.state_dict()
    with pytest.raises(ValueError, match="initial weights.*another shape"):
        Trainer(tiny_config(), RandomImages(), tmp_path / "small", device="cpu", progress=False, init_state=state)


SHORT = ["train", "--preset", "mnist-cpu", "--steps", "1", "--device", "cpu", "--set", "train.bn_recompute_images=32",
         "--set", "train.learning_rate=1e-6"]


def test_train_init_from_the_zoo_fine_tunes_its_digit_model(tmp_path):
    result = run_cli(*SHORT, "--init", "zoo:mnist", "--out", str(tmp_path / "tuned"), env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["init"] == "zoo:mnist"
    zoo, _ = load_zoo_file(ZOO_FOLDER / "mnist.pt")
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoint.pt")
    assert tuned["step"] == 1
    weights = [name for name, tensor in zoo.items() if tensor.dim() == 4]
    # One Adam step at lr 1e-6 moves a weight by at most about 1e-6 (float16 zoo weights, read as float32).
    assert all(torch.allclose(tuned["model"][name], zoo[name], atol=1e-5) for name in weights)


@pytest.mark.parametrize("init, extra, message", [
    ("zoo:nope", [], "no zoo model 'nope'"),
    ("zoo:mnist", ["--set", "model.num_landmarks=5"], "num_landmarks 7 there, 5 here"),
    ("absent/checkpoint.pt", [], "checkpoint absent/checkpoint.pt does not exist"),
])
def test_train_init_refuses_weights_it_cannot_start_from_before_writing_anything(tmp_path, init, extra, message):
    out = tmp_path / "run"
    result = run_cli(*SHORT, *extra, "--init", init, "--out", str(out), env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (out / "checkpoint.pt").exists()
