"""Shape checks for the math core's entry points: a wrong tensor is named where it enters.

A shape is written as in the docstrings, ``"B, K, 2"``: a number must match,
a letter stands for any size (the same letter twice in one shape must be the
same size), and a leading ``"..."`` allows any number of leading dimensions.
The sizes one check binds can be required of the next (``**sizes``), so
arguments are checked against each other.
"""
from __future__ import annotations

import torch

__all__ = ["check_shape"]


def check_shape(tensor, shape: str, name: str, where: str, **known: int) -> dict[str, int]:
    """Raise unless ``tensor`` is a tensor of ``shape``; returns the sizes its letters stand for.

    Args:
        tensor: the argument to check.
        shape: e.g. ``"B, K, 2"``, ``"B, C, H, W"`` or ``"..., 2"``.
        name, where: the argument's name and the function it was given to,
            for the message.
        known: sizes some letters must have (from an earlier check).
    Returns:
        every letter's size, the known ones included: ``{"B": 4, "K": 10}``.
    Raises:
        TypeError: ``tensor`` is not a tensor.
        ValueError: naming the function, the argument, the shape expected
            (with the known sizes filled in) and the shape got.

    >>> check_shape(torch.zeros(4, 10, 2), "B, K, 2", "landmarks", "separation_loss")
    {'B': 4, 'K': 10}
    >>> check_shape(torch.zeros(4, 10), "B, K, 2", "landmarks", "separation_loss")
    Traceback (most recent call last):
        ...
    ValueError: separation_loss: landmarks must have shape (B, K, 2), got (4, 10)
    >>> check_shape(torch.zeros(3, 10, 2), "B, K, 2", "landmarks", "equivariance_loss", B=4, K=10)
    Traceback (most recent call last):
        ...
    ValueError: equivariance_loss: landmarks must have shape (B=4, K=10, 2), got (3, 10, 2)
    """
    dims = [dim.strip() for dim in shape.split(",")]
    shown = ", ".join(f"{dim}={known[dim]}" if dim in known else dim for dim in dims)
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a tensor of shape ({shown}), got {type(tensor).__name__}")
    got = tuple(tensor.shape)
    sizes = dict(known)
    leading = dims[0] == "..."
    fixed = dims[1:] if leading else dims
    matches = len(got) >= len(fixed) if leading else len(got) == len(fixed)
    if matches:
        for dim, size in zip(fixed, got[len(got) - len(fixed):]):
            if dim.isdigit():
                matches = matches and size == int(dim)
            elif sizes.setdefault(dim, size) != size:
                matches = False
    if not matches:
        raise ValueError(f"{where}: {name} must have shape ({shown}), got {got}")
    return sizes
