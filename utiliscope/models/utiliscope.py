r"""The Utiliscope: a PyMC model whose graph is the proposal's Bayes net (MODEL.md).

.. math::

    P(U \mid WM, g') \propto P(U) \int P(g' \mid g(\pi, U))\, P(\pi \mid WM)\, d\pi

Nodes: ``U`` (the utility), ``pi`` (the operator's policy), ``g`` (its intelligence under U, deterministic) and
``g_prime`` (the observed, noisy intelligence). Discrete latents are marginalised exactly rather than sampled:

* a **utility library** is summed out inside ``g_prime``'s likelihood (log-sum-exp over entries), and ``U`` is
  the Deterministic ``P(U = i | pi, g')`` per draw — its average over draws is the Rao–Blackwellised posterior
  returned by :meth:`Utiliscope.utility_posterior`;
* a **finite world model** is summed out the same way, over its candidate policies (dim ``policy``).

With a library prior *and* a finite world model nothing continuous is left: :meth:`Utiliscope.exact_posterior`
gives the answer in closed form, and :meth:`Utiliscope.fit` draws candidate policies i.i.d. from their exact
posterior (no MCMC is needed), recording ``U = P(U | pi, g')`` of each draw like the sampled case. With
Dirichlet rows ``fit`` draws pi (and theta) i.i.d. from the priors and weights each draw by its evidence, or
tempers from them (:mod:`utiliscope.models.structure_fit`), with the hard g of :meth:`Utiliscope.hard_g`;
the PyMC model and its smoothed g serve NUTS, the cross-check.

Choosing the g method
---------------------
The model is only as good as its g where the likelihood puts mass. ``g_method="auto"`` (the default) is resolved
at construction to a concrete method, stored in ``scope.g_method`` and in the settings of every fit:

1. ``exact`` when ξ can be enumerated and has at most ``AUTO_EXACT_MAX`` = 2^16 = 65,536 policies (the sorted
   table of their values stays small: 0.5 MB per utility, one binary search per utility per logp);
2. otherwise ``monte_carlo`` when the likelihood's mass lies where it is accurate: the likelihood's 99% point
   (of ``P(g′_obs | g)`` normalised over g ≥ 0, :func:`likelihood_mass_range`) is at most
   ``log2(M) − 3`` bits (about 7 bits at M = 1000: ``benchmarks/rare_event_accuracy.py`` measures a mean error
   of 0.1 bits below 4 bits, errors of 0.5–1.5 bits at 8–10 bits and saturation at log2(M + 1) beyond);
3. otherwise ``importance`` (ξ uniform over deterministic policies), whose proposals are tilted up to 4 bits
   past that 99% point; for other ξ, which it does not support, ``monte_carlo``.

``gaussian`` is never chosen: its error is already 0.4 bits below 4 bits on gridworlds (same benchmark), where
``monte_carlo`` is more accurate. The 2^g potential (``Exponential``) has no mass range; it gets ``exact`` or
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
from functools import cached_property

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp, softmax

from utiliscope._validation import check_count, check_positive, check_seed
from utiliscope._version import __version__
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.intelligence import RTOL, bits_from_values, check_method
from utiliscope.likelihoods import PEAK_SEARCH_BITS, as_likelihood
from utiliscope.models import graph
from utiliscope.models.base import PosteriorModel, utility_array
from utiliscope.models.iid_engine import impossible_evidence
from utiliscope.models.reference import HardCount, ImportanceReference, ReferencePolicies, sorted_tails
from utiliscope.models.smoothing import calibrated_smoothing
from utiliscope.models.structure_fit import fit_structure
from utiliscope.models.tabulated import TabulatedCount
from utiliscope.policies import UniformDeterministic, as_policy_prior
from utiliscope.rare_event import check_importance_prior
from utiliscope.world_model import WorldModel
from utiliscope.worlds.mdp import as_world_set

#: The concrete g methods; ``"auto"`` (the default) resolves to one of them (module docstring).
G_METHODS = ("exact", "monte_carlo", "gaussian", "importance")
#: Every accepted value of ``g_method``.
G_METHOD_CHOICES = ("auto", *G_METHODS)

#: g used by the improper 2^g potential where an estimator has no finite ceiling (the Gaussian one).
GAUSSIAN_CAP_BITS = 1024.0
#: Largest ξ support that ``g_method="auto"`` enumerates.
AUTO_EXACT_MAX = 2**16
#: ``monte_carlo`` with M reference policies counts as accurate up to log2(M) minus this many bits.
MONTE_CARLO_MARGIN_BITS = 3.0
#: The warning fires when the likelihood's peak is within this many bits of a sampled method's ceiling.
SATURATION_MARGIN_BITS = 2.0
#: ``gaussian`` g counts as accurate up to this many bits (benchmarks/intelligence_accuracy.py).
GAUSSIAN_ACCURATE_BITS = 4.0
#: ``importance`` proposals are tilted this many bits past the likelihood's 99% point.
IMPORTANCE_MARGIN_BITS = 4.0
#: Where ``importance`` proposals are tilted to under the 2^g potential without a cap.
IMPORTANCE_DEFAULT_TARGET_BITS = 30.0
#: ``smoothing`` recorded for the methods that do not smooth (exact, gaussian); ``monte_carlo`` and ``importance``
#: calibrate theirs on their sample (:mod:`utiliscope.models.smoothing`).
UNUSED_SMOOTHING = 0.0
#: The quantiles of the likelihood over g that bound "where it puts mass".
MASS_QUANTILES = (0.01, 0.99)


def truth_g_method(worlds, policy_prior=None) -> str:
    """The most accurate g method available to measure a known agent's g* when the model's is ``"auto"``.

    ``exact`` when ξ can be enumerated at all (``policy_prior.can_enumerate``), else ``importance`` for ξ uniform
    over deterministic policies, else ``monte_carlo``. Used where g* is needed before the likelihood, and so the
    model's own resolved method, exists (a spec whose likelihood is observed at the agent's g*).
    """
    worlds, prior = as_world_set(worlds), as_policy_prior(policy_prior)
    if prior.can_enumerate(worlds.n_states, worlds.n_actions):
        return "exact"
    return "importance" if isinstance(prior, UniformDeterministic) else "monte_carlo"


class GSaturationWarning(UserWarning):
    """The likelihood's peak lies where the model's g method saturates (or is inaccurate): g cannot follow it."""


def likelihood_mass_range(likelihood) -> tuple[float, float]:
    r"""Where a likelihood shape puts its mass over g: the 1% and 99% points of ``P(g′_obs | g)`` over g ≥ 0.

    The likelihood is normalised as a density of g on a grid of 1/16 bit from 0 to g′_obs + 64 bits (the range
    :meth:`~utiliscope.likelihoods.Likelihood.peak` searches), i.e. with a flat prior on g.

    Returns
    -------
    (float, float)
        The two points in bits.
    """
    grid = np.arange(0.0, likelihood.observed + PEAK_SEARCH_BITS, 1.0 / 16.0)
    log_like = likelihood.logp(grid)
    cumulative = np.cumsum(np.exp(log_like - log_like.max()))
    low, high = (grid[np.searchsorted(cumulative, q * cumulative[-1])] for q in MASS_QUANTILES)
    return float(low), float(high)


class Utiliscope(PosteriorModel):
    """Bayesian IRL from the intelligence of the operator's policy.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ.
    world_model : WorldModel
        P(pi | WM): Dirichlet rows (from demonstrations or given alpha), or a finite weighted set of policies.
    utility_prior : UtilityLibrary or LinearUtility
        P(U) ∝ 2^(−λ K(U)).
    likelihood : Likelihood
        P(g′ | g), e.g. ``likelihoods.AsymmetricLaplace(observed=8.0)``.
    policy_prior : PolicyPrior, optional
        ξ; default uniform over deterministic policies.
    g_method : {"auto", "exact", "monte_carlo", "gaussian", "importance"}
        How g is computed inside the graph (see :mod:`utiliscope.models.graph`). ``"auto"`` picks the cheapest
        method accurate where the likelihood puts mass (module docstring); :attr:`g_method` holds the choice.
    seed : int
        Seed of ξ's reference sample for ``monte_carlo``, ``gaussian`` and ``importance`` (fixed once per model:
        common random numbers, so logp is a deterministic function of pi and U).
    n_samples : int
        Reference policies M for ``monte_carlo`` and ``gaussian``; for ``importance``, policies per
        cross-entropy level and M per pilot utility (each library entry is one; a linear prior has one pilot
        direction, :meth:`pilot_direction`).
    smoothing : float, optional
        NUTS only (the other engines count with the hard step). Temperature of the smoothed Monte Carlo step of
        ``monte_carlo`` and ``importance`` in the PyMC model, as a fraction of the spread of reference values. By
        default calibrated on the model's own sample, per library entry (one value for a linear prior, on the
        values under its pilot direction): the widest width, from 0.05 down to 0.0022, whose smoothed g stays
        within 0.1 bits of the same sample's hard g in every one-bit window of the likelihood's mass
        (``importance``) or of 0 to log2(M) − 3 bits (``monte_carlo``, so that it does not change with g′;
        :mod:`utiliscope.models.smoothing`). Fixed widths understated g by up to 4 bits where a value
        distribution's top is compressed (``benchmarks/smoothing_bias.py``); narrower smoothing makes the surface
        rougher for NUTS.
    rtol : float
        MODEL.md's relative tie tolerance.

    Attributes
    ----------
    g_method : str
        The concrete method in use (``"auto"`` resolved).
    g_method_requested : str
        The ``g_method`` argument as given.
    smoothing : float or ndarray
        The smoothing in use: the argument, or the calibrated default (an array of one per library entry; 0.0
        for ``exact`` and ``gaussian``, which do not smooth).
    smoothing_bias : ndarray or None
        With calibrated smoothing, per pilot utility (library entry, or the linear prior's pilot direction) the
        largest one-bit window's mean bias in bits of the smoothed g against the sample's hard g; an entry above
        0.1 is one whose sample's top is too compressed for the narrowest width. None otherwise.

    Warns
    -----
    GSaturationWarning
        When the likelihood's peak lies where the g method saturates (module docstring).

    Examples
    --------
    >>> import utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    >>> library = us.priors.UtilityLibrary.from_features(world.features)
    >>> agent = us.agents.Boltzmann(library.rewards[1], beta=5.0)
    >>> demos = agent.demonstrate(world, n_trajectories=20, horizon=10, seed=0)
    >>> scope = us.Utiliscope(world, us.WorldModel.from_demonstrations(demos), library,
    ...                       us.likelihoods.AsymmetricLaplace(observed=4.0))
    >>> sorted(v for v in scope.model.named_vars if v in {"U", "pi", "g", "g_prime"})
    ['U', 'g', 'g_prime', 'pi']
    """

    def __init__(
        self,
        worlds,
        world_model,
        utility_prior,
        likelihood,
        policy_prior=None,
        g_method: str = "auto",
        seed: int = 0,
        *,
        n_samples: int = 1000,
        smoothing: float | None = None,
        rtol: float = RTOL,
    ) -> None:
        self.worlds = as_world_set(worlds)
        if not isinstance(world_model, WorldModel):
            raise TypeError(
                f"world_model is a {type(world_model).__name__}; it must be a WorldModel "
                "(WorldModel.from_demonstrations, WorldModel.from_policies or WorldModel.dirichlet)"
            )
        self.world_model = world_model
        self.utility_prior = utility_prior
        self.likelihood = as_likelihood(likelihood)
        self.policy_prior = as_policy_prior(policy_prior)
        self.g_method_requested = check_method(g_method, G_METHOD_CHOICES, name="g_method")
        self.seed = check_seed(seed)
        self.n_samples = check_count(n_samples, "n_samples")
        smoothing = None if smoothing is None else check_positive(smoothing, "smoothing", allow_zero=True)
        self.rtol = check_positive(rtol, "rtol", allow_zero=True)
        world_model.check_compatible(self.worlds)
        self._check_prior()
        self.g_method = self._resolve_g_method() if g_method == "auto" else g_method
        self.smoothing_bias = None
        if self.g_method == "importance":
            check_importance_prior(self.policy_prior)
            pilots = self._pilot_rewards()
            self.reference = ImportanceReference.for_rewards(
                self.worlds, pilots, self.importance_target_bits, self.n_samples, self.seed
            )
            if smoothing is None:
                pilot = self.reference_values if self.is_library else self.reference.values(self.worlds, pilots)
                smoothing = self._calibrated_smoothing(pilot)
        else:
            self.reference = ReferencePolicies.for_method(
                self.worlds, self.policy_prior, self.g_method, self.n_samples, self.seed
            )
            if smoothing is None and self.g_method == "monte_carlo":
                pilot = (
                    self.reference_values if self.is_library else self.reference_features @ self.pilot_direction()
                )
                smoothing = self._calibrated_smoothing(pilot.reshape(self.reference.size, -1))
        # exact and gaussian g do not smooth; the number only fills the settings.
        self.smoothing = UNUSED_SMOOTHING if smoothing is None else smoothing
        self._warn_if_saturated()

    # ------------------------------------------------------------------ choosing the g method
    @cached_property
    def likelihood_mass(self) -> tuple[float, float] | None:
        """:func:`likelihood_mass_range` of the likelihood, or None for the 2^g potential (no mass range)."""
        return likelihood_mass_range(self.likelihood) if self.likelihood.generative else None

    def _resolve_g_method(self) -> str:
        """The rule of the module docstring for ``g_method="auto"``."""
        S, A = self.worlds.n_states, self.worlds.n_actions
        prior = self.policy_prior
        if prior.can_enumerate(S, A) and prior.support_size(S, A) <= AUTO_EXACT_MAX:
            return "exact"
        mass = self.likelihood_mass
        if mass is not None and mass[1] <= math.log2(self.n_samples) - MONTE_CARLO_MARGIN_BITS:
            return "monte_carlo"
        return "importance" if isinstance(prior, UniformDeterministic) else "monte_carlo"

    def _calibrated_smoothing(self, values: np.ndarray) -> float | np.ndarray:
        """The default smoothing of ``monte_carlo`` and ``importance`` g
        (:func:`~utiliscope.models.smoothing.calibrated_smoothing`) on reference values ``values[m, n]``: one per
        library entry, or, for a linear prior, one calibrated on the values under its pilot direction (the
        tilted sample's own for ``importance``, :meth:`pilot_direction` for ``monte_carlo``).

        ``importance`` is made accurate over the likelihood's mass range (its proposals are tilted for it
        already; for the 2^g potential, 0 bits to :attr:`importance_target_bits`). ``monte_carlo`` is made
        accurate over the whole range it counts as accurate, 0 to log2(M) − 3 bits, whatever the likelihood: so
        that a library's table, a graph constant, does not change with g′, and models that differ only in g′
        (a study, ``pm.set_data``) share one compiled density and one posterior surface.
        """
        if self.g_method == "importance":
            weights = self.reference.weights
            g_range = self.likelihood_mass or (0.0, self.importance_target_bits)
        else:
            weights = np.ones(len(values))
            g_range = (0.0, math.log2(len(values)) - MONTE_CARLO_MARGIN_BITS)
        widths, self.smoothing_bias = calibrated_smoothing(values, weights, g_range)
        return widths if self.is_library else float(widths[0])

    @property
    def importance_target_bits(self) -> float:
        """Bits the ``importance`` proposals climb to: 4 bits past the likelihood's 99% point.

        For the 2^g potential: its ``cap``, or 30 bits without one.
        """
        if self.likelihood_mass is not None:
            return self.likelihood_mass[1] + IMPORTANCE_MARGIN_BITS
        cap = getattr(self.likelihood, "cap", None)
        return IMPORTANCE_DEFAULT_TARGET_BITS if cap is None else float(cap)

    def _pilot_rewards(self) -> np.ndarray:
        """The utilities ``importance`` tilts toward: each library entry, or the linear prior's pilot direction."""
        if self.is_library:
            return self.rewards
        return (self.features @ self.pilot_direction())[None]

    def pilot_direction(self) -> np.ndarray:
        r"""A linear prior's pilot direction: the one under which the world model's mean policy looks most
        intelligent by the Gaussian approximation of g.

        ``θ̂ ∝ S⁺ (μ(π̄) − m)`` maximises the z-score ``(μ(π̄) − m)·θ / sqrt(θᵀ S θ)``, with m and S the mean and
        covariance of the feature expectations of ``n_samples`` policies of ξ (drawn with ``seed``) and π̄ the
        world model's mean policy; projected into the prior's complement of constant directions. When π̄ is no
        better than ξ's mean under any direction (θ̂ = 0), the prior's ``initial_direction``.
        """
        mu = self._xi_sample_features
        mu_mean_policy = feature_expectations(self.worlds, self.world_model.mean()[None], self.features)[0]
        covariance = np.cov(mu.T, bias=True)
        direction = np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ (mu_mean_policy - mu.mean(axis=0))
        try:
            return self.utility_prior.project(direction)
        except ValueError:
            return np.asarray(self.utility_prior.initial_direction)

    @property
    def saturation_bits(self) -> float:
        """Bits above which the model's g method saturates or is inaccurate (+inf for ``exact``).

        ``monte_carlo``: log2(M + 1) − 2; ``gaussian``: 4; ``importance``: the largest ceiling − 2.
        """
        if self.g_method == "exact":
            return math.inf
        if self.g_method == "gaussian":
            return GAUSSIAN_ACCURATE_BITS
        return self.reference.max_bits() - SATURATION_MARGIN_BITS

    def _warn_if_saturated(self) -> None:
        """Raise a :class:`GSaturationWarning` when the likelihood's peak lies above :attr:`saturation_bits`."""
        if not self.likelihood.generative:
            return
        peak = self.likelihood.peak()
        if peak <= self.saturation_bits:
            return
        fix = {
            "monte_carlo": f"raise n_samples (M = {self.n_samples} now) or use g_method='importance'",
            "gaussian": "use g_method='importance' (or 'exact' when ξ is small enough to enumerate)",
            "importance": f"raise n_samples ({self.n_samples} now)",
        }[self.g_method]
        warnings.warn(
            f"the likelihood peaks at g = {peak:.3g} bits, but g_method={self.g_method!r} is accurate only up to "
            f"about {self.saturation_bits:.3g} bits (it saturates there), so the posterior of g cannot follow the "
            f"likelihood; {fix}",
            GSaturationWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ problem pieces
    @property
    def is_finite_world_model(self) -> bool:
        """Whether P(pi | WM) is a finite set of policies (marginalised) rather than Dirichlet rows."""
        return self.world_model.kind == "finite"

    def _check_prior(self) -> None:
        kind = getattr(self.utility_prior, "kind", None)
        if kind not in ("library", "linear"):
            raise TypeError(
                "utility_prior must be a us.priors.UtilityLibrary or us.priors.LinearUtility; "
                f"got {type(self.utility_prior).__name__}"
            )
        S, A = self.worlds.n_states, self.worlds.n_actions
        if kind == "library":
            rewards = self.utility_prior.reward_table(A)
            if rewards.shape[1:] != (S, A):
                raise ValueError(
                    f"utility_prior holds rewards of shape {rewards.shape[1:]} but the worlds have "
                    f"{S} states and {A} actions; build the library over the worlds' states and actions"
                )
        else:
            phi = np.asarray(self.utility_prior.features)
            if phi.shape[0] != S or (phi.ndim == 3 and phi.shape[1] != A):
                raise ValueError(
                    f"utility_prior has features of shape {phi.shape} but the worlds have {S} states and "
                    f"{A} actions; build the prior from the worlds' features"
                )

    @cached_property
    def reference_values(self) -> np.ndarray:
        """``V[m, n]``: ξ's reference policies under every library utility (computed once)."""
        return self.reference.values(self.worlds, self.rewards)

    @cached_property
    def count_table(self) -> TabulatedCount:
        """The smoothed count of ``monte_carlo`` and ``importance`` g under every library utility, tabulated once
        (:mod:`utiliscope.models.tabulated`): the graph interpolates it rather than sum M sigmoids per utility."""
        return TabulatedCount.build(self.reference_values, self.smoothing, self._weights)

    @cached_property
    def reference_features(self) -> np.ndarray:
        """``mu[m, k]``: feature expectations of ξ's reference policies (linear priors; computed once)."""
        if self.g_method == "monte_carlo":
            return self._xi_sample_features
        return self.reference.feature_expectations(self.worlds, self.features)

    @cached_property
    def _xi_sample_features(self) -> np.ndarray:
        """Feature expectations of ``n_samples`` policies of ξ drawn with ``seed``: :meth:`pilot_direction`'s
        sample; for ``monte_carlo`` its reference itself, so that the two are computed once and are one sample."""
        if self.g_method == "monte_carlo":
            sample = self.reference
        else:
            sample = ReferencePolicies.for_method(
                self.worlds, self.policy_prior, "monte_carlo", self.n_samples, self.seed
            )
        return sample.feature_expectations(self.worlds, self.features)

    @property
    def g_cap(self) -> float:
        """Bits at which the improper ``Exponential`` 2^g potential is capped (MODEL.md).

        ``exact``: −log2 of ξ's smallest weight plus one bit (a policy beating all of ξ's support counts as one
        halving better than the best); ``monte_carlo``: log2(M + 1), the estimator's own ceiling;
        ``importance``: the largest of its per-utility ceilings; ``gaussian``: 1024 bits. A user-given
        ``Exponential(cap=...)`` takes precedence.
        """
        user_cap = getattr(self.likelihood, "cap", None)
        if user_cap is not None:
            return float(user_cap)
        if self.g_method == "gaussian":
            return GAUSSIAN_CAP_BITS
        return self.reference.max_bits() + (1.0 if self.g_method == "exact" else 0.0)

    # ------------------------------------------------------------------ the graph
    def _coords(self) -> dict:
        coords = {"state": list(self.worlds.state_names), "action": list(self.worlds.action_names)}
        if self.is_library:
            coords["utility"] = list(self.utility_prior.names)
        else:
            coords["feature"] = list(self.utility_prior.feature_names)
        if self.is_finite_world_model:
            coords["policy"] = [f"p{j}" for j in range(self.world_model.policies.shape[0])]
        if not self.is_library and self.g_method == "importance":
            coords["reference"] = list(range(self.reference.size))
        return coords

    def g_library_tensor(self, v_pi):
        """In-graph g of a tensor policy value ``v_pi[n]`` under every library entry, as the model computes it."""
        values = self.reference_values
        if self.g_method == "exact":
            sorted_values, tail = sorted_tails(values, self.reference.weights)
            return graph.exact_bits_sorted(v_pi, sorted_values, tail, self.rtol)
        if self.g_method in ("monte_carlo", "importance"):
            if np.all(np.asarray(self.smoothing) == 0):
                return graph.monte_carlo_bits(v_pi, pt.as_tensor(values), 0.0, self.rtol, self._weights)
            return graph.tabulated_bits(v_pi, self.count_table, self.rtol)
        scale = pt.maximum(pt.abs(v_pi), np.abs(values).max(axis=0))
        return graph.gaussian_bits(v_pi, values.mean(axis=0), values.std(axis=0), scale, self.rtol)

    def g_linear_tensor(self, v_pi, theta, reference_features=None, reference_weights=None, smoothing=None):
        """In-graph g of policy values ``v_pi[j]`` under the linear utility theta, as the model computes it.

        ``reference_features``, ``reference_weights`` and ``smoothing`` (tensors, for ``monte_carlo`` and
        ``importance``) stand for :attr:`reference_features`, the importance weights and :attr:`smoothing`; the
        model passes its Data nodes of them.
        """
        mu = self.reference_features if reference_features is None else reference_features
        if self.g_method == "gaussian":
            mean = pt.dot(mu.mean(axis=0), theta)
            sd = pt.sqrt(pt.maximum(pt.dot(theta, pt.dot(np.cov(mu.T, bias=True), theta)), 0.0))
            scale = pt.maximum(pt.abs(v_pi), pt.abs(pt.dot(mu, theta)).max())
            return graph.gaussian_bits(v_pi, mean, sd, scale, self.rtol)
        # One utility, J policies: the reference is a single column that every policy is compared with.
        reference = pt.dot(mu, theta)[:, None]
        if self.g_method == "exact":
            return graph.exact_bits(v_pi, reference, self.reference.weights, self.rtol)
        weights = self._weights if reference_weights is None else reference_weights
        smoothing = self.smoothing if smoothing is None else smoothing
        return graph.monte_carlo_bits(v_pi, reference, smoothing, self.rtol, weights)

    @property
    def _weights(self) -> np.ndarray | None:
        """The fixed importance weights ``w[m, n]`` for ``importance``; None (all equal) for ``monte_carlo``."""
        return self.reference.weights if self.g_method == "importance" else None

    def _likelihood_logp(self, value, g):
        """log P(g′ = value | g), elementwise in g; the improper 2^g potential is capped at :attr:`g_cap`."""
        if not self.likelihood.generative:
            g = pt.minimum(g, np.float64(self.g_cap))
        return self.likelihood.logp_tensor(g, value=value)

    def _observe(self, g, observed, log_weights=None):
        """Add the observed node ``g_prime``.

        With one component it is the likelihood's own PyMC variable; with several (library entries and/or
        candidate policies, weighted by ``log_weights``) it is their exact mixture, log-sum-exp of
        ``log w + log P(g′ | g)``: the discrete latents are marginalised, not sampled.
        """
        if log_weights is None:
            if not self.likelihood.generative:
                g = pt.minimum(g, np.float64(self.g_cap))
            return self.likelihood.create_variable(g, name="g_prime", observed=observed)

        def mixture_logp(value, g, log_w):
            return pt.logsumexp(log_w + self._likelihood_logp(value, g))

        def mixture_random(g, log_w, rng=None, size=None):
            """Pick a component with probability w, then draw g′ from the likelihood at its g."""
            rng = np.random.default_rng(rng)
            component = rng.choice(len(log_w), p=softmax(log_w))
            return np.asarray(self.likelihood.random(g[component], rng), dtype=float)

        return pm.CustomDist(
            "g_prime",
            g,
            pt.as_tensor(log_weights),
            logp=mixture_logp,
            random=mixture_random if self.likelihood.generative else None,
            signature="(n),(n)->()",
            shape=(),
            observed=observed,
        )

    def _policy(self):
        """The ``pi`` node: Dirichlet rows (latent), or the finite candidates (data, marginalised)."""
        if self.is_finite_world_model:
            return pm.Data("pi", self.world_model.policies, dims=("policy", "state", "action"))
        alpha = pm.Data("alpha", self.world_model.alpha, dims=("state", "action"))
        return pm.Dirichlet("pi", a=alpha, dims=("state", "action"))

    def build_model(self) -> pm.Model:
        """Build the PyMC model (see the module docstring for its nodes)."""
        with pm.Model(coords=self._coords()) as model:
            pi = self._policy()
            # g′_obs lives in a Data node: a study changes it with pm.set_data, without rebuilding.
            observed = pm.Data("g_prime_observed", float(self.likelihood.observed or 0.0))
            if self.is_library:
                self._build_library(pi, observed)
            else:
                self._build_linear(pi, observed)
        return model

    def _build_library(self, pi, observed) -> None:
        log_prior = self.utility_prior.log_prior
        pm.Data("rewards", self.rewards, dims=("utility", "state", "action"))
        pm.Data("description_bits", self.utility_prior.description_bits, dims="utility")
        if self.is_finite_world_model:
            g_table = self._g_table_finite
            g = pm.Deterministic("g", pt.as_tensor(g_table), dims=("policy", "utility"))
            log_w = np.log(self.world_model.weights)[:, None] + log_prior[None, :]
            self._observe(g.ravel(), observed, log_w.ravel())
            joint = log_w + self._likelihood_logp(observed, g)
            pm.Deterministic("U", pt.exp(joint - pt.logsumexp(joint)).sum(axis=0), dims="utility")
            return
        flat = self.rewards.reshape(len(log_prior), -1)
        v_pi = pt.dot(flat, graph.occupancy_tensor(self.worlds, pi).ravel())
        g = pm.Deterministic("g", self.g_library_tensor(v_pi), dims="utility")
        self._observe(g, observed, log_prior)
        joint = log_prior + self._likelihood_logp(observed, g)
        pm.Deterministic("U", pt.special.softmax(joint), dims="utility")

    def _build_linear(self, pi, observed) -> None:
        theta = self.utility_prior.create_theta()
        pm.Deterministic("U", theta, dims="feature")
        phi = self.features.reshape(-1, self.features.shape[-1])
        reference = self._reference_data()
        if self.is_finite_world_model:
            # Data rather than constants, as the importance reference above: models whose candidate policies
            # differ (a study's world models) then share one compiled density.
            mu_pi = pm.Data("policy_features", self.world_model_features(), dims=("policy", "feature"))
            g_pi = self.g_linear_tensor(pt.dot(mu_pi, theta), theta, *reference)
            g = pm.Deterministic("g", g_pi, dims="policy")
            self._observe(g, observed, np.log(self.world_model.weights))
            return
        mu_pi = pt.dot(graph.occupancy_tensor(self.worlds, pi).ravel(), phi)
        g = pm.Deterministic("g", self.g_linear_tensor(pt.dot(mu_pi, theta)[None], theta, *reference)[0])
        self._observe(g, observed)

    def _reference_data(self) -> tuple:
        """A linear prior's reference as Data nodes, for ``g_linear_tensor``: features, weights and smoothing.

        ``importance`` proposals are tilted toward a pilot direction found from the world model, so they differ
        between the models of a study; as graph constants they would make each model a structure of its own,
        compiled anew. The calibrated smoothing of ``importance`` and ``monte_carlo`` depends on the world model
        and the likelihood in the same way, so it is a Data node too (0, the hard step, stays a constant). None
        stands for the constant (``monte_carlo``'s reference features); other methods get nothing.
        """
        if self.g_method not in ("importance", "monte_carlo"):
            return ()
        smoothing = pm.Data("reference_smoothing", self.smoothing) if self.smoothing != 0 else 0.0
        if self.g_method == "monte_carlo":
            return None, None, smoothing
        features = pm.Data("reference_features", self.reference_features, dims=("reference", "feature"))
        weights = pm.Data("reference_weights", self.reference.weights[:, 0], dims="reference")
        return features, weights, smoothing

    # ------------------------------------------------------------------ exact quantities
    def world_model_features(self) -> np.ndarray:
        """Feature expectations ``mu[j, k]`` of a finite world model's candidate policies."""
        return feature_expectations(self.worlds, self.world_model.policies, self.features)

    @cached_property
    def _g_table_finite(self) -> np.ndarray:
        return self.g_table_finite()

    def g_table_finite(self) -> np.ndarray:
        """``g[j, n]``: g of each candidate policy under each library utility, with the model's g method.

        Computed with the hard (unsmoothed) estimators of :mod:`utiliscope.intelligence` on the model's own
        reference policies (for ``importance``, the weighted count with the model's own weights,
        :meth:`~utiliscope.models.reference.ImportanceReference.bits`): nothing here needs a gradient.
        """
        return self.hard_g(self.world_model.policies)

    @cached_property
    def hard_count(self) -> HardCount:
        """ξ's reference under every library entry, sorted once for :meth:`hard_g` (not for ``gaussian``)."""
        weights = self.reference.weights if self.g_method in ("exact", "importance") else None
        return HardCount.build(self.reference_values, weights, self.g_method)

    def hard_g(self, policies: np.ndarray) -> np.ndarray:
        """``g[j, n]``: g of policies ``pi[j, s, a]`` under every library utility by the g method's hard
        (unsmoothed) estimator on the model's own reference (:class:`~utiliscope.models.reference.HardCount`;
        ``gaussian`` by its closed form). The i.i.d. and SMC engines and finite world models use it: nothing here
        needs a gradient, so nothing is smoothed."""
        v_pi = evaluate_policies(self.worlds, policies, self.rewards)
        if self.g_method == "gaussian":
            return bits_from_values(v_pi, self.reference_values, None, "gaussian", self.rtol)[0]
        return self.hard_count.bits(v_pi, self.rtol)

    def log_joint(self, policies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g[j, n], log P(U_n) + log P(g′ | g[j, n]))`` of policies ``pi[j, s, a]`` (library priors)."""
        g = self.hard_g(policies)
        return g, self.utility_prior.log_prior[None, :] + self._log_likelihood_numpy(g)

    @property
    def observed_g_prime(self) -> float:
        """g′_obs as the model holds it now (``pm.set_data({"g_prime_observed": ...})`` changes it); the
        likelihood's own before the PyMC model is built (the structure engines do not need it)."""
        if "model" not in self.__dict__:
            return float(self.likelihood.observed or 0.0)
        return float(self.model["g_prime_observed"].get_value())

    def _log_likelihood_numpy(self, g: np.ndarray) -> np.ndarray:
        """log P(g′_obs | g) for a numpy ``g``, at the model's current g′_obs."""
        if not self.likelihood.generative:
            return self.likelihood.logp(np.minimum(g, self.g_cap))
        return self.likelihood.logp(g, value=self.observed_g_prime)

    def exact_posterior(self) -> xr.DataArray:
        r"""``P(U_i | WM, g′) ∝ P(U_i) Σ_j w_j P(g′ | g(pi_j, U_i))`` in closed form, with no sampling.

        Needs a library prior and a finite world model (``WorldModel.from_policies``).

        Returns
        -------
        xarray.DataArray
            Probabilities summing to 1, dim ``utility`` with the library's names.
        """
        if not (self.is_library and self.is_finite_world_model):
            raise ValueError(
                "exact_posterior needs a UtilityLibrary prior and a finite world model "
                "(WorldModel.from_policies); otherwise use fit()"
            )
        log_joint = self._exact_log_joint()
        return utility_array(softmax(logsumexp(log_joint, axis=0)), self.utility_prior.names)

    def _exact_log_joint(self) -> np.ndarray:
        """``log w_j + log P(U_i) + log P(g′ | g_ji)``, shape (J, N)."""
        log_w = np.log(self.world_model.weights)[:, None] + self.utility_prior.log_prior[None, :]
        log_joint = log_w + self._log_likelihood_numpy(self._g_table_finite)
        if not np.isfinite(log_joint).any():
            raise ValueError(impossible_evidence(f"all {len(log_joint)} policies of the finite world model"))
        return log_joint

    # ------------------------------------------------------------------ fitting
    def _exact_draws(self, draws: int, chains: int, seed) -> az.InferenceData:
        """I.i.d. draws of the candidate policy from its exact posterior, with U = P(U | pi_j, g′) each."""
        log_joint = self._exact_log_joint()
        p_policy = softmax(logsumexp(log_joint, axis=1))
        picks = np.random.default_rng(seed).choice(len(p_policy), size=(chains, draws), p=p_policy)
        conditional = softmax(log_joint, axis=1)
        g_table = self._g_table_finite
        wm = self.world_model
        coords = self._coords()
        return az.from_dict(
            posterior={
                "U": conditional[picks],
                "pi": wm.policies[picks],
                "g": g_table[picks],
                "policy_index": picks,
            },
            observed_data={"g_prime": np.array(self.observed_g_prime)},
            constant_data={
                "rewards": self.rewards,
                "description_bits": np.asarray(self.utility_prior.description_bits),
                "world_model_weights": wm.weights,
            },
            coords=coords,
            dims={
                "U": ["utility"],
                "pi": ["state", "action"],
                "g": ["utility"],
                "rewards": ["utility", "state", "action"],
                "description_bits": ["utility"],
                "world_model_weights": ["policy"],
            },
        )

    def structure_engines(self) -> tuple[str, ...]:
        """``("exact",)`` for a library and a finite world model; ``("iid", "smc")`` for Dirichlet rows; none for
        a linear prior over a finite world model (NUTS)."""
        if self.is_finite_world_model:
            return ("exact",) if self.is_library else ()
        return ("iid", "smc")

    def _structure_fit(self, engine, draws, chains, seed, fallback, options) -> az.InferenceData:
        return fit_structure(self, engine, draws, chains, seed, fallback, options)

    def constant_data(self) -> dict:
        """The prior's constants saved with a fit: a library's rewards and description bits, or the features."""
        if self.is_library:
            return {"rewards": self.rewards, "description_bits": np.asarray(self.utility_prior.description_bits)}
        return {"features": self.features}

    def constant_dims(self) -> dict:
        if self.is_library:
            return {"rewards": ["utility", "state", "action"], "description_bits": ["utility"]}
        return {"features": ["state", "action", "feature"]}

    def settings(self) -> dict:
        """The model's settings as JSON strings, stored in ``idata.attrs`` so that a saved fit says what it is."""
        return {
            "utiliscope_version": __version__,
            "g_method": self.g_method,
            "g_method_requested": self.g_method_requested,
            "n_samples": self.n_samples,
            "smoothing": json.dumps(np.asarray(self.smoothing).tolist()),
            "rtol": self.rtol,
            "seed": int(self.seed),
            "likelihood": json.dumps(self.likelihood.to_dict()),
            "utility_prior": json.dumps(self.utility_prior.to_dict()),
            "policy_prior": json.dumps(self.policy_prior.to_dict()),
            "world_model": json.dumps(self.world_model.to_dict()),
        }


__all__ = [
    "AUTO_EXACT_MAX",
    "G_METHODS",
    "G_METHOD_CHOICES",
    "GSaturationWarning",
    "Utiliscope",
    "likelihood_mass_range",
    "truth_g_method",
]
