r"""Planning for the synthetic agents: Bellman iterations on the ζ-averaged MDP and the best shared policy.

The averaged MDP has dynamics ``P̄ = Σ_e w[e] P_e`` (:attr:`WorldSet.mean_transitions`). Planning on it is exact
for one world, or for worlds that differ only in where they start (:func:`shares_dynamics`); with several
dynamics it is an approximation, because the world stays fixed along a trajectory while ``P̄`` redraws it at every
step. Only :func:`best_deterministic` and :func:`coordinate_ascent` optimise the true ``V_U = Σ_e w[e] V_e`` over
policies shared across worlds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.special import logsumexp

from utiliscope.counting import RTOL
from utiliscope.evaluation import evaluate_policies
from utiliscope.policies import UniformDeterministic
from utiliscope.worlds.mdp import WorldSet
from utiliscope.worlds.sparse import SparseTransitions

#: Bellman iterations stop when successive Q tables differ by at most this, relative to their scale.
TOL = 1e-12
#: Safety cap on Bellman iterations (γ = 0.999 needs about 28,000 to reach TOL).
MAX_ITERATIONS = 1_000_000
#: Advantages up to this, relative to max |Q|, are round-off in the Q tables, not candidate improvements.
NOISE = 10 * TOL

#: The largest inverse temperature of planning on a reward scaled by :func:`unit_reward`: there any Q difference
#: above float64's resolution already weighs exp(−2^848) = 0, so a larger one gives the same policy, and β·Q stays
#: far from overflow.
MAX_UNIT_BETA = 2.0**900

Backup = Callable[[np.ndarray], np.ndarray]


def unit_reward(reward: np.ndarray) -> tuple[np.ndarray, int]:
    """``(reward / 2^e, e)``, with e ≥ 0 the smallest exponent that brings every entry below 1 in absolute value.

    Dividing by a power of two is exact, so planning on the scaled reward gives the same Q tables scaled by 2^−e,
    bit for bit, while rewards near the float maximum no longer overflow Q (which is up to r / (1 − γ)).
    """
    _, exponent = np.frexp(np.abs(reward).max())
    e = max(int(exponent), 0)
    return np.ldexp(reward, -e), e


def unit_beta(beta: float, e: int) -> float:
    """The inverse temperature ``beta · 2^e`` of the reward scaled by :func:`unit_reward` (β·r is unchanged),
    capped at :data:`MAX_UNIT_BETA`, which leaves every policy as it is."""
    return math.ldexp(beta, e) if math.frexp(beta)[1] + e <= math.log2(MAX_UNIT_BETA) else MAX_UNIT_BETA


def hard_backup(q: np.ndarray) -> np.ndarray:
    """``V(s) = max_a Q(s, a)``."""
    return q.max(axis=1)


def soft_backup(beta: float | np.ndarray) -> Backup:
    """``V(s) = (1/β_s) log Σ_a exp(β_s Q(s, a))``, the soft maximum of inverse temperature β: one number, or a
    column ``β[s, None]`` per state."""
    per_state = np.ravel(beta)
    return lambda q: logsumexp(beta * q, axis=1) / per_state


def q_iteration(worlds: WorldSet, reward: np.ndarray, backup: Backup, n_backups: int | None = None) -> np.ndarray:
    r"""Iterate ``Q ← r + γ P̄ backup(Q)`` on the averaged MDP, starting from ``Q = r``.

    Parameters
    ----------
    worlds : WorldSet
    reward : ndarray, shape (S, A) or (S, A, N)
        One reward, or N rewards iterated together (their Q tables stacked on the last axis).
    backup : callable
        ``Q[s, a] → V[s]``: :func:`hard_backup` or :func:`soft_backup`.
    n_backups : int, optional
        Apply exactly this many backups (``Q_{h}`` after ``h = n_backups + 1`` steps of lookahead). Without
        it, iterate to the fixed point: both backups are γ-contractions in the max norm, so the iteration
        converges; it stops when successive tables differ by at most ``TOL · max(max|Q|, max|r|)``.

    Returns
    -------
    ndarray, the shape of ``reward``
    """
    return _fixed_point(worlds.mean_transitions, worlds.gamma, reward, backup, n_backups)


def _fixed_point(P, gamma: float, reward: np.ndarray, backup: Backup, n_backups: int | None = None) -> np.ndarray:
    """``Q ← r + γ P backup(Q)`` from ``Q = r`` on dynamics ``P`` (dense or sparse), as :func:`q_iteration`."""
    q = reward.copy()
    steps = MAX_ITERATIONS if n_backups is None else n_backups
    for _ in range(steps):
        new = reward + gamma * (P @ backup(q))
        change = np.abs(new - q).max()
        q = new
        if n_backups is None and change <= TOL * max(np.abs(q).max(), np.abs(reward).max()):
            return q
    if n_backups is None:
        raise RuntimeError(f"Bellman iteration did not converge in {MAX_ITERATIONS} steps (gamma={gamma})")
    return q


def greedy(q: np.ndarray, rtol: float = RTOL) -> np.ndarray:
    """The policy uniform over each state's best actions, ``Q(s, a) ≥ max_a' Q(s, a') − rtol · max|Q|``."""
    best = q >= q.max(axis=1, keepdims=True) - rtol * np.abs(q).max()
    return best / best.sum(axis=1, keepdims=True)


def one_hot(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """Tables ``pi[..., s, a]`` of deterministic policies given as action indices ``a[..., s]``."""
    return np.eye(n_actions)[actions]


def shares_dynamics(worlds: WorldSet) -> bool:
    """Whether every world has the same transitions ``P[s, a, s']`` (their starts and weights may differ).

    Then ``V_U = Σ_e w[e] V_e`` is the value of one MDP started from the mean start, so value iteration on
    ``P̄ = P`` is exact, and so are the occupancy programs of :mod:`utiliscope.decisions.occupancy`.
    """
    first = transition_matrix(worlds.worlds[0].transitions)
    return all((transition_matrix(world.transitions) != first).nnz == 0 for world in worlds.worlds[1:])


def transition_matrix(transitions) -> scipy.sparse.csr_array:
    """A world's ``P`` (dense or sparse) as a sparse ``(S·A, S)`` matrix, row ``s·A + a``."""
    if isinstance(transitions, SparseTransitions):
        return transitions.matrix
    return SparseTransitions.from_dense(np.asarray(transitions)).matrix


def best_deterministic(worlds: WorldSet, reward: np.ndarray, max_enumerate: int) -> np.ndarray:
    r"""The deterministic stationary policy, shared across worlds, that maximises ``V_U = Σ_e w[e] V_e``.

    Exact by enumeration when ``A^S ≤ max_enumerate``: among the policies within the relative tie
    tolerance of the best value (docs/model.md#ties), the first in ``UniformDeterministic``'s order (mixed radix,
    state 0 most significant, i.e. the lexicographically smallest action vector). Otherwise by
    :func:`coordinate_ascent` (exact when the worlds share their dynamics).

    Returns
    -------
    ndarray of int, shape (S,)
        ``a[s]``, the action taken in each state.
    """
    prior = UniformDeterministic(max_enumerate)
    S, A = worlds.n_states, worlds.n_actions
    if not prior.can_enumerate(S, A):
        return coordinate_ascent(worlds, reward)
    support, _ = prior.support(S, A)
    values = evaluate_policies(worlds, support, reward)
    tied = values >= values.max() - RTOL * np.abs(values).max()
    return support[np.argmax(tied)]


def optimal_actions(worlds: WorldSet, rewards: np.ndarray) -> np.ndarray:
    """:func:`coordinate_ascent`'s policy ``a[n, s]`` for each reward ``r[n, s, a]``, its starts from one batched
    value iteration on the averaged MDP (each reward scaled to max |r| = 1 first, which leaves its policy as it is
    and gives every reward the same relative tolerance)."""
    scale = np.abs(rewards).max(axis=(1, 2))
    unit = rewards / np.where(scale > 0, scale, 1.0)[:, None, None]
    starts = q_iteration(worlds, np.moveaxis(unit, 0, -1), hard_backup).argmax(axis=1).T
    if shares_dynamics(worlds):
        return starts
    return np.array([coordinate_ascent(worlds, r, a) for r, a in zip(rewards, starts, strict=True)], dtype=np.intp)


def policy_q(transitions, gamma: float, reward: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``Q^π[s, a] = r[s, a] + γ Σ_s' P[s, a, s'] V^π[s']`` of the deterministic policy ``a[s]`` in one world, with
    ``V^π`` from one sparse direct solve of ``(I − γ P^π) V = r_π`` (dense or sparse ``P``)."""
    states = np.arange(len(actions))
    if isinstance(transitions, np.ndarray):
        values = np.linalg.solve(
            np.eye(len(states)) - gamma * transitions[states, actions], reward[states, actions]
        )
    else:
        rows = transitions.matrix[states * reward.shape[1] + actions]
        system = scipy.sparse.eye_array(len(states), format="csc") - gamma * rows.tocsc()
        values = scipy.sparse.linalg.spsolve(system, reward[states, actions])
    return reward + gamma * (transitions @ values)


def coordinate_ascent(worlds: WorldSet, reward: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    r"""A deterministic shared policy that no change of action in a single state improves.

    Starts from ``start`` (actions ``a[s]``), by default the optimal policy of the averaged MDP (value iteration on
    ``P̄``; ties to the lowest action). When the worlds share their dynamics (one world included) that policy is
    optimal and is returned.
    Otherwise it climbs: by the performance-difference identity, changing the action in state ``s`` alone to
    ``a`` changes the value by

    .. math::

        V_U(\pi') - V_U(\pi) = \sum_e w_e\, d^{\pi'}_e(s)\, A^\pi_e(s, a), \qquad d^{\pi'}_e(s) \ge 0,

    with ``A_e^π = Q_e^π(s, a) − Q_e^π(s, π(s))`` each world's advantage, so only changes with a positive
    advantage in some world can improve. Those candidates are evaluated exactly (one batched
    :func:`~utiliscope.evaluate_policies` call) and the best is kept when it beats the current value by more than
    the relative tie tolerance (docs/model.md#ties); it stops when none does. Every change raises ``V_U`` by more
    than the tolerance, so it terminates.

    With several worlds of different dynamics the result is a local optimum: no single-state change improves
    ``V_U``, but a change in several states at once might.
    """
    S = worlds.n_states
    policy = q_iteration(worlds, reward, hard_backup).argmax(axis=1) if start is None else np.asarray(start)
    if shares_dynamics(worlds):
        return policy
    states = np.arange(S)
    value = evaluate_policies(worlds, policy[None], reward)[0]
    while True:
        q = np.stack([policy_q(world.transitions, worlds.gamma, reward, policy) for world in worlds.worlds])
        advantage = q - q[:, states, policy][..., None]
        changed_states, actions = np.nonzero((advantage > NOISE * np.abs(q).max()).any(axis=0))
        if not len(changed_states):
            return policy
        candidates = np.repeat(policy[None], len(changed_states), axis=0)
        candidates[np.arange(len(changed_states)), changed_states] = actions
        values = evaluate_policies(worlds, candidates, reward)
        best = int(values.argmax())
        if values[best] <= value + RTOL * max(np.abs(values).max(), abs(value)):
            return policy
        policy, value = candidates[best], values[best]


__all__ = [
    "MAX_ITERATIONS",
    "TOL",
    "best_deterministic",
    "coordinate_ascent",
    "greedy",
    "hard_backup",
    "one_hot",
    "optimal_actions",
    "policy_q",
    "q_iteration",
    "shares_dynamics",
    "soft_backup",
    "transition_matrix",
    "unit_beta",
    "unit_reward",
]
