"""Priors over the operator's utility U: the common base class and the finite utility library.

A utility library is N candidate utilities ``r_i[s]`` or ``r_i[s, a]``, each with a description length ``K_i`` in
bits, and the simplicity prior

    P(U_i) = 2^(−λ·K_i) / Σ_j 2^(−λ·K_j),

where the weight λ ≥ 0 trades simplicity against intelligence (λ = 0: uniform; λ = 1: the Solomonoff-style
``2^−K``). g and the posterior do not change when a utility is replaced by ``c·U + d`` with c > 0, so the library
compares utilities through a canonical form: the reward table minus its mean, divided by its norm (a constant
table maps to zero and forms its own class).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

from utiliscope._validation import (
    as_float_array,
    check_count,
    check_names,
    check_positive,
    readonly,
    unit_scaled,
)
from utiliscope.priors.codes import count_expressions, enumerate_expressions, expression_name

#: Version of the ``to_dict`` layout; ``from_dict`` refuses any other.
SCHEMA_VERSION = 1
#: A reward table is constant when its range is at most this fraction of its largest absolute entry.
CONSTANT_RTOL = 1e-12
#: Canonical forms are rounded to this many decimals before utilities are grouped into affine classes.
CANONICAL_DECIMALS = 9
#: Two canonical forms closer than this (largest absolute difference) are the same utility.
CANONICAL_ATOL = 1e-9
#: The most utilities ``from_features`` enumerates before it asks for smaller ``max_terms`` or ``max_weight``.
MAX_LIBRARY_SIZE = 100_000


class UtilityPrior:
    """Base class of the priors over U: an immutable value with a ``kind``, a ``name`` and a dict form.

    Subclasses set ``kind`` (the key ``from_dict`` dispatches on) and ``name``, and implement ``_settings``:
    their constructor's keyword arguments, from which ``to_dict``, ``from_dict`` and ``with_simplicity_weight``
    follow.
    """

    kind = "utility_prior"
    name = "utility_prior"
    simplicity_weight: float
    #: The registry of subclasses, by kind, that ``from_dict`` dispatches on.
    _kinds: ClassVar[dict[str, type[UtilityPrior]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        UtilityPrior._kinds[cls.kind] = cls

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; build a new one (with_simplicity_weight swaps λ) "
            f"instead of setting {name!r}"
        )

    def _freeze(self, **attributes) -> None:
        """Set the attributes once, in the constructor."""
        for key, value in attributes.items():
            object.__setattr__(self, key, value)

    def _settings(self) -> dict:
        """The constructor's keyword arguments that rebuild this prior."""
        raise NotImplementedError

    def check_worlds(self, n_states: int, n_actions: int) -> None:
        """Raise a ValueError unless the prior's utilities are over the worlds' states and actions."""
        raise NotImplementedError

    def with_simplicity_weight(self, simplicity_weight: float) -> UtilityPrior:
        """The same prior with the simplicity weight λ replaced."""
        return type(self)(**{**self._settings(), "simplicity_weight": simplicity_weight})

    def to_dict(self) -> dict:
        """Plain Python form (lists of floats, strings), for saving with a fit; :meth:`from_dict` inverts it."""
        settings = {key: _plain(value) for key, value in self._settings().items()}
        return {"kind": self.kind, "name": self.name, "version": SCHEMA_VERSION, **settings}

    @classmethod
    def from_dict(cls, data: Mapping) -> UtilityPrior:
        """Rebuild a prior from :meth:`to_dict`'s output; ``UtilityPrior.from_dict`` reads any kind."""
        settings = dict(data)
        kind = settings.pop("kind", None)
        version = settings.pop("version", None)
        settings.pop("name", None)
        target = UtilityPrior._kinds.get(kind)
        if target is None or not issubclass(target, cls):
            allowed = sorted(k for k, c in UtilityPrior._kinds.items() if issubclass(c, cls))
            raise ValueError(f"data['kind'] is {kind!r}; {cls.__name__}.from_dict reads kind {allowed}")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"data['version'] is {version!r}; this utiliscope reads version {SCHEMA_VERSION} of the layout"
            )
        return target(**settings)


