r"""The Utiliscope: Bayesian IRL from the intelligence of the operator's policy (docs/model.md#the-bayes-net).

.. math::

    P(U \mid WM, g') \propto P(U) \int P(g' \mid g(\pi, U))\, P(\pi \mid WM)\, d\pi

:class:`Utiliscope` is a builder: it checks its inputs, resolves the g method (``scope.estimator``,
:mod:`utiliscope.models.g_methods`) and assembles the model's target, the utility prior and the g′ likelihood
as evidence terms (:mod:`utiliscope.models.target`). Every engine fits that one target
(:mod:`utiliscope.models.engines`); the PyMC model with nodes ``U``, ``pi``, ``g`` and ``g_prime`` is built
from it for NUTS (:mod:`utiliscope.models.pymc_graph`), with a library and a finite world model summed out
exactly. With both, nothing continuous is left: :meth:`Utiliscope.exact_posterior` gives the answer in closed
form.
"""

from __future__ import annotations

import json
from functools import cached_property

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr
from scipy.special import logsumexp, softmax

from utiliscope._validation import check_choice, check_count, check_positive, check_seed
from utiliscope._version import __version__
from utiliscope.counting import RTOL
from utiliscope.likelihoods import as_likelihood
from utiliscope.models.base import PosteriorModel, utility_array
from utiliscope.models.engines.exact import candidate_draws
from utiliscope.models.g_methods import G_METHOD_CHOICES, make_g_method
from utiliscope.models.impossible import impossible_evidence
from utiliscope.models.predictive import predictive
from utiliscope.models.pymc_graph import build_pymc_model
from utiliscope.models.saved_arguments import utiliscope_arguments
from utiliscope.models.target import GPrimeLikelihood, make_target
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
        NUTS only: the temperature of the smoothed step of ``monte_carlo`` and ``importance`` in the PyMC model,
        as a fraction of the spread of reference values; by default calibrated on the model's own sample
        (:mod:`utiliscope.models.smoothing`).
    rtol : float
        The relative tie tolerance (docs/model.md#ties).

    Attributes
    ----------
    g_method, g_method_requested : str
        The concrete method in use (``"auto"`` resolved), and the argument as given.
    estimator : GMethod
        The g method's object; ``smoothing``, ``smoothing_bias`` and ``saturation_bits`` are its.
    target : LibraryTarget or LinearTarget
        The model's joint density as evidence terms (:mod:`utiliscope.models.target`).

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
        self.estimator = make_g_method(
            g_method,
            self.likelihood,
            world_model,
            smoothing,
            worlds=self.worlds,
            policy_prior=self.policy_prior,
            utility_prior=utility_prior,
            n_samples=self.n_samples,
            seed=self.seed,
            rtol=self.rtol,
        )
        self.g_method = self.estimator.name
        terms = [GPrimeLikelihood(self.likelihood, self.g_cap)]
        self.target = make_target(self.worlds, world_model, utility_prior, self.estimator, terms)

    @property
    def smoothing(self) -> float | np.ndarray:
        """NUTS's smoothing temperature of the g method (:attr:`GMethod.smoothing`)."""
        return self.estimator.smoothing

    @property
    def smoothing_bias(self) -> np.ndarray | None:
        """The calibrated smoothing's largest bias in bits per pilot utility (:attr:`GMethod.smoothing_bias`)."""
        return self.estimator.smoothing_bias

    @property
    def likelihood_mass(self) -> tuple[float, float] | None:
        """Where the likelihood puts its mass over g (:func:`~utiliscope.models.g_methods.likelihood_mass_range`);
        None for the 2^g potential."""
        return self.estimator.problem.likelihood_mass

    @property
    def saturation_bits(self) -> float:
        """Bits above which the model's g method saturates or is inaccurate (+inf for ``exact``)."""
        return self.estimator.saturation_bits

    @property
    def is_finite_world_model(self) -> bool:
        """Whether P(pi | WM) is a finite set of policies (marginalised) rather than Dirichlet rows."""
        return isinstance(self.world_model, FiniteWorldModel)

    @property
    def g_cap(self) -> float:
        """Bits at which the improper 2^g potential is capped (docs/model.md#infinite-g): a user-given
        ``Exponential(cap=...)``, else the g method's own ceiling (:attr:`GMethod.cap_bits`)."""
        user_cap = getattr(self.likelihood, "cap", None)
        return self.estimator.cap_bits if user_cap is None else float(user_cap)

    # ------------------------------------------------------------------ the graph
    def coords(self) -> dict:
        """The model's coordinates: states, actions, library entries or features, candidate policies."""
        coords = {"state": list(self.worlds.state_names), "action": list(self.worlds.action_names)}
        if self.is_library:
            coords["utility"] = list(self.utility_prior.names)
        else:
            coords["feature"] = list(self.utility_prior.feature_names)
        if self.is_finite_world_model:
            coords["policy"] = [f"p{j}" for j in range(self.world_model.policies.shape[0])]
        return {**coords, **self.estimator.extra_coords()}

    def build_model(self) -> pm.Model:
        """The PyMC model of the target (:func:`~utiliscope.models.pymc_graph.build_pymc_model`)."""
        g_table = self._g_table_finite if self.is_library and self.is_finite_world_model else None
        return build_pymc_model(self.target, self.coords(), g_table)

    # ------------------------------------------------------------------ exact quantities
    @cached_property
    def _g_table_finite(self) -> np.ndarray:
        return self.g_table_finite()

    def g_table_finite(self) -> np.ndarray:
        """``g[j, n]``: g of each candidate policy of a finite world model under each library utility, by the g
        method's hard (unsmoothed) count on the model's own reference."""
        return self.target.hard_g(self.world_model.policies)

    @property
    def observed_g_prime(self) -> float:
        """g′_obs as the model holds it now (the g′ term's, :attr:`GPrimeLikelihood.observed`)."""
        return self.target.g_prime.observed

    def exact_posterior(self) -> xr.DataArray:
        r"""``P(U_i | data) ∝ Σ_j w_j exp(Σ terms)`` (the Utiliscope's: ``P(U_i) Σ_j w_j P(g′ | g(pi_j, U_i))``)
        in closed form, with no sampling: a DataArray over dim ``utility`` summing to 1. Needs a library prior
        and a finite world model (``WorldModel.from_policies``)."""
        if not (self.is_library and self.is_finite_world_model):
            raise ValueError(
                "exact_posterior needs a UtilityLibrary prior and a finite world model "
                "(WorldModel.from_policies); otherwise use fit()"
            )
        log_joint = self._exact_log_joint()
        return utility_array(softmax(logsumexp(log_joint, axis=0)), self.utility_prior.names)

    def _exact_log_joint(self) -> np.ndarray:
        """``log w_j + Σ terms``, shape (J, N), over the candidates of the finite world model."""
        log_joint = self.target.exact_log_joint(self._g_table_finite)
        if not np.isfinite(log_joint).any():
            raise ValueError(impossible_evidence(f"all {len(log_joint)} policies of the finite world model"))
        return log_joint

    def exact_draws(self, draws: int, chains: int, seed) -> az.InferenceData:
        """I.i.d. draws of the candidate policy from its exact posterior, with U = P(U | pi_j, data) each."""
        return candidate_draws(self, self._exact_log_joint(), self._g_table_finite, draws, chains, seed)

    def observed_data(self) -> dict:
        """What a fit records as observed: g′_obs."""
        return {"g_prime": np.array(self.observed_g_prime)}

    def constant_data(self) -> tuple[dict, dict]:
        """The prior's constants saved with a fit, and their dims: a library's rewards and description bits, or
        the features."""
        if self.is_library:
            data = {"rewards": self.rewards, "description_bits": np.asarray(self.utility_prior.description_bits)}
            return data, {"rewards": ["utility", "state", "action"], "description_bits": ["utility"]}
        return {"features": self.features}, {"features": ["state", "action", "feature"]}

    @classmethod
    def _saved_arguments(cls, idata) -> dict:
        return utiliscope_arguments(idata)

    def _restore(self, idata) -> None:
        """The requested g method, and g′_obs where the fit observed another value than the likelihood's own (a
        study's ``pm.set_data``)."""
        self.g_method_requested = str(idata.attrs.get("g_method_requested", self.g_method))
        if not self.likelihood.generative or "g_prime" not in idata.get("observed_data", {}):
            return
        observed = np.ravel(idata.observed_data["g_prime"].values)
        if observed.size == 1 and float(observed[0]) != self.observed_g_prime:
            self.target.g_prime.set_observed(float(observed[0]))

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


__all__ = ["Utiliscope"]
