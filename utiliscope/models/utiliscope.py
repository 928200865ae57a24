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
posterior (no MCMC is needed), recording ``U = P(U | pi, g')`` of each draw like the sampled case.
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

from utiliscope._validation import check_count, check_positive
from utiliscope._version import __version__
from utiliscope.evaluation import evaluate_policies, feature_expectations
from utiliscope.intelligence import RTOL, bits_from_values, check_method
from utiliscope.likelihoods import as_likelihood
from utiliscope.models import graph
from utiliscope.models.base import PosteriorModel, utility_array
from utiliscope.models.reference import ReferencePolicies, sorted_tails
from utiliscope.policies import as_policy_prior
from utiliscope.world_model import WorldModel
from utiliscope.worlds.mdp import as_world_set

G_METHODS = ("exact", "monte_carlo", "gaussian")


#: g used by the improper 2^g potential where an estimator has no finite ceiling (the Gaussian one).
GAUSSIAN_CAP_BITS = 1024.0


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
    g_method : {"exact", "monte_carlo", "gaussian"}
        How g is computed inside the graph (see :mod:`utiliscope.models.graph`).
    seed : int
        Seed of ξ's reference sample for ``monte_carlo`` and ``gaussian`` (fixed once per model: common random
        numbers, so logp is a deterministic function of pi and U).
    n_samples : int
        Reference policies for ``monte_carlo`` and ``gaussian``.
    smoothing : float
        Temperature of the smoothed Monte Carlo step, as a fraction of the spread of reference values.
    rtol : float
        MODEL.md's relative tie tolerance.

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
        g_method: str = "exact",
        seed: int = 0,
        *,
        n_samples: int = 1000,
        smoothing: float = 0.05,
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
        self.g_method = check_method(g_method, G_METHODS, name="g_method")
        self.seed = seed
        self.n_samples = check_count(n_samples, "n_samples")
        self.smoothing = check_positive(smoothing, "smoothing", allow_zero=True)
        self.rtol = check_positive(rtol, "rtol", allow_zero=True)
        world_model.check_compatible(self.worlds)
        self._check_prior()
        self.reference = ReferencePolicies.for_method(
            self.worlds, self.policy_prior, self.g_method, self.n_samples, self.seed
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
    def reference_features(self) -> np.ndarray:
        """``mu[m, k]``: feature expectations of ξ's reference policies (linear priors; computed once)."""
        return self.reference.feature_expectations(self.worlds, self.features)

    @property
    def g_cap(self) -> float:
        """Bits at which the improper ``Exponential`` 2^g potential is capped (MODEL.md).

        ``exact``: −log2 of ξ's smallest weight plus one bit (a policy beating all of ξ's support counts as one
        halving better than the best); ``monte_carlo``: log2(M + 1), the estimator's own ceiling;
        ``gaussian``: 1024 bits. A user-given ``Exponential(cap=...)`` takes precedence.
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
        return coords

    def g_library_tensor(self, v_pi):
        """In-graph g of a tensor policy value ``v_pi[n]`` under every library entry, as the model computes it."""
        values = self.reference_values
        if self.g_method == "exact":
            sorted_values, tail = sorted_tails(values, self.reference.weights)
            return graph.exact_bits_sorted(v_pi, sorted_values, tail, self.rtol)
        if self.g_method == "monte_carlo":
            return graph.monte_carlo_bits(v_pi, pt.as_tensor(values), self.smoothing, self.rtol)
        scale = pt.maximum(pt.abs(v_pi), np.abs(values).max(axis=0))
        return graph.gaussian_bits(v_pi, values.mean(axis=0), values.std(axis=0), scale, self.rtol)

    def g_linear_tensor(self, v_pi, theta):
        """In-graph g of policy values ``v_pi[j]`` under the linear utility theta, as the model computes it."""
        mu = self.reference_features
        if self.g_method == "gaussian":
            mean = pt.dot(mu.mean(axis=0), theta)
            sd = pt.sqrt(pt.maximum(pt.dot(theta, pt.dot(np.cov(mu.T, bias=True), theta)), 0.0))
            scale = pt.maximum(pt.abs(v_pi), pt.abs(pt.dot(mu, theta)).max())
            return graph.gaussian_bits(v_pi, mean, sd, scale, self.rtol)
        # One utility, J policies: the reference is a single column that every policy is compared with.
        reference = pt.dot(mu, theta)[:, None]
        if self.g_method == "exact":
            return graph.exact_bits(v_pi, reference, self.reference.weights, self.rtol)
        return graph.monte_carlo_bits(v_pi, reference, self.smoothing, self.rtol)

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
        if self.is_finite_world_model:
            mu_pi = self.world_model_features()
            g = pm.Deterministic("g", self.g_linear_tensor(pt.dot(mu_pi, theta), theta), dims="policy")
            self._observe(g, observed, np.log(self.world_model.weights))
            return
        mu_pi = pt.dot(graph.occupancy_tensor(self.worlds, pi).ravel(), phi)
        g = pm.Deterministic("g", self.g_linear_tensor(pt.dot(mu_pi, theta)[None], theta)[0])
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
        reference policies: nothing here needs a gradient.
        """
        v_pi = evaluate_policies(self.worlds, self.world_model.policies, self.rewards)
        weights = self.reference.weights if self.reference.enumerated else None
        g, _ = bits_from_values(v_pi, self.reference_values, weights, self.g_method, self.rtol)
        return g

    @property
    def observed_g_prime(self) -> float:
        """g′_obs as the model holds it now (``pm.set_data({"g_prime_observed": ...})`` changes it)."""
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
        return log_w + self._log_likelihood_numpy(self._g_table_finite)

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

    def settings(self) -> dict:
        """The model's settings as JSON strings, stored in ``idata.attrs`` so that a saved fit says what it is."""
        return {
            "utiliscope_version": __version__,
            "g_method": self.g_method,
            "n_samples": self.n_samples,
            "smoothing": self.smoothing,
            "rtol": self.rtol,
            "seed": int(self.seed),
            "likelihood": json.dumps(self.likelihood.to_dict()),
            "utility_prior": json.dumps(self.utility_prior.to_dict()),
            "policy_prior": json.dumps(self.policy_prior.to_dict()),
            "world_model": json.dumps(self.world_model.to_dict()),
        }


__all__ = ["G_METHODS", "Utiliscope"]
