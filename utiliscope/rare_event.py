r"""A rare-event estimator of g: the cross-entropy method with product-categorical proposals.

For a policy pi and a utility U, g is ``−log2 P`` with

.. math::

    P = P_{\pi' \sim \xi}\big[V_U(\pi') \ge \mathrm{thr}\big], \qquad
    \mathrm{thr} = V_U(\pi) - \mathrm{rtol} \cdot \max\big(|V_U(\pi)|, \max |V_U(\pi')|\big),

where ξ is uniform over the A^S deterministic policies and the maximum runs over every policy evaluated
(docs/model.md#ties). A highly intelligent pi makes P tiny (2^-30 and less), far beyond a plain sample. This
module estimates it by importance sampling from a proposal tilted toward high-value policies, found by the
cross-entropy method (Rubinstein & Kroese 2004, *The Cross-Entropy Method*, ch. 3):

1. Proposals are products of per-state action distributions, ``q(π') = Π_s q[s, a_s]``, so the density
   ratio ``w(π') = ξ(π') / q(π') = Π_s (1/A) / q[s, a_s]`` is exact.
2. Level t draws ``n_level`` policies from ``q_{t−1}`` (``q_0 = ξ``), sets the level ``γ_t`` to the
   (1 − ρ) quantile of their values, capped at thr, and refits ``q`` to the elites ``E = {V ≥ γ_t}``:
   ``q̂[s, a] = |{i ∈ E : a_i(s) = a}| / |E|``, the per-state marginals of ``q_{t−1}`` conditioned on
   ``V ≥ γ_t``. The textbook update weights each elite by ``ξ / q_{t−1}``, but over many states those weights
   are so uneven that q collapses onto one or two elites' actions; unweighted elites only change the proposal,
   and the final weights below are exact. The update is smoothed and shrunk per state,
   ``q_t[s] = q_{t−1}[s] + α λ_s (q̂[s] − q_{t−1}[s])`` (:func:`shrunk_update`), and floored at
   ``1 / (2 A S)`` (then renormalised) so that q stays positive wherever ξ is and every weight is bounded.
   The shrinkage ``λ_s = max(0, 1 − (A − 1) / X²_s)``, with ``X²_s`` the chi-square statistic of the n elites'
   actions at s against ``q_{t−1}[s]``, keeps states whose action barely matters where they were: there
   ``X²_s ~ χ²_{A−1}`` (mean A − 1), and in a large world the plain update's noise at such states accumulates
   level after level into ``log w``. (Both choices' runs are in ``benchmarks/results/rare_event_accuracy.md``.)
3. Once ``γ_t`` reaches thr (level T), the rest of the budget is drawn from the defensive mixture
   ``q = ½ q_T + ½ mean(q_0, …, q_{T−1})`` (:meth:`ProductMixture.defensive`; its density, and so
   ``w = ξ / q``, is exact) and

   .. math::

       \hat P = \frac{1}{N} \sum_i w_i [V_i \ge \mathrm{thr}], \qquad
       \mathrm{se}(\hat P) = \mathrm{sd}_i\big(w_i [V_i \ge \mathrm{thr}]\big) / \sqrt{N},

   unbiased because the mixture is fixed before its draws. g is ``−log2 P̂`` (clipped at 0) and its standard
   error ``se(P̂) / (P̂ ln 2)`` by the delta method. In large worlds the weights are heavy-tailed: the sample se
   can understate the spread between runs, and a run that draws a rare large weight reports a large se.

Special cases. When the first level (drawn from ξ itself) already has a fraction ≥ ρ of policies at least as
good as pi, the event is not rare and the whole budget is spent on plain Monte Carlo from ξ (``k / N``; a
constant utility gives exactly 0 bits). When ξ's support has no more policies than the budget, it is enumerated
and g is exact (se 0); this is also the only case in which g is +inf. When the levels never reach thr within
60% of the budget the final draws still estimate P at thr (unbiased, but with few hits); if none of them hits,
the answer is the lower bound ``−log2 P̂[V ≥ γ_best]`` at the best level reached, with se = +inf to say that it
is a bound, and a :class:`RareEventWarning`.

Only ξ = :class:`~utiliscope.policies.UniformDeterministic` is supported: a ``PolicySet`` is finite and is
enumerated by ``method="exact"``; ``DirichletPolicies`` needs Dirichlet proposals, not implemented here (use
``monte_carlo`` or ``gaussian``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from utiliscope._math import LN2
from utiliscope._validation import check_count, check_positive, rng_from
from utiliscope.counting import RTOL, bits_from_values, reference_values
from utiliscope.evaluation import check_policy, check_reward, evaluate_policies
from utiliscope.policies import PolicySet, UniformDeterministic, as_policy_prior
from utiliscope.worlds.mdp import WorldSet, as_world_set

#: Total policy evaluations per estimate by default.
DEFAULT_BUDGET = 20_000
#: Policies drawn per cross-entropy level by default.
DEFAULT_LEVEL_SIZE = 1000
#: ρ: the fraction of a level kept as elites.
ELITE_FRACTION = 0.1
#: α: weight of the new elite marginals in the smoothed update.
SMOOTHING = 0.7
#: Largest share of the budget the levels may use; the rest is the final importance sample.
LEVEL_SHARE = 0.6
#: Fewest own elites a pilot's level is fitted on before :func:`shared_cross_entropy_levels` adds its
#: neighbours'.
MIN_OWN_ELITES = 50
#: Policies whose log densities under every mixture component are computed in one matrix product.
LOG_DENSITY_BLOCK = 4096


class RareEventWarning(RuntimeWarning):
    """The cross-entropy levels never reached pi's value: g is a lower bound (its se is +inf)."""


