"""ξ's reference policies, valued once per model: the constants behind every in-graph g estimator.

For a utility library the values ``V[m, n]`` of the reference policies under every library entry are fixed
numbers; for linear utilities their feature expectations ``mu[m, k]`` are (``V = mu @ theta``). Both are computed
here with :mod:`utiliscope.evaluation`, once, before the model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_count
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.policies import PolicyPrior
from utiliscope.worlds.mdp import WorldSet


@dataclass(frozen=True)
class ReferencePolicies:
    """The reference policies of ξ for one g method.

    Attributes
    ----------
    policies : ndarray
        Action indices ``a[m, s]`` or tables ``pi[m, s, a]``.
    weights : ndarray, shape (M,)
        ξ's weights (enumeration) or 1/M (a sample).
    enumerated : bool
        True when the support was enumerated (``exact``).
    """

    policies: np.ndarray
    weights: np.ndarray
    enumerated: bool

    @classmethod
    def for_method(
        cls, worlds: WorldSet, policy_prior: PolicyPrior, method: str, n_samples: int, seed
    ) -> ReferencePolicies:
        """Enumerate ξ for ``exact``; draw ``n_samples`` policies with ``seed`` otherwise."""
        S, A = worlds.n_states, worlds.n_actions
        if method == "exact":
            policies, weights = policy_prior.support(S, A)
            return cls(policies, np.asarray(weights, dtype=float), True)
        n_samples = check_count(n_samples, "n_samples")
        policies = policy_prior.sample(S, A, n_samples, np.random.default_rng(seed))
        return cls(policies, np.full(n_samples, 1.0 / n_samples), False)

    @property
    def size(self) -> int:
        """Number of reference policies M."""
        return self.weights.shape[0]

    def values(self, worlds: WorldSet, rewards: np.ndarray) -> np.ndarray:
        """``V[m, n]`` under rewards ``r[n, s, a]``."""
        return evaluate_policies(worlds, self.policies, rewards)

    def feature_expectations(self, worlds: WorldSet, features: np.ndarray) -> np.ndarray:
        """``mu[m, k]``, so that ``V = mu @ theta`` for every linear utility."""
        return feature_expectations(worlds, self.policies, features)

    def max_bits(self) -> float:
        """The largest finite g the reference set can express: ``−log2`` of its smallest positive weight,
        or ``log2(M + 1)`` for a sample."""
        if self.enumerated:
            return float(-np.log2(self.weights[self.weights > 0].min()))
        return float(np.log2(self.size + 1))


def sorted_tails(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per utility n: the reference values sorted ascending, and ``tail[n, i]`` the weight at positions ≥ i.

    The tail is normalised by its first entry so that an all-tie gives exactly 1, as in
    :func:`utiliscope.intelligence.exceedance`; uniform weights are counted and divided once.
    """
    order = np.argsort(values, axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0).T
    M = values.shape[0]
    if np.all(weights == weights[0]):
        tail = np.broadcast_to((M - np.arange(M + 1)) / M, (values.shape[1], M + 1)).copy()
    else:
        w = weights[order].T
        tail = np.concatenate([np.cumsum(w[:, ::-1], axis=1)[:, ::-1], np.zeros((w.shape[0], 1))], axis=1)
        tail = tail / tail[:, :1]
    return np.ascontiguousarray(sorted_values), tail


__all__ = ["ReferencePolicies", "sorted_tails"]
