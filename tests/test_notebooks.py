"""The rules every committed notebook keeps (notebooks/README.md), checked on the files.

Fast: no kernel is started. Running the notebooks and comparing their marked
outputs is nbval's job, called separately:
``python -m pytest --nbval-lax notebooks/``. The checker is tested on
synthetic notebooks too, so that every rule is shown to fail when broken.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

NOTEBOOK_FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("*.ipynb"))
MAX_BYTES = 2 * 1024 * 1024
KERNEL = "python3"
FILE_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
# "Eq. (3)", "Eqs. 5-6", "Equation 8", "Sec. 3.2", "Figure 39", "Table 7", "Appendix G.3", "Appendix B"
PAPER_REFERENCE = re.compile(r"\b(?:Eqs?\.|Equations?|Sec\.|Section|Fig\.|Figure|Table|Appendix)\s*\(?(?:\d|[A-G]\b|[A-G]\.\d)")
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~-])/(?:tmp|home|Users|work|root|mnt|opt|var|srv|data|scratch|usr|etc|private)(?:/|\b)"  # unix roots
    r"|[\"'](?:/|~/)[\w.-]"                                                                           # "/x", "~/x"
    r"|\b[A-Za-z]:\\"                                                                                 # C:\
)


def policy_problems(path: Path, readme: str) -> list[str]:
    """Every way the notebook at ``path`` breaks the rules; empty when it keeps them all."""
    problems = []
    if not FILE_NAME.match(path.name):
        problems.append(f"file name {path.name!r} is not NN_lowercase_words.ipynb")
    elif path.name not in readme:
        problems.append(f"{path.name} is not listed in notebooks/README.md")
    size = path.stat().st_size
    if size >= MAX_BYTES:
        problems.append(f"{size / 1e6:.2f} MB, the limit is {MAX_BYTES / 1e6:.2f} MB: make its figures smaller")
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several types for unreadable or invalid files
        return problems + [f"not a valid notebook: {error}"]
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL:
        problems.append(f"metadata.kernelspec.name is {kernel!r}, expected {KERNEL!r}")
    cells = notebook.cells
    if not cells or cells[0].cell_type != "markdown":
        problems.append("the first cell must be markdown saying what the notebook teaches")
    else:
        if not re.search(r"^# \S", cells[0].source, re.MULTILINE):
            problems.append("the first cell has no '# title' line")
        if not PAPER_REFERENCE.search(cells[0].source):
            problems.append("the first cell names no part of the paper (Eq. (n), Sec., Figure, Table, Appendix)")
    counts = []
    for index, cell in enumerate(cells):
        for match in ABSOLUTE_PATH.finditer(cell.source):
            problems.append(f"cell {index}: absolute or /tmp path {match.group(0)!r} in the source")
        if cell.cell_type != "code":
            continue
        if not cell.source.strip():
            problems.append(f"cell {index}: empty code cell")
            continue
        counts.append(cell.execution_count)
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"cell {index}: stored error output {output.get('ename')}: {output.get('evalue')}")
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"code cells were not executed once, in order, from a fresh kernel: execution counts "
                        f"{counts}, expected 1..{len(counts)} (run tools/execute_notebooks.py)")
    return problems


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_FOLDER}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_keeps_the_rules(path):
    readme = (NOTEBOOK_FOLDER / "README.md").read_text(encoding="utf-8")
    assert policy_problems(path, readme) == []


# --------------------------------------------------------------------------- the checker itself


def good_notebook():
    cells = [
        new_markdown_cell("# 99 · Example\n\nTeaches the soft-argmax, Eq. (3)."),
        new_code_cell("x = 1", execution_count=1),
        new_markdown_cell("Some text, see https://github.com/work/tmp and notebook 01/02."),
        new_code_cell("print(x / 2)", execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="0.5\n")]),
    ]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def write(notebook, folder: Path, name: str = "99_example.ipynb") -> Path:
    path = folder / name
    nbformat.write(notebook, path)
    return path


def test_checker_accepts_a_good_notebook(tmp_path):
    assert policy_problems(write(good_notebook(), tmp_path), "99_example.ipynb") == []


def _kernel(notebook):
    notebook.metadata["kernelspec"]["name"] = "python2"


def _gap(notebook):
    notebook.cells[3].execution_count = 3


def _order(notebook):
    notebook.cells[1].execution_count, notebook.cells[3].execution_count = 2, 1


def _unexecuted(notebook):
    notebook.cells[3].execution_count = None


def _raw_first(notebook):
    notebook.cells.insert(0, new_raw_cell("notes"))


def _no_paper(notebook):
    notebook.cells[0].source = "# 99 · Example\n\nTeaches something."


def _no_title(notebook):
    notebook.cells[0].source = "Teaches the soft-argmax, Eq. (3)."


def _home_path(notebook):
    notebook.cells[1].source = "data = load('/home/me/data.csv')"


def _tmp_path(notebook):
    notebook.cells[2].source = "Results were written to /tmp/run1."


def _root_literal(notebook):
    notebook.cells[1].source = "root = Path('/srv2/faces')"


def _windows_path(notebook):
    notebook.cells[1].source = r"root = 'C:\\Users\\me'"


def _error_output(notebook):
    notebook.cells[3].outputs = [new_output("error", ename="ValueError", evalue="bad", traceback=[])]


def _empty_cell(notebook):
    notebook.cells.append(new_code_cell("", execution_count=None))


@pytest.mark.parametrize("break_rule, message", [
    (_kernel, "kernelspec.name is 'python2'"),
    (_gap, "execution counts [1, 3]"),
    (_order, "execution counts [2, 1]"),
    (_unexecuted, "execution counts [1, None]"),
    (_raw_first, "first cell must be markdown"),
    (_no_paper, "names no part of the paper"),
    (_no_title, "no '# title' line"),
    (_home_path, "cell 1: absolute or /tmp path"),
    (_tmp_path, "cell 2: absolute or /tmp path '/tmp/'"),
    (_root_literal, "cell 1: absolute or /tmp path"),
    (_windows_path, "cell 1: absolute or /tmp path 'C:"),
    (_error_output, "stored error output ValueError: bad"),
    (_empty_cell, "empty code cell"),
])
def test_checker_catches_each_broken_rule(tmp_path, break_rule, message):
    notebook = good_notebook()
    break_rule(notebook)
    problems = policy_problems(write(notebook, tmp_path), "99_example.ipynb")
    assert len(problems) == 1 and message in problems[0], problems


def test_checker_catches_size_name_and_readme(tmp_path):
    notebook = good_notebook()
    notebook.cells[3].outputs.append(new_output("display_data", data={"text/plain": "x" * MAX_BYTES}))
    assert any("the limit is" in problem for problem in policy_problems(write(notebook, tmp_path), "99_example.ipynb"))
    assert policy_problems(write(good_notebook(), tmp_path, "Example.ipynb"), "Example.ipynb") == [
        "file name 'Example.ipynb' is not NN_lowercase_words.ipynb"]
    assert policy_problems(write(good_notebook(), tmp_path), "nothing listed") == [
        "99_example.ipynb is not listed in notebooks/README.md"]


def test_checker_catches_an_unreadable_file(tmp_path):
    path = tmp_path / "99_example.ipynb"
    path.write_text("{not json", encoding="utf-8")
    problems = policy_problems(path, "99_example.ipynb")
    assert len(problems) == 1 and problems[0].startswith("not a valid notebook")
