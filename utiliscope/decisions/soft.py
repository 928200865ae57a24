r"""The ``soft`` rule: quantilize against the value lower bound, with q chosen from the posterior.

A q-quantilizer of ξ (the ``quantilize`` rule) spends ``log2(1/q)`` bits of optimisation on the posterior
expected normalised value, the same unit as g. Optimising hard is safe only as far as the posterior supports it:
beyond that, a higher expected value is bought with the utilities the posterior still finds credible. The rule
walks down a ladder of q and keeps the quantilizer whose lower ``alpha``-quantile of ``Ṽ_U`` under the posterior
is highest,

.. math::

    q^* = \arg\max_{q \in \{1, 2^{-1}, \dots, 2^{-k}, q_0\}} \operatorname{Q}_\alpha[\tilde V_U(\pi_q)],

ties going to the larger q (fewer bits). The ladder ends with the expected rule's own policy, the limit
``q → 0`` of the quantilizers (``q_0 = 2^{-g}``, g its intelligence under the expected objective against ξ's
candidates, so it is reported in the same unit; q = 0, infinitely many bits, when it beats every policy of an
enumerated ξ such as a :class:`~utiliscope.PolicySet`). So the rule's objective is never below the lower
``alpha``-quantile of the ``expected`` rule's policy, nor of any ``quantilize`` rule with ``q = 2^{-j}``,
``j ≤ k``, the same ξ, seed and ``n_candidates`` (the default ``k = 10`` holds the default ``q = 2^{-6}``).

The candidates are ξ's support when it can be enumerated, otherwise ``n_candidates`` seeded draws, ranked once by
the expected normalised value; ``Ṽ`` of every quantilizer on the ladder comes from one pass over them. The
decision reports the q it chose and its bits ``log2(1/q)`` in ``settings["q"]`` and ``settings["bits"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_count, check_fraction
from utiliscope.agents.quantilizer import Quantilizer, top_fraction, top_mixture
from utiliscope.counting import RTOL, bits_from_values
from utiliscope.decisions.base import Choice, DecisionProblem, Rule, parameter
from utiliscope.decisions.expected import Expected
from utiliscope.decisions.quantilize import N_CANDIDATES
from utiliscope.decisions.values import (
    PolicyMixture,
    mixture_reward,
    normalised_values,
    weighted_lower_quantile,
)
from utiliscope.evaluation import CHUNK, evaluate_policies


@dataclass(frozen=True)
class Soft(Rule):
    """The quantilizer of ξ, with q on a ladder of powers of 2, whose lower ``alpha``-quantile of ``Ṽ`` is highest.

    Parameters
    ----------
    alpha : float
        The quantile level of the value lower bound, in (0, 1).
    max_bits : int
        The ladder's depth k ≥ 0: q = 1, 1/2, ..., 2^-k, then the expected rule's policy.
    n_candidates : int
        Policies drawn from ξ (with the decision's seed) when its support is too large to enumerate.
    """

    name = "soft"
    description = (
        "the q-quantilizer of ξ (q = 1, 1/2, ..., 2^-max_bits, or the expected policy) with the highest lower "
        "alpha-quantile of Ṽ_U"
    )

    alpha: float = parameter(0.1, "the quantile level of the value lower bound, in (0, 1)")
    max_bits: int = parameter(10, "the ladder of q: 1, 1/2, ..., 2^-max_bits (an integer ≥ 0)")
    n_candidates: int = parameter(N_CANDIDATES, "policies drawn from ξ when it cannot be enumerated")

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_fraction(self.alpha, "alpha", "0.1"))
        object.__setattr__(self, "max_bits", check_count(self.max_bits, "max_bits", minimum=0))
        object.__setattr__(self, "n_candidates", check_count(self.n_candidates, "n_candidates"))

    def objective(self, values: np.ndarray, probabilities: np.ndarray) -> float:
        """The lower ``alpha``-quantile of ``values[n]`` under ``probabilities[n]``."""
        return float(weighted_lower_quantile(values[None], probabilities, self.alpha)[0])

    def decide(self, problem: DecisionProblem) -> Choice:
        worlds, sample = problem.worlds, problem.sample
        reward = mixture_reward(sample, problem.ranges)
        agent = Quantilizer(reward, 1.0, problem.policy_prior, self.n_candidates, problem.seed)
        policies, weights = agent.candidates(worlds)
        enumerated = agent.policy_prior.can_enumerate(worlds.n_states, worlds.n_actions)
        values = evaluate_policies(worlds, policies, reward)
        ladder = 2.0 ** -np.arange(self.max_bits + 1)
        shares = np.stack([top_fraction(values, weights, q) * weights for q in ladder])
        shares /= shares.sum(axis=1, keepdims=True)
        tilde = np.zeros((len(ladder), len(sample.weights)))
        for start in range(0, len(policies), CHUNK):
            block = slice(start, start + CHUNK)
            tilde += shares[:, block] @ normalised_values(worlds, policies[block], sample, problem.ranges)

        expected = Expected().decide(problem)
        g, _ = bits_from_values(
            evaluate_policies(worlds, expected.policy[None], reward)[:, None],
            values[:, None],
            weights,
            "exact" if enumerated else "monte_carlo",
        )
        bits = np.append(np.arange(self.max_bits + 1.0), g[0, 0])
        tilde = np.vstack([tilde, normalised_values(worlds, expected.policy[None], sample, problem.ranges)])
        lower = weighted_lower_quantile(tilde, sample.weights, self.alpha)
        order = np.argsort(bits, kind="stable")  # ties go to the larger q, the fewer bits
        best = order[np.argmax(lower[order] >= lower.max() - RTOL * max(1.0, np.abs(lower).max()))]
        report = {"q": float(2.0 ** -bits[best]), "bits": float(bits[best])}
        ladder_text = f"q = 1, 1/2, ..., 2^-{self.max_bits} of ξ ({agent.policy_prior!r}) " + (
            "enumerated" if enumerated else f"among {self.n_candidates} seeded draws"
        )
        search = (
            f"the best lower {self.alpha:g}-quantile among the quantilizers with {ladder_text}, and the expected "
            f"rule's policy: q = {report['q']:.3g} ({report['bits']:.3g} bits)"
        )
        if best == len(ladder):
            if expected.search != problem.ranges.search:  # decide adds the ranges' search itself
                search = f"{search}; the expected policy by {expected.search}"
            return Choice(expected.policy, None, search, expected.exact and enumerated, report)
        mixture = PolicyMixture(*top_mixture(policies, weights, values, ladder[best], worlds.n_actions))
        policy = mixture.stationary(worlds) if len(worlds) == 1 else None
        return Choice(policy, mixture, search, enumerated, report)


__all__ = ["Soft"]
