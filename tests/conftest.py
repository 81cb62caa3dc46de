"""Shared pytest setup: a headless matplotlib backend and a ``--device`` option.

``pytest --device cuda`` runs the device-aware tests on the GPU; they are
skipped when CUDA is requested but not available.
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", action="store", default="cpu",
                     help="torch device for device-aware tests: cpu (default), cuda, cuda:1, ...")


@pytest.fixture
def device(request) -> torch.device:
    device = torch.device(request.config.getoption("--device"))
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"--device {device} requested but CUDA is not available")
    return device
