r"""The g methods as objects: each owns everything about how the model computes g under one estimator.

A :class:`GMethod` holds ξ's reference sample for its estimator and, from it, the hard (unsmoothed) count the
structure engines use, the smoothing temperature NUTS needs (calibrated on the sample), its accurate range and
saturation warning, the cap of the 2^g potential, and the PyTensor builders of g for library and linear priors.
:class:`~utiliscope.models.Utiliscope` assembles the graph and the posterior from one of them
(``scope.estimator``) and never asks which one it is.

Every hard count is ``g = −log2 P`` with

.. math::

    P_n = \min\Big(1, \frac{f_n + \sum_m w_{mn} [V_{mn} \ge t]}{f_n + \sum_m w_{mn}}\Big),
    \qquad t = V(\pi) - \mathrm{rtol} \cdot \max(|V(\pi)|, \max_m |V_{mn}|),

ties counting against pi: ``exact`` enumerates ξ with its weights and ``f = 0``; ``monte_carlo`` has equal
weights 1 and ``f = 1``, i.e. ``(k + 1) / (M + 1)``; ``importance`` has the tilted sample's weights and
``f_n = min_m w_mn``. ``gaussian`` is the normal tail of ξ's value distribution instead.

The ``importance`` reference is one pool for every utility, tilted toward pilots (a library's non-constant
entries; a linear prior's directions spread over its sphere) and weighted by the balance heuristic
(:meth:`~utiliscope.models.reference.ImportanceReference.pooled`), so that g is counted as well for a theta far
from the world model's pilot direction as for one near it; the pool is evaluated once, and a linear prior's draw
costs one matrix product over the pool's feature expectations. Every method states its
:attr:`GMethod.accurate_range`; :meth:`GMethod.describe` puts it in a fit's attributes and
:meth:`GMethod.warn_outside` warns when the posterior's weight lies outside it.

Choosing the g method
---------------------
The model is only as good as its g where the likelihood puts mass. ``g_method="auto"`` (the default) is resolved
at construction to a concrete method, stored in ``scope.g_method`` and in the settings of every fit:

1. ``exact`` when ξ can be enumerated and has at most ``AUTO_EXACT_MAX`` = 2^16 = 65,536 policies (the sorted
   table of their values stays small: 0.5 MB per utility, one binary search per utility per logp);
2. otherwise ``monte_carlo`` when the likelihood's mass lies where it is accurate: the likelihood's 99% point
   (of ``P(g′_obs | g)`` normalised over g ≥ 0, :func:`likelihood_mass_range`) is at most
   ``log2(M) − 3`` bits (about 7 bits at M = 1000; above it its error grows and it saturates at log2(M + 1):
   ``benchmarks/results/rare_event_accuracy.md``);
3. otherwise ``importance`` (ξ uniform over deterministic policies), whose proposals are tilted up to 4 bits
   past that 99% point; for other ξ, which it does not support, ``monte_carlo``.

``gaussian`` is never chosen: on gridworlds ``monte_carlo`` is more accurate even below 4 bits (same results
file). The 2^g potential (``Exponential``) has no mass range; it gets ``exact`` or
else ``importance`` (tilted to its ``cap``, or to 30 bits).

A :class:`GSaturationWarning` is raised at construction when the likelihood's peak lies where the resolved method
saturates: ``monte_carlo`` within 2 bits of its ceiling log2(M + 1); ``gaussian`` above 4 bits; ``importance``
within 2 bits of its largest ceiling (:meth:`~utiliscope.models.reference.ImportanceReference.ceilings`);
``exact`` never. The 2^g potential is not checked: its mass sits at the documented cap by construction.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from utiliscope.counting import bits, bits_from_values, gaussian_bits
from utiliscope.evaluation import feature_expectations, feature_table
from utiliscope.likelihoods import PEAK_SEARCH_BITS
from utiliscope.models import graph
from utiliscope.models.reference import HardCount, ImportanceReference, ReferencePolicies, sorted_tails
from utiliscope.models.smoothing import calibrated_smoothing
from utiliscope.models.tabulated import TabulatedCount
from utiliscope.policies import PolicyPrior, UniformDeterministic
from utiliscope.priors.library import UtilityLibrary, canonical_forms
from utiliscope.rare_event import check_importance_prior
from utiliscope.worlds.mdp import WorldSet

#: g used by the improper 2^g potential where an estimator has no finite ceiling (the Gaussian one).
GAUSSIAN_CAP_BITS = 1024.0
#: ``monte_carlo`` with M reference policies counts as accurate up to log2(M) minus this many bits
#: (benchmarks/results/rare_event_accuracy.md).
MONTE_CARLO_MARGIN_BITS = 3.0
#: The saturation warning fires when the likelihood's peak is within this many bits of a sampled method's ceiling.
SATURATION_MARGIN_BITS = 2.0
#: ``gaussian`` g counts as accurate up to this many bits (benchmarks/results/intelligence_accuracy.md).
GAUSSIAN_ACCURATE_BITS = 4.0
#: ``importance`` proposals are tilted this many bits past the likelihood's 99% point.
IMPORTANCE_MARGIN_BITS = 4.0
#: A linear prior's pooled ``importance`` reference tilts toward this many uniform directions per dimension K' of
#: its sphere, beside the pilot and both signs of each axis.
RANDOM_DIRECTIONS_PER_AXIS = 2
#: An ``importance`` pool draws ``n_samples`` policies per pilot while it has at most this many pilots; more
#: pilots (a large library) share ``FULL_SIZE_PILOTS · n_samples`` a level, down to ``MIN_PILOT_SAMPLES`` each.
FULL_SIZE_PILOTS = 16
#: The fewest policies an ``importance`` pilot draws per cross-entropy level.
MIN_PILOT_SAMPLES = 100
#: Where ``importance`` proposals are tilted to under the 2^g potential without a cap.
IMPORTANCE_DEFAULT_TARGET_BITS = 30.0
#: ``smoothing`` recorded for the methods that do not smooth (exact, gaussian).
UNUSED_SMOOTHING = 0.0
#: Reference values compared at once by the linear hard count (draws × reference policies).
COUNT_BLOCK = 4_000_000


#: The concrete g methods; ``"auto"`` (the default) resolves to one of them (module docstring).
G_METHODS = ("exact", "monte_carlo", "gaussian", "importance")
#: Every accepted value of ``g_method``.
G_METHOD_CHOICES = ("auto", *G_METHODS)

#: Largest ξ support that ``g_method="auto"`` enumerates.
AUTO_EXACT_MAX = 2**16
#: The most grid points :func:`likelihood_mass_range` evaluates (8 MB of floats).
MASS_GRID_POINTS = 2**20
#: The quantiles of the likelihood over g that bound "where it puts mass".
MASS_QUANTILES = (0.01, 0.99)


class GSaturationWarning(UserWarning):
    """The likelihood's peak lies where the model's g method saturates (or is inaccurate): g cannot follow it."""


class GAccuracyWarning(UserWarning):
    """Draws that carry posterior weight have g outside the g method's accurate range."""


