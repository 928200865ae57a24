r"""Synthetic agents that plan: optimal, Boltzmann-rational, ε-greedy, myopic, and the random baseline.

What each one optimises when ζ holds several worlds:

- :class:`Optimal` maximises the true ``V_U = Σ_e w[e] V_e`` over deterministic stationary policies shared
  across worlds (exact by enumeration on small problems).
- :class:`EpsilonGreedy` mixes that policy with the uniform one.
- :class:`Boltzmann` and :class:`Myopic` plan on the ζ-averaged MDP ``P̄ = Σ_e w[e] P_e``, which is exact for
  one world and an approximation for several (the world is fixed along a trajectory, ``P̄`` redraws it at
  every step).
"""

from __future__ import annotations

import numpy as np

from utiliscope._validation import check_count, check_positive
from utiliscope.agents.base import Agent
from utiliscope.agents.planning import (
    best_deterministic,
    greedy,
    hard_backup,
    one_hot,
    q_iteration,
    soft_backup,
    unit_beta,
    unit_reward,
)
from utiliscope.policies import MAX_ENUMERATE
from utiliscope.worlds.mdp import as_world_set


class Optimal(Agent):
    r"""The best deterministic stationary policy under U*, shared across worlds.

    Maximises ``V_U(pi) = Σ_e w[e] V_e(pi)`` over the A^S deterministic policies. When ``A^S ≤ max_enumerate``
    every policy is evaluated exactly and, among those tied at the top (docs/model.md#ties), the
    first in :class:`~utiliscope.UniformDeterministic`'s enumeration order is returned (the lexicographically
    smallest action vector). Larger problems use coordinate ascent from the averaged MDP's optimal policy
    (:func:`~utiliscope.agents.planning.coordinate_ascent`): exact for one world, a policy that no single-state
    change improves for several.

    With several worlds a stochastic policy can beat every deterministic one (docs/model.md#infinite-g); this agent
    stays deterministic.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    max_enumerate : int
        Largest A^S solved by enumeration (UniformDeterministic's default limit, 2^20).

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.garnet(3, 2, 2, seed=0)
    >>> us.agents.Optimal(np.array([0.0, 1.0, 0.0])).policy(world).shape
    (3, 2)
    """

    name = "optimal"

    def __init__(self, reward, max_enumerate: int = MAX_ENUMERATE) -> None:
        super().__init__(reward)
        self.max_enumerate = check_count(max_enumerate, "max_enumerate")

    def actions(self, worlds) -> np.ndarray:
        """The optimal policy as action indices ``a[s]``."""
        worlds, reward = self._prepare(worlds)
        return best_deterministic(worlds, unit_reward(reward)[0], self.max_enumerate)

    def policy(self, worlds) -> np.ndarray:
        """One-hot table ``pi[s, a]`` of :meth:`actions`."""
        return one_hot(self.actions(worlds), as_world_set(worlds).n_actions)

    def parameters(self) -> dict:
        return {"max_enumerate": self.max_enumerate}


class EpsilonGreedy(Agent):
    """``(1 − ε) · Optimal + ε · uniform``: the optimal action, or with probability ε a uniformly random one.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    epsilon : float
        In [0, 1]; 0 is :class:`Optimal`, 1 is :class:`Random`.
    max_enumerate : int
        Passed to :class:`Optimal`.
    """

    name = "epsilon_greedy"

    def __init__(self, reward, epsilon: float, max_enumerate: int = MAX_ENUMERATE) -> None:
        super().__init__(reward)
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
        if self.epsilon > 1:
            raise ValueError(f"epsilon is {epsilon}; it is a probability and must lie in [0, 1]")
        self.optimal = Optimal(self.reward, max_enumerate)

    def policy(self, worlds) -> np.ndarray:
        optimal = self.optimal.policy(worlds)
        return (1.0 - self.epsilon) * optimal + self.epsilon / optimal.shape[1]

    def parameters(self) -> dict:
        return {"epsilon": self.epsilon, "max_enumerate": self.optimal.max_enumerate}


