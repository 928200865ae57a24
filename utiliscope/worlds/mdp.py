"""Finite MDPs (worlds) and weighted sets of them (ζ).

A world ``e`` is ``(P_e[s, a, s'], mu0_e[s], gamma)``, with ``P_e`` a dense array or, for large worlds,
:class:`~utiliscope.worlds.sparse.SparseTransitions` (next-state indices and probabilities per (s, a)). A world
set ζ is E worlds over the same states and actions, with weights ``w[e]`` summing to one ("we are uncertain which
world we are in"). The operator's policy is the same table in every world.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import xarray as xr

from utiliscope._saved import real_number
from utiliscope._validation import (
    as_float_array,
    check_gamma,
    check_names,
    check_probability_rows,
    readonly,
)
from utiliscope.worlds.sparse import SparseTransitions


class TabularMDP:
    """One world: a finite, discounted Markov decision process.

    Parameters
    ----------
    transitions : array_like, shape (S, A, S), or SparseTransitions
        ``transitions[s, a, s']`` = P(s' | s, a); each row ``transitions[s, a]`` sums to 1. A
        :class:`~utiliscope.worlds.sparse.SparseTransitions` (checked when it was made) is kept as it is:
        nothing S×A×S is allocated for it (``us.worlds.from_arrays`` builds one from tables).
    start : array_like, shape (S,)
        Start distribution ``mu0[s]``; sums to 1.
    gamma : float
        Discount in [0, 1).
    features : array_like, shape (S, K) or (S, A, K), optional
        Features ``phi`` of linear utilities ``r = phi @ theta``.
    state_names, action_names, feature_names : sequence of str, optional
        Labels used as coordinates in fitted results. Default ``s0, s1, ...``, ``a0, ...``, ``f0, ...``.

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> P = np.zeros((2, 2, 2)); P[:, 0, 0] = 1; P[:, 1, 1] = 1
    >>> world = us.TabularMDP(P, start=[1, 0], gamma=0.9)
    >>> world.n_states, world.n_actions
    (2, 2)
    """

    def __init__(
        self,
        transitions,
        start,
        gamma: float,
        features=None,
        state_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        P = transitions if isinstance(transitions, SparseTransitions) else _check_dense(transitions)
        n_states, n_actions, _ = P.shape
        mu0 = as_float_array(start, "start", ndim=1)
        if mu0.shape != (n_states,):
            raise ValueError(f"start has shape {mu0.shape}; it must be ({n_states},), one per state")
        check_probability_rows(mu0, "start", what="start distribution")
        self.transitions = P
        self.start = readonly(mu0)
        self.gamma = check_gamma(gamma)
        self.features = None if features is None else readonly(self._check_features(features))
        self.state_names = check_names(
            state_names if state_names is not None else [f"s{i}" for i in range(n_states)],
            n_states,
            "state_names",
        )
        self.action_names = check_names(
            action_names if action_names is not None else [f"a{i}" for i in range(n_actions)],
            n_actions,
            "action_names",
        )
        n_features = 0 if self.features is None else self.features.shape[-1]
        self.feature_names = check_names(
            feature_names if feature_names is not None else [f"f{i}" for i in range(n_features)],
            n_features,
            "feature_names",
        )

    @property
    def n_states(self) -> int:
        """Number of states S."""
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return self.transitions.shape[1]

    def _check_features(self, features) -> np.ndarray:
        phi = as_float_array(features, "features", ndim=(2, 3))
        S, A = self.transitions.shape[:2]
        if phi.shape[0] != S or (phi.ndim == 3 and phi.shape[1] != A):
            want = f"({S}, K) or ({S}, {A}, K)"
            raise ValueError(f"features has shape {phi.shape}; it must be {want}")
        if phi.shape[-1] == 0:
            raise ValueError("features has no columns; pass K ≥ 1 features or features=None")
        return phi

    def __repr__(self) -> str:
        return (
            f"TabularMDP(S={self.n_states}, A={self.n_actions}, gamma={self.gamma}, K={len(self.feature_names)})"
        )


def _check_dense(transitions) -> np.ndarray:
    """A dense ``P[s, a, s']``, checked: shape (S, A, S) with S, A ≥ 1, probability rows; read-only."""
    P = as_float_array(transitions, "transitions", ndim=3)
    n_states, n_actions, n_next = P.shape
    if n_states == 0 or n_actions == 0:
        raise ValueError(f"transitions has shape {P.shape}; it needs at least one state and action")
    if n_next != n_states:
        raise ValueError(f"transitions has shape {P.shape}; it must be (S, A, S) with the same S first and last")
    check_probability_rows(P, "transitions")
    return readonly(P)


class WorldSet:
    """ζ: a weighted set of worlds over the same states, actions and discount.

    Parameters
    ----------
    worlds : sequence of TabularMDP
        At least one world; all share S, A, gamma and (if given) features.
    weights : array_like, shape (E,), optional
        ``w[e]`` ≥ 0 summing to 1. Equal weights by default.

    Attributes
    ----------
    transitions : ndarray, shape (E, S, A, S), or tuple
        The worlds' dense tables stacked; a tuple of each world's own transitions when any world is sparse.
    starts : ndarray, shape (E, S)
    weights : ndarray, shape (E,)
    """

    def __init__(self, worlds: Sequence[TabularMDP], weights=None) -> None:
        if isinstance(worlds, TabularMDP):
            worlds = [worlds]
        worlds = list(worlds)
        if not worlds:
            raise ValueError("worlds is empty; a WorldSet needs at least one TabularMDP")
        for i, world in enumerate(worlds):
            if not isinstance(world, TabularMDP):
                raise TypeError(f"worlds[{i}] is a {type(world).__name__}; expected a TabularMDP")
        first = worlds[0]
        for i, world in enumerate(worlds[1:], start=1):
            for attr in ("n_states", "n_actions", "gamma"):
                if getattr(world, attr) != getattr(first, attr):
                    raise ValueError(
                        f"worlds[{i}] has {attr}={getattr(world, attr)} but worlds[0] has "
                        f"{getattr(first, attr)}; every world in a WorldSet must share S, A and gamma"
                    )
            if (world.features is None) != (first.features is None) or (
                world.features is not None
                and (
                    world.features.shape != first.features.shape
                    or not np.array_equal(world.features, first.features)
                )
            ):
                raise ValueError(
                    f"worlds[{i}] has different features from worlds[0]; a utility must mean the "
                    "same thing in every world, so give all worlds the same features (or none)"
                )
            for attr in ("state_names", "action_names", "feature_names"):
                _check_same_names(getattr(world, attr), getattr(first, attr), i, attr)
        if weights is None:
            w = np.full(len(worlds), 1.0 / len(worlds))
        else:
            w = as_float_array(weights, "weights", ndim=1)
            if w.shape != (len(worlds),):
                raise ValueError(f"weights has shape {w.shape}; it needs one weight per world ({len(worlds)})")
            check_probability_rows(w, "weights", what="set of weights")
        self.worlds = tuple(worlds)
        self.weights = readonly(w)
        dense = all(isinstance(world.transitions, np.ndarray) for world in worlds)
        transitions = tuple(world.transitions for world in worlds)
        self.transitions = readonly(np.stack(transitions)) if dense else transitions
        self.starts = readonly(np.stack([world.start for world in worlds]))

    n_worlds = property(lambda self: len(self.worlds), doc="Number of worlds E.")
    n_states = property(lambda self: self.worlds[0].n_states, doc="Number of states S.")
    n_actions = property(lambda self: self.worlds[0].n_actions, doc="Number of actions A.")
    gamma = property(lambda self: self.worlds[0].gamma, doc="The shared discount.")
    features = property(lambda self: self.worlds[0].features, doc="The shared features, or None.")
    state_names = property(lambda self: self.worlds[0].state_names, doc="State labels.")
    action_names = property(lambda self: self.worlds[0].action_names, doc="Action labels.")
    feature_names = property(lambda self: self.worlds[0].feature_names, doc="Feature labels.")

    @cached_property
    def incoming(self) -> np.ndarray:
        """``P[e, s', s, a]`` of dense worlds: the next state first, contiguous, for fast gathers."""
        return readonly(np.ascontiguousarray(np.transpose(self.transitions, (0, 3, 1, 2))))

    @property
    def mean_transitions(self) -> np.ndarray | SparseTransitions:
        """P̄[s, a, s'] = Σ_e w[e] P_e[s, a, s'], the ζ-averaged dynamics (exact for one world); sparse when any
        world is."""
        if isinstance(self.transitions, np.ndarray):
            return np.einsum("e,esat->sat", self.weights, self.transitions)
        if self.n_worlds == 1:
            return self.transitions[0]
        tables = [
            t if isinstance(t, SparseTransitions) else SparseTransitions.from_dense(t) for t in self.transitions
        ]
        return SparseTransitions.mixture(self.weights, tables)

    @property
    def mean_start(self) -> np.ndarray:
        """μ̄0[s] = Σ_e w[e] μ0_e[s]."""
        return self.weights @ self.starts

    def to_dataset(self) -> xr.Dataset:
        """ζ as an xarray Dataset (transitions, starts, weights, features, names, gamma), saved with every fit so
        that a run can be acted on or diagnosed without the script that made it (:meth:`from_dataset`).

        Dense worlds save ``transitions[world, state, action, next_state]``; a set with a sparse world saves
        every world's ``next_states`` and ``probabilities[world, state, action, branch]`` instead (padded to
        the widest world with probability 0), and comes back sparse.
        """
        coords = {"world": np.arange(self.n_worlds), "state": list(self.state_names)}
        coords["action"] = list(self.action_names)
        data = {
            "starts": (("world", "state"), np.asarray(self.starts)),
            "weights": ("world", np.asarray(self.weights)),
        }
        if isinstance(self.transitions, np.ndarray):
            data["transitions"] = (("world", "state", "action", "next_state"), np.asarray(self.transitions))
        else:
            data["next_states"], data["probabilities"] = _padded_tables(self.transitions)
        if self.features is not None:
            coords["feature"] = list(self.feature_names)
            dims = ("state", "feature") if self.features.ndim == 2 else ("state", "action", "feature")
            data["features"] = (dims, np.asarray(self.features))
        return xr.Dataset(data, coords=coords, attrs={"gamma": self.gamma})

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset) -> WorldSet:
        """The WorldSet that :meth:`to_dataset` wrote."""
        sparse = "next_states" in dataset.data_vars
        dynamics = {"next_states", "probabilities"} if sparse else {"transitions"}
        missing = sorted(({"starts", "weights"} | dynamics) - set(dataset.data_vars)) + (
            [] if "gamma" in dataset.attrs else ["gamma"]
        )
        if missing:
            raise ValueError(f"the worlds dataset lacks {', '.join(missing)}; it was not written by to_dataset")
        features = dataset["features"].values if "features" in dataset else None
        names = {
            "state_names": [str(name) for name in dataset["state"].values],
            "action_names": [str(name) for name in dataset["action"].values],
        }
        if features is not None:
            names["feature_names"] = [str(name) for name in dataset["feature"].values]
        if sparse:
            tables = zip(dataset["next_states"].values, dataset["probabilities"].values, strict=True)
            transitions = [SparseTransitions(ns.astype(np.intp), p) for ns, p in tables]
        else:
            transitions = list(dataset["transitions"].values)
        worlds = [
            TabularMDP(P, mu0, real_number(dataset.attrs["gamma"], "worlds attribute 'gamma'"), features, **names)
            for P, mu0 in zip(transitions, dataset["starts"].values, strict=True)
        ]
        return cls(worlds, dataset["weights"].values)

    def __len__(self) -> int:
        return len(self.worlds)

    def __repr__(self) -> str:
        return (
            f"WorldSet(E={self.n_worlds}, S={self.n_states}, A={self.n_actions}, "
            f"gamma={self.gamma}, weights={np.round(self.weights, 4).tolist()})"
        )