#: :meth:`GMethod.warn_outside` warns when more than this share of the posterior weight lies outside the range.
OUTSIDE_WEIGHT = 0.01


@dataclass(frozen=True)
class GProblem:
    """What a g method needs of its model, passed in (the method holds no reference back to the model).

    Attributes
    ----------
    worlds : WorldSet
        ζ.
    policy_prior : PolicyPrior
        ξ.
    utility_prior : UtilityLibrary or LinearUtility
        The prior over U: a library's rewards, or a linear prior's features, constant-free basis and initial
        direction.
    likelihood_mass : (float, float) or None
        The likelihood's 1% and 99% points over g (:func:`likelihood_mass_range`); None for the 2^g potential.
    likelihood_cap : float or None
        The 2^g potential's own cap, if it has one.
    mean_policy : ndarray, shape (S, A)
        The world model's mean policy (a linear prior's pilot direction looks from it).
    n_samples : int
        Reference policies M (``importance``: per proposal and per cross-entropy level).
    seed : int
        Seed of the reference sample.
    rtol : float
        The relative tie tolerance (docs/model.md#ties).
    """

    worlds: WorldSet
    policy_prior: PolicyPrior
    utility_prior: object
    likelihood_mass: tuple[float, float] | None
    likelihood_cap: float | None
    mean_policy: np.ndarray
    n_samples: int
    seed: int
    rtol: float

    @property
    def is_library(self) -> bool:
        """Whether U has a finite library prior (else a linear prior)."""
        return isinstance(self.utility_prior, UtilityLibrary)

    @cached_property
    def rewards(self) -> np.ndarray:
        """Library rewards ``r[n, s, a]``."""
        return self.utility_prior.reward_table(self.worlds.n_actions)

    @cached_property
    def features(self) -> np.ndarray:
        """A linear prior's features ``phi[s, a, k]``."""
        return feature_table(self.worlds, self.utility_prior.features)


