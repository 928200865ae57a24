"""The package loads its public names on first use, and they are the same objects an eager import gave."""

import pickle
import subprocess
import sys

import cloudpickle
import pytest

import utiliscope as us


def test_every_public_name_resolves():
    for name in us.__all__:
        assert getattr(us, name) is not None, name
    assert set(us.__all__) <= set(dir(us))


def test_every_submodule_is_an_attribute():
    assert us.models.Utiliscope is us.Utiliscope and us.world_model.WorldModel is us.WorldModel
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = us.nothing


def test_a_function_named_like_its_module_stays_the_function():
    import utiliscope.intelligence  # noqa: F401  (the import system sets the submodule on the package)

    assert callable(us.intelligence) and us.intelligence.__module__ == "utiliscope.intelligence"


def test_studies_are_named_under_diagnostics():
    from utiliscope import studies
    from utiliscope.diagnostics import recovery_study

    assert us.diagnostics.sbc is studies.sbc and recovery_study is studies.recovery_study


def test_the_package_pickles_by_reference():
    """Dask and the studies cloudpickle functions that name the package."""
    assert pickle.loads(pickle.dumps(us)) is us
    assert cloudpickle.loads(cloudpickle.dumps(lambda: us.worlds))() is us.worlds


def test_import_loads_no_sampler():
    code = "import sys, utiliscope; print(sorted(m for m in ('pymc', 'pytensor', 'arviz') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
