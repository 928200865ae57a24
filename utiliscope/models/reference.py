"""ξ's reference policies, valued once per model: the constants behind every in-graph g estimator.

For a utility library the values ``V[m, n]`` of the reference policies under every library entry are fixed
numbers; for linear utilities their feature expectations ``mu[m, k]`` are (``V = mu @ theta``). Both are computed
here with :mod:`utiliscope.evaluation`, once, before the model is built.

:class:`ReferencePolicies` holds an enumeration of ξ (``exact``) or a plain sample from it (``monte_carlo``,
``gaussian``). :class:`ImportanceReference` holds, for ``importance``, policies drawn once from proposals tilted
toward high values (common random numbers: logp stays a smooth, deterministic function of pi and U) with their
fixed importance weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_array_size, check_count
from utiliscope.counting import RTOL, bits, tie_threshold
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.policies import PolicyPrior
from utiliscope.rare_event import ELITE_FRACTION, ProductMixture, cross_entropy_levels
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
    r"""Reference policies for ``g_method="importance"``: one tilted sample per pilot utility, with fixed weights.

    For each pilot utility n (every library entry, or one pilot direction for a linear prior) the cross-entropy
    levels of :mod:`utiliscope.rare_event` tilt a product-categorical proposal toward high values of that utility,
    level after level, for ``⌈target_bits / log2(1/ρ)⌉`` levels (a level climbs about log2(1/ρ) ≈ 3.3 bits, so
    the last one lies near ``target_bits``). Then M policies are drawn once from the defensive mixture
    ``q_n = ½ q_T + ½ mean(ξ, q_1, …, q_{T−1})`` (:meth:`ProductMixture.defensive`: ξ itself is a component, so
    every weight is at most ``2T / M``) and kept with their exact weights

    .. math::

        w_{mn} = \frac{\xi(\pi_{mn})}{M\, q_n(\pi_{mn})}, \qquad
        \hat P_n = \frac{f_n + \sum_m w_{mn} [V_n(\pi_{mn}) \ge \mathrm{thr}]}{f_n + \sum_m w_{mn}},
        \qquad f_n = \min_m w_{mn}.

    The floor ``f_n`` stands for pi itself, as the 1 of Monte Carlo's ``(k + 1) / (M + 1)`` does (with no levels,
    q = ξ and the two estimators are the same): g is never −log2 0, and at most :meth:`ceilings`.
    Only ξ = :class:`~utiliscope.policies.UniformDeterministic` (the proposals' density ratio is exact for it).

    Attributes
    ----------
    policies : ndarray, shape (N, M, S)
        Action indices ``a[n, m, s]``: sample n was tilted toward pilot utility n.
    weights : ndarray, shape (M, N)
        ``w[m, n]``.
    levels : ndarray, shape (N,)
        Cross-entropy levels run per pilot utility.
    """

    policies: np.ndarray
    weights: np.ndarray
    levels: np.ndarray
    enumerated = False

    @classmethod
    def for_rewards(
        cls, worlds: WorldSet, pilot_rewards: np.ndarray, target_bits: float, n_samples: int, seed
    ) -> ImportanceReference:
        """Tilt one proposal toward each ``pilot_rewards[n, s, a]`` up to about ``target_bits`` and sample it.

        ``n_samples`` is both the number of policies per cross-entropy level and M, the sample kept per pilot.
        The pilots get independent generators spawned from ``seed``.
        """
        n_samples = check_count(n_samples, "n_samples")
        # The cross-entropy levels value n_samples policies at a time, with S × A probabilities each.
        check_array_size(
            (n_samples, worlds.n_states, worlds.n_actions),
            float,
            f"tilting {n_samples:,} policies a level",
            "lower n_samples",
        )
        n_levels = math.ceil(max(float(target_bits), 0.0) / BITS_PER_LEVEL)
        rngs = np.random.default_rng(seed).spawn(len(pilot_rewards))
        samples = [
            _tilted_sample(worlds, reward, n_levels, n_samples, rng)
            for reward, rng in zip(pilot_rewards, rngs, strict=True)
        ]
        policies, weights, levels = zip(*samples, strict=True)
        return cls(np.stack(policies), np.stack(weights, axis=1), np.array(levels))

    @classmethod
    def pooled(
        cls, worlds: WorldSet, pilot_rewards: np.ndarray, target_bits: float, n_samples: int, seed
    ) -> ImportanceReference:
        r"""One reference for every utility: ``n_samples`` policies from ξ and as many from each pilot's tilted
        proposal (:func:`_tilted_mixture`), pooled and weighted by the balance heuristic (Veach & Guibas 1995),

        .. math::

            w_m = \frac{\xi(\pi_m)}{\sum_c M_c\, q_c(\pi_m)}, \qquad \sum_c M_c q_c = N \bar q,

        the density ratio of ξ to the pool's whole mixture ``q̄`` (ξ one of its components). The weights do not
        depend on the utility, so ``Σ_m w_m [V_U(π_m) ≥ thr]`` is unbiased for every utility U, and accurate for
        every U near one of the pilots (a linear prior's directions spread over its sphere). One sample:
        ``policies`` has shape (1, N, S) and ``weights`` (N, 1).
        """
        n_samples = check_count(n_samples, "n_samples")
        n_levels = math.ceil(max(float(target_bits), 0.0) / BITS_PER_LEVEL)
        rngs = np.random.default_rng(seed).spawn(len(pilot_rewards) + 1)
        xi = ProductMixture(np.full((1, worlds.n_states, worlds.n_actions), 1.0 / worlds.n_actions), np.ones(1))
        mixtures = [xi] + [
            _tilted_mixture(worlds, reward, n_levels, n_samples, rng)
            for reward, rng in zip(pilot_rewards, rngs[1:], strict=True)
        ]
        actions = np.concatenate([m.sample(n_samples, rng) for m, rng in zip(mixtures, rngs, strict=True)])
        share = 1.0 / len(mixtures)
        pool = ProductMixture(
            np.concatenate([m.components for m in mixtures]), np.concatenate([share * m.weights for m in mixtures])
        )
        weights = np.exp(pool.log_ratio(actions)) / len(actions)
        levels = np.array([m.weights.size - 1 for m in mixtures[1:]])
        return cls(actions[None], weights[:, None], levels)

    @property
    def size(self) -> int:
        """Number of reference policies M per pilot utility."""
        return self.weights.shape[0]

    def values(self, worlds: WorldSet, rewards: np.ndarray) -> np.ndarray:
        """``V[m, n]``: sample n under reward ``r[n, s, a]`` (one reward per pilot)."""
        if rewards.shape[0] != self.policies.shape[0]:
            raise ValueError(
                f"rewards holds {rewards.shape[0]} utilities but the reference was tilted toward "
                f"{self.policies.shape[0]}; pass the pilot utilities it was built for"
            )
        columns = [
            evaluate_policies(worlds, a, r[None])[:, 0] for a, r in zip(self.policies, rewards, strict=True)
        ]
        return np.stack(columns, axis=1)

    def feature_expectations(self, worlds: WorldSet, features: np.ndarray) -> np.ndarray:
        """``mu[m, k]`` of the single sample of a linear prior's pilot direction."""
        if self.policies.shape[0] != 1:
            raise ValueError("feature_expectations needs a reference tilted toward one pilot direction")
        return feature_expectations(worlds, self.policies[0], features)

    def ceilings(self) -> np.ndarray:
        """Per pilot utility, the largest g the estimator can give: ``−log2(f_n / (f_n + Σ_m w_mn))``."""
        floor = self.weights.min(axis=0)
        return -np.log2(floor / (floor + self.weights.sum(axis=0)))

    def max_bits(self) -> float:
        """The largest g any utility can reach: the largest of :meth:`ceilings`."""
        return float(self.ceilings().max())

    def bits(self, v_pi: np.ndarray, values: np.ndarray, rtol: float = RTOL) -> np.ndarray:
        """The hard (unsmoothed) estimate ``−log2 P̂_n`` of the class docstring for values ``v_pi[j, n]``."""
        at_least_as_good = values[None] >= tie_threshold(v_pi, values, rtol)[:, None, :]
        floor = self.weights.min(axis=0)
        p = (floor + np.einsum("jmn,mn->jn", at_least_as_good, self.weights)) / (floor + self.weights.sum(axis=0))
        return bits(np.minimum(p, 1.0))


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


def _tilted_mixture(
    worlds: WorldSet, reward: np.ndarray, n_levels: int, n_samples: int, rng: np.random.Generator
) -> ProductMixture:
    """The defensive mixture of ``n_levels`` cross-entropy levels toward high values of ``reward``.

    The levels aim at a value no policy reaches (twice the largest |r| / (1 − γ), above every V), so that they
    climb for exactly ``n_levels`` levels.
    """

    def values_of(actions: np.ndarray) -> np.ndarray:
        return evaluate_policies(worlds, actions, reward[None])[:, 0]

    unreachable = 2.0 * float(np.abs(reward).max()) / (1.0 - worlds.gamma) + 1.0
    shape = (worlds.n_states, worlds.n_actions)
    run = cross_entropy_levels(values_of, unreachable, shape, rng, n_samples, n_levels * n_samples)
    return ProductMixture.defensive(run.proposals)


def _tilted_sample(
    worlds: WorldSet, reward: np.ndarray, n_levels: int, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """M draws from :func:`_tilted_mixture` with their weights ``ξ / (M q)``, and the levels run."""
    mixture = _tilted_mixture(worlds, reward, n_levels, n_samples, rng)
    actions = mixture.sample(n_samples, rng)
    return actions, np.exp(mixture.log_ratio(actions)) / n_samples, mixture.weights.size - 1


def sorted_tails(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per utility n: the reference values sorted ascending, and ``tail[n, i]`` the weight at positions ≥ i.

    The tail is normalised by its first entry so that an all-tie gives exactly 1, as in
    :func:`utiliscope.counting.exceedance`; uniform weights are counted and divided once.
    """
    count = HardCount.build(values, weights)
    return count.sorted_values, count.tails / count.tails[:, :1]


__all__ = ["BITS_PER_LEVEL", "HardCount", "ImportanceReference", "ReferencePolicies", "sorted_tails"]
