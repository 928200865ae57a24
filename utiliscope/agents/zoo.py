r"""The agent zoo: demonstrators that are not maximisers of one utility, for checking a model's agent model.

Every model here assumes a demonstrator that maximises a utility in some way
(docs/model.md#the-agent-zoo); these agents break that assumption in the ways real demonstrators do,
each with a stationary policy:

- :class:`ShardAgent`: different utilities steer in different contexts (regions of the world, or a context
  feature), the "shard" view of values as context-dependent influences on decisions;
- :class:`WrongModel`: an agent that plans in a world model other than the true one (another slip, other
  transitions) and acts in the true worlds;
- :class:`StateBoltzmann`: Boltzmann-rational with an inverse temperature ``β[s]`` that changes from state to
  state (careful in some places, careless in others).

The non-stationary ones (a naive hyperbolic discounter, a habitual agent) are in :mod:`utiliscope.agents.stepwise`.

Every zoo agent reports the g of its behaviour under a designer's utility (:meth:`ZooAgent.designer_intelligence`):
the g that :func:`~utiliscope.intelligence` gives the stationary policy of its behaviour. For a stationary agent
that is its policy, exactly the policy its demonstrations estimate; for a non-stationary one, the policy with the
same expected state–action frequencies as its demonstrations (:meth:`ZooAgent.behaviour_policy`), the policy that a
world model built from many such demonstrations converges to. So the g reported is the g of what a model is shown.
"""

from __future__ import annotations

import numpy as np

from utiliscope._validation import as_float_array, check_positive
from utiliscope.agents.base import Agent
from utiliscope.agents.planning import unit_beta
from utiliscope.agents.rational import Boltzmann, Optimal
from utiliscope.evaluation import check_reward
from utiliscope.intelligence import Method, intelligence
from utiliscope.worlds.mdp import WorldSet, as_world_set


class ZooAgent(Agent):
    """Base class of the zoo: an agent whose behaviour is scored under a designer's utility.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A), or None
        The agent's own utility where it has one (U*, what recovery compares against), else None.
    """

    def behaviour_policy(self, worlds, horizon: int | None = None) -> np.ndarray:
        """The stationary policy of the agent's behaviour: :meth:`policy` (``horizon`` is for non-stationary
        agents, whose behaviour depends on the demonstrations' length)."""
        return self.policy(worlds)

    def designer_intelligence(
        self,
        worlds,
        reward=None,
        *,
        horizon: int | None = None,
        policy_prior=None,
        method: Method = "exact",
        n_samples: int = 1000,
        seed=0,
    ) -> float:
        """g in bits of the agent's behaviour (:meth:`behaviour_policy`) under a designer's utility.

        Parameters
        ----------
        worlds : TabularMDP or WorldSet
        reward : array_like, shape (S,) or (S, A), optional
            The designer's utility; by default the agent's own reward.
        horizon : int, optional
            The demonstrations' length, for a non-stationary agent (required there).
        policy_prior, method, n_samples, seed
            As in :func:`~utiliscope.intelligence`.
        """
        worlds = as_world_set(worlds)
        table = self.reward_table(worlds) if reward is None else _reward_table(reward, worlds)
        return intelligence(
            worlds, self.behaviour_policy(worlds, horizon), table, policy_prior, method, n_samples, seed
        )


def _reward_table(reward, worlds: WorldSet) -> np.ndarray:
    """A designer's reward as ``r[s, a]`` for these worlds, or a ValueError naming the shapes it may have."""
    S, A = worlds.n_states, worlds.n_actions
    table = check_reward(reward, S, A)
    if table.shape != (S, A):
        raise ValueError(f"reward has shape {np.shape(reward)}; it must be ({S},) or ({S}, {A})")
    return table


