r"""Non-stationary agents of the zoo: a naive hyperbolic discounter and a habitual agent.

Their choice depends on the step (a plan to the end of the episode) or on the action they took last (a habit), so
no stationary policy describes them: their demonstrations are simulated step by step
(:func:`~utiliscope.demonstrations.simulate_behaviour`), and the stationary policy of their behaviour is the one
with the same expected state–action frequencies over demonstrations of a given length
(:meth:`StepwiseAgent.behaviour_policy`, computed exactly by propagating the distribution of
``(world, state, last action)`` forward).
"""

from __future__ import annotations

import numpy as np

from utiliscope._validation import check_count, check_positive
from utiliscope.agents.base import Agent
from utiliscope.agents.planning import greedy
from utiliscope.agents.zoo import ZooAgent
from utiliscope.demonstrations import Behaviour, Demonstrations, simulate_behaviour
from utiliscope.worlds.mdp import WorldSet, as_world_set


class StepwiseAgent(ZooAgent):
    """Base class of the agents whose next action depends on the step or on their last action.

    Subclasses implement :meth:`behaviour`; demonstrations, the expected counts and the behaviour's stationary
    policy follow from it.
    """

    def behaviour(self, worlds: WorldSet, horizon: int) -> Behaviour:
        """The next action's probabilities ``(t, states, previous) → p[i, a]`` in episodes of ``horizon`` steps."""
        raise NotImplementedError

    def policy(self, worlds) -> np.ndarray:
        raise TypeError(
            f"{type(self).__name__} is non-stationary and has no policy; behaviour_policy(worlds, horizon) is the "
            "stationary policy with the state–action frequencies of its demonstrations of horizon steps"
        )

    def demonstrate(self, worlds, n_trajectories: int, horizon: int, seed=0) -> Demonstrations:
        """Simulate ``n_trajectories`` episodes of ``horizon`` steps, each action drawn from :meth:`behaviour`."""
        worlds = as_world_set(worlds)
        horizon = check_count(horizon, "horizon")
        return simulate_behaviour(worlds, self.behaviour(worlds, horizon), n_trajectories, horizon, seed)

    def expected_counts(self, worlds, horizon: int) -> np.ndarray:
        r"""``E[n[s, a]]`` of one demonstration of ``horizon`` steps, exactly.

        The distribution ``x_t[e, s, b]`` of world, state and last action b (none at t = 0) moves forward by
        ``x_{t+1}[e, s', a] = Σ_{s, b} x_t[e, s, b] p_t(a | s, b) P_e[s, a, s']``, and the counts add up
        ``Σ_e w[e] Σ_b x_t[e, s, b] p_t(a | s, b)`` over the steps.
        """
        worlds = as_world_set(worlds)
        horizon = check_count(horizon, "horizon")
        S, A, E = worlds.n_states, worlds.n_actions, worlds.n_worlds
        act = self.behaviour(worlds, horizon)
        states, previous = np.repeat(np.arange(S), A + 1), np.tile(np.arange(-1, A), S)
        x = np.zeros((E, S, A + 1))
        x[:, :, 0] = worlds.starts
        counts = np.zeros((S, A))
        for t in range(horizon):
            p = np.asarray(act(t, states, previous), dtype=float).reshape(S, A + 1, A)
            joint = np.einsum("esb,sba->esa", x, p)
            counts += np.einsum("e,esa->sa", worlds.weights, joint)
            x = np.zeros((E, S, A + 1))
            x[:, :, 1:] = np.einsum("esa,esat->eta", joint, worlds.transitions)
        return counts

    def behaviour_policy(self, worlds, horizon: int | None = None) -> np.ndarray:
        """The stationary policy ``E[n[s, a]] / E[n[s]]`` of demonstrations of ``horizon`` steps (uniform rows
        where they never go): what a world model from many such demonstrations converges to."""
        if horizon is None:
            raise ValueError(
                f"{type(self).__name__} is non-stationary: pass horizon=, the length of the demonstrations whose "
                "state–action frequencies define its behaviour"
            )
        counts = self.expected_counts(worlds, horizon)
        visits = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(visits > 0, counts / np.where(visits > 0, visits, 1.0), 1.0 / counts.shape[1])


