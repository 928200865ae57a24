"""ξ's reference policies, valued once per model: the constants behind every in-graph g estimator.

For a utility library the values ``V[m, n]`` of the reference policies under every library entry are fixed
numbers; for linear utilities their feature expectations ``mu[m, k]`` are (``V = mu @ theta``). Both are computed
here with :mod:`utiliscope.evaluation`, once, before the model is built.

:class:`ReferencePolicies` holds an enumeration of ξ (``exact``) or a plain sample from it (``monte_carlo``,
``gaussian``). :class:`ImportanceReference` holds, for ``importance``, one pool of policies drawn once from
proposals tilted toward several pilot utilities together (common random numbers: logp stays a smooth,
deterministic function of pi and U), with importance weights that hold for every utility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_array_size, check_count
from utiliscope.counting import RTOL, bits
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.policies import PolicyPrior
from utiliscope.rare_event import ELITE_FRACTION, ProductMixture, shared_cross_entropy_levels
from utiliscope.worlds.mdp import WorldSet

#: Bits a cross-entropy level climbs, about log2(1 / ρ): each level keeps the top fraction ρ of the previous one.
BITS_PER_LEVEL = math.log2(1.0 / ELITE_FRACTION)


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
    def enumerate(cls, worlds: WorldSet, policy_prior: PolicyPrior) -> ReferencePolicies:
        """ξ's whole support with its weights."""
        policies, weights = policy_prior.support(worlds.n_states, worlds.n_actions)
        return cls(policies, np.asarray(weights, dtype=float), True)

    @classmethod
    def sample(cls, worlds: WorldSet, policy_prior: PolicyPrior, n_samples: int, seed) -> ReferencePolicies:
        """``n_samples`` policies drawn from ξ with ``seed``, each of weight 1/M."""
        n_samples = check_count(n_samples, "n_samples")
        policies = policy_prior.sample(worlds.n_states, worlds.n_actions, n_samples, np.random.default_rng(seed))
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


@dataclass(frozen=True)
class ImportanceReference:
    r"""Reference policies for ``g_method="importance"``: one pool, tilted toward C pilot utilities, with fixed
    weights valid for every utility.

    The pilots (a library's non-constant entries, or a linear prior's directions spread over its sphere) are
    tilted together by :func:`~utiliscope.rare_event.shared_cross_entropy_levels`: ``⌈target_bits / log2(1/ρ)⌉``
    levels (a level climbs about log2(1/ρ) ≈ 3.3 bits, so the last lies near ``target_bits``), each policy
    evaluated once under every pilot. Pilot c's proposal is then the even mixture of its levels,
    ``q_c = mean(ξ, q_{c,1}, …, q_{c,T})``: a threshold anywhere in the likelihood's mass range has a level
    near it, where ``½ q_{c,T}`` would spend half the draws past the range's top. The pool draws
    ``n`` policies from ξ and ``n`` from each ``q_c``, N = (C + 1) n in all, and weights them by the balance
    heuristic (Veach & Guibas 1995)

    .. math::

        w_m = \frac{\xi(\pi_m)}{N \bar q(\pi_m)}, \qquad \bar q = \frac{1}{C + 1}\Big(\xi + \sum_c q_c\Big),

    the density ratio of ξ to the pool's whole mixture (ξ one of its components, so every ``w_m ≤ (C + 1)/N``).
    The weights do not depend on the utility, so for every utility U

    .. math::

        \hat P_U = \frac{f + \sum_m w_m [V_U(\pi_m) \ge \mathrm{thr}]}{f + \sum_m w_m}, \qquad f = \min_m w_m,

    counts ξ's exceedance without bias in ``Σ_m w_m [·]``, and accurately for every U near a pilot. The floor
    ``f`` stands for pi itself, as the 1 of Monte Carlo's ``(k + 1) / (M + 1)`` does (with no pilots the pool
    is a plain sample of ξ and the two estimators are the same): g is never −log2 0, and at most
    :meth:`ceilings`. The pool is valued once: a library's values ``V[m, n]`` are one occupancy solve per policy
    and one product with the N reward tables; a linear prior's are ``mu[m] · θ``.
    Only ξ = :class:`~utiliscope.policies.UniformDeterministic` (the proposals' density ratio is exact for it).

    Attributes
    ----------
    policies : ndarray, shape (1, N, S)
        Action indices ``a[0, m, s]`` of the pool.
    weights : ndarray, shape (N, 1)
        ``w[m, 0]``, the same for every utility.
    levels : ndarray, shape (C,)
        Cross-entropy levels run per pilot.
    """

    policies: np.ndarray
    weights: np.ndarray
    levels: np.ndarray
    enumerated = False

    @classmethod
    def pooled(
        cls, worlds: WorldSet, pilot_rewards: np.ndarray, target_bits: float, n_samples: int, seed
    ) -> ImportanceReference:
        """The pool of the class docstring: ``n_samples`` policies per pilot and cross-entropy level, and as
        many from ξ and from each pilot's mixture of levels, toward ``pilot_rewards[c, s, a]`` up to about
        ``target_bits``, drawn with ``seed``."""
        n_samples = check_count(n_samples, "n_samples")
        n_pilots = len(pilot_rewards)
        # Each level values n_samples policies per pilot under every pilot.
        check_array_size(
            (max(n_pilots, 1) * n_samples, max(n_pilots, 1) + worlds.n_states),
            float,
            f"tilting {n_samples:,} policies a level toward each of {n_pilots} pilot utilities",
            "lower n_samples",
        )
        n_levels = math.ceil(max(float(target_bits), 0.0) / BITS_PER_LEVEL) if n_pilots else 0
        level_rng, pool_rng = np.random.default_rng(seed).spawn(2)

        def values_of(actions: np.ndarray) -> np.ndarray:
            return evaluate_policies(worlds, actions, pilot_rewards).reshape(len(actions), n_pilots)

        shape = (worlds.n_states, worlds.n_actions)
        chains = shared_cross_entropy_levels(values_of, n_pilots, shape, level_rng, n_samples, n_levels)
        xi = ProductMixture(np.full((1, *shape), 1.0 / worlds.n_actions), np.ones(1))
        mixtures = [xi] + [
            ProductMixture(np.asarray(chain), np.full(len(chain), 1.0 / len(chain))) for chain in chains
        ]
        actions = np.concatenate([m.sample(n_samples, pool_rng) for m in mixtures])
        weights = np.exp(ProductMixture.pooled(mixtures).log_ratio(actions)) / len(actions)
        return cls(actions[None], weights[:, None], np.full(n_pilots, n_levels))

    @property
    def size(self) -> int:
        """Number of reference policies N in the pool."""
        return self.weights.shape[0]

    def values(self, worlds: WorldSet, rewards: np.ndarray) -> np.ndarray:
        """``V[m, n]`` of the pool under rewards ``r[n, s, a]``: one occupancy solve per policy."""
        return evaluate_policies(worlds, self.policies[0], rewards)

    def feature_expectations(self, worlds: WorldSet, features: np.ndarray) -> np.ndarray:
        """``mu[m, k]`` of the pool, so that ``V = mu @ theta`` for every linear utility."""
        return feature_expectations(worlds, self.policies[0], features)

    def ceilings(self) -> np.ndarray:
        """The largest g the estimator can give, ``−log2(f / (f + Σ_m w_m))``, per weight column."""
        floor = self.weights.min(axis=0)
        return -np.log2(floor / (floor + self.weights.sum(axis=0)))

    def max_bits(self) -> float:
        """The largest g any utility can reach: the largest of :meth:`ceilings`."""
        return float(self.ceilings().max())


