"""The training notebook as a parameterised papermill run (issue: notebooks).

CI executes ``notebooks/05_training.ipynb`` through papermill with ``-k
python3`` and a few steps, keeping the executed copy under the git-ignored
``outputs/papermill/`` so it can be inspected after a run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_training.ipynb"


@pytest.mark.slow
def test_papermill_training_run_writes_checkpoint_and_figures(tmp_path):
    pytest.importorskip("papermill")
    executed = ROOT / "outputs" / "papermill" / "05_training.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(executed), "-k", "python3",
               "--cwd", str(NOTEBOOK.parent), "-p", "steps", "6", "-p", "out", str(out),
               "-p", "num_landmarks", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 6
    assert checkpoint["config"]["model"]["num_landmarks"] == 4  # the -p override reached the config
    assert (out / "landmarks.png").is_file() or any(out.glob("*.png"))

    cells = json.loads(executed.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell.get("execution_count") for cell in code), "papermill left a cell unexecuted"
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.get("outputs", []))
    assert images >= 2, "expected loss curves and a landmark figure"
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.get("outputs", []))