def _plain(value):
    """``value`` with arrays and tuples turned into lists and NumPy scalars into Python numbers."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def check_utility_prior(utility_prior, worlds) -> UtilityPrior:
    """``utility_prior``, once it is a prior over U whose utilities fit the worlds' states and actions."""
    if not isinstance(utility_prior, UtilityPrior) or type(utility_prior) is UtilityPrior:
        raise TypeError(
            "utility_prior must be a us.priors.UtilityLibrary or us.priors.LinearUtility; "
            f"got {type(utility_prior).__name__}"
        )
    utility_prior.check_worlds(worlds.n_states, worlds.n_actions)
    return utility_prior


def log_prior_from_bits(description_bits: np.ndarray, simplicity_weight: float) -> np.ndarray:
    """Normalised natural-log prior ``−λ K_i ln2 − logsumexp_j(−λ K_j ln2)``."""
    energy = -simplicity_weight * math.log(2.0) * description_bits
    return energy - logsumexp(energy)


def canonical_forms(rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical forms of flattened reward tables under positive affine maps ``c·r + d`` (c > 0).

    Parameters
    ----------
    rewards : ndarray, shape (N, D)

    Returns
    -------
    canonical : ndarray, shape (N, D)
        ``(r − mean r) / ||r − mean r||``; zero for a constant table.
    constant : ndarray of bool, shape (N,)
        Whether ``max r − min r ≤ 1e-12 · max |r|`` (so an all-zero table is constant).
    """
    rewards = unit_scaled(rewards, axis=1)  # the form is scale-free; rewards near 1e300 would overflow the norm
    centred = rewards - rewards.mean(axis=1, keepdims=True)
    constant = np.ptp(rewards, axis=1) <= CONSTANT_RTOL * np.abs(rewards).max(axis=1)
    norms = np.where(constant, 1.0, np.linalg.norm(centred, axis=1))
    return np.where(constant[:, None], 0.0, centred / norms[:, None]), constant


def _warn_if_duplicated(canonical: np.ndarray, names: Sequence[str]) -> None:
    """Warn, naming both, when two entries are one utility (equal up to a positive scale and shift): they give
    every policy the same g, so the posterior splits that utility's mass between them."""
    keys = np.round(canonical, CANONICAL_DECIMALS) + 0.0  # + 0.0 turns −0.0 into 0.0
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    repeats = np.flatnonzero(first[inverse.ravel()] != np.arange(len(keys)))
    if repeats.size:
        i = int(repeats[0])
        j = int(first[inverse.ravel()[i]])
        warnings.warn(
            f"rewards[{i}] ({names[i]!r}) is the same utility as rewards[{j}] ({names[j]!r}), up to a positive "
            f"scale and shift ({repeats.size} such repeat(s) in all): the posterior splits that utility's mass "
            "between them; remove the repeats (shortest_per_class keeps the shortest of each)",
            UserWarning,
            stacklevel=3,
        )


def shortest_per_class(rewards: np.ndarray, description_bits: np.ndarray) -> np.ndarray:
    """Indices, in increasing order, of the shortest utility in each affine class (ties: the first).

    Classes are found by hashing the canonical forms rounded to ``CANONICAL_DECIMALS`` decimals, which scales
    to large libraries where comparing all pairs would not.
    """
    canonical, _ = canonical_forms(rewards)
    keys = np.round(canonical, CANONICAL_DECIMALS) + 0.0  # + 0.0 turns −0.0 into 0.0
    order = np.argsort(description_bits, kind="stable")
    # np.unique sorts stably when asked for indices, so each class keeps its first row in `order`.
    _, first = np.unique(keys[order], axis=0, return_index=True)
    return np.sort(order[first])


class UtilityLibrary(UtilityPrior):
    """A finite set of candidate utilities with description lengths: ``P(U_i) ∝ 2^(−λ·K_i)``.

    Parameters
    ----------
    rewards : array_like, shape (N, S) or (N, S, A)
        Reward tables; a state reward ``r[s]`` is broadcast over actions (see :meth:`reward_table`).
    description_bits : array_like, shape (N,)
        Description lengths ``K_i ≥ 0`` in bits.
    names : sequence of str, optional
        N distinct labels, the ``utility`` coordinate of fitted results. Default ``U0, U1, ...``.
    simplicity_weight : float
        λ ≥ 0.

    Attributes
    ----------
    log_prior : ndarray, shape (N,)
        ``log P(U_i) = −λ K_i ln2 − logsumexp_j(−λ K_j ln2)`` (natural log, normalised).
    prior : ndarray, shape (N,)
        ``exp(log_prior)``; sums to 1.

    See Also
    --------
    UtilityLibrary.from_features : a library of weighted feature sums with K from a prefix-free code.

    Examples
    --------
    >>> import numpy as np
    >>> lib = UtilityLibrary(np.eye(3), description_bits=[1, 2, 2], names=["a", "b", "c"])
    >>> np.round(lib.prior, 3).tolist()
    [0.5, 0.25, 0.25]
    >>> lib.with_simplicity_weight(0).prior.tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """

    kind = "library"
    name = "utility_library"

    def __init__(
        self,
        rewards,
        description_bits,
        names: Sequence[str] | None = None,
        simplicity_weight: float = 1.0,
    ) -> None:
        table = as_float_array(rewards, "rewards", ndim=(2, 3))
        if table.shape[0] == 0:
            raise ValueError("rewards is empty; a UtilityLibrary needs at least one utility (N ≥ 1)")
        if 0 in table.shape[1:]:
            raise ValueError(f"rewards has shape {table.shape}; each utility needs at least one state and action")
        n_utilities = table.shape[0]
        bits = as_float_array(description_bits, "description_bits", ndim=1)
        if bits.shape != (n_utilities,):
            raise ValueError(
                f"description_bits has {bits.size} entries; it needs one per utility in rewards ({n_utilities})"
            )
        negative = np.flatnonzero(bits < 0)
        if negative.size:
            i = int(negative[0])
            raise ValueError(f"description_bits[{i}] is {bits[i]}; description lengths must be ≥ 0 bits")
        labels = check_names(
            names if names is not None else [f"U{i}" for i in range(n_utilities)], n_utilities, "names"
        )
        weight = check_positive(simplicity_weight, "simplicity_weight", allow_zero=True)
        canonical, constant = canonical_forms(table.reshape(n_utilities, -1))
        _warn_if_duplicated(canonical, labels)
        log_prior = log_prior_from_bits(bits, weight)
        self._freeze(
            rewards=readonly(table),
            description_bits=readonly(bits),
            names=labels,
            simplicity_weight=weight,
            log_prior=readonly(log_prior),
            prior=readonly(np.exp(log_prior)),
            _canonical=readonly(canonical),
            _constant=readonly(constant),
        )

    @classmethod
    def from_features(
        cls,
        features,
        max_terms: int = 2,
        max_weight: int = 2,
        simplicity_weight: float = 1.0,
        feature_names: Sequence[str] | None = None,
        max_size: int = MAX_LIBRARY_SIZE,
    ) -> UtilityLibrary:
        """The library of weighted feature sums, with K from the prefix-free code of :mod:`.codes`.

        Enumerates the constant utility and every sum of 1..``max_terms`` distinct features with non-zero
        integer weights in [−``max_weight``, ``max_weight``], with description length

            K = 2⌊log2(n + 1)⌋ + 1 + log2 C(K_features, n) + n · (1 + log2 max_weight)   bits

        for n terms. Of the utilities equal up to a positive affine map (``2·red`` and ``red``; ``red − blue``
        and ``red`` when every cell is red or blue), only the shortest is kept (ties: the first enumerated).
        Dropping entries keeps Kraft's inequality ``Σ 2^−K ≤ 1``; the constant, 1 bit, is the shortest.

        Parameters
        ----------
        features : array_like, shape (S, K) or (S, A, K)
        max_terms : int
            ≥ 0; more than K is the same as K.
        max_weight : int
            ≥ 1.
        simplicity_weight : float
            λ ≥ 0.
        feature_names : sequence of str, optional
            Used in the utility names (``"const"``, ``"+red"``, ``"-blue"``, ``"+2*red-blue"``). Default
            ``f0, f1, ...``.
        max_size : int
            Refuse to enumerate more expressions than this (default 100,000).

        Returns
        -------
        UtilityLibrary
            With rewards of shape (N, S) or (N, S, A), like the features.
        """
        phi = as_float_array(features, "features", ndim=(2, 3))
        n_features = phi.shape[-1]
        if 0 in phi.shape:
            raise ValueError(f"features has shape {phi.shape}; it needs at least one state and one feature")
        max_terms = check_count(max_terms, "max_terms", minimum=0)
        max_weight = check_count(max_weight, "max_weight")
        labels = check_names(
            feature_names if feature_names is not None else [f"f{k}" for k in range(n_features)],
            n_features,
            "feature_names",
        )
        size = count_expressions(n_features, max_terms, max_weight)
        if size > check_count(max_size, "max_size"):
            raise ValueError(
                f"max_terms={max_terms} and max_weight={max_weight} over {n_features} features give {size} "
                f"utilities, more than max_size={max_size}; lower max_terms or max_weight (or raise max_size)"
            )
        coefficients, bits = enumerate_expressions(n_features, max_terms, max_weight)
        rewards = (coefficients @ phi.reshape(-1, n_features).T).reshape(len(bits), *phi.shape[:-1])
        keep = shortest_per_class(rewards.reshape(len(bits), -1), bits)
        names = [expression_name(row, labels) for row in coefficients[keep]]
        return cls(rewards[keep], bits[keep], names, simplicity_weight)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"UtilityLibrary(N={len(self)}, simplicity_weight={self.simplicity_weight})"

    def _settings(self) -> dict:
        return {
            "rewards": self.rewards,
            "description_bits": self.description_bits,
            "names": self.names,
            "simplicity_weight": self.simplicity_weight,
        }

    def check_worlds(self, n_states: int, n_actions: int) -> None:
        shape = self.reward_table(n_actions).shape[1:]
        if shape != (n_states, n_actions):
            raise ValueError(
                f"utility_prior holds rewards of shape {shape} but the worlds have {n_states} states and "
                f"{n_actions} actions; build the library over the worlds' states and actions"
            )

    def reward_table(self, n_actions: int) -> np.ndarray:
        """Rewards as a read-only (N, S, A) array; state rewards ``r[s]`` are repeated over the actions."""
        n_actions = check_count(n_actions, "n_actions")
        if self.rewards.ndim == 3:
            if self.rewards.shape[2] != n_actions:
                raise ValueError(
                    f"n_actions is {n_actions}, but the library's rewards have shape {self.rewards.shape} "
                    f"with {self.rewards.shape[2]} actions; use worlds with that many actions"
                )
            return self.rewards
        return np.broadcast_to(self.rewards[:, :, None], (*self.rewards.shape, n_actions))

    def index(self, name: str) -> int:
        """Position of the utility called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            shown = ", ".join(repr(n) for n in self.names[:8]) + (", ..." if len(self) > 8 else "")
            raise ValueError(f"name {name!r} is not in the library; use one of its names: {shown}") from None

    def constant_index(self) -> int | None:
        """Position of the first constant utility (range ≤ 1e-12 of its largest entry), or None."""
        found = np.flatnonzero(self._constant)
        return int(found[0]) if found.size else None

    def negation_index(self, i: int) -> int | None:
        """Position of the first utility equal to ``−U_i`` up to a positive affine map, or None.

        The negation of a constant utility is constant: for a constant ``U_i`` this is :meth:`constant_index`.
        """
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < len(self):
            raise ValueError(f"i is {i!r}; it must be an integer index in [0, {len(self)})")
        if self._constant[i]:
            return self.constant_index()
        distance = np.abs(self._canonical + self._canonical[i]).max(axis=1)
        found = np.flatnonzero((distance <= CANONICAL_ATOL) & ~self._constant)
        return int(found[0]) if found.size else None
