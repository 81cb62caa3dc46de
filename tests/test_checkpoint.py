"""Checkpoint files (lmdis.checkpoint): plain dicts, atomic writes, and loads that name what is wrong."""
from __future__ import annotations

import pytest
import torch

from lmdis.checkpoint import atomic_save, load_checkpoint, model_from_checkpoint
from lmdis.config import Config
from lmdis.train import Trainer

from test_train import RandomImages, tiny_config


def test_checkpoint_is_plain_and_weights_only_loadable(tmp_path):
    trainer = Trainer(tiny_config(steps=3), RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None)
    trainer.fit()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 3
    assert Config.from_dict(checkpoint["config"]).model == trainer.config.model


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"step": 1, "model": {}, "config": {}}, path)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"step": 2, "model": {}, "config": {}}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_loading_refuses_non_finite_weights_naming_file_and_tensor(tmp_path):
    Trainer(tiny_config(steps=3), RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None).fit()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    checkpoint["model"]["decoder.network.head.0.weight"][0, 0, 0, 0] = float("-inf")
    atomic_save(checkpoint, tmp_path / "poisoned.pt")
    for load in (load_checkpoint, model_from_checkpoint):
        with pytest.raises(ValueError, match=r"poisoned\.pt has non-finite weights: "
                                             r"decoder\.network\.head\.0\.weight \(1 of"):
            load(tmp_path / "poisoned.pt")
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "checkpoint.pt").write_bytes((tmp_path / "poisoned.pt").read_bytes())
    with pytest.raises(ValueError, match=r"resume/checkpoint\.pt has non-finite weights"):
        Trainer(tiny_config(steps=6), RandomImages(), tmp_path / "resume", device="cpu", progress=False, resume=True)


def test_weights_that_do_not_fit_their_config_name_file_and_tensor(tmp_path):
    Trainer(tiny_config(steps=3), RandomImages(), tmp_path, device="cpu", progress=False, log=lambda s: None).fit()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    checkpoint["config"]["model"]["num_landmarks"] = 10                    # the weights are for K = 3
    atomic_save(checkpoint, tmp_path / "k10.pt")
    with pytest.raises(ValueError, match=r"k10\.pt: its weights do not fit .*detector\.network\.head\.0\.weight "
                                         r"is \(4, 4, 1, 1\) in the file, \(11, 4, 1, 1\) in the model"):
        model_from_checkpoint(tmp_path / "k10.pt")
    del checkpoint["model"]["detector.network.head.1.bias"]
    checkpoint["config"]["model"]["num_landmarks"] = 3
    atomic_save(checkpoint, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"short\.pt: .*missing \['detector\.network\.head\.1\.bias'\]"):
        model_from_checkpoint(tmp_path / "short.pt")
