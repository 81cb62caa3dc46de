"""notebooks/conftest.py: under pytest-xdist every notebook kernel starts with its share of the cores.

The last test starts two real kernels through nbval on two xdist workers
(about 15 s); the others check the arithmetic and the environment rules.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

CONFTEST = Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"


def load_conftest():
    spec = importlib.util.spec_from_file_location("notebooks_conftest", CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cores, workers, threads", [(2, 2, 1), (16, 2, 8), (3, 2, 1), (1, 4, 1), (None, 2, 1),
                                                     (8, 1, 8)])
def test_kernel_threads_divide_the_cores(cores, workers, threads):
    assert load_conftest().kernel_threads(cores, workers) == threads


@pytest.fixture
def clean_thread_environment(monkeypatch):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    return monkeypatch


def test_workers_set_the_threads(clean_thread_environment):
    clean_thread_environment.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    load_conftest().pytest_configure(None)
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "2"


def test_an_explicit_thread_count_wins(clean_thread_environment):
    clean_thread_environment.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    clean_thread_environment.setenv("OMP_NUM_THREADS", "3")
    load_conftest().pytest_configure(None)
    assert os.environ["OMP_NUM_THREADS"] == "3" and os.environ["MKL_NUM_THREADS"] == "2"


def test_a_serial_run_sets_nothing(clean_thread_environment):
    load_conftest().pytest_configure(None)
    assert "OMP_NUM_THREADS" not in os.environ and "MKL_NUM_THREADS" not in os.environ


def thread_count_notebook(expected: int) -> nbformat.NotebookNode:
    cell = new_code_cell("# NBVAL_CHECK_OUTPUT\nimport torch\nprint(torch.get_num_threads())", execution_count=1,
                         outputs=[new_output("stream", name="stdout", text=f"{expected}\n")])
    notebook = new_notebook(cells=[new_markdown_cell("# threads"), cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def test_a_kernel_under_two_workers_starts_with_its_share(tmp_path):
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    expected = load_conftest().kernel_threads(os.cpu_count(), 2)
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(thread_count_notebook(expected), tmp_path / name)
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") and not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile", "--nbval-lax",
                             "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