class Boltzmann(Agent):
    r"""Boltzmann-rational (soft-optimal): ``pi(a | s) ∝ exp(β Q_soft(s, a))``.

    ``Q_soft`` is the fixed point of the soft Bellman equation on the ζ-averaged MDP ``P̄``,

    .. math::

        Q(s, a) = r(s, a) + γ \sum_{s'} P̄(s' | s, a) V(s'), \qquad
        V(s) = \frac{1}{β} \log \sum_a e^{β Q(s, a)},

    found by iteration to a relative change of 1e-12 (a γ-contraction). So ``pi(a | s) = exp(β (Q(s, a) −
    V(s)))``. Exact for one world; with several worlds it plans on the averaged dynamics. As β → ∞ it
    approaches the optimal policy (uniform over tied optimal actions), as β → 0 the uniform policy.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    beta : float
        Inverse temperature, > 0, in units of 1 / reward.
    """

    name = "boltzmann"

    def __init__(self, reward, beta: float) -> None:
        super().__init__(reward)
        self.beta = check_positive(beta, "beta")

    def _unit_q_values(self, worlds) -> tuple[np.ndarray, float | np.ndarray, int]:
        """``Q_soft / 2^e``, the inverse temperature ``beta · 2^e`` it is computed with, and ``e``: the soft
        Bellman fixed point of the reward scaled below 1 (:func:`~utiliscope.agents.planning.unit_reward`), which
        does not overflow for rewards near the float maximum."""
        worlds, reward = self._prepare(worlds)
        unit, e = unit_reward(reward)
        beta = self._unit_beta(worlds, e)
        return q_iteration(worlds, unit, soft_backup(beta)), beta, e

    def _unit_beta(self, worlds, e: int) -> float | np.ndarray:
        """The inverse temperature of the reward scaled by ``2^-e`` (:func:`.planning.unit_beta`)."""
        return unit_beta(self.beta, e)

    def q_values(self, worlds) -> np.ndarray:
        """``Q_soft[s, a]``, the soft Bellman fixed point on the averaged MDP."""
        q, _, e = self._unit_q_values(worlds)
        return np.ldexp(q, e)

    def policy(self, worlds) -> np.ndarray:
        q, beta, _ = self._unit_q_values(worlds)
        logits = beta * (q - q.max(axis=1, keepdims=True))
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def parameters(self) -> dict:
        return {"beta": self.beta}


class Myopic(Agent):
    r"""Greedy with respect to an H-step discounted lookahead on the ζ-averaged MDP.

    ``Q_1 = r`` and ``Q_h = r + γ P̄ max_a Q_{h−1}`` (H steps of value iteration from zero); the policy is
    uniform over each state's actions with ``Q_H(s, a) ≥ max_a' Q_H(s, a') − 1e-9 · max|Q_H|``. Horizon 1
    picks the immediately best action; large horizons approach the optimal policy of the averaged MDP.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    horizon : int
        H ≥ 1.
    """

    name = "myopic"

    def __init__(self, reward, horizon: int) -> None:
        super().__init__(reward)
        self.horizon = check_count(horizon, "horizon")

    def _unit_q_values(self, worlds) -> tuple[np.ndarray, int]:
        """``Q_H / 2^e`` and ``e``: the lookahead of the reward scaled below 1, which does not overflow for rewards
        near the float maximum (the greedy policy does not change under positive scaling)."""
        worlds, reward = self._prepare(worlds)
        unit, e = unit_reward(reward)
        return q_iteration(worlds, unit, hard_backup, n_backups=self.horizon - 1), e

    def q_values(self, worlds) -> np.ndarray:
        """``Q_H[s, a]``."""
        q, e = self._unit_q_values(worlds)
        return np.ldexp(q, e)

    def policy(self, worlds) -> np.ndarray:
        return greedy(self._unit_q_values(worlds)[0])

    def parameters(self) -> dict:
        return {"horizon": self.horizon}


class Random(Agent):
    """The uniform policy ``pi[s, a] = 1/A``.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A), optional
        A utility to measure its g* under; without one :meth:`true_intelligence` raises a ValueError.
    """

    name = "random"

    def __init__(self, reward=None) -> None:
        super().__init__(reward)

    def policy(self, worlds) -> np.ndarray:
        worlds = as_world_set(worlds)
        return np.full((worlds.n_states, worlds.n_actions), 1.0 / worlds.n_actions)


__all__ = ["Boltzmann", "EpsilonGreedy", "Myopic", "Optimal", "Random"]
