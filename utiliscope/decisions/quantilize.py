r"""The ``quantilize`` rule: the q-quantilizer of ξ (Taylor 2016) under the posterior expected normalised value.

The candidates are ξ's support when it can be enumerated, otherwise ``n_candidates`` draws from ξ; ranked by the
expected normalised value ``Σ_n P_n Ṽ_n`` (the value of the mixture reward), the top ``q`` of ξ's weight is kept
and the decision draws one of them per episode (:class:`~utiliscope.agents.Quantilizer`, whose g under the
mixture reward is at least ``−log2 q``). With one world the mixture's stationary equivalent is its policy; with
several worlds no stationary policy need equal it, so the decision is the mixture alone (``policy`` None).
"""

from __future__ import annotations

from dataclasses import dataclass

from utiliscope._validation import check_count, check_positive
from utiliscope.agents.quantilizer import Quantilizer
from utiliscope.decisions.base import Choice, DecisionProblem, Rule, parameter
from utiliscope.decisions.values import PolicyMixture, mixture_reward
from utiliscope.policies import as_policy_prior

#: Policies drawn from ξ when its support is too large to enumerate (the default of every rule that quantilizes).
N_CANDIDATES = 10_000


@dataclass(frozen=True)
class Quantilize(Rule):
    """Draw from ξ's top ``q`` fraction ranked by the posterior expected normalised value.

    Parameters
    ----------
    q : float
        The top fraction of ξ, in (0, 1].
    n_candidates : int
        Policies drawn from ξ (with the decision's seed) when its support is too large to enumerate.
    """

    name = "quantilize"
    description = "draw from ξ's top q fraction by the posterior expected normalised value"

    q: float = parameter(2.0**-6, "the top fraction of ξ, in (0, 1]")
    n_candidates: int = parameter(N_CANDIDATES, "policies drawn from ξ when it cannot be enumerated")

    def __post_init__(self) -> None:
        q = check_positive(self.q, "q")
        if q > 1:
            raise ValueError(f"q is {self.q}; it is the top fraction of ξ and must lie in (0, 1], e.g. 2**-6")
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "n_candidates", check_count(self.n_candidates, "n_candidates"))

    def decide(self, problem: DecisionProblem) -> Choice:
        worlds = problem.worlds
        reward = mixture_reward(problem.sample, problem.ranges)
        prior = as_policy_prior(problem.policy_prior)
        agent = Quantilizer(reward, self.q, prior, self.n_candidates, problem.seed)
        mixture = PolicyMixture(*agent.policy_mixture(worlds))
        exact = prior.can_enumerate(worlds.n_states, worlds.n_actions)
        search = f"the top {self.q:g} of ξ ({prior!r}) by the expected normalised value, " + (
            "enumerated" if exact else f"among {self.n_candidates} seeded draws"
        )
        return Choice(mixture.stationary(worlds) if len(worlds) == 1 else None, mixture, search, exact)


__all__ = ["N_CANDIDATES", "Quantilize"]