@dataclass(frozen=True)
class RareEventEstimate:
    """One estimate of g by :func:`importance_bits`.

    Attributes
    ----------
    bits : float
        g in bits.
    se : float
        Its standard error in bits (delta method); +inf when ``bits`` is only a lower bound.
    probability : float
        P̂, the estimated ξ-probability of a policy at least as good as pi.
    evaluations : int
        Policies evaluated, levels and final sample together.
    levels : int
        Cross-entropy levels run (0 for plain Monte Carlo).
    reached : bool
        Whether the levels reached pi's value (False: ``bits`` is a lower bound or rests on few hits).
    proposal : ProductMixture
        The final proposal q.
    """

    bits: float
    se: float
    probability: float
    evaluations: int
    levels: int
    reached: bool
    proposal: ProductMixture


def sample_product(proposal: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` deterministic policies ``a[m, s]`` with ``a[m, s] ~ proposal[s, :]`` independently."""
    cumulative = np.cumsum(proposal, axis=1)
    u = rng.random((n, proposal.shape[0], 1)) * cumulative[None, :, -1:]
    return (u >= cumulative[None]).sum(axis=2).clip(max=proposal.shape[1] - 1).astype(np.intp)


def elite_marginals(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """``q̂[s, a] = |{i : a_i(s) = a}| / n`` over the given n (elite) policies ``a[i, s]``."""
    counts = np.stack([np.bincount(column, minlength=n_actions) for column in actions.T])
    return counts / actions.shape[0]


def shrunk_update(previous: np.ndarray, actions: np.ndarray) -> np.ndarray:
    r"""The smoothed, shrunk cross-entropy update of the module docstring, from elites ``a[i, s]``.

    .. math::

        q_t[s] = q_{t-1}[s] + \alpha \lambda_s (\hat q[s] - q_{t-1}[s]), \qquad
        \lambda_s = \max\Big(0, 1 - \frac{A - 1}{X^2_s}\Big), \qquad
        X^2_s = n \sum_a \frac{(\hat q[s, a] - q_{t-1}[s, a])^2}{q_{t-1}[s, a]},

    with ``q̂`` the marginals of the n elites (:func:`elite_marginals`) and α ``SMOOTHING``. ``λ_s`` is the
    positive-part James–Stein factor for a chi-square statistic with A − 1 degrees of freedom: about 0 where
    the elites' actions at s look like a sample of ``q_{t−1}[s]``, about 1 where they clearly prefer some.
    """
    n_actions = previous.shape[1]
    change = elite_marginals(actions, n_actions) - previous
    chi_square = actions.shape[0] * (np.square(change) / previous).sum(axis=1)
    # λ_s is 0 wherever X²_s ≤ A − 1 (a zero X² included), so the division only runs where it is above.
    above = chi_square > n_actions - 1
    shrinkage = np.where(above, 1.0 - (n_actions - 1) / np.where(above, chi_square, 1.0), 0.0)
    return previous + SMOOTHING * shrinkage[:, None] * change


def floored(proposal: np.ndarray, floor: float) -> np.ndarray:
    """Rows raised to at least ``floor`` and renormalised, so that every density ratio stays finite."""
    raised = np.maximum(proposal, floor)
    return raised / raised.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ProductMixture:
    r"""A mixture of product-categorical proposals, ``q(π) = Σ_t c_t Π_s q_t[s, a_s]``.

    Attributes
    ----------
    components : ndarray, shape (T, S, A)
        ``q_t[s, a]``, rows summing to 1.
    weights : ndarray, shape (T,)
        ``c_t``, summing to 1.
    """

    components: np.ndarray
    weights: np.ndarray

    @classmethod
    def defensive(cls, proposals: list[np.ndarray]) -> ProductMixture:
        """Half the mass on the last proposal, half spread evenly over the earlier ones (ξ first).

        The earlier, wider levels keep high-value policies that the last product proposal nearly excludes
        (several routes to the same value) at a bounded density ratio, which cut the worst standard error
        against enumeration tenfold (``benchmarks/results/rare_event_accuracy.md``).
        """
        if len(proposals) == 1:
            return cls(np.asarray(proposals), np.ones(1))
        earlier = np.full(len(proposals) - 1, 0.5 / (len(proposals) - 1))
        return cls(np.asarray(proposals), np.append(earlier, 0.5))

    @classmethod
    def pooled(cls, mixtures: list[ProductMixture]) -> ProductMixture:
        """The equal-share mixture ``(1/J) Σ_j q_j`` of J mixtures, identical components (every defensive
        mixture's ξ) merged into one, so that its density costs one term per distinct component."""
        components = np.concatenate([m.components for m in mixtures])
        weights = np.concatenate([m.weights for m in mixtures]) / len(mixtures)
        distinct, inverse = np.unique(components.reshape(len(components), -1), axis=0, return_inverse=True)
        merged = np.bincount(inverse.ravel(), weights=weights, minlength=len(distinct))
        return cls(distinct.reshape(-1, *components.shape[1:]), merged)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` i.i.d. policies ``a[m, s]``: a component drawn with probability ``c_t``, then its product."""
        component = rng.choice(self.weights.size, size=n, p=self.weights)
        actions = np.empty((n, self.components.shape[1]), dtype=np.intp)
        for t in range(self.weights.size):
            chosen = component == t
            actions[chosen] = sample_product(self.components[t], int(chosen.sum()), rng)
        return actions

    def log_ratio(self, actions: np.ndarray) -> np.ndarray:
        """``log w = log ξ(π) − log q(π)`` for ξ uniform over the A^S deterministic policies.

        Every component's ``log q_t(π) = Σ_s log q_t[s, a_s]`` is one product of the policies' one-hot
        encoding with the components' log tables (blocks of :data:`LOG_DENSITY_BLOCK` policies), so a pool
        of hundreds of components costs one matrix product, not a loop.
        """
        T, S, A = self.components.shape
        log_tables = np.log(self.components).reshape(T, S * A).T
        log_c = np.log(self.weights)
        out = np.empty(len(actions))
        for start in range(0, len(actions), LOG_DENSITY_BLOCK):
            part = actions[start : start + LOG_DENSITY_BLOCK]
            one_hot = np.zeros((len(part), S * A))
            one_hot[np.arange(len(part))[:, None], np.arange(S) * A + part] = 1.0
            out[start : start + LOG_DENSITY_BLOCK] = logsumexp(one_hot @ log_tables + log_c, axis=1)
        return -S * math.log(A) - out


@dataclass(frozen=True)
class _Levels:
    """What the cross-entropy levels leave: their proposals and what they saw."""

    proposals: list[np.ndarray]
    evaluations: int
    max_abs: float
    best_level: float
    reached: bool
    first: np.ndarray | None  # the values of ξ's first level when the event is not rare


def _threshold(v_pi: float, max_abs: float, rtol: float) -> float:
    return v_pi - rtol * max(abs(v_pi), max_abs)


def cross_entropy_levels(
    values_of: Callable[[np.ndarray], np.ndarray],
    v_pi: float,
    shape: tuple[int, int],
    rng: np.random.Generator,
    level_size: int,
    max_evaluations: float,
    rtol: float = RTOL,
) -> _Levels:
    """Run the levels of the module docstring until one reaches thr or ``max_evaluations`` would be exceeded."""
    S, A = shape
    proposals = [np.full((S, A), 1.0 / A)]
    floor = 1.0 / (2.0 * A * S)
    max_abs, evaluations, best_level, reached = abs(v_pi), 0, -math.inf, False
    while not reached and evaluations + level_size <= max_evaluations:
        actions = sample_product(proposals[-1], level_size, rng)
        values = values_of(actions)
        evaluations += level_size
        max_abs = max(max_abs, float(np.abs(values).max()))
        threshold = _threshold(v_pi, max_abs, rtol)
        level = min(float(np.quantile(values, 1.0 - ELITE_FRACTION, method="higher")), threshold)
        if evaluations == level_size and level >= threshold:
            return _Levels(proposals, evaluations, max_abs, level, True, values)
        proposals.append(floored(shrunk_update(proposals[-1], actions[values >= level]), floor))
        best_level, reached = max(best_level, level), level >= threshold
    return _Levels(proposals, evaluations, max_abs, best_level, reached, None)


def shared_cross_entropy_levels(
    values_of: Callable[[np.ndarray], np.ndarray],
    n_pilots: int,
    shape: tuple[int, int],
    rng: np.random.Generator,
    level_size: int,
    n_levels: int,
) -> list[list[np.ndarray]]:
    r"""Cross-entropy levels toward C pilot utilities at once, every policy evaluated once for all of them.

    Each level draws ``level_size`` policies from each pilot's current proposal (``q_0 = ξ``) and values the
    whole draw, C · ``level_size`` policies, under every pilot in one call ``values_of(a) -> V[m, c]``. Pilot
    c's level ``γ_c`` is the (1 − ρ) quantile of the values of its own draws, as in
    :func:`cross_entropy_levels`, so it climbs about log2(1/ρ) bits a level, and ``q`` is refitted to the
    elites with ``V_c ≥ γ_c`` (:func:`shrunk_update`, floored at ``1 / (2 A S)``). The elites are the pilot's
    own draws when it has at least :data:`MIN_OWN_ELITES` of them; with fewer (a large library, each pilot
    drawing few policies) they are every policy of the level's whole draw above ``γ_c``, so that pilots
    pointing in similar directions share their finds. Sharing is not the default because it tilts neighbouring
    pilots alike, and a pool of alike proposals misses more of the top policies' routes. Each pilot runs
    ``n_levels`` levels.

    Returns
    -------
    list of list of ndarray
        Per pilot, its proposals ``[ξ, q_1, …, q_T]`` (for :meth:`ProductMixture.defensive`).
    """
    S, A = shape
    floor = 1.0 / (2.0 * A * S)
    proposals = [[np.full((S, A), 1.0 / A)] for _ in range(n_pilots)]
    owner = np.repeat(np.arange(n_pilots), level_size)
    share = ELITE_FRACTION * level_size < MIN_OWN_ELITES
    for _ in range(n_levels):
        actions = np.concatenate([sample_product(chain[-1], level_size, rng) for chain in proposals])
        values = values_of(actions)
        levels = [
            np.quantile(values[owner == c, c], 1.0 - ELITE_FRACTION, method="higher") for c in range(n_pilots)
        ]
        for c, chain in enumerate(proposals):
            elite = (values[:, c] >= levels[c]) & (share or (owner == c))
            chain.append(floored(shrunk_update(chain[-1], actions[elite]), floor))
    return proposals


def importance_bits(
    worlds: WorldSet,
    reward: np.ndarray,
    v_pi: float,
    rng: np.random.Generator,
    level_size: int = DEFAULT_LEVEL_SIZE,
    budget: int = DEFAULT_BUDGET,
    rtol: float = RTOL,
) -> RareEventEstimate:
    r"""g of a policy with value ``v_pi`` under ``reward[s, a]``, by the cross-entropy method (module docstring).

    Parameters
    ----------
    worlds : WorldSet
    reward : ndarray, shape (S, A)
    v_pi : float
        ``V_U(pi)``.
    rng : numpy.random.Generator
    level_size : int
        Policies per cross-entropy level (n_level).
    budget : int
        Total policy evaluations; the levels use at most 60% of it.
    rtol : float
        The relative tie tolerance (docs/model.md#ties).

    Returns
    -------
    RareEventEstimate
    """

    def values_of(actions: np.ndarray) -> np.ndarray:
        return evaluate_policies(worlds, actions, reward)

    shape = (worlds.n_states, worlds.n_actions)
    run = cross_entropy_levels(values_of, v_pi, shape, rng, level_size, LEVEL_SHARE * budget, rtol)
    mixture = ProductMixture.defensive(run.proposals)
    actions = mixture.sample(budget - run.evaluations, rng)
    values, log_ratio = values_of(actions), mixture.log_ratio(actions)
    if run.first is not None:  # not rare: plain Monte Carlo from ξ, the first level's draws included
        values, log_ratio = np.concatenate([run.first, values]), np.zeros(budget)
    max_abs = max(run.max_abs, float(np.abs(values).max()))
    hits = np.exp(log_ratio) * (values >= _threshold(v_pi, max_abs, rtol))
    levels = len(run.proposals) - 1
    if hits.any():
        p = float(hits.mean())
        g, se = max(0.0, -math.log2(p)), float(hits.std(ddof=1)) / math.sqrt(hits.size) / (p * LN2)
        return RareEventEstimate(g, se, p, budget, levels, run.reached, mixture)
    # No draw reached thr: P[V ≥ γ] at the best level seen is an upper bound on P, so its bits a lower bound.
    level = min(run.best_level, float(values.max()))
    bound = float((np.exp(log_ratio) * (values >= level)).mean())
    return RareEventEstimate(max(0.0, -math.log2(bound)), math.inf, 0.0, budget, levels, False, mixture)


def check_importance_prior(policy_prior) -> UniformDeterministic:
    """ξ for ``method="importance"``: only :class:`~utiliscope.policies.UniformDeterministic` is supported."""
    prior = as_policy_prior(policy_prior)
    if isinstance(prior, UniformDeterministic):
        return prior
    if isinstance(prior, PolicySet):
        raise ValueError(
            "policy_prior is a PolicySet, which method='importance' does not support; a PolicySet is finite, "
            "so use method='exact' to enumerate it"
        )
    raise ValueError(
        f"policy_prior is {prior!r}, which method='importance' does not support (its proposals are over "
        "deterministic policies); use method='monte_carlo' or method='gaussian'"
    )


def importance_table(
    worlds,
    policies,
    rewards,
    policy_prior=None,
    n_samples: int = DEFAULT_LEVEL_SIZE,
    seed=0,
    rtol: float = RTOL,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, np.ndarray]:
    """g of J policies under N rewards by the cross-entropy method, one independent estimate per pair.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like, shape (J, S, A) or (S, A)
    rewards : array_like, shape (N, S) or (N, S, A)
    policy_prior : UniformDeterministic, optional
        ξ; other priors raise a ValueError naming the method to use instead.
    n_samples : int
        Policies drawn per cross-entropy level.
    seed : int or numpy.random.Generator
        Seeds one independent generator per pair (``numpy.random.Generator.spawn``).
    rtol : float
        The relative tie tolerance (docs/model.md#ties).
    budget : int
        Policy evaluations per estimate, at least ``2 · n_samples``. When ξ's whole support is no larger, it
        is enumerated instead and g is exact. For large worlds (tens of states) and g ≳ 25 bits,
        ``budget=40_000, n_samples=2000`` is recommended (``benchmarks/results/rare_event_accuracy.md``).

    Returns
    -------
    g, se : ndarray, shape (J, N)
        Bits and standard errors; se is +inf where g is only a lower bound (a :class:`RareEventWarning` says
        how many).
    """
    worlds = as_world_set(worlds)
    prior = check_importance_prior(policy_prior)
    level_size = check_count(n_samples, "n_samples")
    budget = check_count(budget, "budget", minimum=2 * level_size)
    check_positive(rtol, "rtol", allow_zero=True)
    S, A = worlds.n_states, worlds.n_actions
    r = check_reward(rewards, S, A, name="rewards").reshape(-1, S, A)
    tables = check_policy(policies, S, A, name="policies")
    tables = tables[None] if tables.ndim == 2 else tables
    v_pi = evaluate_policies(worlds, tables, r)
    if prior.support_size(S, A) <= budget:
        reference, weights = reference_values(worlds, r, prior, "exact", budget, seed)
        return bits_from_values(v_pi, reference, weights, "exact", rtol)
    pairs = zip(np.ndindex(v_pi.shape), rng_from(seed).spawn(v_pi.size), strict=True)
    estimates = [importance_bits(worlds, r[n], v_pi[j, n], rng, level_size, budget, rtol) for (j, n), rng in pairs]
    g = np.array([e.bits for e in estimates]).reshape(v_pi.shape)
    se = np.array([e.se for e in estimates]).reshape(v_pi.shape)
    if np.isinf(se).any():
        warnings.warn(
            f"method='importance' reached pi's value in none of its draws for {int(np.isinf(se).sum())} of "
            f"{se.size} (policy, utility) pairs; their g is a lower bound (se = inf). Raise budget.",
            RareEventWarning,
            stacklevel=2,
        )
    return g, se


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_LEVEL_SIZE",
    "ProductMixture",
    "RareEventEstimate",
    "RareEventWarning",
    "cross_entropy_levels",
    "importance_bits",
    "importance_table",
    "shared_cross_entropy_levels",
]
