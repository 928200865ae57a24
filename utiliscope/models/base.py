"""What every posterior model of the package shares: the cached PyMC model, ``fit`` with the engine the model's
structure calls for (exact draws, i.i.d. draws from the world model, tempered SMC, or NUTS by BlackJAX, PyMC or
nutpie), the loud-on-trouble check, and the library posterior.
"""

from __future__ import annotations

import importlib
import warnings
from functools import cached_property

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from utiliscope.decisions import DEFAULT_ALPHA, DEFAULT_Q, MAX_ENUMERATE, Decision
from utiliscope.diagnostics.convergence import check
from utiliscope.diagnostics.fitted import MAX_UTILITIES, decide_fit, utility_posterior_mass
from utiliscope.models.fit_settings import (
    DEFAULT_NUTS,
    DEFAULT_SAMPLER,
    DEFAULT_TARGET_ACCEPT,
    NUTS_SAMPLERS,
    STRUCTURE_ENGINES,
    check_fit_settings,
    check_nuts_draws,
    check_starting_point,
)
from utiliscope.models.sizes import check_posterior_size, check_smc_draws
from utiliscope.priors import UtilityLibrary


class SamplerWarning(UserWarning):
    """A fit whose sampler diagnostics failed (divergences, R-hat, ESS, E-BFMI or tree depth)."""


class SamplingError(RuntimeError):
    """Raised by ``fit(strict=True)`` instead of :class:`SamplerWarning`."""


