"""The examples in the public docstrings run: ``doctest`` over every module of the package that has one."""

import doctest
import importlib
import pkgutil

import pytest

import utiliscope

#: Modules whose examples fit models or run simulations (maxent ~16 s, sbc ~4 s): run with --slow.
SLOW = {"utiliscope.models.maxent", "utiliscope.studies.sbc"}


#: The packages of the nuts extra: modules that import them are left out where it is not installed.
NUTS_EXTRA = {"jax", "jaxlib", "blackjax", "nutpie"}


def _modules_with_examples() -> list[str]:
    names = [utiliscope.__name__]
    names += [info.name for info in pkgutil.walk_packages(utiliscope.__path__, "utiliscope.")]
    found = []
    for name in sorted(names):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] not in NUTS_EXTRA:
                raise
            continue
        if doctest.DocTestFinder().find(module):
            found.append(name)
    return found


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
