"""The examples in the math core's docstrings run and print what they say (the doctest of each module)."""
from __future__ import annotations

import doctest
import importlib
import inspect

import pytest
import torch

MATH_CORE = ("lmdis.shapes", "lmdis.geometry", "lmdis.losses", "lmdis.tps", "lmdis.networks", "lmdis.model")


@pytest.mark.parametrize("name", MATH_CORE)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} fail (run python -m doctest)"


def entry_points(module) -> list[str]:
    """The functions and modules (nn.Module classes) ``module`` defines under public names."""
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
            and (inspect.isfunction(value) or (inspect.isclass(value) and issubclass(value, torch.nn.Module)))]


@pytest.mark.parametrize("name", MATH_CORE)
def test_every_entry_point_has_an_example(name):
    module = importlib.import_module(name)
    with_examples = {test.name for test in doctest.DocTestFinder().find(module) if test.examples}
    missing = [entry for entry in entry_points(module) if f"{name}.{entry}" not in with_examples]
    assert not missing, f"{name}: public entry points without a docstring example: {missing}"