def likelihood_mass_range(likelihood) -> tuple[float, float]:
    r"""Where a likelihood shape puts its mass over g: the 1% and 99% points of ``P(g′_obs | g)`` over g ≥ 0.

    The likelihood is normalised as a density of g on a grid of 1/16 bit from 0 to g′_obs + 64 bits (the range
    :meth:`~utiliscope.likelihoods.Likelihood.peak` searches), i.e. with a flat prior on g; a grid of at most
    :data:`MASS_GRID_POINTS` points (coarser for a g′_obs of millions of bits, which no policy reaches).

    Returns
    -------
    (float, float)
        The two points in bits.
    """
    top = likelihood.observed + PEAK_SEARCH_BITS
    grid = np.arange(0.0, top, max(1.0 / 16.0, top / MASS_GRID_POINTS))
    log_like = likelihood.logp(grid)
    if not np.isfinite(log_like.max()):  # a scale far below the grid's step: all the mass is at g′_obs
        return float(likelihood.observed), float(likelihood.observed)
    cumulative = np.cumsum(np.exp(log_like - log_like.max()))
    low, high = (grid[np.searchsorted(cumulative, q * cumulative[-1])] for q in MASS_QUANTILES)
    return float(low), float(high)


def choose_g_method(worlds, policy_prior, likelihood_mass: tuple[float, float] | None, n_samples: int) -> str:
    """The rule of the module docstring for ``g_method="auto"``: ``exact``, else ``monte_carlo`` where the
    likelihood's mass (``likelihood_mass``, None for the 2^g potential) lies in its accurate range, else
    ``importance`` (``monte_carlo`` for a ξ it does not support)."""
    S, A = worlds.n_states, worlds.n_actions
    if policy_prior.can_enumerate(S, A) and policy_prior.support_size(S, A) <= AUTO_EXACT_MAX:
        return "exact"
    if likelihood_mass is not None and likelihood_mass[1] <= math.log2(n_samples) - MONTE_CARLO_MARGIN_BITS:
        return "monte_carlo"
    return "importance" if isinstance(policy_prior, UniformDeterministic) else "monte_carlo"


def warn_if_saturated(estimator: GMethod, likelihood) -> None:
    """A :class:`GSaturationWarning` when the likelihood's peak lies above the method's accurate range."""
    if not likelihood.generative:
        return
    peak = likelihood.peak()
    if peak <= estimator.saturation_bits:
        return
    warnings.warn(
        f"the likelihood peaks at g = {peak:.3g} bits, but g_method={estimator.name!r} is accurate only up to "
        f"about {estimator.saturation_bits:.3g} bits (it saturates there), so the posterior of g cannot follow "
        f"the likelihood; {estimator.saturation_fix()}",
        GSaturationWarning,
        stacklevel=4,
    )


