"""The base class of the synthetic test agents: a known utility, a policy, demonstrations and the true g*."""

from __future__ import annotations

import numpy as np

from utiliscope._validation import as_float_array
from utiliscope.demonstrations import Demonstrations, simulate
from utiliscope.evaluation import check_reward
from utiliscope.intelligence import Method, intelligence
from utiliscope.worlds.mdp import WorldSet, as_world_set


class Agent:
    """An agent with a known utility U* that acts in a world set ζ.

    Subclasses implement :meth:`policy`; an agent that commits to one of several stationary policies per
    trajectory also overrides :meth:`policy_mixture`.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A), or None
        The agent's utility U* as a reward. Only :class:`~utiliscope.agents.Random` may go without one.

    Attributes
    ----------
    reward : ndarray or None
        The reward as given (``r[s]`` or ``r[s, a]``), checked to be finite; :meth:`reward_table` broadcasts a
        state reward over the actions once the worlds fix A.
    """

    name = "agent"

    def __init__(self, reward) -> None:
        self.reward = None if reward is None else as_float_array(reward, "reward", ndim=(1, 2))
        if self.reward is not None and self.reward.size == 0:
            raise ValueError("reward is empty; give r[s] or r[s, a] with one entry per state (and action)")

    def reward_table(self, worlds) -> np.ndarray:
        """The reward as ``r[s, a]`` for these worlds; raises a ValueError if the shapes disagree or if none."""
        return self._prepare(worlds)[1]

    def _prepare(self, worlds) -> tuple[WorldSet, np.ndarray]:
        """``worlds`` as a WorldSet, and the reward table for it (raising if the agent has no reward)."""
        worlds = as_world_set(worlds)
        if self.reward is None:
            raise ValueError(
                f"{type(self).__name__} has no reward; pass reward=r[s] or r[s, a] to give it a utility"
            )
        S, A = worlds.n_states, worlds.n_actions
        table = check_reward(self.reward, S, A)
        if table.shape != (S, A):
            raise ValueError(f"reward has shape {self.reward.shape}; it must be ({S},) or ({S}, {A})")
        return worlds, table

    def policy(self, worlds) -> np.ndarray:
        """The agent's stationary policy ``pi[s, a]`` in ``worlds`` (a TabularMDP or WorldSet)."""
        raise NotImplementedError

    def policy_mixture(self, worlds) -> tuple[np.ndarray, np.ndarray]:
        """The stationary policies the agent draws one of at the start of each trajectory, and their weights.

        Returns
        -------
        policies : ndarray, shape (M, S, A)
        weights : ndarray, shape (M,)
            By default the single policy :meth:`policy` with weight 1.
        """
        return self.policy(worlds)[None], np.ones(1)

    def demonstrate(self, worlds, n_trajectories: int, horizon: int, seed=0) -> Demonstrations:
        """Simulate ``n_trajectories`` trajectories of ``horizon`` steps.

        Each trajectory draws a world from ζ, a policy from :meth:`policy_mixture`, a start state, and then
        follows that policy (:func:`~utiliscope.demonstrations.simulate`). The same seed gives identical
        demonstrations.
        """
        worlds = as_world_set(worlds)
        policies, weights = self.policy_mixture(worlds)
        return simulate(worlds, policies, n_trajectories, horizon, seed, policy_weights=weights)

    def true_intelligence(
        self, worlds, policy_prior=None, method: Method = "auto", n_samples: int = 1000, seed=0
    ) -> float:
        """g* = g(pi*, U*) in bits: :func:`~utiliscope.intelligence` of :meth:`policy` under the agent's reward.

        Parameters are those of :func:`~utiliscope.intelligence`, except that ``method`` defaults to ``"auto"``
        (exact where ξ can be enumerated, as before, and a method that works at any size elsewhere). Raises a
        ValueError for an agent without a reward.
        """
        worlds, reward = self._prepare(worlds)
        return intelligence(worlds, self.policy(worlds), reward, policy_prior, method, n_samples, seed)

    def parameters(self) -> dict:
        """The agent's settings other than its reward."""
        return {}

    def to_dict(self) -> dict:
        """Name, reward and parameters as plain values, for saving with a fit."""
        reward = None if self.reward is None else self.reward.tolist()
        return {"name": self.name, "reward": reward, **self.parameters()}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items() if not isinstance(v, dict))
        return f"{type(self).__name__}({settings})"


__all__ = ["Agent"]