def _padded_tables(transitions) -> tuple[tuple, tuple]:
    """Every world's successor tables as ``[world, state, action, branch]`` data variables, padded with
    probability 0 (next state 0) to the widest world."""
    tables = [t if isinstance(t, SparseTransitions) else SparseTransitions.from_dense(t) for t in transitions]
    S, A, _ = tables[0].shape
    width = max(t.next_states.shape[-1] for t in tables)
    next_states = np.zeros((len(tables), S, A, width), dtype=np.int64)
    probabilities = np.zeros((len(tables), S, A, width))
    for e, table in enumerate(tables):
        next_states[e, ..., : table.next_states.shape[-1]] = table.next_states
        probabilities[e, ..., : table.next_states.shape[-1]] = table.probabilities
    dims = ("world", "state", "action", "branch")
    return (dims, next_states), (dims, probabilities)


def _check_same_names(names, first, i: int, attr: str) -> None:
    """Raise unless world ``i`` names its states (actions, features) as worlds[0] does: a WorldSet reports the
    first world's names, so a world naming them differently would be read under the wrong labels."""
    for j, (name, expected) in enumerate(zip(names, first, strict=True)):
        if name != expected:
            raise ValueError(
                f"worlds[{i}].{attr}[{j}] is {name!r} but worlds[0].{attr}[{j}] is {expected!r}; every world of "
                f"a WorldSet must use the same {attr} in the same order"
            )


def as_world_set(worlds) -> WorldSet:
    """Return ``worlds`` as a WorldSet (a single TabularMDP becomes a set of one)."""
    if isinstance(worlds, WorldSet):
        return worlds
    if isinstance(worlds, TabularMDP):
        return WorldSet([worlds])
    if isinstance(worlds, Sequence) and worlds and all(isinstance(w, TabularMDP) for w in worlds):
        return WorldSet(worlds)
    raise TypeError(
        f"worlds must be a TabularMDP or a WorldSet; got {type(worlds).__name__}. "
        "Wrap several TabularMDPs in us.WorldSet([...])"
    )


__all__ = ["TabularMDP", "WorldSet", "as_world_set"]