class HyperbolicDiscounter(StepwiseAgent):
    r"""A naive hyperbolic discounter: re-plans at every step with discount ``1 / (1 + k d)`` for a delay d.

    At step t of an episode of T steps it plans for the ``h = T − t`` steps left, on the ζ-averaged MDP,
    maximising ``Σ_{d < h} r_d / (1 + k d)`` as if it would follow that plan (naive), by backward induction over
    the delay:

    .. math::

        Q_d(s, a) = \frac{r(s, a)}{1 + k d} + \sum_{s'} \bar P(s' | s, a) \max_{a'} Q_{d+1}(s', a'), \qquad
        Q_h = 0,

    and takes a best action of ``Q_0`` (uniform over ties). One step later the same rewards sit one step closer and
    weigh differently, so it may abandon its plan: a larger-later reward it planned to wait for loses to a
    smaller-sooner one when the choice comes (time inconsistency). Its discount replaces the worlds' γ.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    k : float
        The hyperbolic rate, ≥ 0 (0 plans without discounting).
    """

    name = "hyperbolic"

    def __init__(self, reward, k: float) -> None:
        super().__init__(reward)
        self.k = check_positive(k, "k", allow_zero=True)

    def plan(self, worlds, steps: int) -> np.ndarray:
        """The naive plan made now with ``steps`` steps left: the greedy policy ``pi_d[s, a]`` of ``Q_d`` for each
        delay d, shape (steps, S, A). Only its first step is ever taken."""
        worlds, reward = self._prepare(worlds)
        steps = check_count(steps, "steps")
        P = worlds.mean_transitions
        plan = np.empty((steps, *reward.shape))
        value = np.zeros(worlds.n_states)
        for d in reversed(range(steps)):
            q = reward / (1.0 + self.k * d) + P @ value
            plan[d], value = greedy(q), q.max(axis=1)
        return plan

    def behaviour(self, worlds: WorldSet, horizon: int) -> Behaviour:
        first = np.stack([self.plan(worlds, horizon - t)[0] for t in range(horizon)])
        return lambda t, states, previous: first[t][states]

    def parameters(self) -> dict:
        return {"k": self.k}


class Habitual(StepwiseAgent):
    """Repeats its last action with probability ``habit``, else acts by an inner agent's policy.

    At the first step, and with probability ``1 − habit`` afterwards, the action is drawn from ``inner``'s
    stationary policy at the current state; otherwise it is the previous action again (in whatever state the agent
    now is). So actions repeat at a rate of at least ``habit``.

    Parameters
    ----------
    inner : Agent
        An agent with a stationary policy; its reward is this agent's.
    habit : float
        In [0, 1].
    """

    name = "habitual"

    def __init__(self, inner: Agent, habit: float) -> None:
        if not isinstance(inner, Agent):
            raise TypeError(
                f"inner must be an agent (e.g. us.agents.Boltzmann(reward, 2.0)); got {type(inner).__name__}"
            )
        super().__init__(inner.reward)
        self.inner = inner
        self.habit = check_positive(habit, "habit", allow_zero=True)
        if self.habit > 1:
            raise ValueError(f"habit is {habit}; it is the probability of repeating the last action, in [0, 1]")

    def behaviour(self, worlds: WorldSet, horizon: int) -> Behaviour:
        policy = self.inner.policy(worlds)
        repeat = np.vstack([np.zeros(worlds.n_actions), np.eye(worlds.n_actions)])  # row b + 1: repeat action b

        def act(t: int, states: np.ndarray, previous: np.ndarray) -> np.ndarray:
            habit = np.where(previous >= 0, self.habit, 0.0)[:, None]
            return (1.0 - habit) * policy[states] + habit * repeat[previous + 1]

        return act

    def parameters(self) -> dict:
        return {"inner": self.inner.to_dict(), "habit": self.habit}


__all__ = ["Habitual", "HyperbolicDiscounter", "StepwiseAgent"]