class GMethod:
    """One g estimator of a :class:`~utiliscope.models.Utiliscope` and everything that depends on it.

    Parameters
    ----------
    problem : GProblem
        What the method needs of the model: worlds, ξ, prior, likelihood's mass range, world model's mean policy,
        ``n_samples``, ``seed`` and ``rtol``.
    smoothing : float, optional
        NUTS's smoothing temperature for methods that smooth; calibrated on the sample when None.
    """

    name: ClassVar[str]
    #: Whether NUTS needs the step function smoothed (a temperature per utility).
    smooths: ClassVar[bool] = False

    def __init__(self, problem: GProblem, smoothing: float | None = None) -> None:
        self.problem = problem
        self.reference = self.build_reference()
        self.smoothing_bias = None
        if not self.smooths:
            # The method does not smooth; a given number only fills the settings.
            self.smoothing = UNUSED_SMOOTHING if smoothing is None else smoothing
        else:
            self.smoothing = self.calibrate_smoothing() if smoothing is None else smoothing

    # ------------------------------------------------------------------ the reference sample
    def build_reference(self):
        """ξ's reference policies: a plain sample of ``n_samples`` drawn with ``seed`` (``exact`` enumerates)."""
        s = self.problem
        return ReferencePolicies.sample(s.worlds, s.policy_prior, s.n_samples, s.seed)

    @cached_property
    def reference_values(self) -> np.ndarray:
        """``V[m, n]``: the reference policies under every library utility (computed once)."""
        return self.reference.values(self.problem.worlds, self.problem.rewards)

    @cached_property
    def reference_features(self) -> np.ndarray:
        """``mu[m, k]``: feature expectations of the reference policies (linear priors; computed once)."""
        return self.reference.feature_expectations(self.problem.worlds, self.problem.features)

    @property
    def weights(self) -> np.ndarray | None:
        """The count's weights ``w[m]`` or ``w[m, n]``; None for equal ones."""
        return None

    def floor(self, weights: np.ndarray) -> np.ndarray | float:
        """``f`` of the module docstring, per utility, for the count's weights ``w[m, n]``."""
        return 0.0

    # ------------------------------------------------------------------ accuracy and caps
    @property
    def saturation_bits(self) -> float:
        """Bits above which the method saturates or is inaccurate: its largest g less a margin."""
        return self.reference.max_bits() - SATURATION_MARGIN_BITS

    def saturation_fix(self) -> str:
        """What a user does when the likelihood peaks above :attr:`saturation_bits`."""
        return f"raise n_samples ({self.problem.n_samples} now)"

    @property
    def cap_bits(self) -> float:
        """Where the improper 2^g potential is capped: the estimator's own ceiling."""
        return self.reference.max_bits()

    @property
    def accurate_range(self) -> tuple[float, float]:
        """Bits ``(low, high)`` over which the hard count is accurate: up to :attr:`saturation_bits` here."""
        return 0.0, self.saturation_bits

    def describe(self) -> dict:
        """What a fit records of its g: ``g_estimator`` (the method's name) and ``g_accurate_range`` (JSON of
        :attr:`accurate_range`, in bits)."""
        return {"g_estimator": self.name, "g_accurate_range": json.dumps(list(self.accurate_range))}

    def warn_outside(self, g: np.ndarray, weights: np.ndarray | None = None) -> None:
        """A :class:`GAccuracyWarning` when more than ``OUTSIDE_WEIGHT`` of the posterior weight lies on draws
        whose g is outside :attr:`accurate_range`.

        Parameters
        ----------
        g : ndarray
            g of the posterior's draws (``g[n]``, or ``g[n, i]`` under every library entry).
        weights : ndarray, optional
            Each entry's weight, broadcast to g's shape (``P(U_i | pi_n, g′)`` for a library); equal if None.
        """
        g = np.asarray(g, dtype=float)
        w = np.ones(g.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), g.shape)
        low, high = self.accurate_range
        outside = (g < low) | (g > high)
        total = float(np.nansum(w))
        share = float(np.nansum(np.where(outside, w, 0.0))) / total if total > 0 else 0.0
        if share > OUTSIDE_WEIGHT:
            warnings.warn(
                f"{share:.1%} of the posterior weight lies on draws whose g is outside the range where "
                f"g_method={self.name!r} is accurate ({low:.3g} to {high:.3g} bits), so their g and the posterior "
                f"may be off; {self.saturation_fix()}",
                GAccuracyWarning,
                stacklevel=2,
            )

    def extra_coords(self) -> dict:
        """Coordinates the method's Data nodes add to the model."""
        return {}

    # ------------------------------------------------------------------ hard counts (no gradient)
    @cached_property
    def hard_count(self) -> HardCount:
        """The reference under every library entry, sorted once for :meth:`library_bits`."""
        values = self.reference_values
        w = self._count_weights(values.shape)
        return HardCount.build(values, self.weights, self.floor(w))

    def _count_weights(self, shape: tuple[int, int]) -> np.ndarray:
        M, N = shape
        if self.weights is None:
            return np.ones((M, N))
        return np.broadcast_to(np.asarray(self.weights, float).reshape(M, -1), (M, N))

    def library_bits(self, v_pi: np.ndarray) -> np.ndarray:
        """``g[j, n]`` of policy values ``v_pi[j, n]`` under every library utility, by the hard count."""
        return self.hard_count.bits(v_pi, self.problem.rtol)

    def linear_bits(self, v: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """g of draws with values ``v[n]`` under their own directions ``theta[n, k]``: each against the
        reference valued under its theta (one column per draw, in blocks that bound the memory)."""
        mu = self.reference_features
        M = len(mu)
        w = self._count_weights((M, 1))[:, 0]
        floor = float(np.min(self.floor(w[:, None])))
        rtol = self.problem.rtol
        out = np.empty(len(v))
        step = max(1, COUNT_BLOCK // M)
        for start in range(0, len(v), step):
            values = mu @ theta[start : start + step].T
            block = v[start : start + step]
            threshold = block - rtol * np.maximum(np.abs(block), np.abs(values).max(axis=0))
            p = np.minimum((floor + w @ (values >= threshold)) / (floor + w.sum()), 1.0)
            out[start : start + step] = bits(p)
        return out

    # ------------------------------------------------------------------ in-graph g (NUTS)
    def library_tensor(self, v_pi):
        """In-graph g of a tensor policy value ``v_pi[n]`` under every library entry."""
        raise NotImplementedError

    def linear_tensor(self, v_pi, theta, reference_features=None, reference_weights=None, smoothing=None):
        """In-graph g of policy values ``v_pi[j]`` under the linear utility theta.

        ``reference_features``, ``reference_weights`` and ``smoothing`` stand for the method's constants when
        the model passes its Data nodes of them (:meth:`linear_reference_data`).
        """
        mu = self.reference_features if reference_features is None else reference_features
        # One utility, J policies: the reference is a single column that every policy is compared with.
        reference = pt.dot(mu, theta)[:, None]
        weights = self.weights if reference_weights is None else reference_weights
        smoothing = self.smoothing if smoothing is None else smoothing
        return graph.monte_carlo_bits(v_pi, reference, smoothing, self.problem.rtol, weights)

    def linear_reference_data(self) -> tuple:
        """Data nodes standing for the linear reference's constants (inside the model's context); none here."""
        return ()

    # ------------------------------------------------------------------ smoothing (NUTS)
    def calibrate_smoothing(self) -> float | np.ndarray:
        """The widest temperature whose smoothed g stays within 0.1 bits of the sample's hard count
        (:func:`~utiliscope.models.smoothing.calibrated_smoothing`): one per library entry, or one for a linear
        prior on the values under its pilot direction."""
        values, weights, g_range = self._calibration()
        widths, self.smoothing_bias = calibrated_smoothing(values, weights, g_range)
        return widths if self.problem.is_library else float(widths[0])

    def _calibration(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        raise NotImplementedError

    @cached_property
    def count_table(self) -> TabulatedCount:
        """The smoothed count under every library utility, tabulated once (:mod:`utiliscope.models.tabulated`)."""
        return TabulatedCount.build(self.reference_values, self.smoothing, self.weights)

    def _smoothed_library_tensor(self, v_pi):
        """The smoothed (or, at smoothing 0, hard) count of ``monte_carlo`` and ``importance`` in the graph."""
        if np.all(np.asarray(self.smoothing) == 0):
            values = pt.as_tensor(self.reference_values)
            return graph.monte_carlo_bits(v_pi, values, 0.0, self.problem.rtol, self.weights)
        return graph.tabulated_bits(v_pi, self.count_table, self.problem.rtol)

    # ------------------------------------------------------------------ a linear prior's pilot direction
    @cached_property
    def xi_sample_features(self) -> np.ndarray:
        """Feature expectations of ``n_samples`` policies of ξ drawn with ``seed`` (:meth:`pilot_direction`)."""
        s = self.problem
        sample = ReferencePolicies.sample(s.worlds, s.policy_prior, s.n_samples, s.seed)
        return sample.feature_expectations(s.worlds, s.features)

    def pilot_direction(self) -> np.ndarray:
        r"""A linear prior's pilot direction: the one under which the world model's mean policy looks most
        intelligent by the Gaussian approximation of g.

        ``θ̂ ∝ S⁺ (μ(π̄) − m)`` maximises the z-score ``(μ(π̄) − m)·θ / sqrt(θᵀ S θ)``, with m and S the mean and
        covariance of :attr:`xi_sample_features` and π̄ the world model's mean policy; projected into the prior's
        complement of constant directions. When π̄ is no better than ξ's mean under any direction (θ̂ = 0), the
        prior's ``initial_direction``.
        """
        s = self.problem
        mu = self.xi_sample_features
        mu_mean_policy = feature_expectations(s.worlds, s.mean_policy[None], s.features)[0]
        covariance = np.cov(mu.T, bias=True)
        direction = np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ (mu_mean_policy - mu.mean(axis=0))
        try:
            return s.utility_prior.project(direction)
        except ValueError:
            return np.asarray(s.utility_prior.initial_direction)


class Exact(GMethod):
    """Enumerate ξ: g exactly, weights ξ's; a policy beating all of ξ's support counts one bit above the best."""

    name = "exact"

    def build_reference(self) -> ReferencePolicies:
        """ξ's whole support with its weights."""
        return ReferencePolicies.enumerate(self.problem.worlds, self.problem.policy_prior)

    @property
    def weights(self) -> np.ndarray:
        return self.reference.weights

    @property
    def saturation_bits(self) -> float:
        return math.inf

    @property
    def cap_bits(self) -> float:
        return self.reference.max_bits() + 1.0

    def library_tensor(self, v_pi):
        sorted_values, tail = sorted_tails(self.reference_values, self.reference.weights)
        return graph.exact_bits_sorted(v_pi, sorted_values, tail, self.problem.rtol)

    def linear_tensor(self, v_pi, theta, reference_features=None, reference_weights=None, smoothing=None):
        reference = pt.dot(self.reference_features, theta)[:, None]
        return graph.exact_bits(v_pi, reference, self.reference.weights, self.problem.rtol)


class MonteCarlo(GMethod):
    """``(k + 1) / (M + 1)`` over a fixed sample of ξ, smoothed for NUTS; accurate to log2(M) − 3 bits."""

    name = "monte_carlo"
    smooths = True

    def floor(self, weights: np.ndarray) -> np.ndarray | float:
        return 1.0

    @cached_property
    def xi_sample_features(self) -> np.ndarray:
        """The reference itself: the pilot direction's sample and the reference are one sample."""
        return self.reference_features

    def saturation_fix(self) -> str:
        return f"raise n_samples (M = {self.problem.n_samples} now) or use g_method='importance'"

    @property
    def accurate_range(self) -> tuple[float, float]:
        """Up to log2(M) − 3 bits (benchmarks/results/rare_event_accuracy.md)."""
        return 0.0, math.log2(self.reference.size) - MONTE_CARLO_MARGIN_BITS

    def library_tensor(self, v_pi):
        return self._smoothed_library_tensor(v_pi)

    def linear_reference_data(self) -> tuple:
        """The calibrated smoothing as a Data node (it depends on the world model), 0 as a constant."""
        smoothing = pm.Data("reference_smoothing", self.smoothing) if self.smoothing != 0 else 0.0
        return None, None, smoothing

    def _calibration(self):
        """Accurate over the whole range Monte Carlo counts as accurate, whatever the likelihood: a library's
        table, a graph constant, then does not change with g′, so models that differ only in g′ share one
        compiled density."""
        s = self.problem
        pilot = self.reference_values if s.is_library else self.reference_features @ self.pilot_direction()
        values = pilot.reshape(self.reference.size, -1)
        return values, np.ones(len(values)), (0.0, math.log2(len(values)) - MONTE_CARLO_MARGIN_BITS)


class Importance(GMethod):
    """The weighted count of one pool of policies drawn from proposals tilted toward pilot utilities (g of
    15–40 bits): a library's entries, or directions spread over a linear prior's sphere."""

    name = "importance"
    smooths = True

    def build_reference(self) -> ImportanceReference:
        """One pool for every utility (:meth:`ImportanceReference.pooled`), tilted toward :meth:`pilot_rewards`
        and valued once."""
        s = self.problem
        check_importance_prior(s.policy_prior)
        pilots = self.pilot_rewards()
        return ImportanceReference.pooled(
            s.worlds, pilots, self.target_bits, self.pilot_samples(len(pilots)), s.seed
        )

    def pilot_samples(self, n_pilots: int) -> int:
        """Policies per pilot and level: ``n_samples`` up to ``FULL_SIZE_PILOTS`` pilots, else their share of
        ``FULL_SIZE_PILOTS · n_samples`` (at least ``MIN_PILOT_SAMPLES``), so that the pool, and with it the
        build and every count, grows with ``n_samples``, not with the library (pilots of similar utilities share
        their elites, :func:`~utiliscope.rare_event.shared_cross_entropy_levels`)."""
        n = self.problem.n_samples
        if n_pilots <= FULL_SIZE_PILOTS:
            return n
        return max(MIN_PILOT_SAMPLES, math.ceil(FULL_SIZE_PILOTS * n / n_pilots))

    def linear_directions(self) -> np.ndarray:
        """Where a linear prior's pooled proposals are tilted, ``theta[c, K]``: the pilot direction, both signs
        of each axis of the prior's constant-free basis B, and ``RANDOM_DIRECTIONS_PER_AXIS · K'`` uniform
        directions drawn with ``seed``, so that every direction on the sphere has a proposal near it."""
        basis = np.asarray(self.problem.utility_prior.basis)
        n_directions = basis.shape[1]
        rng = np.random.default_rng(np.random.SeedSequence(self.problem.seed, spawn_key=(1,)))
        z = np.concatenate(
            [
                np.eye(n_directions),
                -np.eye(n_directions),
                rng.standard_normal((RANDOM_DIRECTIONS_PER_AXIS * n_directions, n_directions)),
            ]
        )
        spread = z @ basis.T
        spread /= np.linalg.norm(spread, axis=1, keepdims=True)
        return np.concatenate([self.pilot_direction()[None], spread])

    @property
    def target_bits(self) -> float:
        """Bits the proposals climb to: 4 bits past the likelihood's 99% point; for the 2^g potential its
        ``cap``, or 30 bits without one."""
        mass, cap = self.problem.likelihood_mass, self.problem.likelihood_cap
        if mass is not None:
            target = mass[1] + IMPORTANCE_MARGIN_BITS
        else:
            target = IMPORTANCE_DEFAULT_TARGET_BITS if cap is None else float(cap)
        # No policy is more than log2 of ξ's support above the rest: proposals climb no further than that.
        worlds = self.problem.worlds
        support_bits = math.log2(self.problem.policy_prior.support_size(worlds.n_states, worlds.n_actions))
        return min(target, support_bits + IMPORTANCE_MARGIN_BITS)

    @property
    def accurate_range(self) -> tuple[float, float]:
        """Up to the bits the proposals climb to (:attr:`target_bits`), within the ceilings' margin."""
        return 0.0, min(self.target_bits, self.saturation_bits)

    def pilot_rewards(self) -> np.ndarray:
        """The utilities the pool is tilted toward, ``r[c, s, a]``: a library's non-constant entries (a constant
        one gives every policy 0 bits), or the linear prior's :meth:`linear_directions`."""
        s = self.problem
        if s.is_library:
            _, constant = canonical_forms(s.rewards.reshape(len(s.rewards), -1))
            return s.rewards[~constant]
        return np.einsum("sak,ck->csa", s.features, self.linear_directions())

    @property
    def weights(self) -> np.ndarray:
        return self.reference.weights

    def floor(self, weights: np.ndarray) -> np.ndarray | float:
        return weights.min(axis=0)

    def extra_coords(self) -> dict:
        return {} if self.problem.is_library else {"reference": list(range(self.reference.size))}

    def library_tensor(self, v_pi):
        return self._smoothed_library_tensor(v_pi)

    def linear_reference_data(self) -> tuple:
        """Features, weights and smoothing as Data nodes: the proposals are tilted toward a pilot direction
        found from the world model, so as graph constants they would make each model of a study a structure of
        its own, compiled anew."""
        smoothing = pm.Data("reference_smoothing", self.smoothing) if self.smoothing != 0 else 0.0
        features = pm.Data("reference_features", self.reference_features, dims=("reference", "feature"))
        weights = pm.Data("reference_weights", self.reference.weights[:, 0], dims="reference")
        return features, weights, smoothing

    def _calibration(self):
        """Accurate over the likelihood's mass range (the proposals are tilted for it already; for the 2^g
        potential, 0 bits to :attr:`target_bits`)."""
        s = self.problem
        values = (
            self.reference_values if s.is_library else self.reference_features @ self.pilot_direction()[:, None]
        )
        return values, self.reference.weights, s.likelihood_mass or (0.0, self.target_bits)


class Gaussian(GMethod):
    """The normal tail of ξ's values with the sample's mean and spread (linear utilities: their moments)."""

    name = "gaussian"

    @property
    def saturation_bits(self) -> float:
        return GAUSSIAN_ACCURATE_BITS

    def saturation_fix(self) -> str:
        return "use g_method='importance' (or 'exact' when ξ is small enough to enumerate)"

    @property
    def cap_bits(self) -> float:
        return GAUSSIAN_CAP_BITS

    @cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        mu = self.reference_features
        return mu.mean(axis=0), np.cov(mu.T, bias=True)

    def library_bits(self, v_pi: np.ndarray) -> np.ndarray:
        return bits_from_values(v_pi, self.reference_values, None, "gaussian", self.problem.rtol)[0]

    def linear_bits(self, v: np.ndarray, theta: np.ndarray) -> np.ndarray:
        mean, covariance = self._moments
        sd = np.sqrt(np.maximum(np.einsum("nk,kl,nl->n", theta, covariance, theta), 0.0))
        scale = np.maximum(np.abs(v), np.abs(self.reference_features @ theta.T).max(axis=0))
        return gaussian_bits(v, theta @ mean, sd, scale, self.problem.rtol)

    def library_tensor(self, v_pi):
        values = self.reference_values
        scale = pt.maximum(pt.abs(v_pi), np.abs(values).max(axis=0))
        return graph.gaussian_bits(v_pi, values.mean(axis=0), values.std(axis=0), scale, self.problem.rtol)

    def linear_tensor(self, v_pi, theta, reference_features=None, reference_weights=None, smoothing=None):
        mu = self.reference_features
        mean, covariance = self._moments
        sd = pt.sqrt(pt.maximum(pt.dot(theta, pt.dot(covariance, theta)), 0.0))
        scale = pt.maximum(pt.abs(v_pi), pt.abs(pt.dot(mu, theta)).max())
        return graph.gaussian_bits(v_pi, pt.dot(mean, theta), sd, scale, self.problem.rtol)


#: The g methods by name.
G_METHOD_CLASSES: dict[str, type[GMethod]] = {cls.name: cls for cls in (Exact, MonteCarlo, Importance, Gaussian)}


def make_g_method(g_method: str, likelihood, world_model, smoothing: float | None, **problem) -> GMethod:
    """The g method object of a model: ``g_method`` (``"auto"`` resolved by :func:`choose_g_method`) on the
    :class:`GProblem` of ``problem`` (worlds, policy_prior, utility_prior, n_samples, seed, rtol), the likelihood
    and the world model; warns (:func:`warn_if_saturated`) where the likelihood peaks past its accurate range."""
    mass = likelihood_mass_range(likelihood) if likelihood.generative else None
    if g_method == "auto":
        g_method = choose_g_method(problem["worlds"], problem["policy_prior"], mass, problem["n_samples"])
    cap = getattr(likelihood, "cap", None)
    method = G_METHOD_CLASSES[g_method](
        GProblem(likelihood_mass=mass, likelihood_cap=cap, mean_policy=world_model.mean(), **problem), smoothing
    )
    warn_if_saturated(method, likelihood)
    return method


__all__ = [
    "AUTO_EXACT_MAX",
    "G_METHODS",
    "G_METHOD_CHOICES",
    "G_METHOD_CLASSES",
    "Exact",
    "GAccuracyWarning",
    "GMethod",
    "GProblem",
    "GSaturationWarning",
    "Gaussian",
    "Importance",
    "MonteCarlo",
    "choose_g_method",
    "likelihood_mass_range",
    "make_g_method",
    "warn_if_saturated",
]
