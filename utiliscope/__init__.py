"""utiliscope: Bayesian inverse reinforcement learning from the intelligence of an operator's policy.

The Utiliscope infers an operator's utility U from a world model's belief about the operator's policy pi, a
simplicity prior over U, and the evidence that the operator is intelligent under U but not perfect. See
docs/model.md in the source repository for the math and the README for a first fit.

The public names load on first use (``us.Utiliscope`` imports PyMC, ``us.worlds`` does not), so that ``import
utiliscope`` and the command line's ``--help`` stay quick.
"""

import sys
from importlib import import_module
from types import ModuleType

from utiliscope._version import __version__ as __version__

#: Subpackages and modules the package names, loaded on first access.
_MODULES = ("agents", "decisions", "diagnostics", "likelihoods", "priors", "studies", "worlds")
#: Each public class or function and the module that defines it.
_NAMES = {
    "Decision": "utiliscope.decisions",
    "Demonstrations": "utiliscope.demonstrations",
    "Trajectory": "utiliscope.demonstrations",
    "evaluate": "utiliscope.evaluation",
    "evaluate_policies": "utiliscope.evaluation",
    "feature_expectations": "utiliscope.evaluation",
    "occupancy": "utiliscope.evaluation",
    "state_occupancy": "utiliscope.evaluation",
    "intelligence": "utiliscope.intelligence",
    "intelligence_table": "utiliscope.intelligence",
    "load": "utiliscope.io",
    "save": "utiliscope.io",
    "Utiliscope": "utiliscope.models",
    "DirichletPolicies": "utiliscope.policies",
    "PolicyPrior": "utiliscope.policies",
    "PolicySet": "utiliscope.policies",
    "UniformDeterministic": "utiliscope.policies",
    "WorldModel": "utiliscope.world_model",
    "TabularMDP": "utiliscope.worlds",
    "WorldSet": "utiliscope.worlds",
}

__all__ = sorted(["__version__", *_MODULES, *_NAMES])


def __getattr__(name: str):
    """Import a public name, or any other submodule (``us.models``), on first access and keep it (PEP 562)."""
    if name in _NAMES:
        value = getattr(import_module(_NAMES[name]), name)
    elif name.startswith("_"):
        raise AttributeError(f"module 'utiliscope' has no attribute {name!r}")
    else:
        try:
            value = import_module(f"utiliscope.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"utiliscope.{name}":
                raise
            raise AttributeError(f"module 'utiliscope' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """The package's module type: a public name that is also a submodule's name (``intelligence``) stays the
    public function when the import system sets the submodule as an attribute of the package."""

    def __setattr__(self, name: str, value) -> None:
        if name in _NAMES and isinstance(value, ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __reduce__(self):
        # By reference, as cloudpickle pickles a module (its dispatch is by exact type): Dask and the studies
        # pickle functions that name the package.
        return import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package


def _wire_studies() -> None:
    """Name the studies and the predictive check under diagnostics (``us.diagnostics.sbc``,
    ``us.diagnostics.predictive_check``), as the public API does.

    They live in utiliscope.studies, above the models they fit, so the package wires the names rather than
    diagnostics importing upward; diagnostics calls this on the first access of one of them.
    """
    diagnostics, studies = import_module("utiliscope.diagnostics"), import_module("utiliscope.studies")
    diagnostics.sbc, diagnostics.SBCResult, diagnostics.recovery_study = (
        studies.sbc,
        studies.SBCResult,
        studies.recovery_study,
    )
    diagnostics.predictive_check = import_module("utiliscope.models.predictive_check").predictive_check
