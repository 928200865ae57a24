r"""What every decision rule compares: normalised values over a posterior, the utilities' ranges, policy loss.

Utilities are defined only up to a positive affine map, so values of different utilities are compared after
normalising each by its own range,

.. math::

    \tilde V_U(\pi) = \frac{V_U(\pi) - V_U(\text{uniform})}{V_U(\pi^*_U) - V_U(\text{uniform})},

with ``pi*_U`` the best deterministic stationary policy over the worlds ζ and ``uniform`` the policy that picks
actions uniformly; ``Ṽ = 0`` for a utility without range (the constant). A posterior is a weighted set of
utilities ``(r_n, P_n)`` (:class:`UtilitySample`): a library's entries with their posterior probabilities, or a
linear prior's draws with equal weights.

``pi*_U`` is found by enumeration when ``A^S ≤ max_enumerate`` (exact); beyond that by value iteration, exact
for one world or worlds that share their dynamics, and by single-state coordinate ascent from it for several
dynamics (a local optimum).
:func:`policy_loss` is ``1 − Ṽ_U*(pi)`` under a true utility: 0 is optimal, 1 no better than acting uniformly
at random.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from utiliscope._validation import rng_from, unit_scaled
from utiliscope.agents.planning import optimal_actions, shares_dynamics
from utiliscope.counting import RTOL
from utiliscope.evaluation import (
    CHUNK,
    check_policy,
    check_reward,
    evaluate_policies,
    occupancy,
    stationary_equivalent,
)
from utiliscope.policies import UniformDeterministic
from utiliscope.worlds.mdp import WorldSet, as_world_set

#: Largest number of deterministic policies the ranges and the rules' searches enumerate: exact up to it.
#: Enumeration values every policy under every posterior utility, so the default stays well below ξ's own
#: enumeration limit.
MAX_ENUMERATE = 2**16
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


def weighted_lower_quantile(values: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    """Row-wise lower quantile ``inf{v : Σ_{n: V_n ≤ v} w_n ≥ alpha}`` of ``values[m, n]`` under ``weights[n]``."""
    order = np.argsort(values, axis=1, kind="stable")
    cumulative = np.cumsum(weights[order], axis=1)
    k = np.argmax(cumulative >= alpha - WEIGHT_SLACK, axis=1)
    return np.take_along_axis(values, order[np.arange(len(values)), k][:, None], axis=1)[:, 0]


def weighted_lower_cvar(values: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    r"""Row-wise CVaR, the mean of the lowest ``alpha`` of mass, of ``values[m, n]`` under ``weights[n]``:
    ``(1/α) Σ_n min(w_n, max(0, α − W_n)) V_n`` over the values in increasing order, ``W_n`` the weight before
    ``V_n`` (so an atom straddling ``alpha`` counts in part)."""
    order = np.argsort(values, axis=1, kind="stable")
    sorted_weights = weights[order]
    before = np.cumsum(sorted_weights, axis=1) - sorted_weights
    taken = np.clip(alpha - before, 0.0, sorted_weights)
    return np.einsum("mn,mn->m", taken, np.take_along_axis(values, order, axis=1)) / alpha


def deterministic_chunks(worlds: WorldSet, max_enumerate: int) -> Iterator[np.ndarray]:
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
        for chunk in deterministic_chunks(worlds, max_enumerate):
            best = np.maximum(best, (occupancy(worlds, chunk).reshape(len(chunk), -1) @ flat.T).max(axis=0))
        return Ranges(uniform, best, f"enumeration of the {A}^{S} deterministic policies", True)
    policies = optimal_actions(worlds, rewards)
    best = np.einsum("nn->n", evaluate_policies(worlds, policies, rewards))
    search, exact = planning_search(worlds)
    return Ranges(uniform, best, search, exact)


def planning_search(worlds: WorldSet) -> tuple[str, bool]:
    """How :func:`~utiliscope.agents.planning.coordinate_ascent` plans on ``worlds``, and whether it is exact."""
    if len(worlds) == 1:
        return "value iteration (exact for one world)", True
    if shares_dynamics(worlds):
        return f"value iteration (exact: the {len(worlds)} worlds share their dynamics)", True
    return (
        "value iteration on the ζ-averaged MDP, then single-state coordinate ascent screened by each world's "
        f"advantages (a local optimum for {len(worlds)} worlds with different dynamics)",
        False,
    )


def mixture_reward(sample: UtilitySample, ranges: Ranges) -> np.ndarray:
    """``Σ_n P_n r_n / range_n`` over utilities with a range: the one reward whose value is the posterior
    expected normalised value ``Σ_n P_n Ṽ_n`` (up to a constant)."""
    span = ranges.span
    scale = np.where(span > 0, sample.weights / np.where(span > 0, span, 1.0), 0.0)
    return np.einsum("n,nsa->sa", scale, sample.rewards)


def normalised_values(worlds, policies, sample: UtilitySample, ranges: Ranges) -> np.ndarray:
    """``Ṽ[m, n]`` of policies (tables or action indices) under the sample's utilities."""
    return ranges.normalise(evaluate_policies(worlds, policies, sample.rewards))


def normalised_value(worlds, policy, reward, max_enumerate: int = MAX_ENUMERATE) -> float:
    """``Ṽ_U(pi)`` of one policy under one reward: a table, or anything with a ``value(worlds, reward)`` method
    (a :class:`PolicyMixture`, a :class:`~utiliscope.decisions.Decision`)."""
    worlds = as_world_set(worlds)
    table = check_reward(reward, worlds.n_states, worlds.n_actions)
    if table.ndim != 2:
        raise ValueError(f"reward has shape {np.shape(reward)}; give one reward r[s] or r[s, a]")
    table = unit_scaled(table)  # Ṽ is scale-free; values of rewards near 1e308 would overflow
    ranges = value_ranges(worlds, table[None], max_enumerate)
    if callable(getattr(policy, "value", None)):
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
    "MAX_ENUMERATE",
    "PolicyMixture",
    "Ranges",
    "UtilitySample",
    "can_enumerate",
    "deterministic_chunks",
    "mixture_reward",
    "normalised_value",
    "normalised_values",
    "planning_search",
    "policy_loss",
    "sample_of_library",
    "value_ranges",
    "weighted_lower_cvar",
    "weighted_lower_quantile",
]
