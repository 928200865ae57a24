r"""Acting on a posterior over utilities: normalised values, the three decision rules, and policy loss.

Utilities are defined only up to a positive affine map, so values of different utilities are compared after
normalising each by its own range,

.. math::

    \tilde V_U(\pi) = \frac{V_U(\pi) - V_U(\text{uniform})}{V_U(\pi^*_U) - V_U(\text{uniform})},

with ``pi*_U`` the best deterministic stationary policy over the worlds ζ and ``uniform`` the policy that picks
actions uniformly; ``Ṽ = 0`` for a utility without range (the constant). A posterior is a weighted set of
utilities ``(r_n, P_n)``: a library's entries with their posterior probabilities, or a linear prior's draws with
equal weights. The rules (:func:`decide`):

- ``expected``: argmax over deterministic policies of ``Σ_n P_n Ṽ_n(pi)``, which is planning for the one mixture
  reward ``Σ_n P_n r_n / range_n``;
- ``robust``: argmax over deterministic policies of the lower ``alpha``-quantile of ``Ṽ_U(pi)`` under the
  posterior, ties broken by the expected value;
- ``quantilize``: the q-quantilizer of ξ under the ``expected`` objective (a mixture of ξ's top-q policies).

Deterministic policies are searched by enumeration when ``A^S ≤ max_enumerate`` (exact). Beyond that the
expected rule plans by value iteration, exact for one world, and by single-state coordinate ascent from it for
several worlds (a local optimum), and the robust rule runs coordinate ascent on its own objective from the
expected rule's policy and the optima of the most probable utilities (a local optimum;
benchmarks/results/decisions.md measures how often it reaches the enumerated optimum). :func:`policy_loss` is
``1 − Ṽ_U*(pi)`` under a true utility: 0 is optimal, 1 no better than acting uniformly at random.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from utiliscope._validation import check_choice, check_count, check_positive, rng_from, unit_scaled
from utiliscope.agents.planning import best_deterministic, coordinate_ascent, one_hot
from utiliscope.agents.quantilizer import Quantilizer
from utiliscope.counting import RTOL
from utiliscope.evaluation import (
    CHUNK,
    check_policy,
    check_reward,
    evaluate_policies,
    occupancy,
    stationary_equivalent,
)
from utiliscope.policies import UniformDeterministic, as_policy_prior
from utiliscope.worlds.mdp import WorldSet, as_world_set

RULES = ("expected", "robust", "quantilize")
DEFAULT_ALPHA = 0.1
DEFAULT_Q = 2.0**-6
#: Largest number of deterministic policies the rules and the ranges enumerate: the search is exact up to it.
#: Enumeration values every policy under every posterior utility, so the default stays well below ξ's own
#: enumeration limit.
MAX_ENUMERATE = 2**16
#: Starts of the robust rule's local search beyond the expected rule's policy: the optima of this many of the
#: most probable utilities.
ROBUST_STARTS = 8
#: Slack on cumulative weights reaching alpha (round-off in the sum).
WEIGHT_SLACK = 1e-12


@dataclass(frozen=True)
class PolicyMixture:
    """A policy drawn once per episode from ``policies`` with probabilities ``weights``.

    With one world a stationary policy reproduces its occupancy and value (:meth:`stationary`); with several
    worlds no stationary policy need equal it, so the mixture itself is the decision.
    """

    policies: np.ndarray
    weights: np.ndarray

    def occupancy(self, worlds) -> np.ndarray:
        """World-averaged state–action occupancy ``Σ_j v_j rho_j[s, a]``."""
        return np.einsum("m,msa->sa", self.weights, occupancy(worlds, self.policies))

    def value(self, worlds, reward) -> float:
        """``Σ_j v_j V_U(pi_j)``: the expected utility of drawing one policy per episode."""
        return float(self.weights @ evaluate_policies(worlds, self.policies, reward))

    def sample_policy(self, seed=None) -> np.ndarray:
        """One policy ``pi[s, a]`` drawn by weight: the policy to follow for one episode."""
        rng = rng_from(seed)
        return self.policies[rng.choice(len(self.weights), p=self.weights)].copy()

    def stationary(self, worlds) -> np.ndarray:
        """The stationary policy with the mixture's world-averaged occupancy (its value for one world)."""
        return stationary_equivalent(worlds, self.policies, self.weights)


