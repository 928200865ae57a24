"""Demonstrations: an operator's observed behaviour as trajectories and state–action counts ``n[s, a]``.

The world model turns counts into independent Dirichlet rows (:meth:`utiliscope.WorldModel.from_demonstrations`).
:func:`simulate` (stationary policies) and :func:`simulate_behaviour` (an agent whose choice depends on the time
or its last action) share the one trajectory loop; every synthetic agent calls one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from utiliscope._validation import (
    as_float_array,
    check_array_size,
    check_count,
    check_probability_rows,
    readonly,
    rng_from,
)
from utiliscope.evaluation import check_policy
from utiliscope.worlds.mdp import WorldSet, as_world_set


class Trajectory(NamedTuple):
    """One demonstration: the world it ran in and the state–action pairs it visited.

    Attributes
    ----------
    world : int
        Index ``e`` of the world in ζ that the trajectory was drawn in.
    states, actions : ndarray of int, shape (T,)
        ``states[t]`` and the action ``actions[t]`` taken there, for t = 0, ..., T − 1.
    """

    world: int
    states: np.ndarray
    actions: np.ndarray


def _tally(states: np.ndarray, actions: np.ndarray, n_states: int, n_actions: int) -> np.ndarray:
    """``n[s, a]``: how often each state–action pair occurs in the flat index arrays."""
    flat = np.bincount(states * n_actions + actions, minlength=n_states * n_actions)
    return flat.reshape(n_states, n_actions).astype(float)


def _check_trajectory(trajectory, i: int, n_states: int, n_actions: int) -> Trajectory:
    """Return ``trajectories[i]`` as a Trajectory of int arrays, raising on bad lengths or indices."""
    world, states, actions = trajectory
    world = check_count(world, f"trajectories[{i}].world", minimum=0)
    states, actions = np.asarray(states), np.asarray(actions)
    for name, array, size in (("states", states, n_states), ("actions", actions, n_actions)):
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"trajectories[{i}].{name} must be a 1-d array of integer indices")
        if array.size and (array.min() < 0 or array.max() >= size):
            raise ValueError(f"trajectories[{i}].{name} holds an index outside 0..{size - 1}")
    if states.shape != actions.shape:
        raise ValueError(
            f"trajectories[{i}] has {states.size} states but {actions.size} actions; give one action per state"
        )
    return Trajectory(world, readonly(states.astype(np.intp)), readonly(actions.astype(np.intp)))


class Demonstrations:
    """Observed behaviour: state–action counts ``counts[s, a]`` and, when known, the trajectories behind them.

    Build one with :meth:`from_counts` (counts observed elsewhere, no trajectories), :meth:`from_trajectories`,
    or an agent's ``demonstrate`` (:func:`simulate`).

    Parameters
    ----------
    counts : array_like, shape (S, A)
        Finite, non-negative counts (not necessarily integers: weighted or pooled observations are allowed).
    trajectories : sequence of Trajectory, optional
        :class:`Trajectory` records or plain ``(world, states, actions)`` tuples. When given, ``counts`` must
        equal their tally.

    Attributes
    ----------
    counts : ndarray, shape (S, A)
        Read-only float counts.
    trajectories : tuple of Trajectory
        Empty for :meth:`from_counts`.
    n_states, n_actions : int

    Examples
    --------
    >>> import utiliscope as us
    >>> demos = us.Demonstrations.from_counts([[3, 1], [0, 2]])
    >>> demos.n_states, demos.n_actions, demos.trajectories
    (2, 2, ())
    """

    def __init__(self, counts, trajectories: Sequence[Trajectory] = ()) -> None:
        n = as_float_array(counts, "counts", ndim=2)
        if 0 in n.shape:
            raise ValueError(f"counts has shape {n.shape}; it needs at least one state and one action")
        negative = n < 0
        if negative.any():
            s, a = (int(i) for i in np.argwhere(negative)[0])
            raise ValueError(f"counts[{s}, {a}] is {n[s, a]:.6g}; counts must be non-negative")
        S, A = n.shape
        records = tuple(_check_trajectory(t, i, S, A) for i, t in enumerate(trajectories))
        if records:
            tally = _tally(
                np.concatenate([t.states for t in records]), np.concatenate([t.actions for t in records]), S, A
            )
            if not np.array_equal(tally, n):
                raise ValueError(
                    "counts differs from the tally of trajectories; build with "
                    "Demonstrations.from_trajectories(trajectories, n_states, n_actions)"
                )
        self.counts = readonly(n)
        self.trajectories = records

    @classmethod
    def from_counts(cls, counts) -> Demonstrations:
        """Counts ``n[s, a]`` observed elsewhere (finite, non-negative, 2-d); no trajectories."""
        return cls(counts)

    @classmethod
    def from_trajectories(
        cls, trajectories: Sequence[Trajectory], n_states: int, n_actions: int
    ) -> Demonstrations:
        """Demonstrations whose counts are the tally of ``(world, states, actions)`` records."""
        S, A = check_count(n_states, "n_states"), check_count(n_actions, "n_actions")
        records = [_check_trajectory(t, i, S, A) for i, t in enumerate(trajectories)]
        empty = np.zeros(0, dtype=np.intp)
        states = np.concatenate([empty, *(t.states for t in records)])
        actions = np.concatenate([empty, *(t.actions for t in records)])
        return cls(_tally(states, actions, S, A), records)

    n_states = property(lambda self: self.counts.shape[0], doc="Number of states S.")
    n_actions = property(lambda self: self.counts.shape[1], doc="Number of actions A.")
    n_trajectories = property(lambda self: len(self.trajectories), doc="Number of trajectories (0 if unknown).")

    def __repr__(self) -> str:
        return (
            f"Demonstrations(S={self.n_states}, A={self.n_actions}, "
            f"trajectories={self.n_trajectories}, total={self.counts.sum():g})"
        )


def cumulative(probabilities: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis, divided by the total so that the last entry is exactly 1.

    With the exact 1 at the end, inverse-CDF sampling never falls off the end through round-off, which would
    otherwise pick the last outcome even when it has probability 0.
    """
    cdf = np.cumsum(probabilities, axis=-1)
    return cdf / cdf[..., -1:]


def inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draws: the first k with ``cdf[i, k] > u[i]``, for ``u`` in [0, 1)."""
    return (cdf <= u[:, None]).sum(axis=-1)


def simulate(
    worlds,
    policies,
    n_trajectories: int,
    horizon: int,
    seed=0,
    policy_weights=None,
) -> Demonstrations:
    """Run stationary policies in ζ and record the state–action pairs.

    Each trajectory draws a world ``e ~ w``, a policy ``j ~ policy_weights`` from the stack (the agent commits
    to it for the whole trajectory), a start state ``s_0 ~ mu0_e``, and then for ``t < horizon`` draws
    ``a_t ~ pi_j[s_t]``, records ``(s_t, a_t)`` and moves to ``s_{t+1} ~ P_e[s_t, a_t]``. All trajectories
    advance together (a loop over time steps only), by inverse-CDF sampling with one
    ``numpy.random.default_rng(seed)``; the draws are made in a fixed order, so the same seed gives identical
    demonstrations.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like, shape (S, A) or (M, S, A)
        One policy, or a stack to draw one from per trajectory.
    n_trajectories, horizon : int
        ≥ 1. Every trajectory has exactly ``horizon`` steps, so the counts total ``n_trajectories · horizon``.
    seed : int or numpy.random.Generator
    policy_weights : array_like, shape (M,), optional
        Probabilities of the policies in the stack; equal by default.

    Returns
    -------
    Demonstrations
        With ``trajectories`` and their ``counts``.
    """
    worlds = as_world_set(worlds)
    S, A = worlds.n_states, worlds.n_actions
    stack = check_policy(policies, S, A, name="policies")
    stack = stack[None] if stack.ndim == 2 else stack
    n, T = _check_size(n_trajectories, horizon)
    weights = _policy_weights(policy_weights, stack.shape[0])
    rng = rng_from(seed)
    world = inverse_cdf(np.broadcast_to(cumulative(worlds.weights), (n, worlds.n_worlds)), rng.random(n))
    which = inverse_cdf(np.broadcast_to(cumulative(weights), (n, weights.size)), rng.random(n))
    state = inverse_cdf(cumulative(worlds.starts)[world], rng.random(n))
    policy_cdf = cumulative(stack)
    states, actions = _run(worlds, lambda t, state, previous: policy_cdf[which, state], world, state, T, rng)
    return _record(world, states, actions, S, A)


#: A non-stationary behaviour: ``(t, states[i], previous[i]) → p[i, a]``, the next action's probabilities of
#: each trajectory at step t from its state and the action it took at step t − 1 (−1 at t = 0).
Behaviour = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def simulate_behaviour(worlds, behaviour: Behaviour, n_trajectories: int, horizon: int, seed=0) -> Demonstrations:
    """Run a non-stationary behaviour in ζ and record the state–action pairs, as :func:`simulate` does.

    Each trajectory draws a world ``e ~ w`` and a start state ``s_0 ~ mu0_e``; at step t it draws ``a_t`` from
    ``behaviour(t, s_t, a_{t−1})`` (``a_{−1} = −1``), for an agent whose choice depends on the time or on its last
    action (a habit, a plan to the end of the episode). It shares :func:`simulate`'s loop over time steps and its
    inverse-CDF draws with one ``numpy.random.default_rng(seed)``: the same seed gives identical demonstrations.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    behaviour : callable
        :data:`Behaviour`: returns probabilities ``p[i, a]`` (rows summing to 1) for the arrays it is given.
    n_trajectories, horizon : int
        ≥ 1.
    seed : int or numpy.random.Generator
    """
    worlds = as_world_set(worlds)
    S, A = worlds.n_states, worlds.n_actions
    n, T = _check_size(n_trajectories, horizon)
    rng = rng_from(seed)
    world = inverse_cdf(np.broadcast_to(cumulative(worlds.weights), (n, worlds.n_worlds)), rng.random(n))
    state = inverse_cdf(cumulative(worlds.starts)[world], rng.random(n))

    def choose(t: int, state: np.ndarray, previous: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(behaviour(t, state, previous), dtype=float)
        if probabilities.shape != (state.size, A) or not np.all(np.isfinite(probabilities)):
            raise ValueError(
                f"behaviour returned shape {probabilities.shape} at step {t}; it must give finite probabilities "
                f"({state.size}, {A}), one row per trajectory"
            )
        check_probability_rows(probabilities, f"behaviour's probabilities at step {t}")
        return cumulative(probabilities)

    states, actions = _run(worlds, choose, world, state, T, rng)
    return _record(world, states, actions, S, A)


def _check_size(n_trajectories, horizon) -> tuple[int, int]:
    n = check_count(n_trajectories, "n_trajectories")
    T = check_count(horizon, "horizon")
    check_array_size((2, n, T), np.intp, f"{n:,} trajectories of {T:,} steps", "lower n_trajectories or horizon")
    return n, T


def _record(world: np.ndarray, states: np.ndarray, actions: np.ndarray, S: int, A: int) -> Demonstrations:
    records = [Trajectory(int(e), states[i], actions[i]) for i, e in enumerate(world)]
    return Demonstrations(_tally(states.ravel(), actions.ravel(), S, A), records)


def _policy_weights(policy_weights, n_policies: int) -> np.ndarray:
    if policy_weights is None:
        return np.full(n_policies, 1.0 / n_policies)
    w = as_float_array(policy_weights, "policy_weights", ndim=1)
    if w.shape != (n_policies,):
        raise ValueError(f"policy_weights has shape {w.shape}; it needs one weight per policy ({n_policies})")
    check_probability_rows(w, "policy_weights", what="set of weights")
    return w


def run_policies(
    worlds: WorldSet,
    policies: np.ndarray,
    which: np.ndarray,
    world: np.ndarray,
    state: np.ndarray,
    horizon: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory ``i`` runs ``policies[which[i]]`` in world ``world[i]`` from ``state[i]`` for ``horizon`` steps
    (the simulator of :func:`simulate`, from given worlds and start states); returns ``states[i, t]`` and
    ``actions[i, t]``."""
    policy_cdf = cumulative(policies)
    return _run(worlds, lambda t, state, previous: policy_cdf[which, state], world, state, horizon, rng)


def _run(
    worlds: WorldSet,
    choose: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
    world: np.ndarray,
    state: np.ndarray,
    horizon: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance all trajectories ``horizon`` steps, the actions drawn from the CDF rows ``choose(t, state,
    previous)``; returns ``states[i, t]`` and ``actions[i, t]``."""
    transition_cdf = cumulative(worlds.transitions)
    states = np.empty((world.size, horizon), dtype=np.intp)
    actions = np.empty((world.size, horizon), dtype=np.intp)
    action = np.full(world.size, -1, dtype=np.intp)
    for t in range(horizon):
        action = inverse_cdf(choose(t, state, action), rng.random(world.size))
        states[:, t], actions[:, t] = state, action
        state = inverse_cdf(transition_cdf[world, state, action], rng.random(world.size))
    return states, actions


__all__ = ["Behaviour", "Demonstrations", "Trajectory", "run_policies", "simulate", "simulate_behaviour"]
