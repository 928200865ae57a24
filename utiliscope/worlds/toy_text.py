r"""Worlds from gymnasium's toy-text environments: the transition table ``env.unwrapped.P``.

``P[s][a]`` lists outcomes ``(probability, next_state, reward, terminated)``. An episode ends at a terminated
outcome; in the discounted world built here such an outcome leads instead to one added absorbing state,
``"terminal"``, which every action keeps and where no reward is received, so values and occupancies mean what they
mean in the episode. The features are the reward kinds: with ``v_1 < ... < v_K`` the distinct rewards in ``P``,

.. math::

    \phi[s, a, k] = \sum_{(p, s', r, d) \in P[s][a]} p \, [r = v_k],

the probability of receiving reward ``v_k`` at (s, a) (named ``"reward=v_k"``). The environment's expected reward
is one utility of this span, ``r[s, a] = Σ_k v_k φ[s, a, k]`` (:func:`gymnasium_reward`); a
``UtilityLibrary.from_features(world.features)`` enumerates others (reaching the goal, avoiding the cliff, ...).
gymnasium itself is not imported: any object with ``unwrapped.P`` in this form will do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from utiliscope._validation import as_float_array, check_probability_rows
from utiliscope.worlds.builders import from_arrays
from utiliscope.worlds.mdp import TabularMDP

#: The name of the absorbing state that terminated outcomes lead to.
TERMINAL = "terminal"


def _table(env) -> list[list[list[tuple]]]:
    """``P[s][a]`` as nested lists of outcomes, checked to cover states 0..S−1 with the same actions 0..A−1."""
    P = getattr(getattr(env, "unwrapped", env), "P", None)
    if not isinstance(P, Mapping) or not P:
        raise TypeError(
            f"env is a {type(env).__name__} whose unwrapped environment has no transition table P; "
            "from_gymnasium reads toy-text environments such as FrozenLake, Taxi and CliffWalking "
            "(for other tables use us.worlds.from_arrays)"
        )
    n_states = len(P)
    if sorted(P) != list(range(n_states)):
        raise ValueError(f"env.unwrapped.P has keys {sorted(P)[:5]}...; they must be the states 0..{n_states - 1}")
    n_actions = len(P[0])
    table = []
    for s in range(n_states):
        if sorted(P[s]) != list(range(n_actions)):
            raise ValueError(
                f"env.unwrapped.P[{s}] has actions {sorted(P[s])}; every state needs 0..{n_actions - 1}"
            )
        table.append([list(P[s][a]) for a in range(n_actions)])
    return table


def _start(env, start, n_states: int) -> np.ndarray:
    """The given start distribution, else the environment's ``initial_state_distrib``, checked."""
    if start is None:
        start = getattr(getattr(env, "unwrapped", env), "initial_state_distrib", None)
    if start is None:
        raise ValueError(
            "env.unwrapped has no initial_state_distrib; pass start=mu0[s], the start distribution over its states"
        )
    mu0 = as_float_array(start, "start", ndim=1)
    if mu0.shape != (n_states,):
        raise ValueError(
            f"start has shape {mu0.shape}; it must be ({n_states},), one per state of env.unwrapped.P"
        )
    check_probability_rows(mu0, "start", what="start distribution")
    return mu0


def from_gymnasium(
    env, gamma: float = 0.9, start=None, action_names: Sequence[str] | None = None, sparse: bool | None = None
) -> TabularMDP:
    """The world of a gymnasium toy-text environment, with terminated outcomes absorbing (see the module).

    Parameters
    ----------
    env : gymnasium.Env
        An environment whose ``env.unwrapped.P[s][a]`` lists ``(probability, next_state, reward, terminated)``:
        FrozenLake, Taxi, CliffWalking.
    gamma : float
        Discount in [0, 1).
    start : array_like, shape (S,), optional
        Start distribution over the environment's states; default ``env.unwrapped.initial_state_distrib``.
    action_names : sequence of str, optional
        Labels of the environment's actions (default ``a0, a1, ...``).
    sparse : bool, optional
        As for :func:`from_arrays` (default: sparse above a few hundred states, e.g. Taxi's 501).

    Returns
    -------
    TabularMDP
        States ``s0 .. s{S-1}`` as the environment numbers them, then ``"terminal"`` when any outcome terminates;
        features ``phi[s, a, k]``, the probability of each reward kind. Built with :func:`from_arrays`.
    """
    table = _table(env)
    n_env, n_actions = len(table), len(table[0])
    mu0 = _start(env, start, n_env)
    outcomes = [o for row in table for cell in row for o in cell]
    terminates = any(bool(o[3]) for o in outcomes)
    rewards = sorted({float(o[2]) for o in outcomes})
    n_states = n_env + terminates
    width = max(len(cell) for row in table for cell in row)
    next_states = np.full((n_states, n_actions, width), n_states - 1, dtype=np.intp)
    probabilities = np.zeros((n_states, n_actions, width))
    features = np.zeros((n_states, n_actions, len(rewards)))
    kind = {value: k for k, value in enumerate(rewards)}
    for s, row in enumerate(table):
        for a, cell in enumerate(row):
            for b, (p, s_next, reward, done) in enumerate(cell):
                next_states[s, a, b] = n_env if done else int(s_next)
                probabilities[s, a, b] = p
                features[s, a, kind[float(reward)]] += p
    if terminates:
        probabilities[n_env, :, 0] = 1.0
        mu0 = np.append(mu0, 0.0)
    names = [f"s{s}" for s in range(n_env)] + [TERMINAL] * terminates
    return from_arrays(
        next_states,
        probabilities,
        features,
        mu0,
        gamma,
        state_names=names,
        action_names=action_names,
        feature_names=[f"reward={value:g}" for value in rewards],
        sparse=sparse,
    )


def gymnasium_reward(env) -> np.ndarray:
    """The environment's expected reward ``r[s, a] = Σ p · reward`` on the states of :func:`from_gymnasium`.

    Zero in the added ``"terminal"`` state; equal to ``features @ v``, with ``v`` the reward kinds.
    """
    table = _table(env)
    terminates = any(bool(o[3]) for row in table for cell in row for o in cell)
    reward = np.zeros((len(table) + terminates, len(table[0])))
    for s, row in enumerate(table):
        for a, cell in enumerate(row):
            reward[s, a] = sum(float(p) * float(r) for p, _, r, _ in cell)
    return reward


__all__ = ["TERMINAL", "from_gymnasium", "gymnasium_reward"]
