"""What the NUTS engines share: they sample the model's PyMC graph (its smoothed g), need a finite log density
at the start and a few draws per chain for their diagnostics, and add the groups ``pm.sample`` would."""

from __future__ import annotations

import importlib

import arviz as az
import pymc as pm

from utiliscope.models.engines.base import Engine
from utiliscope.models.impossible import check_starting_point

#: The NUTS engines need this many draws per chain: with one, ArviZ's E-BFMI fails after sampling; with two or
#: three, R-hat and ESS cannot be computed and the diagnostics judge nothing.
MIN_NUTS_DRAWS = 4


class NUTSEngine(Engine):
    """NUTS on ``model.model``; subclasses implement :meth:`sample`."""

    priority = 50
    is_nuts = True
    universal = True
    #: Whether the log density at the model's initial point is checked before sampling.
    checks_start = True

    def supports(self, model) -> bool:
        return True

    def check_draws(self, draws: int) -> None:
        """At least :data:`MIN_NUTS_DRAWS` per chain: with fewer, the diagnostics fail after the sampler has run
        and its draws are lost."""
        if draws < MIN_NUTS_DRAWS:
            raise ValueError(
                f"draws is {draws}; the NUTS sampler {self.name!r} needs at least {MIN_NUTS_DRAWS} draws per "
                "chain for its convergence diagnostics: raise draws"
            )

    def run(self, model, settings, options) -> az.InferenceData:
        if self.checks_start:
            check_starting_point(float(model.model.compile_logp()(model.model.initial_point())), self.name)
        idata = self.sample(model, settings, options)
        idata.attrs["engine"] = self.name
        warn_outside_range(model, idata)
        return idata

    def sample(self, model, settings, options) -> az.InferenceData:
        raise NotImplementedError


def warn_outside_range(model, idata: az.InferenceData) -> None:
    """The weighted engines' :class:`~utiliscope.models.g_methods.GAccuracyWarning`, for NUTS draws: when more
    than 1% of the posterior weight lies on draws whose g (the graph's ``g`` node) is outside the g method's
    accurate range. A library's weight per draw and entry is the ``U`` node, ``P(U = i | pi, data)``. A finite
    world model's g is a fixed table, judged by the exact engine, not per draw."""
    target = model.target
    if target is None or not target.needs_g or target.is_finite:
        return
    posterior = idata.posterior
    g = posterior["g"].values
    g = g.reshape(-1, *g.shape[2:])
    weights = posterior["U"].values.reshape(g.shape) if target.estimate_dim == "utility" else None
    target.estimator.warn_outside(g, weights)


def with_data_groups(model: pm.Model, idata: az.InferenceData) -> az.InferenceData:
    """Add to a posterior and sample_stats (nutpie, BlackJAX) the groups ``pm.sample`` would: observed and
    constant data."""
    with model:
        extra = pm.to_inference_data(prior={}, log_likelihood=False, model=model)
    idata.extend(extra)
    return idata


def nuts_backend(name: str):
    """Import an optional NUTS backend (the ``nuts`` extra), or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"sampler={name!r} needs the optional NUTS backends: pip install 'utiliscope[nuts]' (the default "
            "engines, sampler='auto', do not)"
        ) from err


__all__ = ["MIN_NUTS_DRAWS", "NUTSEngine", "nuts_backend", "warn_outside_range", "with_data_groups"]
