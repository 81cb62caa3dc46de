"""The parameterised notebooks keep the papermill interface their introductions document.

Each checked notebook must have exactly one code cell tagged ``parameters``
(papermill injects ``-p`` values after it), holding plain assignments of
literal defaults for every documented name; every ``-p NAME`` its opening
markdown cell shows must be one of them. These checks read the files; the
last test runs the training notebook through papermill for 2 steps (about
10 s), so the names also work end to end.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

DOCUMENTED = {
    "05_training.ipynb": {"preset": "mnist-cpu", "data": None, "dataset": None, "steps": int, "device": "auto",
                          "num_landmarks": None, "out": "../runs/nb05", "overrides": {}},
    "06_evaluation.ipynb": {"checkpoint": None, "data": None, "dataset": "mtfl", "steps": int,
                            "runs_root": "../runs/zoo", "few_shot_repeats": int, "figure_count": int,
                            "device": "auto", "show_faces": False},
    "11_landmarks_as_features.ipynb": {"data": None, "checkpoint": None, "steps": int, "runs_root": "../runs/zoo",
                                       "device": "auto"},
}


def parameter_cells(notebook) -> list:
    return [cell for cell in notebook.cells
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])]


def parameter_defaults(source: str, where: str) -> dict:
    """``name -> default`` of a parameters cell; only ``name = literal`` statements are allowed."""
    defaults = {}
    for statement in ast.parse(source).body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise AssertionError(f"{where}: the parameters cell may hold only 'name = literal' lines, "
                                 f"found {ast.unparse(statement)!r}")
        try:
            defaults[statement.targets[0].id] = ast.literal_eval(statement.value)
        except ValueError:
            raise AssertionError(f"{where}: parameter {statement.targets[0].id} has a non-literal default "
                                 f"{ast.unparse(statement.value)!r}") from None
    return defaults


def documented_command_names(notebook) -> set[str]:
    """Names passed as ``-p NAME`` or ``-y "NAME: ..."`` in the opening markdown cell."""
    intro = notebook.cells[0].source if notebook.cells and notebook.cells[0].cell_type == "markdown" else ""
    return set(re.findall(r"-p\s+(\w+)", intro)) | set(re.findall(r"-y\s+[\"']\s*(\w+)\s*:", intro))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_parameters_cell_holds_the_documented_names(name):
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    cells = parameter_cells(notebook)
    assert len(cells) == 1, f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells[0] is cells[0], f"{path}: the parameters cell must be the first code cell"
    defaults = parameter_defaults(cells[0].source, str(path))
    missing = sorted(set(DOCUMENTED[name]) - set(defaults))
    assert not missing, f"{path}: the parameters cell lacks {missing}"
    for parameter, expected in DOCUMENTED[name].items():
        value = defaults[parameter]
        if isinstance(expected, type):
            assert isinstance(value, expected), f"{path}: {parameter} = {value!r}, expected a {expected.__name__}"
        else:
            assert value == expected, f"{path}: {parameter} = {value!r}, documented default {expected!r}"


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_commands_in_the_introduction_use_existing_parameters(name):
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    cells = parameter_cells(notebook)
    assert cells, f"{path}: no cell tagged 'parameters'"
    defaults = parameter_defaults(cells[0].source, str(path))
    unknown = sorted(documented_command_names(notebook) - set(defaults))
    assert not unknown, f"{path}: the introduction passes {unknown}, which the parameters cell does not define"


def test_training_notebook_documents_the_full_scale_run():
    notebook = nbformat.read(NOTEBOOKS / "05_training.ipynb", as_version=4)
    assert {"preset", "data", "steps"} <= documented_command_names(notebook)


def test_the_checks_reject_a_bad_parameters_cell():
    with pytest.raises(AssertionError, match="non-literal default"):
        parameter_defaults("steps = 3 * n\n", "example")
    with pytest.raises(AssertionError, match="only 'name = literal'"):
        parameter_defaults("import os\n", "example")
    assert parameter_defaults("steps = 300  # comment\ndata = None\n", "example") == {"steps": 300, "data": None}


def test_training_notebook_runs_with_papermill_parameters(tmp_path):
    """The documented names work end to end: 2 steps of mnist-cpu with K and a setting overridden."""
    import papermill
    import torch

    out = tmp_path / "run"
    papermill.execute_notebook(
        str(NOTEBOOKS / "05_training.ipynb"), str(tmp_path / "executed.ipynb"), kernel_name="python3",
        cwd=str(NOTEBOOKS), progress_bar=False,
        parameters={"preset": "mnist-cpu", "data": None, "dataset": None, "steps": 2, "device": "cpu",
                    "num_landmarks": 5, "out": str(out), "overrides": {"train.bn_recompute_images": 32}},
    )
    checkpoint = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 2
    assert checkpoint["config"]["model"]["num_landmarks"] == 5
    assert checkpoint["config"]["train"]["bn_recompute_images"] == 32
    assert (out / "landmarks.png").is_file()
