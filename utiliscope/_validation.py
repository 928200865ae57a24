"""Input checks shared by the public constructors.

Every check raises ``ValueError`` (or ``TypeError``) whose message names the argument, the offending index
where there is one, and what a valid value looks like, so that a mistake surfaces at the call that made it
rather than as a NaN inside a sampler.
"""

from __future__ import annotations

import math

import numpy as np

#: Absolute tolerance on probability rows summing to one.
ROW_SUM_ATOL = 1e-8
#: Seeds must lie below this: JAX and PyMC hold a seed in a signed 64-bit integer.
SEED_LIMIT = 2**63
#: The largest array, in bytes, that a constructor or sampler allocates at once; a larger request is refused with
#: the size it would take before NumPy tries (on a smaller machine it would fail or swap part-way through).
MAX_ARRAY_BYTES = 2**33
#: NumPy dtype kinds that are not real numbers: booleans, complex numbers, strings, bytes and raw data.
_NOT_REAL = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "V": "raw data"}


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 array, checking its rank and that every entry is finite.

    Strings, booleans and complex numbers are refused rather than converted: ``"0.5"`` or ``1 + 0j`` where a
    number is meant is a mistake that NumPy's casting would hide (or only warn about).
    """
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be an array of numbers; got the string {value!r}")
    try:
        raw = np.asarray(value)
        array = np.array(raw, dtype=float) if raw.dtype.kind not in _NOT_REAL else None
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__}") from err
    if array is None:
        raise TypeError(f"{name} must be an array of numbers; got an array of {_NOT_REAL[raw.dtype.kind]}")
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


def check_number(value, name: str, what: str = "a number") -> float:
    """Return ``value`` as a float, raising TypeError unless it is a real number (an int or float, not a bool,
    a string or a complex number, which ``float`` would convert or reject with a message naming nothing).

    ``what`` describes a valid value in the message, e.g. ``"a number in [0, 1)"``.
    """
    message = f"{name} must be {what} (an int or a float); got {value!r}"
    kind = "U" if isinstance(value, str | bytes) else np.asarray(value).dtype.kind
    if kind in _NOT_REAL or np.ndim(value) != 0:
        raise TypeError(message)
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(message) from err


def check_gamma(gamma) -> float:
    """Return ``gamma`` as a float, raising unless it lies in [0, 1)."""
    value = check_number(gamma, "gamma", "a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"gamma is {gamma}; it must lie in [0, 1) so that values are finite")
    return value


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, raising unless it is finite and > 0 (or ≥ 0)."""
    number = check_number(value, name)
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} is {value}; it must be a finite number {bound}")
    return number


def check_fraction(value, name: str, example: str = "") -> float:
    """Return ``value`` as a float, raising unless it lies strictly between 0 and 1 (``example``: a typical
    value and when to choose it, for the message)."""
    number = check_number(value, name)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} is {value}; it must lie in (0, 1){', e.g. ' + example if example else ''}")
    return number


def check_count(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} is {value}; it must be an integer ≥ {minimum}")
    return int(value)


def check_seed(seed, name: str = "seed", generator: bool = False) -> int:
    """Return ``seed`` as an int, raising unless it is an integer in [0, 2**63).

    ``generator`` says in the message that a ``numpy.random.Generator`` is accepted too (by :func:`rng_from`).
    """
    allowed = "a non-negative integer" + (" or a numpy.random.Generator" if generator else "")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"{name} is {seed!r}; it must be {allowed}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} is {seed}; it must be {allowed} (an integer from 0 to 2**63 − 1)")
    return int(seed)


def check_array_size(shape: tuple[int, ...], dtype, what: str, fix: str) -> None:
    """Raise ValueError before an array of ``shape`` and ``dtype`` over :data:`MAX_ARRAY_BYTES` is allocated.

    ``what`` says what needs the array and ``fix`` which argument to lower; the message gives the size in bytes.
    """
    size = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
    if size > MAX_ARRAY_BYTES:
        dims = " × ".join(f"{int(n):,}" for n in shape)
        raise ValueError(
            f"{what} needs an array of {dims} {np.dtype(dtype).name} = {size:,} bytes ({size / 2**30:,.1f} GiB), "
            f"more than the limit of {MAX_ARRAY_BYTES:,} bytes ({MAX_ARRAY_BYTES / 2**30:.0f} GiB); {fix}"
        )


def unit_scaled(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``values`` divided by their largest absolute value (along ``axis``; all-zero slices unchanged), for sums
    and norms of scale-free quantities that would overflow near the largest floats."""
    scale = np.abs(values).max(axis=axis, keepdims=axis is not None)
    return values / np.where(scale > 0, scale, 1.0)


def check_open_client(client, name: str = "client") -> None:
    """Raise ValueError when the ``distributed.Client`` ``client`` was closed (its loop would fail with a bare
    ``RuntimeError: IOLoop is closed`` at the first task)."""
    status = getattr(client, "status", None)
    if status in ("closing", "closed", "failed"):
        raise ValueError(
            f"{name} is a distributed.Client that is {status}; open a new one (distributed.Client(...)), or pass "
            f"{name}=None"
        )


def check_names(names, length: int, name: str) -> tuple[str, ...]:
    """Return ``names`` as a tuple of distinct strings of the given length (a bare string is refused: it would
    be split into letters)."""
    if isinstance(names, str | bytes):
        raise TypeError(f"{name} is the string {names!r}; pass a list of names, one per item ({length})")
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
    if isinstance(seed, np.random.Generator | np.random.BitGenerator | np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_seed(seed, name, generator=True))


def readonly(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so that objects holding it cannot be altered by accident."""
    array.setflags(write=False)
    return array


def check_choice(value, allowed, name: str):
    """Raise a ValueError listing the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} is {value!r}; choose one of {', '.join(map(repr, allowed))}")
    return value
