"""The README's main job: the training notebook as a parameterised papermill run.

The test takes the README's first command itself, drops the set-up steps
(venv, pip), and runs the rest in a fresh folder that holds only the
tracked notebooks, as a new checkout does: no ``outputs/`` or ``runs/``
folder exists until the command makes it. Only the step count and K are
shrunk (later ``-p`` values win), so a broken path, parameter or folder in
the README fails here.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SETUP_STEPS = ("python3 -m venv", ".venv/bin/pip install")


def readme_main_command() -> str:
    """The first command of the README's first bash block (comment lines skipped)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no ```bash block"
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    return commands[0]


def test_readme_main_command_is_setup_then_papermill():
    steps = [step.strip() for step in readme_main_command().split("&&")]
    assert steps[0].startswith("python3 -m venv .venv"), steps
    assert any(".venv/bin/papermill notebooks/05_training.ipynb" in step for step in steps), steps


@pytest.mark.slow
def test_readme_main_command_runs_in_a_fresh_checkout(tmp_path):
    pytest.importorskip("papermill")
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "notebooks", checkout / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    steps = [step.strip() for step in readme_main_command().split("&&")]
    job = [step for step in steps if not step.startswith(SETUP_STEPS)]
    python = shlex.quote(sys.executable)
    # shrink the papermill step itself, wherever it stands in the command
    script = " && ".join(step.replace(".venv/bin/papermill", f"{python} -m papermill") + " -p steps 6 -p num_landmarks 4"
                         if step.startswith(".venv/bin/papermill") else step for step in job)
    result = subprocess.run(script, shell=True, cwd=checkout, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{script}\n{result.stderr[-3000:]}"

    out = checkout / "runs" / "mnist-cpu"   # -p out ../runs/mnist-cpu, relative to --cwd notebooks
    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 6
    assert checkpoint["config"]["model"]["num_landmarks"] == 4  # the -p override reached the config
    assert (out / "landmarks.png").is_file()

    executed = checkout / "outputs" / "05_training.ipynb"
    cells = json.loads(executed.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell.get("execution_count") for cell in code), "papermill left a cell unexecuted"
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.get("outputs", []))
    assert images >= 2, "expected loss curves and a landmark figure"
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.get("outputs", []))
