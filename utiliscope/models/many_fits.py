"""The arguments of many fits (a recovery study, SBC) checked once before any fit runs.

``fit`` checks an engine option (``max_draws``, ``n_steps``, ...) only when its engine starts; a study would then
fail every row with the same error after building every model. :func:`check_many_fits` checks them all up front,
against the engine registry's ``Options`` dataclasses.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from utiliscope.models.base import PosteriorModel
from utiliscope.models.engines import check_engine_options
from utiliscope.models.fit_settings import DEFAULT_SAMPLER, check_fit_settings

#: ``fit``'s own named arguments.
FIT_ARGUMENTS = frozenset(
    name
    for name, parameter in inspect.signature(PosteriorModel.fit).parameters.items()
    if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
)


def check_many_fits(settings: Mapping) -> dict:
    """``settings`` (arguments of ``fit``) checked like ``fit`` checks them, engine options included.

    Raises
    ------
    TypeError
        A key that neither ``fit`` nor any engine of the sampler takes (the NUTS samplers that pass unknown keys
        to their library are not checked), or an option of the wrong type.
    ValueError
        An option out of its range (``max_draws = -1``), or draws the engine cannot run with, named.
    """
    checked = check_fit_settings(settings)
    options = {key: value for key, value in checked.items() if key not in FIT_ARGUMENTS}
    try:
        check_engine_options(checked.get("sampler", DEFAULT_SAMPLER), options)
    except TypeError as err:
        raise TypeError(f"fit_kwargs: {err}") from err
    return checked


__all__ = ["check_many_fits"]
