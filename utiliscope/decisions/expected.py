r"""The ``expected`` rule: the deterministic policy with the highest posterior expected normalised value.

.. math::

    \pi = \arg\max_{\pi \text{ deterministic}} \sum_n P_n \tilde V_n(\pi),

which is planning for the one mixture reward ``Σ_n P_n r_n / range_n``
(:func:`~utiliscope.decisions.values.mixture_reward`). The search enumerates the deterministic policies when
``A^S ≤ max_enumerate`` (exact; the first in enumeration order among ties); beyond that it plans by value
iteration on the mixture reward, exact for one world or worlds that share their dynamics, and by single-state
coordinate ascent from it for several dynamics (a local optimum; the decision's ``search`` says which ran).
"""

from __future__ import annotations

from dataclasses import dataclass

from utiliscope.agents.planning import best_deterministic, one_hot
from utiliscope.decisions.base import Choice, DecisionProblem, Rule
from utiliscope.decisions.values import can_enumerate, mixture_reward, planning_search


@dataclass(frozen=True)
class Expected(Rule):
    """Maximise the posterior expected normalised value over deterministic policies (no parameters)."""

    name = "expected"
    description = "maximise the posterior expected normalised value Σ_U P(U | data) Ṽ_U"

    def decide(self, problem: DecisionProblem) -> Choice:
        worlds = problem.worlds
        reward = mixture_reward(problem.sample, problem.ranges)
        policy = best_deterministic(worlds, reward, problem.max_enumerate)
        if can_enumerate(worlds, problem.max_enumerate):
            search, exact = f"enumeration of the {worlds.n_actions}^{worlds.n_states} deterministic policies", True
        else:
            search, exact = planning_search(worlds)
        return Choice(one_hot(policy, worlds.n_actions), None, search, exact)


__all__ = ["Expected"]