class ShardAgent(ZooAgent):
    r"""Different utilities steer in different contexts: in the states of context k it acts as utility k would.

    ``pi[s] = pi_{U_c(s)}[s]``, where ``c(s)`` is the state's context and ``pi_U`` the policy of an agent that
    maximises U over the whole world set: :class:`~utiliscope.agents.Optimal` (``beta`` None) or
    :class:`~utiliscope.agents.Boltzmann` of inverse temperature ``beta``. Each shard plans as if it steered
    everywhere, so no single utility explains the behaviour when the shards disagree.

    Parameters
    ----------
    utilities : array_like, shape (K, S) or (K, S, A)
        The shards' utilities, K ≥ 1.
    context : array_like of int, shape (S,)
        ``c(s)`` in 0..K−1: which shard steers in each state (a partition of the states into regions). A context
        feature gives one: :meth:`from_feature`.
    reward : array_like, shape (S,) or (S, A), optional
        A designer's utility to score the agent under (U* for recovery); the default of
        :meth:`~ZooAgent.designer_intelligence`.
    beta : float, optional
        Each shard's Boltzmann inverse temperature; None for each shard's optimal deterministic policy.
    """

    name = "shard"

    def __init__(self, utilities, context, reward=None, beta: float | None = None) -> None:
        super().__init__(reward)
        shards = as_float_array(utilities, "utilities", ndim=(2, 3))
        if shards.shape[0] == 0 or shards.size == 0:
            raise ValueError(f"utilities has shape {shards.shape}; give one utility u[s] or u[s, a] per shard")
        self.utilities = shards
        regions = np.asarray(context)
        if regions.ndim != 1 or not np.issubdtype(regions.dtype, np.integer):
            raise ValueError(
                f"context must be a 1-d array of integer shard indices, one per state; got {regions.dtype} with "
                f"shape {regions.shape}"
            )
        if regions.size and (regions.min() < 0 or regions.max() >= len(shards)):
            bad = int(np.argmax((regions < 0) | (regions >= len(shards))))
            raise ValueError(
                f"context[{bad}] is {regions[bad]}; it must index one of the {len(shards)} utilities (0.."
                f"{len(shards) - 1})"
            )
        self.context = regions.astype(np.intp)
        self.beta = None if beta is None else check_positive(beta, "beta")

    @classmethod
    def from_feature(cls, utilities, feature, threshold: float = 0.5, reward=None, beta: float | None = None):
        """Two shards steered by a context feature: utility 1 where ``feature[s] > threshold``, else utility 0.

        ``feature`` is one column of the worlds' features, ``worlds.features[:, k]``.
        """
        values = as_float_array(feature, "feature", ndim=1)
        return cls(utilities, (values > threshold).astype(np.intp), reward, beta)

    def shard_policies(self, worlds) -> np.ndarray:
        """``pi_k[s, a]`` of each shard's utility over the whole world set, shape (K, S, A)."""
        worlds = as_world_set(worlds)
        S, A = worlds.n_states, worlds.n_actions
        if self.context.shape != (S,):
            raise ValueError(f"context has {self.context.size} entries; the worlds have {S} states, give one each")
        shards = self.utilities
        if shards.ndim == 2:
            if shards.shape[1] != S:
                raise ValueError(f"utilities has shape {shards.shape}; it must be (K, {S}) or (K, {S}, {A})")
            shards = np.repeat(shards[..., None], A, axis=-1)
        elif shards.shape[1:] != (S, A):
            raise ValueError(f"utilities has shape {shards.shape}; it must be (K, {S}) or (K, {S}, {A})")
        return np.stack([self._shard(u).policy(worlds) for u in shards])

    def _shard(self, utility: np.ndarray) -> Agent:
        return Optimal(utility) if self.beta is None else Boltzmann(utility, self.beta)

    def policy(self, worlds) -> np.ndarray:
        policies = self.shard_policies(worlds)
        return policies[self.context, np.arange(self.context.size)]

    def parameters(self) -> dict:
        return {"utilities": self.utilities.tolist(), "context": self.context.tolist(), "beta": self.beta}

    def __repr__(self) -> str:
        return f"ShardAgent(shards={len(self.utilities)}, beta={self.beta!r})"


class WrongModel(ZooAgent):
    """Plans in a wrong world model: ``inner``'s policy for ``believed_worlds``, run in the true worlds.

    Parameters
    ----------
    inner : Agent
        The planner (e.g. :class:`~utiliscope.agents.Optimal`, :class:`~utiliscope.agents.Boltzmann`); its
        reward is this agent's.
    believed_worlds : TabularMDP or WorldSet
        The worlds it believes it is in: the same states and actions as the true worlds, other dynamics (e.g.
        a gridworld of another slip).
    """

    name = "wrong_model"

    def __init__(self, inner: Agent, believed_worlds) -> None:
        if not isinstance(inner, Agent):
            raise TypeError(f"inner must be an agent (e.g. us.agents.Optimal(reward)); got {type(inner).__name__}")
        super().__init__(inner.reward)
        self.inner = inner
        self.believed_worlds = as_world_set(believed_worlds)

    def policy(self, worlds) -> np.ndarray:
        worlds = as_world_set(worlds)
        believed = self.believed_worlds
        if (believed.n_states, believed.n_actions) != (worlds.n_states, worlds.n_actions):
            raise ValueError(
                f"believed_worlds have {believed.n_states} states and {believed.n_actions} actions, the worlds "
                f"{worlds.n_states} and {worlds.n_actions}; give believed worlds over the same states and actions"
            )
        return self.inner.policy(believed)

    def parameters(self) -> dict:
        believed = self.believed_worlds
        return {
            "inner": self.inner.to_dict(),
            "believed_worlds": {
                "transitions": believed.transitions.tolist(),
                "starts": believed.starts.tolist(),
                "weights": believed.weights.tolist(),
                "gamma": believed.gamma,
            },
        }


class StateBoltzmann(Boltzmann, ZooAgent):
    r"""Boltzmann-rational with an inverse temperature per state: ``pi(a | s) ∝ exp(β[s] Q(s, a))``.

    ``Q`` is the fixed point of the soft Bellman equation with each state's own temperature,
    ``V(s) = (1/β[s]) log Σ_a exp(β[s] Q(s, a))``, on the ζ-averaged MDP as :class:`~utiliscope.agents.Boltzmann`
    (which it equals when every ``β[s]`` is the same). A model that fits one β sees a demonstrator that is sharp in
    some states and noisy in others.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    beta : array_like, shape (S,)
        ``β[s] > 0``, in units of 1 / reward.
    """

    name = "state_boltzmann"

    def __init__(self, reward, beta) -> None:
        Agent.__init__(self, reward)
        betas = as_float_array(beta, "beta", ndim=1)
        bad = ~(betas > 0) | ~np.isfinite(betas)
        if bad.any():
            s = int(np.argmax(bad))
            raise ValueError(f"beta[{s}] is {betas[s]}; every state's inverse temperature must be finite and > 0")
        self.beta = betas

    def _unit_beta(self, worlds, e: int) -> np.ndarray:
        S = as_world_set(worlds).n_states
        if self.beta.shape != (S,):
            raise ValueError(f"beta has {self.beta.size} entries; the worlds have {S} states, give one each")
        return np.array([unit_beta(float(b), e) for b in self.beta])[:, None]

    def parameters(self) -> dict:
        return {"beta": self.beta.tolist()}


__all__ = ["ShardAgent", "StateBoltzmann", "WrongModel", "ZooAgent"]