@dataclass(frozen=True)
class UtilitySample:
    """A posterior over utilities as weighted rewards.

    Parameters
    ----------
    rewards : ndarray, shape (N, S, A)
    weights : ndarray, shape (N,)
        Posterior probabilities, summing to 1.
    labels : tuple of str
        A name per utility (library entries, or ``draw i`` for a linear prior's draws).
    """

    rewards: np.ndarray
    weights: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=float)
        if weights.ndim != 1 or len(weights) != len(self.rewards) or len(self.labels) != len(weights):
            raise ValueError(
                f"weights has shape {weights.shape} and labels {len(self.labels)} entries; both must have one "
                f"entry per reward ({len(self.rewards)})"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not math.isclose(weights.sum(), 1.0):
            raise ValueError(f"weights sum to {weights.sum():.6g}; they must be finite, >= 0 and sum to 1")


@dataclass(frozen=True)
class Ranges:
    """``V_U(uniform)`` and ``V_U(pi*_U)`` of each utility, and how ``pi*_U`` was found."""

    uniform: np.ndarray
    best: np.ndarray
    search: str
    exact: bool

    @property
    def span(self) -> np.ndarray:
        """``V_U(pi*_U) − V_U(uniform)``, 0 where the utility has no range (within the tie tolerance)."""
        span = self.best - self.uniform
        scale = np.maximum(np.abs(self.best), np.abs(self.uniform))
        return np.where(span > RTOL * scale, span, 0.0)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """``Ṽ`` of values ``V[..., n]`` (0 for utilities without range)."""
        span = self.span
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(span > 0, (values - self.uniform) / np.where(span > 0, span, 1.0), 0.0)


@dataclass(frozen=True)
class Decision:
    """A policy chosen from a posterior over utilities, with the rule and the posterior it used.

    Attributes
    ----------
    rule : str
        ``"expected"``, ``"robust"`` or ``"quantilize"``.
    settings : dict
        The rule's settings (``alpha``, ``q``, ``max_enumerate``, ...).
    policy : ndarray (S, A) or None
        The stationary policy, or None for a mixture that no stationary policy equals (several worlds).
    mixture : PolicyMixture or None
        The quantilizer's mixture of ξ's top policies (``.occupancy``, ``.sample_policy``), else None.
    search : str
        How the policy was found; ``exact`` says whether it is the optimum over deterministic policies.
    labels, probabilities : the posterior utilities and their weights.
    normalised_values : ndarray (N,)
        ``Ṽ_U`` of the decision under each posterior utility.
    """

    rule: str
    settings: dict
    policy: np.ndarray | None
    mixture: PolicyMixture | None
    search: str
    exact: bool
    labels: tuple[str, ...]
    probabilities: np.ndarray
    normalised_values: np.ndarray
    posterior: dict = field(default_factory=dict)

    @property
    def expected(self) -> float:
        """``Σ_U P(U | data) Ṽ_U``: the expected rule's objective at this decision."""
        return float(self.probabilities @ self.normalised_values)

    def quantile(self, alpha: float) -> float:
        """The lower ``alpha``-quantile of ``Ṽ_U`` under the posterior: the robust rule's objective."""
        return float(weighted_lower_quantile(self.normalised_values[None], self.probabilities, alpha)[0])

    @property
    def objective(self) -> float:
        """The rule's own objective at this decision (the quantilizer's is the expected value)."""
        if self.rule == "robust":
            return self.quantile(self.settings["alpha"])
        return self.expected

    def value(self, worlds, reward) -> float:
        """``V_U`` of the decision under a reward (the mixture's, when it is one)."""
        if self.mixture is not None:
            return self.mixture.value(worlds, reward)
        return float(evaluate_policies(worlds, self.policy[None], reward)[0])

    def acting_policy(self, worlds) -> np.ndarray:
        """``policy``, or the mixture's stationary equivalent when there is no stationary decision."""
        return self.policy if self.policy is not None else self.mixture.stationary(worlds)

    def to_dict(self) -> dict:
        """Plain values for JSON: the rule, its settings and objective, the policy (or mixture), the posterior."""
        data = {
            "rule": self.rule,
            "settings": self.settings,
            "search": self.search,
            "exact": self.exact,
            "objective": self.objective,
            "expected_normalised_value": self.expected,
            "policy": None if self.policy is None else self.policy.tolist(),
            "posterior": self.posterior,
        }
        if self.mixture is not None:
            mixture = self.mixture
            data["mixture"] = {"policies": mixture.policies.tolist(), "weights": mixture.weights.tolist()}
        return data

    def __str__(self) -> str:
        settings = ", ".join(f"{key}={value:g}" for key, value in self.settings.items() if key != "max_enumerate")
        order = np.argsort(-self.probabilities, kind="stable")[:5]
        lines = [
            f"Decision by rule {self.rule!r}{f' ({settings})' if settings else ''}: "
            f"objective {self.objective:.4g}",
            f"  search: {self.search}",
            f"  expected normalised value {self.expected:.4g}; under the most probable utilities:",
            *(
                f"    {self.labels[i]:<24} P {self.probabilities[i]:.3g}  Ṽ {self.normalised_values[i]:.4g}"
                for i in order
            ),
        ]
        return "\n".join(lines)


def weighted_lower_quantile(values: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    """Row-wise lower quantile ``inf{v : Σ_{n: V_n ≤ v} w_n ≥ alpha}`` of ``values[m, n]`` under ``weights[n]``."""
    order = np.argsort(values, axis=1, kind="stable")
    cumulative = np.cumsum(weights[order], axis=1)
    k = np.argmax(cumulative >= alpha - WEIGHT_SLACK, axis=1)
    return np.take_along_axis(values, order[np.arange(len(values)), k][:, None], axis=1)[:, 0]


def _deterministic_chunks(worlds: WorldSet, max_enumerate: int) -> Iterator[np.ndarray]:
    """ξ's uniform deterministic support, action indices ``a[m, s]``, in chunks (enumeration order)."""
    policies, _ = UniformDeterministic(max_enumerate).support(worlds.n_states, worlds.n_actions)
    for start in range(0, len(policies), CHUNK):
        yield policies[start : start + CHUNK]


def can_enumerate(worlds: WorldSet, max_enumerate: int) -> bool:
    """Whether the A^S deterministic policies are few enough to enumerate."""
    return UniformDeterministic(max_enumerate).can_enumerate(worlds.n_states, worlds.n_actions)


def value_ranges(worlds, rewards: np.ndarray, max_enumerate: int = MAX_ENUMERATE) -> Ranges:
    """``V_U(uniform)`` and ``V_U(pi*_U)`` of rewards ``r[n, s, a]`` (one pass over the policies if enumerable)."""
    worlds = as_world_set(worlds)
    S, A = worlds.n_states, worlds.n_actions
    uniform = evaluate_policies(worlds, np.full((1, S, A), 1.0 / A), rewards)[0]
    flat = rewards.reshape(len(rewards), -1)
    if can_enumerate(worlds, max_enumerate):
        best = np.full(len(rewards), -np.inf)
        for chunk in _deterministic_chunks(worlds, max_enumerate):
            best = np.maximum(best, (occupancy(worlds, chunk).reshape(len(chunk), -1) @ flat.T).max(axis=0))
        return Ranges(uniform, best, f"enumeration of the {A}^{S} deterministic policies", True)
    best = np.array(
        [evaluate_policies(worlds, coordinate_ascent(worlds, r)[None], r)[0] for r in rewards], dtype=float
    )
    search, exact = _planning_search(worlds)
    return Ranges(uniform, best, search, exact)


def _planning_search(worlds: WorldSet) -> tuple[str, bool]:
    if len(worlds) == 1:
        return "value iteration (exact for one world)", True
    return (
        "value iteration on the ζ-averaged MDP, then single-state coordinate ascent (a local optimum for "
        f"{len(worlds)} worlds)",
        False,
    )


def mixture_reward(sample: UtilitySample, ranges: Ranges) -> np.ndarray:
    """``Σ_n P_n r_n / range_n`` over utilities with a range: the expected rule's reward (up to a constant)."""
    span = ranges.span
    scale = np.where(span > 0, sample.weights / np.where(span > 0, span, 1.0), 0.0)
    return np.einsum("n,nsa->sa", scale, sample.rewards)


def normalised_values(worlds, policies, sample: UtilitySample, ranges: Ranges) -> np.ndarray:
    """``Ṽ[m, n]`` of policies (tables or action indices) under the sample's utilities."""
    return ranges.normalise(evaluate_policies(worlds, policies, sample.rewards))


def decide(
    worlds,
    sample: UtilitySample,
    rule: str = "expected",
    *,
    alpha: float = DEFAULT_ALPHA,
    q: float = DEFAULT_Q,
    policy_prior=None,
    n_candidates: int = 10_000,
    seed: int = 0,
    max_enumerate: int = MAX_ENUMERATE,
    posterior: dict | None = None,
    ranges: Ranges | None = None,
) -> Decision:
    """Choose a policy from a posterior over utilities by ``rule`` (see the module docstring).

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    sample : UtilitySample
        The posterior's utilities and weights.
    rule : {"expected", "robust", "quantilize"}
    alpha : float
        ``robust``: the quantile level, in (0, 1).
    q : float
        ``quantilize``: the top fraction of ξ, in (0, 1].
    policy_prior : PolicyPrior, optional
        ``quantilize``: ξ (default uniform over deterministic policies).
    n_candidates, seed
        ``quantilize``: ξ's draws when it cannot be enumerated, and their seed.
    max_enumerate : int
        Deterministic policies searched exhaustively up to this many; beyond, the searches of the module
        docstring.
    posterior : dict, optional
        A summary of the posterior recorded with the decision.
    ranges : Ranges, optional
        :func:`value_ranges` of the sample's rewards, when the caller decides with several rules on one sample
        (the ranges cost one optimum per utility).
    """
    worlds = as_world_set(worlds)
    check_choice(rule, RULES, "rule")
    settings: dict = {"max_enumerate": check_count(max_enumerate, "max_enumerate")}
    if rule == "robust":
        settings["alpha"] = check_alpha(alpha)
    if rule == "quantilize":
        settings["q"] = check_q(q)
    if ranges is None:
        ranges = value_ranges(worlds, sample.rewards, max_enumerate)
    mixture = None
    if rule == "expected":
        policy, search, exact = _expected_policy(worlds, sample, ranges, max_enumerate)
    elif rule == "robust":
        policy, search, exact = _robust_policy(worlds, sample, ranges, settings["alpha"], max_enumerate)
    else:
        agent = Quantilizer(
            mixture_reward(sample, ranges), settings["q"], as_policy_prior(policy_prior), n_candidates, seed
        )
        tables, weights = agent.policy_mixture(worlds)
        mixture = PolicyMixture(tables, weights)
        policy = mixture.stationary(worlds) if len(worlds) == 1 else None
        exact = agent.policy_prior.can_enumerate(worlds.n_states, worlds.n_actions)
        search = f"the top {settings['q']:g} of ξ ({agent.policy_prior!r}) by the expected normalised value, " + (
            "enumerated" if exact else f"among {n_candidates} seeded draws"
        )
    tables = mixture.policies if mixture is not None else policy[None]
    per_policy = normalised_values(worlds, tables, sample, ranges)
    values = mixture.weights @ per_policy if mixture is not None else per_policy[0]
    return Decision(
        rule=rule,
        settings=settings,
        policy=policy,
        mixture=mixture,
        search=search if ranges.search == search else f"{search}; the utilities' optima by {ranges.search}",
        exact=exact and ranges.exact,
        labels=sample.labels,
        probabilities=sample.weights,
        normalised_values=values,
        posterior=posterior or {},
    )


def check_alpha(alpha) -> float:
    """The robust rule's quantile level, in (0, 1)."""
    alpha = check_positive(alpha, "alpha")
    if alpha >= 1:
        raise ValueError(f"alpha is {alpha}; it is a quantile level and must lie in (0, 1), e.g. 0.1")
    return alpha


def check_q(q) -> float:
    """The quantilizer's top fraction, in (0, 1]."""
    q = check_positive(q, "q")
    if q > 1:
        raise ValueError(f"q is {q}; it is the top fraction of ξ and must lie in (0, 1], e.g. 2**-6")
    return q


def _expected_policy(worlds, sample, ranges, max_enumerate) -> tuple[np.ndarray, str, bool]:
    """The best deterministic policy for the mixture reward (the first in enumeration order among ties)."""
    policy = best_deterministic(worlds, mixture_reward(sample, ranges), max_enumerate)
    if can_enumerate(worlds, max_enumerate):
        search, exact = f"enumeration of the {worlds.n_actions}^{worlds.n_states} deterministic policies", True
    else:
        search, exact = _planning_search(worlds)
    return one_hot(policy, worlds.n_actions), search, exact


def _robust_key(values: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    """The robust objective of rows ``Ṽ[m, n]`` and the expected value that breaks its ties, as ``(m, 2)``."""
    return np.column_stack([weighted_lower_quantile(values, weights, alpha), values @ weights])


def _best_row(keys: np.ndarray) -> int:
    """The first row whose ``(quantile, expected)`` key is lexicographically best within the tie tolerance."""
    tol = RTOL * max(1.0, np.abs(keys).max())
    top = keys[:, 0] >= keys[:, 0].max() - tol
    second = np.where(top, keys[:, 1], -np.inf)
    return int(np.argmax(top & (second >= second.max() - tol)))


def _better(candidate: np.ndarray, incumbent: np.ndarray) -> bool:
    """Whether ``candidate``'s key beats ``incumbent``'s beyond the tie tolerance."""
    return _best_row(np.stack([incumbent, candidate])) == 1


def _robust_policy(worlds, sample, ranges, alpha, max_enumerate) -> tuple[np.ndarray, str, bool]:
    A = worlds.n_actions
    if can_enumerate(worlds, max_enumerate):
        best_key, best = None, None
        for chunk in _deterministic_chunks(worlds, max_enumerate):
            keys = _robust_key(normalised_values(worlds, chunk, sample, ranges), sample.weights, alpha)
            m = _best_row(keys)
            if best_key is None or _better(keys[m], best_key):
                best_key, best = keys[m], chunk[m]
        return one_hot(best, A), f"enumeration of the {A}^{worlds.n_states} deterministic policies", True
    starts = [np.argmax(_expected_policy(worlds, sample, ranges, max_enumerate)[0], axis=1)]
    for n in np.argsort(-sample.weights, kind="stable")[:ROBUST_STARTS]:
        starts.append(coordinate_ascent(worlds, sample.rewards[n]))
    best_key, best = None, None
    for start in starts:
        policy, key = _robust_ascent(worlds, sample, ranges, alpha, start)
        if best_key is None or _better(key, best_key):
            best_key, best = key, policy
    search = (
        f"single-state coordinate ascent on the {alpha:g}-quantile from {len(starts)} starts (the expected rule's "
        "policy and the most probable utilities' optima): a local optimum"
    )
    return one_hot(best, A), search, False


def _robust_ascent(worlds, sample, ranges, alpha, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Change one state's action at a time while that raises the robust key; stop after a sweep without one."""
    key = _robust_key(normalised_values(worlds, policy[None], sample, ranges), sample.weights, alpha)[0]
    changed = True
    while changed:
        changed = False
        for s in range(worlds.n_states):
            candidates = np.repeat(policy[None], worlds.n_actions, axis=0)
            candidates[:, s] = np.arange(worlds.n_actions)
            keys = _robust_key(normalised_values(worlds, candidates, sample, ranges), sample.weights, alpha)
            best = _best_row(keys)
            if _better(keys[best], key):
                policy, key, changed = candidates[best], keys[best], True
    return policy, key


def normalised_value(worlds, policy, reward, max_enumerate: int = MAX_ENUMERATE) -> float:
    """``Ṽ_U(pi)`` of one policy (a table, or a :class:`PolicyMixture` or :class:`Decision`) under one reward."""
    worlds = as_world_set(worlds)
    table = check_reward(reward, worlds.n_states, worlds.n_actions)
    if table.ndim != 2:
        raise ValueError(f"reward has shape {np.shape(reward)}; give one reward r[s] or r[s, a]")
    table = unit_scaled(table)  # Ṽ is scale-free; values of rewards near 1e308 would overflow
    ranges = value_ranges(worlds, table[None], max_enumerate)
    if isinstance(policy, Decision | PolicyMixture):
        value = policy.value(worlds, table)
    else:
        pi = check_policy(policy, worlds.n_states, worlds.n_actions)
        if pi.ndim != 2:
            raise ValueError(f"policy has shape {pi.shape}; give one policy pi[s, a]")
        value = float(evaluate_policies(worlds, pi[None], table)[0])
    return float(ranges.normalise(np.array([value]))[0])


def policy_loss(worlds, policy, reward, max_enumerate: int = MAX_ENUMERATE) -> float:
    r"""``1 − Ṽ_U(pi)`` under a (true) reward: 0 optimal, 1 no better than uniform, above 1 worse than uniform.

    ``Ṽ`` is the module docstring's normalised value, values averaged over the worlds with their weights;
    ``pi*_U`` is searched as there (exact when the deterministic policies can be enumerated, or for one world).
    A constant reward has no range and a loss of 1 for every policy. Beyond ``max_enumerate`` with several worlds
    ``pi*_U`` is a local optimum, so a better policy can have a loss below 0.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policy : array_like (S, A), PolicyMixture or Decision
    reward : array_like, shape (S,) or (S, A)
    max_enumerate : int
        Enumerate the deterministic policies for ``pi*_U`` up to this many.

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.garnet(4, 2, 2, seed=0)
    >>> reward = np.arange(4.0)
    >>> float(round(us.diagnostics.policy_loss(world, np.full((4, 2), 0.5), reward), 12))
    1.0
    """
    return 1.0 - normalised_value(worlds, policy, reward, max_enumerate)


def sample_of_library(rewards: np.ndarray, probabilities, names: Sequence[str]) -> UtilitySample:
    """A library posterior as a :class:`UtilitySample` (probabilities renormalised against round-off)."""
    weights = np.clip(np.asarray(probabilities, dtype=float), 0.0, None)
    return UtilitySample(np.asarray(rewards, dtype=float), weights / weights.sum(), tuple(names))


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_Q",
    "MAX_ENUMERATE",
    "RULES",
    "Decision",
    "PolicyMixture",
    "Ranges",
    "UtilitySample",
    "check_alpha",
    "check_q",
    "decide",
    "mixture_reward",
    "normalised_value",
    "normalised_values",
    "policy_loss",
    "sample_of_library",
    "value_ranges",
    "weighted_lower_quantile",
]
