"""The layering of lmdis/__init__.py holds: every import of every module, read from its source, points down.

Imports inside functions count as much as those at the top, relative imports
are resolved, and a module outside the table below fails the test until it
is given a layer. Notebooks and benchmarks are checked for the one rule that
concerns them: nothing imports the command line.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lmdis"

# Layer of each module (a name covers its submodules), lowest first.
LAYERS = {
    "math core": ("lmdis.shapes", "lmdis.geometry", "lmdis.losses", "lmdis.tps", "lmdis.networks", "lmdis.model"),
    "data": ("lmdis.data",),
    "figures": ("lmdis.plotting",),
    "config": ("lmdis.config",),
    "runs": ("lmdis.checkpoint", "lmdis.train", "lmdis.diagnostics", "lmdis.evaluate", "lmdis.inference",
             "lmdis.zoo"),
    "widgets": ("lmdis.manipulation",),
    "command line": ("lmdis.cli", "lmdis.__main__"),
}
# What each layer may import of lmdis (its own layer included).
MAY_IMPORT = {
    "math core": {"math core"},
    "data": {"data"},
    "figures": {"data", "figures"},
    "config": {"math core", "data", "config"},
    "runs": {"math core", "data", "figures", "config", "runs"},
    "widgets": {"math core", "data", "figures", "config", "runs", "widgets"},
    "command line": set(LAYERS),
}
TRAINER = ("lmdis.train", "lmdis.diagnostics")  # lmdis.diagnostics watches the trainer's objective
INFERENCE = ("lmdis.checkpoint", "lmdis.inference", "lmdis.evaluate", "lmdis.zoo")
CORE_THIRD_PARTY = {"torch"}  # the math core imports the standard library and torch only


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, anywhere in it; ``from a import b`` gives ``a.b`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()
                      or (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/") / "__init__.py").exists()}
    return found


def layer_of(module: str) -> str | None:
    for layer, prefixes in LAYERS.items():
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return layer
    return None


def lmdis_modules() -> dict[str, set[str]]:
    """Module name -> the modules it imports, for every .py file under lmdis/."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        graph[name] = imported_modules(path.read_text(), name, path.name == "__init__.py")
    return graph


GRAPH = lmdis_modules()


def test_every_module_has_a_layer():
    unplaced = [name for name in GRAPH if name != "lmdis" and layer_of(name) is None]
    assert not unplaced, f"give these modules a layer in tests/test_layering.py (and lmdis/__init__.py): {unplaced}"


def test_the_package_root_imports_nothing_of_lmdis():
    assert not [name for name in GRAPH["lmdis"] if name.startswith("lmdis")]


@pytest.mark.parametrize("module", sorted(name for name in GRAPH if name != "lmdis"))
def test_imports_point_down(module):
    layer = layer_of(module)
    wrong = sorted(f"{target} ({layer_of(target)})" for target in GRAPH[module]
                   if target.startswith("lmdis.") and layer_of(target) not in MAY_IMPORT[layer])
    assert not wrong, f"{module} ({layer}) may import only {sorted(MAY_IMPORT[layer])}; it imports {wrong}"


@pytest.mark.parametrize("module", sorted(name for name in GRAPH if layer_of(name) == "math core"))
def test_the_math_core_imports_only_torch_and_the_standard_library(module):
    outside = sorted(target for target in GRAPH[module] if not target.startswith("lmdis")
                     and target.split(".")[0] not in CORE_THIRD_PARTY | set(sys.stdlib_module_names))
    assert not outside, f"{module} imports {outside}"


def closure(module: str) -> set[str]:
    """Every lmdis module ``module`` imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target.startswith("lmdis") and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("module", sorted(name for name in GRAPH if layer_of(name) == "runs"
                                          and name.startswith(INFERENCE)))
def test_inference_never_imports_the_trainer(module):
    reached = sorted(target for target in closure(module) if target.startswith(TRAINER))
    assert not reached, f"{module} reaches the trainer through {reached}"


def test_nothing_imports_the_command_line():
    importers = [name for name, targets in GRAPH.items()
                 if name != "lmdis.__main__" and any(t == "lmdis.cli" or t.startswith("lmdis.cli.") for t in targets)]
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        if "lmdis.cli" in imported_modules(path.read_text(), path.stem, False):
            importers.append(str(path.relative_to(REPO)))
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                code = "\n".join(line for line in "".join(cell["source"]).splitlines()
                                 if not line.lstrip().startswith(("%", "!")))
                if "lmdis.cli" in imported_modules(code, path.stem, False):
                    importers.append(str(path.relative_to(REPO)))
    assert not importers, f"the command line is a leaf; these import it: {importers}"


def test_the_checker_sees_imports_inside_functions_relative_ones_and_submodules():
    inside = "def f():\n    from lmdis.train import Trainer\n"
    assert "lmdis.train" in imported_modules(inside, "lmdis.evaluate.benchmark", False)
    assert "lmdis.config" in imported_modules("from ..config import Config", "lmdis.zoo", True)
    assert "lmdis.evaluate" in imported_modules("from . import x", "lmdis.evaluate.benchmark", False)
    assert "lmdis.data.images" in imported_modules("from lmdis.data import images", "lmdis.cli", False)
