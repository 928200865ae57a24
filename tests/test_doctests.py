"""The examples in the public docstrings run: ``doctest`` over every module of the package that has one."""

import doctest
import importlib
import pkgutil

import pytest

import utiliscope

#: Modules whose examples fit models or run simulations (maxent ~16 s, sbc ~4 s): run with --slow.
SLOW = {"utiliscope.models.maxent", "utiliscope.studies.sbc"}


def _modules_with_examples() -> list[str]:
    names = [utiliscope.__name__]
    names += [info.name for info in pkgutil.walk_packages(utiliscope.__path__, "utiliscope.")]
    return sorted(name for name in names if doctest.DocTestFinder().find(importlib.import_module(name)))


def _param(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name


def test_the_modules_with_examples_are_found():
    found = _modules_with_examples()
    assert {"utiliscope.io", "utiliscope.intelligence", "utiliscope.worlds.mdp", "utiliscope.decisions"} <= set(
        found
    )


@pytest.mark.parametrize("name", [_param(name) for name in _modules_with_examples()])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
