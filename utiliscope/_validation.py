"""Input checks shared by the public constructors.

Every check raises ``ValueError`` (or ``TypeError``) whose message names the argument, the offending index
where there is one, and what a valid value looks like, so that a mistake surfaces at the call that made it
rather than as a NaN inside a sampler.
"""

from __future__ import annotations

import numpy as np

#: Absolute tolerance on probability rows summing to one.
ROW_SUM_ATOL = 1e-8


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 array, checking its rank and that every entry is finite."""
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__}") from err
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if array.ndim not in allowed:
            shapes = " or ".join(f"{d}-d" for d in allowed)
            raise ValueError(f"{name} must be {shapes}; got shape {array.shape}")
    check_finite(array, name)
    return array


def _at(name: str, index: tuple[int, ...]) -> str:
    """``name[i, j]``, or just ``name`` for the empty index of a whole 1-d sum or a 0-d array."""
    return f"{name}{list(index)}" if index else name


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise if ``array`` holds NaN or infinity, naming the first bad index."""
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{_at(name, index)} is {array[index]}; every entry must be a finite number")


def check_probability_rows(array: np.ndarray, name: str, what: str = "row") -> None:
    """Raise unless every entry is ≥ 0 and every slice along the last axis sums to 1."""
    negative = array < 0
    if negative.any():
        index = tuple(int(i) for i in np.argwhere(negative)[0])
        raise ValueError(f"{_at(name, index)} is {array[index]:.6g}; probabilities must be non-negative")
    sums = array.sum(axis=-1)
    off = np.abs(sums - 1.0) > ROW_SUM_ATOL
    if off.any():
        index = tuple(int(i) for i in np.argwhere(off)[0])
        raise ValueError(f"{_at(name, index)} sums to {sums[index]:.6g}; each {what} must sum to 1")


def check_gamma(gamma) -> float:
    """Return ``gamma`` as a float, raising unless it lies in [0, 1)."""
    try:
        value = float(gamma)
    except (TypeError, ValueError) as err:
        raise TypeError(f"gamma must be a number in [0, 1); got {gamma!r}") from err
    if not 0.0 <= value < 1.0:
        raise ValueError(f"gamma is {gamma}; it must lie in [0, 1) so that values are finite")
    return value


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, raising unless it is finite and > 0 (or ≥ 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number; got {value!r}") from err
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} is {value}; it must be a finite number {bound}")
    return number


def check_count(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} is {value}; it must be an integer ≥ {minimum}")
    return int(value)


def check_names(names, length: int, name: str) -> tuple[str, ...]:
    """Return ``names`` as a tuple of distinct strings of the given length."""
    names = tuple(str(n) for n in names)
    if len(names) != length:
        raise ValueError(f"{name} has {len(names)} entries; it needs one per item ({length})")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{name}[{i}] = {n!r} repeats {name}[{seen[n]}]; names must be distinct")
        seen[n] = i
    return names


def rng_from(seed, name: str = "seed") -> np.random.Generator:
    """``numpy.random.default_rng(seed)``, with an error that names the argument when NumPy refuses the seed.

    Wrapped because NumPy's own messages ("expected non-negative integer") do not say which argument was wrong.
    """
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"{name} is {seed!r}; it must be a non-negative integer or a numpy.random.Generator ({err})"
        ) from err


def readonly(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so that objects holding it cannot be altered by accident."""
    array.setflags(write=False)
    return array
