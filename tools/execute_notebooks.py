"""Execute notebooks in place so that their committed outputs are fresh.

    python tools/execute_notebooks.py notebooks/0*.ipynb
    python tools/execute_notebooks.py notebooks/05_training.ipynb -p steps 2000

Each notebook runs top to bottom with papermill on the ``python3`` kernel, in
the notebook's own folder (so relative paths in a notebook mean the same here,
under nbval and in Jupyter), and is written back over itself. Papermill's
per-run bookkeeping (timestamps, durations, paths) is then removed from the
metadata, so re-running an unchanged notebook changes only what it shows.
A notebook that fails is left as it was; the failed run is kept in a
temporary file whose path is printed. The rules a committed notebook must
meet are in notebooks/README.md and are checked by tests/test_notebooks.py.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

MAX_BYTES = 2 * 1024 * 1024
KERNEL = "python3"
VOLATILE_CELL_METADATA = ("papermill", "execution")


def write_without_run_metadata(executed: Path, path: Path) -> None:
    """Write ``executed`` to ``path`` without papermill's timestamps, durations and paths."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    nbformat.write(notebook, path)


def execute(path: Path, parameters: dict, timeout: int) -> float:
    """Run one notebook and replace it with the executed copy; returns the wall time in seconds.

    Raises papermill.PapermillExecutionError with ``.output`` set to the
    failed run's file; the notebook itself is then unchanged.
    """
    path = path.resolve()
    handle, output = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=".ipynb")
    os.close(handle)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path), output, parameters=parameters, kernel_name=KERNEL, cwd=str(path.parent),
            progress_bar=False, execution_timeout=timeout,
        )
    except papermill.PapermillExecutionError as error:
        error.output = output
        raise
    elapsed = time.perf_counter() - start
    write_without_run_metadata(Path(output), path)
    os.remove(output)
    return elapsed


def parse_parameter(pair: list[str]):
    """``-p name value``: the value is read as a Python literal when it is one, else kept as text."""
    name, text = pair
    try:
        return name, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return name, text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to execute in place")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a value of the notebooks' 'parameters' cell (papermill -p)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell (default 1200)")
    args = parser.parse_args(argv)
    parameters = dict(parse_parameter(pair) for pair in args.parameter)
    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    failed = []
    for path in args.notebooks:
        print(f"{path}: running", flush=True)
        try:
            elapsed = execute(path, parameters, args.timeout)
        except papermill.PapermillExecutionError as error:
            print(f"{path}: FAILED in cell {error.exec_count}: {error.ename}: {error.evalue} "
                  f"(unchanged; the failed run is {error.output})", flush=True)
            failed.append(path)
            continue
        size = path.stat().st_size
        note = "" if size < MAX_BYTES else f"  TOO LARGE (limit {MAX_BYTES / 1e6:.1f} MB): shrink its figures"
        print(f"{path}: {elapsed:.1f} s, {size / 1e3:.0f} kB{note}", flush=True)
        if size >= MAX_BYTES:
            failed.append(path)
    if failed:
        print(f"{len(failed)} notebook(s) need attention: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
