"""Checkpoint files: written atomically, read with ``weights_only=True``, never with NaN or infinite tensors.

A checkpoint is a plain dict (:meth:`lmdis.train.Trainer.state`): the model's
and the optimiser's state dicts, ``asdict(config)``, the step, every random
generator's state and the training history. :func:`load_checkpoint` checks
what it reads (a dict with the model, config and step, every tensor finite)
and :func:`model_from_checkpoint` rebuilds the trained model from the
config inside, naming the file and the tensor when the weights do not fit.
Loading a model for inference needs nothing of the trainer.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lmdis.config import Config
from lmdis.model import LandmarkAutoencoder

__all__ = ["atomic_save", "non_finite_tensor", "load_checkpoint", "load_weights", "model_from_checkpoint"]


def atomic_save(payload: dict, path: Path) -> None:
    """torch.save to a temporary file, fsync, then rename: a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def non_finite_tensor(tensors: dict, prefix: str = "") -> str | None:
    """The name and count of the first floating-point tensor with a NaN or infinity in a nested dict, or None.

    Args:
        tensors: a state dict, or an optimiser's (nested dicts and lists of tensors).
    """
    for key, value in tensors.items() if isinstance(tensors, dict) else enumerate(tensors):
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad = int((~torch.isfinite(value)).sum())
                return f"{name} ({bad} of {value.numel()} values NaN or infinite)"
        elif isinstance(value, (dict, list, tuple)):
            found = non_finite_tensor(value, f"{name}.")
            if found is not None:
                return found
    return None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :class:`lmdis.train.Trainer`; errors name the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a readable lmdis checkpoint, or weights or optimiser
            state with NaN or infinite values (the tensor is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not an lmdis checkpoint (a dict)")
    missing = {"model", "config", "step"} - set(checkpoint)
    if missing:
        raise ValueError(f"checkpoint {path} lacks {sorted(missing)}; is it an lmdis checkpoint?")
    for part, what in (("model", "weights"), ("optimizer", "optimiser state")):
        found = non_finite_tensor(checkpoint.get(part) or {})
        if found is not None:
            raise ValueError(f"checkpoint {path} has non-finite {what}: {found}; it cannot be used")
    return checkpoint


def load_weights(model: nn.Module, state: dict, path: str | Path) -> None:
    """``model.load_state_dict(state)`` with an error naming the file and the tensors that do not fit.

    Raises:
        ValueError: tensors missing from ``state``, unexpected in it, or of
            another shape than ``model`` (built from the checkpoint's own
            config) has.
    """
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    reshaped = [f"{name} is {tuple(state[name].shape)} in the file, {tuple(tensor.shape)} in the model"
                for name, tensor in expected.items()
                if name in state and tuple(getattr(state[name], "shape", ())) != tuple(tensor.shape)]
    problems = ([f"{len(reshaped)} tensors of another shape, e.g. {reshaped[0]}"] if reshaped else []) + (
        [f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"] if missing else []) + (
        [f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}"] if unexpected else [])
    if problems:
        raise ValueError(f"checkpoint {path}: its weights do not fit the model its config describes "
                         f"({'; '.join(problems)})")
    model.load_state_dict(state)


def model_from_checkpoint(path: str | Path, device="cpu") -> tuple[LandmarkAutoencoder, Config]:
    """The trained autoencoder (eval mode) and its config from a checkpoint file.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`, plus a
            config that is not valid or weights that do not fit it (the
            file and the tensor are named).
    """
    checkpoint = load_checkpoint(path)
    try:
        config = Config.from_dict(checkpoint["config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} has an invalid config: {error}") from error
    model = LandmarkAutoencoder(config.model)
    load_weights(model, checkpoint["model"], path)
    return model.to(device).eval(), config
