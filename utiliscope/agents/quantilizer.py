r"""The q-quantilizer (Taylor 2016): a policy drawn from ξ restricted to its top q fraction by V_U*."""

from __future__ import annotations

import numpy as np

from utiliscope._validation import check_count, check_positive, check_seed
from utiliscope.agents.base import Agent
from utiliscope.agents.planning import one_hot
from utiliscope.counting import RTOL
from utiliscope.evaluation import evaluate_policies, stationary_equivalent
from utiliscope.policies import as_policy_prior
from utiliscope.worlds.mdp import as_world_set

#: Slack on the cumulative weight reaching q, so that q = 1 takes every policy despite round-off in the sum.
WEIGHT_SLACK = 1e-12


class Quantilizer(Agent):
    r"""Draws one policy per trajectory from the top q fraction of ξ by ``V_U*``: g ≈ −log2 q.

    The candidates are ξ's whole support when it can be enumerated, otherwise ``n_candidates`` policies drawn
    from ξ with ``seed``. They are ranked by ``V_U = Σ_e w[e] V_e``; the top set is the shortest prefix of
    the ranking whose ξ-weight reaches q (``ceil(q · M)`` policies for equal weights). Policies tied at the
    cut (relative tolerance, docs/model.md#ties) enter in ξ's order. The boundary policy is taken whole, so the
    top set can hold slightly more than q of ξ's weight.

    :meth:`demonstrate` draws one top policy per trajectory with probability proportional to its ξ-weight
    (uniform for equal weights). :meth:`policy` is the stationary policy with the same world-averaged
    occupancy as that mixture (:func:`~utiliscope.evaluation.stationary_equivalent`): the mixture's value for
    one world, not always for several.

    Parameters
    ----------
    reward : array_like, shape (S,) or (S, A)
    q : float
        In (0, 1]; q = 1 is ξ itself (as an occupancy average).
    policy_prior : PolicyPrior, optional
        ξ; default :class:`~utiliscope.UniformDeterministic`.
    n_candidates : int
        Policies drawn from ξ when its support is too large to enumerate.
    seed : int
        Seed of that draw.
    """

    name = "quantilizer"

    def __init__(self, reward, q: float, policy_prior=None, n_candidates: int = 10000, seed: int = 0) -> None:
        super().__init__(reward)
        self.q = check_positive(q, "q")
        if self.q > 1:
            raise ValueError(f"q is {q}; it is the top fraction of ξ and must lie in (0, 1]")
        self.policy_prior = as_policy_prior(policy_prior)
        self.n_candidates = check_count(n_candidates, "n_candidates")
        self.seed = check_seed(seed)

    def candidates(self, worlds) -> tuple[np.ndarray, np.ndarray]:
        """ξ's support and weights, or ``n_candidates`` seeded draws with equal weights.

        Policies come as ξ gives them: action indices ``a[m, s]`` or tables ``pi[m, s, a]``.
        """
        worlds = as_world_set(worlds)
        S, A = worlds.n_states, worlds.n_actions
        if self.policy_prior.can_enumerate(S, A):
            policies, weights = self.policy_prior.support(S, A)
        else:
            rng = np.random.default_rng(self.seed)
            policies = self.policy_prior.sample(S, A, self.n_candidates, rng)
            weights = np.full(self.n_candidates, 1.0 / self.n_candidates)
        return policies, np.asarray(weights, dtype=float)

    def policy_mixture(self, worlds) -> tuple[np.ndarray, np.ndarray]:
        """The top-q policies, tables (M, S, A), and their ξ-weights renormalised to sum to 1."""
        worlds, reward = self._prepare(worlds)
        policies, weights = self.candidates(worlds)
        return top_mixture(
            policies, weights, evaluate_policies(worlds, policies, reward), self.q, worlds.n_actions
        )

    def policy(self, worlds) -> np.ndarray:
        return stationary_equivalent(worlds, *self.policy_mixture(worlds))

    def parameters(self) -> dict:
        return {
            "q": self.q,
            "policy_prior": self.policy_prior.to_dict(),
            "n_candidates": self.n_candidates,
            "seed": self.seed,
        }


def top_fraction(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Boolean mask of the best policies whose cumulative weight first reaches ``q``.

    Ranked by value, best first (stable, so exact ties keep ξ's order). Policies tied with the last one
    admitted, within the relative tie tolerance (docs/model.md#ties), are admitted in ξ's order instead of in the
    order float round-off gives them, so the same problem gives the same set however its values were computed.
    """
    order = np.argsort(-values, kind="stable")
    reached = np.cumsum(weights[order]) >= q * weights.sum() - WEIGHT_SLACK
    k = int(np.argmax(reached)) + 1
    cut = values[order[k - 1]]
    tol = RTOL * np.abs(values).max()
    above = values > cut + tol
    tied = np.abs(values - cut) <= tol
    need = k - int(above.sum())
    return above | (tied & (np.cumsum(tied) <= need))


def top_mixture(
    policies: np.ndarray, weights: np.ndarray, values: np.ndarray, q: float, n_actions: int
) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`top_fraction` of candidates (action indices or tables) as tables (M, S, A), with their weights
    renormalised to sum to 1."""
    chosen = top_fraction(values, weights, q)
    top = policies[chosen]
    tables = one_hot(top, n_actions) if np.issubdtype(top.dtype, np.integer) else top
    return tables, weights[chosen] / weights[chosen].sum()


__all__ = ["Quantilizer", "top_fraction", "top_mixture"]
