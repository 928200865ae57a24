r"""The intelligence measure g in bits (docs/model.md#intelligence-g).

.. math::

    g(\pi \mid U) = -\log_2 P_{\pi' \sim \xi}\big[V_U(\pi) \le V_U(\pi')\big]

Ties count against the agent and are judged with a tolerance relative to the utility's scale: ``pi'`` is at
least as good as ``pi`` when ``V(pi') ≥ V(pi) − rtol · max(|V(pi)|, max_pi' |V(pi')|)`` with ``rtol = 1e-9``.
A constant utility therefore gives g = 0 for every policy, and g = +inf exactly when no policy in ξ's support is
at least as good (possible for stochastic policies with several worlds); no estimator returns NaN.

Estimators
----------
``exact``
    Enumerates ξ's support (``UniformDeterministic`` up to ``max_enumerate`` policies, or a ``PolicySet``).
``monte_carlo``
    A fixed sample of M policies from ξ (seeded). With k sampled policies at least as good as pi it returns
    ``-log2((k + 1) / (M + 1))``: the exceedance fraction among the sample together with pi itself, the
    standard finite Monte Carlo p-value (Davison & Hinkley 1997, §4.2). It is finite, at most log2(M + 1), and
    0 for a constant utility; it saturates for agents that beat the whole sample.
``gaussian``
    Treats V(pi') under ξ as normal with the mean and variance of a seeded sample of M policies' values (for a
    linear utility these are ``m·theta`` and ``thetaᵀ S theta`` with m, S the moments of the feature
    expectations), and returns ``-log2 Φ((m − V(pi)) / sd)`` through ``scipy.special.log_ndtr``, which stays
    accurate far into the tail (hundreds of bits). It is an approximation: values of random policies are bounded
    and skewed, so it is biased in the tail: it understates g above about 4 bits, and ``monte_carlo`` with the
    same M is more accurate below its saturation (``benchmarks/results/intelligence_accuracy.md``).
``auto``
    The most accurate of these that the world's size allows (:func:`truth_g_method`): ``exact`` when ξ can be
    enumerated, else ``importance`` for ξ uniform over deterministic policies in worlds of at most
    :data:`AUTO_IMPORTANCE_MAX_STATES` states, else ``monte_carlo``. It works at any size, where ``exact`` raises.
``importance``
    A rare-event estimator for highly intelligent policies (:mod:`utiliscope.rare_event`): the cross-entropy
    method tilts product-categorical proposals over deterministic policies toward pi's value in levels of
    ``n_samples`` draws, then estimates ``P = E_q[(ξ/q) · 1[V ≥ thr]]`` by importance sampling, within a total of
    ``budget`` policy evaluations (default 20,000). Its standard error is the delta-method one; it is +inf,
    with a ``RareEventWarning``, when no draw reached pi's value and g is a lower bound. ``UniformDeterministic``
    ξ only; a support no larger than the budget is enumerated (exact). Its accuracy:
    ``benchmarks/results/rare_event_accuracy.md``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from utiliscope._validation import check_choice, check_positive
from utiliscope.counting import (
    RTOL,
    bits_from_values,
    reference_values,
)
from utiliscope.evaluation import check_policy, check_reward, evaluate_policies
from utiliscope.policies import UniformDeterministic, as_policy_prior
from utiliscope.rare_event import DEFAULT_BUDGET, importance_table
from utiliscope.worlds.mdp import as_world_set

METHODS = ("exact", "monte_carlo", "gaussian", "importance")
#: The methods and ``"auto"``, which resolves to one of them (:func:`truth_g_method`).
METHOD_CHOICES = (*METHODS, "auto")
#: The largest world for which ``"auto"`` picks ``importance`` (its default budget of 20,000 policy evaluations
#: takes minutes on two cores above it; ``benchmarks/results/sparse_evaluation.md``), rather than ``monte_carlo``.
AUTO_IMPORTANCE_MAX_STATES = 1000

Method = Literal["auto", "exact", "monte_carlo", "gaussian", "importance"]


def intelligence_table(
    worlds,
    policies,
    rewards,
    policy_prior=None,
    method: Method = "exact",
    n_samples: int = 1000,
    seed=0,
    rtol: float = RTOL,
    budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """g of J policies under N rewards at once, sharing one set of reference policies.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like, shape (J, S, A)
    rewards : array_like, shape (N, S) or (N, S, A)
    policy_prior, method, n_samples, seed, rtol, budget
        As for :func:`intelligence`.

    Returns
    -------
    g, se : ndarray, shape (J, N)
        Bits and Monte Carlo standard errors (0 for ``exact``).
    """
    worlds = as_world_set(worlds)
    check_choice(method, METHOD_CHOICES, "method")
    rtol = check_positive(rtol, "rtol", allow_zero=True)
    if method == "auto":
        method = truth_g_method(worlds, policy_prior)
    if method == "importance":
        budget = DEFAULT_BUDGET if budget is None else budget
        return importance_table(worlds, policies, rewards, policy_prior, n_samples, seed, rtol, budget)
    S, A = worlds.n_states, worlds.n_actions
    r = check_reward(rewards, S, A, name="rewards")
    r = r.reshape(-1, S, A)
    tables = check_policy(policies, S, A, name="policies")
    tables = tables[None] if tables.ndim == 2 else tables
    reference, weights = reference_values(worlds, r, policy_prior, method, n_samples, seed)
    v_pi = evaluate_policies(worlds, tables, r)
    return bits_from_values(v_pi, reference, weights, method, rtol)


def intelligence(
    worlds,
    policy,
    reward,
    policy_prior=None,
    method: Method = "exact",
    n_samples: int = 1000,
    seed=0,
    *,
    rtol: float = RTOL,
    return_se: bool = False,
    budget: int | None = None,
) -> float | tuple[float, float]:
    r"""The intelligence ``g(pi | U) = −log2 P_{pi'~ξ}[V_U(pi) ≤ V_U(pi')]`` of a policy, in bits.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ, over which values are averaged with its weights.
    policy : array_like, shape (S, A)
        The operator's policy; rows sum to 1.
    reward : array_like, shape (S,) or (S, A)
        The utility U as a reward.
    policy_prior : PolicyPrior, optional
        ξ; default :class:`~utiliscope.policies.UniformDeterministic`.
    method : {"exact", "auto", "monte_carlo", "gaussian", "importance"}
        See the module docstring. ``exact`` (the default, as the public API fixes it) raises a ValueError naming
        the alternatives when ξ is too large to enumerate; ``auto`` chooses a method that works at any size.
    n_samples : int
        Reference policies drawn for ``monte_carlo`` and ``gaussian``; policies per cross-entropy level for
        ``importance``.
    seed : int or numpy.random.Generator
        Seed of the reference sample; the same seed gives the same answer.
    rtol : float
        Relative tie tolerance (docs/model.md#ties: 1e-9).
    return_se : bool
        Also return the Monte Carlo standard error of g (0 for ``exact``; for ``gaussian`` the error from
        estimating the two moments, not the bias of the normal approximation; +inf for ``importance`` when g is
        only a lower bound).
    budget : int, optional
        ``importance`` only: policy evaluations per estimate (default 20,000, at least ``2 · n_samples``).

    Returns
    -------
    float or (float, float)
        g in bits, in [0, +inf]; with ``return_se``, ``(g, se)``.

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.garnet(4, 2, 2, seed=0)
    >>> us.intelligence(world, np.full((4, 2), 0.5), np.zeros(4))  # constant utility: everything ties
    0.0
    """
    g, se = intelligence_table(worlds, policy, reward, policy_prior, method, n_samples, seed, rtol, budget)
    if np.ndim(policy) != 2 or np.ndim(g) != 2 or g.shape != (1, 1):
        raise ValueError("intelligence takes one policy pi[s, a] and one reward; use intelligence_table")
    return (float(g[0, 0]), float(se[0, 0])) if return_se else float(g[0, 0])


def truth_g_method(worlds, policy_prior=None) -> str:
    """The method ``"auto"`` resolves to: the most accurate g method the world's size allows.

    ``exact`` when ξ can be enumerated at all (``policy_prior.can_enumerate``), else ``importance`` for ξ uniform
    over deterministic policies in worlds of at most :data:`AUTO_IMPORTANCE_MAX_STATES` states, else
    ``monte_carlo``. Used by ``method="auto"``, where g* is needed before the likelihood, and so the model's own
    resolved method, exists (a spec whose likelihood is observed at the agent's g*), and for g of a decided
    policy under a known utility.
    """
    worlds, prior = as_world_set(worlds), as_policy_prior(policy_prior)
    if prior.can_enumerate(worlds.n_states, worlds.n_actions):
        return "exact"
    small = worlds.n_states <= AUTO_IMPORTANCE_MAX_STATES
    return "importance" if isinstance(prior, UniformDeterministic) and small else "monte_carlo"


__all__ = [
    "AUTO_IMPORTANCE_MAX_STATES",
    "METHODS",
    "METHOD_CHOICES",
    "intelligence",
    "intelligence_table",
    "truth_g_method",
]
