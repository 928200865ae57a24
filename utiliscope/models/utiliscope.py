r"""The Utiliscope: a PyMC model whose graph is the proposal's Bayes net (docs/model.md#the-bayes-net).

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

``g_method="auto"`` is resolved at construction by :func:`~utiliscope.models.g_methods.choose_g_method`; the
chosen method is an object, ``scope.estimator`` (:mod:`utiliscope.models.g_methods`).
"""

from __future__ import annotations

import json
from functools import cached_property

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp, softmax

from utiliscope._validation import check_choice, check_count, check_positive, check_seed
from utiliscope._version import __version__
from utiliscope.counting import RTOL
from utiliscope.diagnostics.fitted import (
    likelihood_of,
    policy_prior_of,
    saved_json,
    saved_setting,
    utility_prior_of,
    world_model_of,
    worlds_of,
)
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.likelihoods import as_likelihood
from utiliscope.models import graph
from utiliscope.models.base import PosteriorModel, utility_array
from utiliscope.models.g_methods import (
    G_METHOD_CHOICES,
    G_METHOD_CLASSES,
    GProblem,
    choose_g_method,
    likelihood_mass_range,
    warn_if_saturated,
)
from utiliscope.models.iid_engine import impossible_evidence
from utiliscope.models.predictive import predictive
from utiliscope.models.structure_fit import fit_structure
from utiliscope.policies import as_policy_prior
from utiliscope.priors.library import check_utility_prior
from utiliscope.world_model import FiniteWorldModel, WorldModel
from utiliscope.worlds.mdp import as_world_set


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
        cross-entropy level and M per pilot utility (each library entry is one; a linear prior pools M from ξ and
        from each of its spread directions, :meth:`~utiliscope.models.g_methods.Importance.linear_directions`).
    smoothing : float, optional
        NUTS only (the other engines count with the hard step). Temperature of the smoothed Monte Carlo step of
        ``monte_carlo`` and ``importance`` in the PyMC model, as a fraction of the spread of reference values. By
        default calibrated on the model's own sample, per library entry (one value for a linear prior, under its
        pilot direction): the widest width, from 0.05 down to 0.0022, whose smoothed g stays within 0.1 bits of
        the sample's hard g in every one-bit window of the likelihood's mass (``importance``) or of 0 to
        log2(M) − 3 bits (``monte_carlo``, so that it does not change with g′); :mod:`utiliscope.models.smoothing`
        says why.
    rtol : float
        The relative tie tolerance (docs/model.md#ties).

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

    model_name = "utiliscope"

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
        self.g_method_requested = check_choice(g_method, G_METHOD_CHOICES, "g_method")
        self.seed = check_seed(seed)
        self.n_samples = check_count(n_samples, "n_samples")
        smoothing = None if smoothing is None else check_positive(smoothing, "smoothing", allow_zero=True)
        self.smoothing_requested = smoothing
        self.rtol = check_positive(rtol, "rtol", allow_zero=True)
        world_model.check_compatible(self.worlds)
        check_utility_prior(utility_prior, self.worlds)
        self.g_method = (
            choose_g_method(self.worlds, self.policy_prior, self.likelihood_mass, self.n_samples)
            if g_method == "auto"
            else g_method
        )
        problem = GProblem(
            self.worlds,
            self.policy_prior,
            utility_prior,
            self.likelihood_mass,
            getattr(self.likelihood, "cap", None),
            world_model.mean(),
            self.n_samples,
            self.seed,
            self.rtol,
        )
        self.estimator = G_METHOD_CLASSES[self.g_method](problem, smoothing)
        warn_if_saturated(self.estimator, self.likelihood)

    @property
    def smoothing(self) -> float | np.ndarray:
        """NUTS's smoothing temperature of the g method: the argument, or the calibrated default (one per library
        entry; 0.0 for ``exact`` and ``gaussian``, which do not smooth)."""
        return self.estimator.smoothing

    @property
    def smoothing_bias(self) -> np.ndarray | None:
        """With calibrated smoothing, per pilot utility the largest one-bit window's mean bias in bits of the
        smoothed g against the sample's hard g; None otherwise."""
        return self.estimator.smoothing_bias

    @cached_property
    def likelihood_mass(self) -> tuple[float, float] | None:
        """Where the likelihood puts its mass over g (:func:`~utiliscope.models.g_methods.likelihood_mass_range`);
        None for the 2^g potential."""
        return likelihood_mass_range(self.likelihood) if self.likelihood.generative else None

    @property
    def saturation_bits(self) -> float:
        """Bits above which the model's g method saturates or is inaccurate (+inf for ``exact``)."""
        return self.estimator.saturation_bits

    # ------------------------------------------------------------------ problem pieces
    @property
    def is_finite_world_model(self) -> bool:
        """Whether P(pi | WM) is a finite set of policies (marginalised) rather than Dirichlet rows."""
        return isinstance(self.world_model, FiniteWorldModel)

    @property
    def g_cap(self) -> float:
        """Bits at which the improper ``Exponential`` 2^g potential is capped (docs/model.md#infinite-g).

        ``exact``: −log2 of ξ's smallest weight plus one bit (a policy beating all of ξ's support counts as one
        halving better than the best); ``monte_carlo``: log2(M + 1), the estimator's own ceiling;
        ``importance``: the largest of its per-utility ceilings; ``gaussian``: 1024 bits. A user-given
        ``Exponential(cap=...)`` takes precedence.
        """
        user_cap = getattr(self.likelihood, "cap", None)
        return self.estimator.cap_bits if user_cap is None else float(user_cap)

    # ------------------------------------------------------------------ the graph
    def _coords(self) -> dict:
        coords = {"state": list(self.worlds.state_names), "action": list(self.worlds.action_names)}
        if self.is_library:
            coords["utility"] = list(self.utility_prior.names)
        else:
            coords["feature"] = list(self.utility_prior.feature_names)
        if self.is_finite_world_model:
            coords["policy"] = [f"p{j}" for j in range(self.world_model.policies.shape[0])]
        return {**coords, **self.estimator.extra_coords()}

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

    def _library_log_weights(self):
        """The library entries' log weights in the mixture: ``log P(U_i)`` (CombinedIRL adds its evidence)."""
        return self.utility_prior.log_prior

    def _build_library(self, pi, observed) -> None:
        """The library summed out: one mixture component per entry (and per candidate policy of a finite world
        model), weighted by :meth:`_library_log_weights`; ``U`` is the mixture's posterior over entries."""
        n_utilities = len(self.utility_prior.names)
        pm.Data("rewards", self.rewards, dims=("utility", "state", "action"))
        pm.Data("description_bits", self.utility_prior.description_bits, dims="utility")
        log_u = self._library_log_weights()
        if self.is_finite_world_model:
            g = pm.Deterministic("g", pt.as_tensor(self._g_table_finite), dims=("policy", "utility"))
            log_w = np.log(self.world_model.weights)[:, None] + log_u[None, :]
        else:
            flat = self.rewards.reshape(n_utilities, -1)
            v_pi = pt.dot(flat, graph.occupancy_tensor(self.worlds, pi).ravel())
            g = pm.Deterministic("g", self.estimator.library_tensor(v_pi), dims="utility")
            log_w = log_u
        self._observe(g.ravel(), observed, log_w.ravel())
        joint = (log_w + self._likelihood_logp(observed, g)).reshape((-1, n_utilities))
        pm.Deterministic("U", pt.exp(joint - pt.logsumexp(joint)).sum(axis=0), dims="utility")

    def _build_linear(self, pi, observed) -> None:
        theta = self.utility_prior.create_theta()
        pm.Deterministic("U", theta, dims="feature")
        phi = self.features.reshape(-1, self.features.shape[-1])
        reference = self.estimator.linear_reference_data()
        if self.is_finite_world_model:
            # Data rather than constants, as the importance reference above: models whose candidate policies
            # differ (a study's world models) then share one compiled density.
            mu_pi = pm.Data("policy_features", self.world_model_features(), dims=("policy", "feature"))
            g_pi = self.estimator.linear_tensor(pt.dot(mu_pi, theta), theta, *reference)
            g = pm.Deterministic("g", g_pi, dims="policy")
            self._observe(g, observed, np.log(self.world_model.weights))
            return
        mu_pi = pt.dot(graph.occupancy_tensor(self.worlds, pi).ravel(), phi)
        g = pm.Deterministic("g", self.estimator.linear_tensor(pt.dot(mu_pi, theta)[None], theta, *reference)[0])
        self._observe(g, observed)

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

    def hard_g(self, policies: np.ndarray) -> np.ndarray:
        """``g[j, n]``: g of policies ``pi[j, s, a]`` under every library utility by the g method's hard
        (unsmoothed) estimator on the model's own reference (:class:`~utiliscope.models.reference.HardCount`;
        ``gaussian`` by its closed form). The i.i.d. and SMC engines and finite world models use it: nothing here
        needs a gradient, so nothing is smoothed."""
        return self.estimator.library_bits(evaluate_policies(self.worlds, policies, self.rewards))

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

    # ------------------------------------------------------------------ saved runs
    @classmethod
    def _saved_arguments(cls, idata) -> dict:
        """The constructor's arguments from a fit; the concrete g method, so that a later rule for ``"auto"``
        cannot change it (:meth:`_restore` puts back the requested one)."""
        return {
            "worlds": worlds_of(idata),
            "world_model": world_model_of(idata),
            "utility_prior": utility_prior_of(idata),
            "likelihood": likelihood_of(idata),
            "policy_prior": policy_prior_of(idata),
            "g_method": str(saved_setting(idata, "g_method")),
            "seed": int(saved_setting(idata, "seed")),
            "n_samples": int(saved_setting(idata, "n_samples")),
            "smoothing": _saved_smoothing(idata),
            "rtol": float(saved_setting(idata, "rtol")),
        }

    def _restore(self, idata) -> None:
        """The requested g method, and g′_obs where the fit observed another value than the likelihood's own (a
        study's ``pm.set_data``)."""
        self.g_method_requested = str(idata.attrs.get("g_method_requested", self.g_method))
        if not self.likelihood.generative or "g_prime" not in idata.get("observed_data", {}):
            return
        observed = np.ravel(idata.observed_data["g_prime"].values)
        if observed.size == 1 and float(observed[0]) != self.observed_g_prime:
            with self.model:
                pm.set_data({"g_prime_observed": float(observed[0])})

    def predictive(
        self, idata: az.InferenceData, seed: int = 0, prior_draws: int | None = None
    ) -> az.InferenceData:
        """A copy of a fit with draws of g′ (groups ``posterior_predictive``, ``prior_predictive``, ``prior``):
        :func:`~utiliscope.models.predictive.predictive`."""
        return predictive(self, idata, seed, prior_draws)

    def settings(self) -> dict:
        """The model's settings as JSON strings, stored in ``idata.attrs`` so that a saved fit says what it is."""
        return {
            "utiliscope_version": __version__,
            "model": self.model_name,
            "g_method": self.g_method,
            "g_method_requested": self.g_method_requested,
            "n_samples": self.n_samples,
            "smoothing": json.dumps(np.asarray(self.smoothing).tolist()),
            "smoothing_requested": json.dumps(self.smoothing_requested),
            "rtol": self.rtol,
            "seed": int(self.seed),
            "likelihood": json.dumps(self.likelihood.to_dict()),
            "utility_prior": json.dumps(self.utility_prior.to_dict()),
            "policy_prior": json.dumps(self.policy_prior.to_dict()),
            "world_model": json.dumps(self.world_model.to_dict()),
            **self.estimator.describe(),
        }


def _saved_smoothing(idata) -> float | None:
    """The ``smoothing`` argument of a fit's model: recorded since ``smoothing_requested`` was; before, the
    stored value when it is one number a smoothing method used (an argument, or a linear prior's calibrated
    width, which calibration would give again), else None (calibrated, or unused)."""
    if "smoothing_requested" in idata.attrs:
        return saved_json(idata, "smoothing_requested")
    stored = saved_json(idata, "smoothing")
    return stored if isinstance(stored, float) and stored != 0.0 else None


__all__ = ["Utiliscope"]