@dataclass(frozen=True)
class HardCount:
    r"""g of any policy values against a fixed reference sample, by a hard (unsmoothed) weighted count.

    The count is the one of :mod:`utiliscope.models.g_methods`' module docstring (weights and floor per
    estimator, ties against pi); the reference is sorted once per utility, so g of J policies under N utilities
    costs N binary searches of J thresholds.
    """

    sorted_values: np.ndarray
    tails: np.ndarray
    scale: np.ndarray
    floor: np.ndarray
    uniform: bool

    @classmethod
    def build(cls, values: np.ndarray, weights: np.ndarray | None, floor=0.0) -> HardCount:
        """From reference values ``values[m, n]``, weights ``(M,)``, ``(M, N)`` or None (equal, counted as 1
        each) and the floor ``f`` (a number or one per utility)."""
        M, N = values.shape
        order = np.argsort(values, axis=0, kind="stable")
        sorted_values = np.take_along_axis(values, order, axis=0).T
        uniform = weights is None or bool(np.all(np.asarray(weights) == np.asarray(weights).flat[0]))
        w = np.ones((M, N)) if uniform else np.broadcast_to(np.asarray(weights, float).reshape(M, -1), (M, N))
        w_sorted = np.take_along_axis(w, order, axis=0).T
        tails = np.concatenate([np.cumsum(w_sorted[:, ::-1], axis=1)[:, ::-1], np.zeros((N, 1))], axis=1)
        scale = np.abs(values).max(axis=0)
        floor = np.broadcast_to(np.asarray(floor, dtype=float), (N,))
        if uniform and weights is not None:
            floor = floor / float(np.asarray(weights).flat[0])  # counted in units of the common weight
        return cls(np.ascontiguousarray(sorted_values), tails, scale, floor, uniform)

    def bits(self, v_pi: np.ndarray, rtol: float = RTOL) -> np.ndarray:
        """g in bits of values ``v_pi[j, n]``, shape (J, N)."""
        threshold = v_pi - rtol * np.maximum(np.abs(v_pi), self.scale)
        N, M = self.sorted_values.shape
        first = np.stack(
            [np.searchsorted(self.sorted_values[n], threshold[:, n], side="left") for n in range(N)], axis=1
        )
        if self.uniform:
            # Equal weights: count, then divide once (an all-tie gives exactly 1, a single winner exactly 1/M).
            return bits(np.minimum((self.floor + M - first) / (self.floor + M), 1.0))
        above = np.take_along_axis(self.tails.T, first, axis=0) if first.size else np.zeros(first.shape)
        p = (self.floor + above) / (self.floor + self.tails[:, 0])
        return bits(np.minimum(p, 1.0))


def sorted_tails(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per utility n: the reference values sorted ascending, and ``tail[n, i]`` the weight at positions ≥ i.

    The tail is normalised by its first entry so that an all-tie gives exactly 1, as in
    :func:`utiliscope.counting.exceedance`; uniform weights are counted and divided once.
    """
    count = HardCount.build(values, weights)
    return count.sorted_values, count.tails / count.tails[:, :1]


__all__ = ["BITS_PER_LEVEL", "HardCount", "ImportanceReference", "ReferencePolicies", "sorted_tails"]