class PosteriorModel:
    """Base of :class:`~utiliscope.models.Utiliscope` and :class:`~utiliscope.models.BoltzmannIRL`.

    Subclasses implement ``build_model()``, ``settings()``, ``_exact_draws(draws, chains, seed)`` (used when the
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
        """Library rewards ``r[n, s, a]`` (library priors only)."""
        return self.utility_prior.reward_table(self.worlds.n_actions)

    @cached_property
    def features(self) -> np.ndarray:
        """Features ``phi[s, a, k]`` (linear priors only)."""
        phi = np.asarray(self.utility_prior.features, dtype=float)
        return np.repeat(phi[:, None, :], self.worlds.n_actions, axis=1) if phi.ndim == 2 else phi

    @cached_property
    def model(self) -> pm.Model:
        """The PyMC model, built once."""
        return self.build_model()

    @cached_property
    def _nutpie_compiled(self):
        """nutpie's compiled model, built once per object: later fits swap data in with ``with_data``, so a
        study that changes g′ or counts with ``pm.set_data`` does not recompile (numba compiles take 30–100 s)."""
        return _nuts_backend("nutpie").compile_pymc_model(self.model, backend="numba", freeze_model=False)

    def _sample_nutpie(self, draws, tune, chains, seed, progressbar, target_accept, **kwargs) -> az.InferenceData:
        compiled = self._nutpie_compiled
        # The compiled graph holds the data its logp uses; pass their current values (set with pm.set_data).
        data = {var.name: var.get_value() for var in self.model.data_vars if var.name in compiled.shared_data}
        compiled = compiled.with_data(**data)
        idata = _nuts_backend("nutpie").sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progress_bar=progressbar,
            target_accept=target_accept,
            save_warmup=False,
            **kwargs,
        )
        return self._with_data_groups(idata)

    def _sample_jax(self, draws, tune, chains, seed, progressbar, target_accept, **kwargs) -> az.InferenceData:
        if kwargs:
            raise TypeError(
                f"sampler='blackjax' (the default) takes no extra arguments; got {sorted(kwargs)}. They are "
                "options of pymc.sample or nutpie.sample: pass sampler='pymc' or sampler='nutpie' to use them"
            )
        _nuts_backend("blackjax")
        # Imported here: JAX is an optional backend, and its start-up is not needed by the other engines.
        from utiliscope.models.jax_sampler import sample_jax

        idata = sample_jax(self.model, draws, tune, chains, seed, progressbar, target_accept)
        return self._with_data_groups(idata)

    def _with_data_groups(self, idata: az.InferenceData) -> az.InferenceData:
        """Add to a posterior and sample_stats (nutpie, BlackJAX) the groups ``pm.sample`` would: observed and
        constant data."""
        with self.model:
            extra = pm.to_inference_data(prior={}, log_likelihood=False, model=self.model)
        idata.extend(extra)
        return idata

    def _sample_pymc(self, draws, tune, chains, seed, progressbar, target_accept, **kwargs) -> az.InferenceData:
        with self.model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*initval.*")
            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=seed,
                progressbar=progressbar,
                target_accept=target_accept,
                **kwargs,
            )

    def structure_engines(self) -> tuple[str, ...]:
        """The structure engines this model supports, best first: ``("exact",)`` when nothing continuous is left
        to sample, else none. :class:`~utiliscope.models.Utiliscope` adds ``iid`` and ``smc``."""
        return ("exact",) if not self.model.free_RVs else ()

    def auto_engine(self) -> str:
        """What ``fit(sampler="auto")`` runs: the first of :meth:`structure_engines`, else BlackJAX's NUTS."""
        engines = self.structure_engines()
        return engines[0] if engines else DEFAULT_NUTS

    def resolve_engine(self, sampler: str, draws: int) -> str:
        """The engine ``fit(sampler=sampler, draws=draws)`` runs; raises a ValueError, before any work, when the
        sampler does not fit the model's structure or NUTS would get too few draws."""
        engine = self.auto_engine() if sampler == "auto" else sampler
        supported = self.structure_engines()
        if "exact" in supported and engine in NUTS_SAMPLERS:
            engine = "exact"
        if engine in STRUCTURE_ENGINES and engine not in supported:
            raise ValueError(
                f"sampler={sampler!r} does not fit this model: it supports "
                f"{', '.join(map(repr, (*supported, *NUTS_SAMPLERS)))}. 'iid' and 'smc' need a Utiliscope with a "
                "world model of Dirichlet rows; 'exact' a library prior and a finite world model"
            )
        check_nuts_draws(engine, draws)
        check_smc_draws(engine, draws)
        return engine

    def _structure_fit(self, engine, draws, chains, seed, progressbar, options) -> az.InferenceData:
        """Run a structure engine other than ``exact`` (subclasses that offer one implement it)."""
        raise NotImplementedError(engine)

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

        ``sampler="auto"`` (the default) runs, in this order of preference, what the model supports:

        * ``"exact"``: nothing continuous is left (a library prior and a finite world model): i.i.d. draws from
          the exact posterior;
        * ``"iid"``: Dirichlet rows: i.i.d. draws of pi from the world model (and of a linear prior's direction),
          weighted by the evidence, with a library's U summed out exactly (:mod:`utiliscope.models.iid_engine`);
          when the weights say the world model is a poor proposal (Pareto k̂ > 0.7, or the MCSE target out of the
          budget's reach) the fit moves on to ``"smc"`` and says why in ``idata.attrs["engine_reason"]``;
        * ``"smc"``: tempered sequential Monte Carlo from the world model to the posterior
          (:mod:`utiliscope.models.smc_engine`);
        * otherwise NUTS (``"blackjax"``; also ``"pymc"`` or ``"nutpie"``), on the smoothed g of the PyMC model.

        ``idata.attrs["engine"]`` names the engine that ran.

        Parameters
        ----------
        draws, chains : int
            The posterior draws kept: ``chains × draws``. For NUTS and SMC these are chains and draws (SMC: one
            independent run of ``draws`` particles per chain); for ``iid`` and ``exact`` they are i.i.d. draws
            (``iid``: resampled by weight from the weighted draws, whose number the MCSE target decides).
        tune : int
            NUTS tuning steps per chain (unused by the other engines).
        seed : int
            The engine's seed; the same seed gives the same draws.
        sampler : {"auto", "exact", "iid", "smc", "blackjax", "pymc", "nutpie"}
            The engine (above).
        progressbar : bool
            Show NUTS's progress bar.
        target_accept : float
            NUTS step-size adaptation target (:data:`DEFAULT_TARGET_ACCEPT`, 0.8); raise it (0.95, 0.99) when
            the fit reports divergences.
        strict : bool
            Raise :class:`SamplingError` instead of warning when the engine's diagnostics fail.
        **sample_kwargs
            ``iid``: ``target_mcse`` (0.002), ``max_draws`` (200,000), ``min_draws`` and ``batch_size`` (2,000),
            ``client`` (a ``distributed.Client`` that computes the batches, with the answer of one process);
            ``smc``: ``n_steps`` (MH steps per stage, 25); NUTS: passed on to ``pymc.sample`` or ``nutpie.sample``
            (``cores=``, ``init=``, ...); BlackJAX and ``exact`` take none.

        Returns
        -------
        arviz.InferenceData
            Groups posterior, observed_data and constant_data; sample_stats for NUTS; ``utility_estimate`` for
            ``iid`` and ``smc`` (P(U) and its MCSE, and for ``iid`` the log weight of every draw); the model's
            settings and the engine in ``attrs``.
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
        if engine in ("pymc", "nutpie"):
            check_starting_point(float(self.model.compile_logp()(self.model.initial_point())), engine)
        if engine == "exact":
            if sample_kwargs:
                raise TypeError(
                    f"sampler 'exact' takes no extra arguments; got {sorted(sample_kwargs)}. The posterior is "
                    "exact (a library prior and a finite world model): pass only draws, chains and seed"
                )
            idata = self._exact_draws(draws, chains, seed)
            idata.attrs["engine"] = "exact"
            if sampler in NUTS_SAMPLERS:
                idata.attrs["engine_reason"] = (
                    f"sampler={sampler!r} was requested, but nothing continuous is left to sample (a library "
                    "prior over a finite world model): exact i.i.d. draws instead"
                )
        elif engine in STRUCTURE_ENGINES:
            idata = self._structure_fit(engine, draws, chains, seed, sampler == "auto", sample_kwargs)
        else:
            sample = {"pymc": self._sample_pymc, "nutpie": self._sample_nutpie, "blackjax": self._sample_jax}[
                engine
            ]
            idata = sample(draws, tune, chains, seed, progressbar, target_accept, **sample_kwargs)
            idata.attrs["engine"] = engine
        idata.attrs.setdefault(
            "engine_reason", "chosen by the model's structure" if sampler == "auto" else "requested"
        )
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
        rule: str = "expected",
        *,
        alpha: float = DEFAULT_ALPHA,
        q: float = DEFAULT_Q,
        seed: int = 0,
        max_enumerate: int = MAX_ENUMERATE,
        max_utilities: int = MAX_UTILITIES,
    ) -> Decision:
        """Choose a policy from this fit's posterior over U (see :mod:`utiliscope.decisions`).

        Parameters
        ----------
        idata : arviz.InferenceData
            A fit of this model.
        rule : {"expected", "robust", "quantilize"}
            ``expected`` maximises the posterior expected normalised value ``Σ_U P(U | data) Ṽ_U(pi)``;
            ``robust`` its lower ``alpha``-quantile over U; ``quantilize`` draws from the top ``q`` of ξ ranked by
            the expected objective.
        alpha, q : float
            The robust rule's quantile level, in (0, 1); the quantilizer's top fraction, in (0, 1].
        seed : int
            Seed of the quantilizer's draws from ξ when ξ cannot be enumerated.
        max_enumerate : int
            Deterministic policies searched exhaustively up to this many (exact); beyond, a local search that
            the decision's ``search`` names.
        max_utilities : int
            Linear priors: posterior draws used (evenly spaced).

        Returns
        -------
        Decision
            ``.policy`` (S, A) (None for a quantilizer's mixture over several worlds, see ``.mixture``), the rule,
            its settings and objective, and the posterior it used.

        Examples
        --------
        >>> import utiliscope as us
        >>> scope, idata, _ = us.quickstart.run(progressbar=False)  # doctest: +SKIP
        >>> scope.decide(idata, rule="robust", alpha=0.1).policy.shape  # doctest: +SKIP
        (6, 5)
        """
        return decide_fit(
            idata,
            rule,
            scope=self,
            alpha=alpha,
            q=q,
            seed=seed,
            max_enumerate=max_enumerate,
            max_utilities=max_utilities,
        )


def _nuts_backend(name: str):
    """Import an optional NUTS backend (the ``nuts`` extra), or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"sampler={name!r} needs the optional NUTS backends: pip install 'utiliscope[nuts]' (the default "
            "engines, sampler='auto', do not)"
        ) from err


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
