"""The arguments of many fits (a recovery study, SBC) checked once before any fit runs.

``fit`` checks an engine option (``max_draws``, ``n_steps``, ...) only when its engine starts; a study would then
fail every row with the same error after building every model. :func:`check_many_fits` checks them all, and
refuses a key no engine of the chosen sampler takes, up front.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from utiliscope._validation import check_count, check_positive
from utiliscope.models.base import PosteriorModel
from utiliscope.models.fit_settings import DEFAULT_SAMPLER, check_fit_settings
from utiliscope.models.sizes import MIN_SMC_DRAWS, check_smc_draws
from utiliscope.models.structure_fit import ENGINE_OPTIONS

#: The samplers that pass unknown keys on to their backend (``pymc.sample``, ``nutpie.sample``).
PASS_THROUGH_SAMPLERS = ("pymc", "nutpie")
#: ``fit``'s own named arguments.
FIT_ARGUMENTS = frozenset(
    name
    for name, parameter in inspect.signature(PosteriorModel.fit).parameters.items()
    if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
)
#: Engine options that count draws or steps (integers ≥ 1).
COUNT_OPTIONS = ("max_draws", "min_draws", "batch_size", "n_steps")


def check_many_fits(settings: Mapping) -> dict:
    """``settings`` (arguments of ``fit``) checked like ``fit`` checks them, engine options included.

    Raises
    ------
    TypeError
        A key that neither ``fit`` nor any engine of the sampler takes (the NUTS samplers ``pymc`` and
        ``nutpie`` pass unknown keys to their backend and are not checked), or an option of the wrong type.
    ValueError
        An option out of its range (``max_draws = -1``), named.
    """
    checked = check_fit_settings(settings)
    if checked.get("sampler", DEFAULT_SAMPLER) not in PASS_THROUGH_SAMPLERS:
        allowed = FIT_ARGUMENTS.union(*ENGINE_OPTIONS.values())
        unknown = sorted(set(checked) - allowed)
        if unknown:
            raise TypeError(
                f"fit_kwargs has {unknown}, which fit does not take with sampler "
                f"{checked.get('sampler', DEFAULT_SAMPLER)!r}; it takes {sorted(allowed)}"
            )
    check_smc_draws(checked.get("sampler", DEFAULT_SAMPLER), checked.get("draws", MIN_SMC_DRAWS))
    for key in COUNT_OPTIONS:
        if key in checked:
            checked[key] = check_count(checked[key], key)
    if checked.get("target_mcse") is not None:
        checked["target_mcse"] = check_positive(checked["target_mcse"], "target_mcse")
    return checked


__all__ = ["check_many_fits"]
