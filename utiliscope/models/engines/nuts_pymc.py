"""The ``pymc`` engine: ``pm.sample``'s NUTS; every extra keyword argument of ``fit`` goes to ``pm.sample``."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import ClassVar

import pymc as pm

from utiliscope._validation import check_count
from utiliscope.models.engines.nuts import NUTSEngine


@dataclass(frozen=True)
class PyMCOptions:
    """``cores``: chains run in parallel (PyMC's default when None). Every other keyword argument of ``fit``
    goes to ``pm.sample`` as it is."""

    cores: int | None = None

    def __post_init__(self) -> None:
        if self.cores is not None:
            object.__setattr__(self, "cores", check_count(self.cores, "cores"))


class PyMCNUTS(NUTSEngine):
    """PyMC's NUTS; options are ``pm.sample``'s (``cores=``, ``init=``, ...)."""

    name = "pymc"
    Options = PyMCOptions
    passes_extra = True
    #: One core per fit (Dask runs the fits in parallel) and no convergence summary per fit (the run's table
    #: reports diagnostics).
    many_fits_options: ClassVar[dict] = {"cores": 1, "compute_convergence_checks": False}

    def sample(self, model, settings, options):
        options, extra = options
        if options.cores is not None:
            extra = {"cores": options.cores, **extra}
        if "jax" in sys.modules:
            # JAX runs threads: forking a process that has imported it may deadlock (JAX warns so), and PyMC
            # forks its chain processes by default on Linux. A forkserver starts them from a clean process.
            extra = {"mp_ctx": "forkserver", **extra}
        with model.model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*initval.*")
            return pm.sample(
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                random_seed=settings.seed,
                progressbar=settings.progressbar,
                target_accept=settings.target_accept,
                **extra,
            )


__all__ = ["PyMCNUTS", "PyMCOptions"]
