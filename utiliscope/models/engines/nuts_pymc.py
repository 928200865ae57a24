"""The ``pymc`` engine: ``pm.sample``'s NUTS; every extra keyword argument of ``fit`` goes to ``pm.sample``."""

from __future__ import annotations

import warnings
from typing import ClassVar

import pymc as pm

from utiliscope.models.engines.base import NoOptions
from utiliscope.models.engines.nuts import NUTSEngine


class PyMCNUTS(NUTSEngine):
    """PyMC's NUTS; options are ``pm.sample``'s (``cores=``, ``init=``, ...)."""

    name = "pymc"
    Options = NoOptions
    passes_extra = True
    #: One core per fit (Dask runs the fits in parallel) and no convergence summary per fit (the run's table
    #: reports diagnostics).
    many_fits_options: ClassVar[dict] = {"cores": 1, "compute_convergence_checks": False}

    def sample(self, model, settings, options):
        _, extra = options
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


__all__ = ["PyMCNUTS"]
