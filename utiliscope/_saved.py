"""Reading a saved run that may have been edited or cut short: one error, naming the attribute or group.

A run's settings are JSON strings in ``idata.attrs`` and its worlds and posterior are groups; a file edited by
hand or by another tool can hold anything there. Whatever fails while a piece is rebuilt (a JSON syntax error, a
list where a dict was saved, a missing key, a text where a number was saved) becomes a :class:`DamagedRunError`
that names the piece, instead of a traceback from deep inside the rebuilding code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Real
from typing import Any

import numpy as np


class DamagedRunError(ValueError):
    """A saved run's attribute or group cannot be read back: edited, cut short, or not written by this package."""


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn an error raised while rebuilding ``what`` (e.g. ``"attrs['likelihood']"``) into a
    :class:`DamagedRunError` naming it; one that already names its piece passes unchanged."""
    try:
        yield
    except DamagedRunError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        detail = " ".join(f"{type(err).__name__}: {err}".split())
        raise DamagedRunError(
            f"this run's {what} cannot be read back ({detail}); the file was edited or not written by this "
            "package: save the run again from the fit"
        ) from err


def check_inference_data(idata, name: str = "idata") -> None:
    """Raise TypeError unless ``idata`` is an InferenceData (what ``fit`` returns and ``load`` reads)."""
    if not callable(getattr(idata, "groups", None)):
        raise TypeError(
            f"{name} is a {type(idata).__name__}; give the arviz.InferenceData that fit returned or us.load read"
        )


def decoded(text: Any, what: str) -> Any:
    """The JSON string ``text`` saved as ``what``, decoded (a DamagedRunError naming ``what`` if it is not)."""
    with reading(what):
        if not isinstance(text, str):
            raise TypeError(f"it is a {type(text).__name__}, not a JSON string")
        return json.loads(text)


def converted(value: Any, convert: Callable[[Any], Any], what: str) -> Any:
    """``convert(value)`` (``int``, ``float``, ``str``) for the setting saved as ``what``, with a
    DamagedRunError naming ``what`` if it fails (settings are saved as text: ``"0"``, ``"1e-09"``)."""
    with reading(what):
        if not isinstance(value, str | Real | np.number):
            raise TypeError(f"it is a {type(value).__name__}")
        return convert(value)


def real_number(value: Any, what: str) -> float:
    """``value`` as a float, refusing anything that is not a real number (a text ``"0.9"`` included)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real | np.number):
        raise DamagedRunError(f"this run's {what} is {value!r}; it must be a number (the file was edited)")
    return float(value)


def probabilities(values: Any, what: str) -> np.ndarray:
    """``values`` normalised to sum to 1, refused unless finite, ≥ 0 and not all 0: probabilities that are
    negative or missing were edited, and renormalising or clipping them would decide on something else."""
    mass = np.asarray(values, dtype=float)
    bad = ~np.isfinite(mass) | (mass < 0)
    if bad.any() or mass.sum() <= 0:
        index = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise DamagedRunError(
            f"this run's {what} holds {float(mass.flat[index])!r} at index {index}; posterior probabilities must "
            "be finite, ≥ 0 and not all 0 (the file was edited): save the run again from the fit"
        )
    return mass / mass.sum()


def check_axes_match(idata, worlds) -> None:
    """Refuse worlds whose states or actions differ in number from the run's other groups (a ``worlds`` group
    whose action axis was trimmed would be decided on as if the fit had been made on it)."""
    sizes = {"state": worlds.n_states, "action": worlds.n_actions}
    for group in ("posterior", "constant_data", "observed_data"):
        if group not in idata.groups():
            continue
        for dim, size in sizes.items():
            found = idata[group].sizes.get(dim, size)
            if found != size:
                raise DamagedRunError(
                    f"this run's group worlds has {size} {dim}s but its group {group} has {found}; the file was "
                    "edited: save the run again from the fit"
                )


__all__ = [
    "DamagedRunError",
    "check_axes_match",
    "check_inference_data",
    "converted",
    "decoded",
    "probabilities",
    "reading",
    "real_number",
]
