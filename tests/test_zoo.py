"""The model zoo: export, card, loading checks, and every shipped model against its card."""
from __future__ import annotations

import json
import shlex

import pytest
import torch

from lmdis import zoo
from lmdis.config import preset
from lmdis.data import shared_data_root
from lmdis.model import LandmarkAutoencoder

CARD = {"description": "test model", "data": "random", "data_terms": "none", "preset": "mnist-cpu",
        "overrides": [], "steps": 0, "batch_size": 16, "images_seen": 0, "training_minutes": 0.0,
        "seconds_per_step": 0.0, "machine": "test", "metrics": {}, "retrain": "python -m lmdis train"}


def _checkpoint(name="mnist-cpu"):
    config = preset(name)
    torch.manual_seed(0)
    model = LandmarkAutoencoder(config.model)
    return {"model": model.state_dict(), "config": config.to_dict(), "step": 0}, model


def test_export_round_trip_is_the_float16_rounded_model(tmp_path):
    checkpoint, model = _checkpoint()
    path = zoo.export(checkpoint, "tiny", CARD, folder=tmp_path)
    assert path.stat().st_size < zoo.MAX_FILE_BYTES
    loaded, config = zoo.load_pretrained("tiny", folder=tmp_path)
    assert config.to_dict() == checkpoint["config"]
    for key, tensor in model.state_dict().items():
        expected = tensor.half().float() if tensor.is_floating_point() else tensor
        assert torch.equal(loaded.state_dict()[key], expected), key
    assert not loaded.training
    card = zoo.card("tiny", folder=tmp_path)
    assert list(card) == list(zoo.CARD_FIELDS) and card["name"] == "tiny"


def test_export_refuses_an_incomplete_card(tmp_path):
    checkpoint, _ = _checkpoint()
    with pytest.raises(ValueError, match="lacks .*'retrain'"):
        zoo.export(checkpoint, "tiny", {k: v for k, v in CARD.items() if k != "retrain"}, folder=tmp_path)


def test_loading_refuses_non_finite_and_mismatched_weights(tmp_path):
    checkpoint, _ = _checkpoint()
    zoo.export(checkpoint, "bad", CARD, folder=tmp_path)
    payload = torch.load(tmp_path / "bad.pt", weights_only=True)
    key = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][key][...] = float("nan")
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=f"bad.pt has non-finite weights: {key}"):
        zoo.load_pretrained("bad", folder=tmp_path)

    zoo.export(checkpoint, "other", CARD, folder=tmp_path)
    payload = torch.load(tmp_path / "other.pt", weights_only=True)
    payload["config"]["model"]["num_landmarks"] = 3
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: its weights do not fit"):
        zoo.load_pretrained("other", folder=tmp_path)


def test_an_unknown_name_lists_the_available_models():
    with pytest.raises(ValueError, match="no pretrained model 'nope'.*available"):
        zoo.load_pretrained("nope")


@pytest.mark.parametrize("name", zoo.available())
def test_shipped_model_matches_its_card(name):
    path = zoo.ZOO_FOLDER / f"{name}.pt"
    assert path.stat().st_size < zoo.MAX_FILE_BYTES
    payload = torch.load(path, map_location="cpu", weights_only=True)
    card = zoo.card(name)
    assert list(card) == list(zoo.CARD_FIELDS)
    model, config = zoo.load_pretrained(name)
    assert config.name == card["preset"]
    # Every stored setting reads back unchanged; a setting added after the
    # file was written is absent from it and takes its default.
    stored, current = payload["config"], config.to_dict()
    assert {section: {key: current[section][key] for key in values} if isinstance(values, dict) else current[section]
            for section, values in stored.items()} == stored
    assert card["images_seen"] == card["steps"] * card["batch_size"]
    assert card["retrain"].startswith("python -m lmdis train ")
    for override in card["overrides"]:
        assert f"--set {shlex.quote(override)}" in card["retrain"] or f"--set {override}" in card["retrain"]
    json.dumps(card)  # plain JSON values only


@pytest.mark.parametrize("name", zoo.available())
def test_training_config_is_what_the_retrain_command_builds(name):
    from lmdis.config import build_config, parse_override

    card = zoo.card(name)
    command = shlex.split(card["retrain"])
    steps = int(command[command.index("--steps") + 1]) if "--steps" in command else None  # else a --minutes run
    expected = build_config(card["preset"], [parse_override(text) for text in card["overrides"]], steps)
    found = zoo.training_config(name)
    assert found.model == expected.model and found.loss == expected.loss
    for field in ("steps", "batch_size", "learning_rate", "lr_decay_steps", "landmark_tps_warmup", "seed",
                  "warps_per_image"):
        assert getattr(found.train, field) == getattr(expected.train, field), field


@pytest.mark.parametrize("name", zoo.available())
def test_retrain_command_gives_a_checkpoint_of_the_same_shape(name, tmp_path):
    from lmdis import cli

    command = shlex.split(zoo.card(name)["retrain"])
    assert command[:4] == ["python", "-m", "lmdis", "train"]
    argv = command[3:]
    if "--minutes" in argv:
        del argv[argv.index("--minutes"):argv.index("--minutes") + 2]
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    dataset = zoo.card(name)["data"]
    if dataset.startswith("MTFL") and (shared_data_root() is None or not (shared_data_root() / "mtfl").is_dir()):
        pytest.skip("MTFL is not in the shared data folder")
    argv += ["--steps", "2", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
             "--set", "train.bn_recompute_images=16"]
    assert cli.main(argv) == 0
    retrained = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    shipped = torch.load(zoo.ZOO_FOLDER / f"{name}.pt", map_location="cpu", weights_only=True)
    assert retrained["config"]["model"] == shipped["config"]["model"]
    assert {k: tuple(v.shape) for k, v in retrained["model"].items()} == \
        {k: tuple(v.shape) for k, v in shipped["model"].items()}


def test_the_module_example_runs():
    import doctest

    assert doctest.testmod(zoo).failed == 0
