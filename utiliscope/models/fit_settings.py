"""``fit``'s settings: the engines it can run, its defaults, and the checks every caller shares (``fit``, ``sbc``,
``recovery_study``, specs, the NUTS sampler), made before any work."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from utiliscope._validation import check_choice, check_count, check_fraction, check_seed
from utiliscope.models.engines import ENGINES, engine_names

#: Every accepted ``sampler``: ``"auto"`` (the structure chooses, :func:`~utiliscope.models.engines.auto_engine`)
#: and each registered engine.
SAMPLERS = ("auto", *engine_names())
DEFAULT_SAMPLER = "auto"
#: ``fit``'s NUTS step-size target: Stan's, PyMC's and BlackJAX's default; fewer leapfrog steps a draw than 0.9
#: at the same ESS on the benchmark problems (benchmarks/results/nuts_performance.md).
DEFAULT_TARGET_ACCEPT = 0.8


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
        if checked["sampler"] in ENGINES and "draws" in checked:
            ENGINES[checked["sampler"]].check_draws(checked["draws"])
    if "target_accept" in checked:
        checked["target_accept"] = check_fraction(
            checked["target_accept"], "target_accept", "0.8, or 0.95 after divergences"
        )
    for key in ("progressbar", "strict"):
        if key in checked and not isinstance(checked[key], bool | np.bool_):
            raise TypeError(f"{key} is {checked[key]!r}; it must be True or False")
    return checked


def many_fits_kwargs(defaults: dict, fit_kwargs: dict | None) -> dict:
    """``fit`` arguments of a study or SBC: ``defaults``, overridden by ``fit_kwargs``, plus
    the chosen engine's :attr:`~utiliscope.models.engines.base.Engine.many_fits_options`."""
    if fit_kwargs is not None and not isinstance(fit_kwargs, Mapping):
        raise TypeError(f"fit_kwargs is a {type(fit_kwargs).__name__}; pass a dict of arguments of fit, or None")
    merged = {**defaults, **(fit_kwargs or {})}
    engine = ENGINES.get(merged.get("sampler", DEFAULT_SAMPLER))
    if engine is not None:
        merged = {**engine.many_fits_options, **merged}
    return merged


__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_TARGET_ACCEPT",
    "SAMPLERS",
    "check_fit_settings",
    "many_fits_kwargs",
]
