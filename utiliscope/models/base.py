"""What every posterior model of the package shares: the cached PyMC model, ``fit`` with the engine the model's
structure calls for (exact draws, i.i.d. draws from the world model, tempered SMC, or NUTS by BlackJAX, PyMC or
nutpie), the loud-on-trouble check, and the library posterior.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from utiliscope.decisions import DEFAULT_RULE, MAX_ENUMERATE, Decision, Rule
from utiliscope.diagnostics.convergence import check
from utiliscope.diagnostics.fitted import MAX_UTILITIES, decide_fit, utility_posterior_mass
from utiliscope.evaluation import feature_table
from utiliscope.models.engines import ENGINES, Engine, FitSettings, auto_engine, get_engine
from utiliscope.models.fit_settings import (
    DEFAULT_SAMPLER,
    DEFAULT_TARGET_ACCEPT,
    check_fit_settings,
)
from utiliscope.models.sizes import check_posterior_size
from utiliscope.priors import UtilityLibrary


class SamplerWarning(UserWarning):
    """A fit whose sampler diagnostics failed (divergences, R-hat, ESS, E-BFMI or tree depth)."""


class SamplingError(RuntimeError):
    """Raised by ``fit(strict=True)`` instead of :class:`SamplerWarning`."""


class PosteriorModel:
    """Base of :class:`~utiliscope.models.Utiliscope` and :class:`~utiliscope.models.BoltzmannIRL`.

    Subclasses implement ``build_model()``, ``settings()``, ``exact_draws(draws, chains, seed)`` (used when the
    model has no free variable) and set ``worlds`` and ``utility_prior``.
    """

    utility_prior = None
    #: What ``settings()["model"]`` records; :meth:`from_idata` rebuilds only a fit of its own class.
    model_name = ""

    @classmethod
    def from_idata(cls, idata: az.InferenceData):
        """Rebuild the model that made a fit from the fit alone: its ``attrs`` (``settings()``) and its group
        ``worlds`` (as pymc-marketing's model builder does), so that a saved run can be refitted, decided on or
        reported without the script that made it: ``Utiliscope.from_idata(us.load("run.nc"))``.

        The rebuilt model's ``settings()`` equal the original's, and a refit with the same seed gives the same
        draws.

        Raises
        ------
        ValueError
            Naming what the run lacks: a ``worlds`` group (runs saved before it was stored), a setting in
            ``attrs``, a ξ that is a ``PolicySet`` (its policies are not saved), or a fit of another class.
        """
        saved = idata.attrs.get("model", "utiliscope")
        if saved != cls.model_name:
            owner = next((c.__name__ for c in _subclasses(PosteriorModel) if c.model_name == saved), None)
            raise ValueError(
                f"this run was made by model {saved!r}"
                + (f"; rebuild it with {owner}.from_idata" if owner else ", which no class of this package makes")
            )
        scope = cls(**cls._saved_arguments(idata))
        scope._restore(idata)
        return scope

    @classmethod
    def _saved_arguments(cls, idata: az.InferenceData) -> dict:
        """The constructor's arguments, read back from a fit (:mod:`utiliscope.diagnostics.fitted`)."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a fit")

    def _restore(self, idata: az.InferenceData) -> None:
        """What the constructor cannot take but the fit recorded (default: nothing)."""

    @property
    def is_library(self) -> bool:
        """Whether U has a finite library prior (else a linear prior)."""
        return isinstance(self.utility_prior, UtilityLibrary)

    @cached_property
    def rewards(self) -> np.ndarray:
        """Library rewards ``r[n, s, a]`` (library priors only): the target's where the model has one."""
        return (
            self.utility_prior.reward_table(self.worlds.n_actions) if self.target is None else self.target.rewards
        )

    @cached_property
    def features(self) -> np.ndarray:
        """Features ``phi[s, a, k]`` (linear priors only): the target's where the model has one."""
        return (
            feature_table(self.worlds, self.utility_prior.features)
            if self.target is None
            else self.target.features
        )

    @cached_property
    def model(self) -> pm.Model:
        """The PyMC model, built once."""
        return self.build_model()

    #: The model's joint density (:mod:`utiliscope.models.target`); None where only NUTS fits the model.
    target = None

    def add_evidence(self, term) -> None:
        """Add an evidence term (:class:`~utiliscope.models.target.EvidenceTerm`) to the model's target: every
        engine fits the new density (the PyMC model is rebuilt on next use)."""
        if self.target is None:
            raise ValueError(f"this {type(self).__name__} has no target to add evidence to (it is fitted by NUTS)")
        self.target.add(term)
        self.__dict__.pop("model", None)

    def resolve_engine(self, sampler: str, draws: int) -> Engine:
        """The engine ``fit(sampler=sampler, draws=draws)`` runs; raises a ValueError, before any work, when the
        sampler does not fit the model's structure or NUTS would get too few draws. A NUTS sampler asked of a
        model with nothing continuous left gives the exact engine."""
        first = auto_engine(self)
        engine = first if sampler == DEFAULT_SAMPLER else get_engine(sampler)
        if engine.is_nuts and first.exhaustive:
            return first
        if not engine.supports(self):
            supported = [name for name, candidate in ENGINES.items() if candidate.supports(self)]
            raise ValueError(
                f"sampler={sampler!r} does not fit this model: it supports {', '.join(map(repr, supported))}"
            )
        engine.check_draws(draws)
        return engine

    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed: int = 0,
        sampler: str = DEFAULT_SAMPLER,
        *,
        progressbar: bool = True,
        target_accept: float = DEFAULT_TARGET_ACCEPT,
        strict: bool = False,
        **sample_kwargs,
    ) -> az.InferenceData:
        """Fit the posterior with the engine its structure calls for, and return it as ``arviz.InferenceData``.

        ``sampler="auto"`` (the default) runs the first registered engine, by priority, that supports the
        model's structure (:mod:`utiliscope.models.engines`): exact draws when nothing continuous is left; i.i.d.
        draws of the latents from their priors weighted by the evidence, moving on to tempered SMC when the
        weights cannot be trusted; else NUTS on the PyMC model. A NUTS sampler asked of a model with nothing
        continuous left gets the exact draws. ``idata.attrs["engine"]`` names the engine that ran and
        ``idata.attrs["engine_reason"]`` why.

        Parameters
        ----------
        draws, chains : int
            The posterior draws kept: ``chains × draws``. For NUTS and SMC these are chains and draws (SMC: one
            independent run of ``draws`` particles per chain); for the i.i.d. engines they are i.i.d. draws
            (resampled by weight from the weighted draws, whose number the MCSE target decides).
        tune : int
            NUTS tuning steps per chain (unused by the other engines).
        seed : int
            The engine's seed; the same seed gives the same draws.
        sampler : str
            ``"auto"`` or a registered engine's name (:func:`~utiliscope.models.engines.engine_names`).
        progressbar : bool
            Show NUTS's progress bar.
        target_accept : float
            NUTS step-size adaptation target (:data:`DEFAULT_TARGET_ACCEPT`, 0.8); raise it (0.95, 0.99) when
            the fit reports divergences.
        strict : bool
            Raise :class:`SamplingError` instead of warning when the engine's diagnostics fail.
        **sample_kwargs
            The engine's options: the fields of its ``Options`` dataclass (e.g. the i.i.d. engine's
            ``target_mcse``, ``max_draws``, ``client``; SMC's ``n_steps``), or for PyMC's and nutpie's NUTS their
            own sampler's keyword arguments (``cores=``, ``init=``, ...).

        Returns
        -------
        arviz.InferenceData
            Groups posterior, observed_data and constant_data; sample_stats for NUTS; ``utility_estimate`` for
            the engines that weight draws (P(U) and its MCSE, and the i.i.d. engine's log weight of every draw);
            the model's settings and the engine in ``attrs``.
        """
        settings = check_fit_settings(
            {
                "draws": draws,
                "tune": tune,
                "chains": chains,
                "seed": seed,
                "sampler": sampler,
                "progressbar": progressbar,
                "target_accept": target_accept,
                "strict": strict,
            }
        )
        draws, tune, chains, seed, target_accept = (
            settings[key] for key in ("draws", "tune", "chains", "seed", "target_accept")
        )
        engine = self.resolve_engine(sampler, draws)
        check_posterior_size(draws, chains, self.worlds.n_states * self.worlds.n_actions + 1)
        options = engine.options(sample_kwargs)
        auto = sampler == DEFAULT_SAMPLER
        idata = engine.run(self, FitSettings(draws, tune, chains, seed, progressbar, target_accept, auto), options)
        if engine.name != sampler and not auto:
            idata.attrs["engine_reason"] = (
                f"sampler={sampler!r} was requested, but nothing continuous is left to sample: the "
                f"{engine.name} engine's i.i.d. draws instead"
            )
        idata.attrs.setdefault("engine_reason", "chosen by the model's structure" if auto else "requested")
        idata.attrs.update(self.settings())
        idata.add_groups({"worlds": self.worlds.to_dataset()})
        if {"sample_stats", "utility_estimate"} & set(idata.groups()):
            _judge(idata, strict)
        return idata

    def utility_posterior(self, idata: az.InferenceData) -> xr.DataArray:
        """Posterior probability of each library utility: the average over draws of the per-draw ``U``.

        ``U`` holds the exact conditional P(U | the other latents, data) of each draw, so this average is
        Rao–Blackwellised: accurate even for entries with little mass. Fits by ``iid`` and ``smc`` carry the
        estimate over all their weighted draws (group ``utility_estimate``, with its MCSE), which is returned
        instead of the average over the resampled posterior draws.
        """
        if not self.is_library:
            raise ValueError(
                "utility_posterior needs a UtilityLibrary prior; with a LinearUtility prior the posterior of "
                "the direction is idata.posterior['U'] (dim 'feature')"
            )
        return utility_array(utility_posterior_mass(idata), self.utility_prior.names)

    def decide(
        self,
        idata: az.InferenceData,
        rule: str | Rule = DEFAULT_RULE,
        *,
        seed: int = 0,
        max_enumerate: int = MAX_ENUMERATE,
        max_utilities: int = MAX_UTILITIES,
        **parameters,
    ) -> Decision:
        """Choose a policy from this fit's posterior over U (see :mod:`utiliscope.decisions`).

        Parameters
        ----------
        idata : arviz.InferenceData
            A fit of this model.
        rule : str or Rule
            A registered decision rule's name (``us.decisions.rule_names()``; each rule's module says what it
            maximises or draws) or a rule object carrying its parameters.
        seed : int
            Seed of a rule's random draws (e.g. from ξ when ξ cannot be enumerated).
        max_enumerate : int
            Deterministic policies searched exhaustively up to this many (exact); beyond, a local search that
            the decision's ``search`` names.
        max_utilities : int
            Linear priors: posterior draws used (evenly spaced).
        **parameters
            The rule's parameters, e.g. a quantile level (``us.decisions.rule_parameters()`` lists them).

        Returns
        -------
        Decision
            ``.policy`` (S, A) (None for a mixture over several worlds that no stationary policy equals, see
            ``.mixture``), the rule, its settings and objective, and the posterior it used.

        Examples
        --------
        >>> import utiliscope as us
        >>> scope, idata, _ = us.quickstart.run(progressbar=False)  # doctest: +SKIP
        >>> scope.decide(idata).policy.shape  # doctest: +SKIP
        (6, 5)
        """
        return decide_fit(
            idata,
            rule,
            scope=self,
            seed=seed,
            max_enumerate=max_enumerate,
            max_utilities=max_utilities,
            **parameters,
        )


def _subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls``, recursively."""
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _judge(idata: az.InferenceData, strict: bool) -> None:
    """One warning (or, if strict, an error) naming what failed, pointing at ``diagnostics.check``."""
    report = check(idata, describe=False)
    if report.ok:
        return
    failed = sorted({f"{failure.criterion} of {failure.variable}" for failure in report.failures})
    message = (
        f"the sampler's diagnostics failed: {'; '.join(failed)}. Run us.diagnostics.check(idata) for the "
        "values, thresholds and remedies before trusting this fit"
    )
    if strict:
        raise SamplingError(message)
    warnings.warn(message, SamplerWarning, stacklevel=3)


def utility_array(probabilities: np.ndarray, names) -> xr.DataArray:
    """Probabilities over library utilities as a DataArray with dim ``utility``."""
    return xr.DataArray(
        np.asarray(probabilities, dtype=float),
        dims="utility",
        coords={"utility": list(names)},
        name="P(U | data)",
    )


__all__ = [
    "PosteriorModel",
    "SamplerWarning",
    "SamplingError",
    "utility_array",
]
