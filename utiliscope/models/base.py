"""What every posterior model of the package shares: the cached PyMC model, ``fit`` with BlackJAX's, PyMC's or
nutpie's NUTS (or exact i.i.d. draws when nothing continuous is left), the loud-on-trouble check, and the library
posterior.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import arviz as az
import numpy as np
import nutpie
import pymc as pm
import xarray as xr

from utiliscope._validation import check_count
from utiliscope.diagnostics.convergence import check
from utiliscope.intelligence import check_method

SAMPLERS = ("pymc", "nutpie", "blackjax")
#: ``fit``'s sampler: BlackJAX's NUTS had the shortest time to 400 bulk ESS on the benchmark problems (a) and (b)
#: (``benchmarks/performance.py``; README "Performance") and compiles once per model structure.
DEFAULT_SAMPLER = "blackjax"
#: ``fit``'s NUTS step-size target: Stan's, PyMC's and BlackJAX's default. Measured against 0.9 (the first
#: draft's choice) on problem (a) at ``fit``'s defaults, two seeds: with importance g 89–90 leapfrog steps a draw
#: instead of 188–212 (2.2× faster fits), with Monte Carlo g 46–62 instead of 70–75; no divergences at either, and
#: bulk ESS 988–1717 against 838–1648. On the quickstart at 0.8 the convergence check passed on seeds 0–9.
DEFAULT_TARGET_ACCEPT = 0.8
#: Options of ``pm.sample`` that many-fit runs (studies, SBC) add for PyMC's sampler only: one core per fit, as
#: Dask runs the fits in parallel, and no convergence summary per fit (the run's table reports diagnostics).
PYMC_MANY_FITS_OPTIONS = {"cores": 1, "compute_convergence_checks": False}


def many_fits_kwargs(defaults: dict, fit_kwargs: dict | None) -> dict:
    """``fit`` arguments of a study or SBC: ``defaults``, overridden by ``fit_kwargs``, plus
    :data:`PYMC_MANY_FITS_OPTIONS` when the sampler is PyMC's (the other samplers do not take them)."""
    merged = {**defaults, **(fit_kwargs or {})}
    if merged.get("sampler", DEFAULT_SAMPLER) == "pymc":
        merged = {**PYMC_MANY_FITS_OPTIONS, **merged}
    return merged


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

    @property
    def is_library(self) -> bool:
        """Whether U has a finite library prior (else a linear prior)."""
        return self.utility_prior.kind == "library"

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
        return nutpie.compile_pymc_model(self.model, backend="numba", freeze_model=False)

    def _sample_nutpie(self, draws, tune, chains, seed, progressbar, target_accept, **kwargs) -> az.InferenceData:
        compiled = self._nutpie_compiled
        # The compiled graph holds the data its logp uses; pass their current values (set with pm.set_data).
        data = {var.name: var.get_value() for var in self.model.data_vars if var.name in compiled.shared_data}
        compiled = compiled.with_data(**data)
        idata = nutpie.sample(
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
        # Imported here: JAX's start-up is not needed by users of the other samplers.
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
        """Sample the posterior and return it as ``arviz.InferenceData``.

        Parameters
        ----------
        draws, tune, chains : int
            Posterior draws and tuning steps per chain, and the number of chains.
        seed : int
            Seed of the sampler; the same seed gives the same draws.
        sampler : {"blackjax", "pymc", "nutpie"}
            BlackJAX's NUTS on a JAX build of the model (the default: compiled once per model structure and reused
            by every later fit, also of new objects), PyMC's NUTS, or nutpie's (compiled with numba once per model
            object and reused by later fits).
        progressbar : bool
            Show the sampler's progress bar.
        target_accept : float
            NUTS step-size adaptation target (:data:`DEFAULT_TARGET_ACCEPT`, 0.8); raise it (0.95, 0.99) when
            the fit reports divergences.
        strict : bool
            Raise :class:`SamplingError` instead of warning when the sampler's diagnostics fail.
        **sample_kwargs
            Passed on to ``pymc.sample`` or ``nutpie.sample`` (``cores=``, ``init=``, ...); BlackJAX takes none.

        Returns
        -------
        arviz.InferenceData
            Groups posterior, sample_stats (MCMC only), observed_data and constant_data, with the model's
            settings in ``attrs``. With nothing continuous to sample the draws are exact and i.i.d.
        """
        draws = check_count(draws, "draws")
        tune = check_count(tune, "tune", minimum=0)
        chains = check_count(chains, "chains")
        check_method(sampler, SAMPLERS, name="sampler")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed is {seed!r}; it must be a non-negative integer")
        if not self.model.free_RVs:
            idata = self._exact_draws(draws, chains, seed)
        else:
            sample = {"pymc": self._sample_pymc, "nutpie": self._sample_nutpie, "blackjax": self._sample_jax}[
                sampler
            ]
            idata = sample(draws, tune, chains, seed, progressbar, target_accept, **sample_kwargs)
        idata.attrs.update(self.settings())
        if "sample_stats" in idata.groups():
            _judge(idata, strict)
        return idata

    def utility_posterior(self, idata: az.InferenceData) -> xr.DataArray:
        """Posterior probability of each library utility: the average over draws of the per-draw ``U``.

        ``U`` holds the exact conditional P(U | the other latents, data) of each draw, so this average is
        Rao–Blackwellised: accurate even for entries with little mass.
        """
        if not self.is_library:
            raise ValueError(
                "utility_posterior needs a UtilityLibrary prior; with a LinearUtility prior the posterior of "
                "the direction is idata.posterior['U'] (dim 'feature')"
            )
        probabilities = idata.posterior["U"].mean(dim=("chain", "draw")).values
        return utility_array(probabilities / probabilities.sum(), self.utility_prior.names)


def _judge(idata: az.InferenceData, strict: bool) -> None:
    """One warning (or, if strict, an error) naming what failed, pointing at ``diagnostics.check``."""
    report = check(idata)
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
    "DEFAULT_SAMPLER",
    "PYMC_MANY_FITS_OPTIONS",
    "SAMPLERS",
    "PosteriorModel",
    "SamplerWarning",
    "SamplingError",
    "many_fits_kwargs",
    "utility_array",
]
