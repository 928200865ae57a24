"""``fit``'s settings: the engines it can run, its defaults, and the checks every caller shares (``fit``, ``sbc``,
``recovery_study``, specs, the NUTS sampler), made before any work."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from utiliscope._validation import check_choice, check_count, check_fraction, check_seed

#: The NUTS samplers ``fit`` can run.
NUTS_SAMPLERS = ("blackjax", "pymc", "nutpie")
#: Engines that follow the model's structure: exact draws (nothing continuous left), i.i.d. draws of pi from the
#: world model weighted by the evidence, and tempered sequential Monte Carlo from the world model to the posterior.
STRUCTURE_ENGINES = ("exact", "iid", "smc")
#: Every accepted ``sampler``; ``"auto"`` lets the structure choose (:meth:`PosteriorModel.auto_engine`).
SAMPLERS = ("auto", *STRUCTURE_ENGINES, *NUTS_SAMPLERS)
DEFAULT_SAMPLER = "auto"
#: The NUTS sampler ``"auto"`` picks when only NUTS fits the structure: BlackJAX's had the shortest time to 400
#: bulk ESS on the benchmark problems (benchmarks/results/nuts_performance.md) and compiles once per model
#: structure.
DEFAULT_NUTS = "blackjax"
#: ``fit``'s NUTS step-size target: Stan's, PyMC's and BlackJAX's default; fewer leapfrog steps a draw than 0.9
#: at the same ESS on the benchmark problems (benchmarks/results/nuts_performance.md).
DEFAULT_TARGET_ACCEPT = 0.8
#: Options of ``pm.sample`` that many-fit runs (studies, SBC) add for PyMC's sampler only: one core per fit, as
#: Dask runs the fits in parallel, and no convergence summary per fit (the run's table reports diagnostics).
PYMC_MANY_FITS_OPTIONS = {"cores": 1, "compute_convergence_checks": False}
#: The NUTS engines need this many draws per chain: with one, ArviZ's E-BFMI fails after sampling; with two or
#: three, R-hat and ESS cannot be computed and the diagnostics judge nothing.
MIN_NUTS_DRAWS = 4


def check_fit_settings(settings: Mapping) -> dict:
    """``settings`` (arguments of ``fit``) with each of ``fit``'s own settings it holds checked; other keys (the
    engines' options) pass through.

    One check for ``fit``, ``sbc``, ``recovery_study`` and the CLI's specs, made before any work, so that a bad
    setting is named at once rather than failing inside a sampler or after it.
    """
    checked = dict(settings)
    for key, minimum in (("draws", 1), ("tune", 0), ("chains", 1)):
        if key in checked:
            checked[key] = check_count(checked[key], key, minimum=minimum)
    if "seed" in checked:
        checked["seed"] = check_seed(checked["seed"])
    if "sampler" in checked:
        checked["sampler"] = check_choice(checked["sampler"], SAMPLERS, "sampler")
        check_nuts_draws(checked["sampler"], checked.get("draws", MIN_NUTS_DRAWS))
    if "target_accept" in checked:
        checked["target_accept"] = check_fraction(
            checked["target_accept"], "target_accept", "0.8, or 0.95 after divergences"
        )
    for key in ("progressbar", "strict"):
        if key in checked and not isinstance(checked[key], bool | np.bool_):
            raise TypeError(f"{key} is {checked[key]!r}; it must be True or False")
    return checked


def check_nuts_draws(engine: str, draws: int) -> None:
    """Raise unless a NUTS ``engine`` gets at least :data:`MIN_NUTS_DRAWS` draws per chain (checked before
    sampling: with fewer, the diagnostics fail after the sampler has run and its draws are lost)."""
    if engine in NUTS_SAMPLERS and draws < MIN_NUTS_DRAWS:
        raise ValueError(
            f"draws is {draws}; the NUTS sampler {engine!r} needs at least {MIN_NUTS_DRAWS} draws per chain for "
            "its convergence diagnostics: raise draws"
        )


def check_starting_point(logp: float, engine: str) -> None:
    """Raise unless the model's log density at NUTS's starting point, ``logp``, is finite: at −inf no utility
    gives the evidence any likelihood there, and NUTS would fail to start or diverge at every step."""
    if not np.isfinite(logp):
        raise ValueError(
            f"the model's log density is {logp} at the starting point of the NUTS sampler {engine!r}: g′ has zero "
            "likelihood P(g′ | g) there under every utility, so NUTS cannot move. The evidence is likely "
            "impossible under every utility: lower the likelihood's observed g′ or widen its scale, or fit with "
            "sampler='auto', whose draws from the world model say whether any policy explains it"
        )


def many_fits_kwargs(defaults: dict, fit_kwargs: dict | None) -> dict:
    """``fit`` arguments of a study or SBC: ``defaults``, overridden by ``fit_kwargs``, plus
    :data:`PYMC_MANY_FITS_OPTIONS` when the sampler is PyMC's (the other samplers do not take them)."""
    if fit_kwargs is not None and not isinstance(fit_kwargs, Mapping):
        raise TypeError(f"fit_kwargs is a {type(fit_kwargs).__name__}; pass a dict of arguments of fit, or None")
    merged = {**defaults, **(fit_kwargs or {})}
    if merged.get("sampler", DEFAULT_SAMPLER) == "pymc":
        merged = {**PYMC_MANY_FITS_OPTIONS, **merged}
    return merged


__all__ = [
    "DEFAULT_NUTS",
    "DEFAULT_SAMPLER",
    "DEFAULT_TARGET_ACCEPT",
    "MIN_NUTS_DRAWS",
    "NUTS_SAMPLERS",
    "PYMC_MANY_FITS_OPTIONS",
    "SAMPLERS",
    "STRUCTURE_ENGINES",
    "check_fit_settings",
    "check_nuts_draws",
    "check_starting_point",
    "many_fits_kwargs",
]
