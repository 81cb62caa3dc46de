"""Pretrained models that ship with the package: weights, a card, one loader.

Each model is two files in this folder: ``<name>.pt``, a plain dict
``{"config": Config.to_dict(), "model": state dict}`` with float tensors
stored as float16 (weights only: no optimiser, no RNG state; each file is
under 2 MB), and ``<name>.json``, its card: the data, the preset and
overrides, steps, images seen, training time with seconds per step, the
metrics measured with the stored (float16) weights, and the one command that
retrains it.

    >>> from lmdis.zoo import available, load_pretrained
    >>> "faces" in available()
    True
    >>> model, config = load_pretrained("faces")
    >>> config.model.num_landmarks
    30
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lmdis.checkpoint import load_weights, non_finite_tensor
from lmdis.config import Config
from lmdis.model import LandmarkAutoencoder

ZOO_FOLDER = Path(__file__).resolve().parent
MAX_FILE_BYTES = 2 * 1024 * 1024
CARD_FIELDS = ("name", "description", "data", "data_terms", "preset", "overrides", "steps", "batch_size",
               "images_seen", "training_minutes", "seconds_per_step", "machine", "metrics", "retrain")


def available() -> list[str]:
    """Names of the shipped models (those with both a weights file and a card)."""
    return sorted(path.stem for path in ZOO_FOLDER.glob("*.pt") if path.with_suffix(".json").is_file())


def _paths(name: str, folder: Path) -> tuple[Path, Path]:
    weights, card_path = folder / f"{name}.pt", folder / f"{name}.json"
    if not weights.is_file() or not card_path.is_file():
        known = ", ".join(available()) if folder == ZOO_FOLDER else "see the folder"
        raise ValueError(f"no pretrained model {name!r} in {folder}; available: {known}")
    return weights, card_path


def card(name: str, folder: str | Path = ZOO_FOLDER) -> dict:
    """The model card of ``name`` as a dict (fields: :data:`CARD_FIELDS`)."""
    _, card_path = _paths(name, Path(folder))
    return json.loads(card_path.read_text())


def load_zoo_file(path: str | Path) -> tuple[dict, Config]:
    """(float32 state dict, Config) of a zoo file; errors name the file.

    Loads with ``weights_only=True`` and refuses non-finite tensors
    (:func:`lmdis.checkpoint.non_finite_tensor`) and a config that does not
    build.
    """
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or set(payload) != {"config", "model"}:
        raise ValueError(f"zoo file {path} is not a dict of exactly ['config', 'model']")
    found = non_finite_tensor(payload["model"])
    if found is not None:
        raise ValueError(f"zoo file {path} has non-finite weights: {found}")
    config = Config.from_dict(payload["config"])
    state = {key: tensor.float() if tensor.is_floating_point() else tensor for key, tensor in payload["model"].items()}
    return state, config


def load_pretrained(name: str, device: str | torch.device = "cpu",
                    folder: str | Path = ZOO_FOLDER) -> tuple[LandmarkAutoencoder, Config]:
    """A ready model (eval mode, on ``device``) and its :class:`Config`."""
    weights, _ = _paths(name, Path(folder))
    state, config = load_zoo_file(weights)
    model = LandmarkAutoencoder(config.model)
    load_weights(model, state, weights)
    return model.to(device).eval(), config


def training_config(name: str, folder: str | Path = ZOO_FOLDER) -> Config:
    """The :class:`Config` that trained ``name`` (its card's preset, overrides and steps), from its file.

    ``shortened(training_config(name), steps)`` is the same schedule over
    ``steps``: what a notebook trains when it is told to train instead of
    loading the model.
    """
    weights, _ = _paths(name, Path(folder))
    return load_zoo_file(weights)[1]


def export(checkpoint: dict, name: str, card_fields: dict, folder: str | Path = ZOO_FOLDER) -> Path:
    """Write ``<name>.pt`` (float16 weights + config) and ``<name>.json`` from a training checkpoint.

    ``checkpoint`` is a loaded :class:`lmdis.train.Trainer` checkpoint dict;
    ``card_fields`` gives every field of :data:`CARD_FIELDS` except ``name``.
    Metrics in the card must be measured on the model :func:`load_pretrained`
    returns (float16-rounded), not on the training checkpoint.
    """
    folder = Path(folder)
    missing = set(CARD_FIELDS) - {"name"} - set(card_fields)
    if missing:
        raise ValueError(f"card for {name!r} lacks {sorted(missing)}")
    state = {key: (tensor.half() if tensor.is_floating_point() else tensor)
             for key, tensor in checkpoint["model"].items()}
    weights = folder / f"{name}.pt"
    torch.save({"config": checkpoint["config"], "model": state}, weights)
    size = weights.stat().st_size
    if size > MAX_FILE_BYTES:
        weights.unlink()
        raise ValueError(f"{weights} would be {size / 2**20:.2f} MiB; zoo files stay under 2 MiB")
    fields = {"name": name, **card_fields}
    (folder / f"{name}.json").write_text(json.dumps({key: fields[key] for key in CARD_FIELDS}, indent=2) + "\n")
    return weights
