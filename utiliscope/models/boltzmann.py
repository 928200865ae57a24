r"""Classic Bayesian IRL (Ramachandran & Amir 2007): the operator is Boltzmann-rational in its soft Q-values.

The baseline the Utiliscope is compared with, on the same worlds, demonstrations and utility priors. Every
observed state–action pair is evidence through

.. math::

    \log \pi(a \mid s) = β \,(Q(s, a) − V(s)), \qquad
    \log P(\text{demonstrations} \mid U, β) = \sum_{s, a} n[s, a] \log \pi(a \mid s),

with ``n[s, a]`` the demonstrations' counts and Q the soft Bellman fixed point of the reward U on the ζ-averaged
dynamics ``P̄ = Σ_e w[e] P_e`` (:mod:`utiliscope.models.soft_bellman`). ``P̄`` is exact for one world; with
several it redraws the world at every step, the same approximation the Boltzmann agents plan with.

Unlike the Utiliscope's g, this likelihood is not invariant to the scale of U: only ``β · r`` matters. A
library's reward tables are used as given (the agents of :mod:`utiliscope.agents` act on them as given too);
a linear prior's theta is a unit direction, so β carries the scale.

Nodes: ``U`` (as in :class:`~utiliscope.models.Utiliscope`: ``P(U = i | data, β)`` per draw, dim ``utility``,
for a library; the unit direction theta, dim ``feature``, for a linear prior), ``beta`` (a fixed constant, or a
latent with a positive prior), ``pi`` (the operator's Boltzmann policy: of theta for a linear prior, its average
``Σ_i P(U = i | data, β) pi_i`` for a library) and the observed ``actions`` (the counts). A linear prior adds
``Q`` (the soft Q-values of theta). There is no ``g`` here.

* **Library prior, fixed β**: each entry's log-likelihood is a constant computed in numpy, so
  :meth:`BoltzmannIRL.exact_posterior` is ``softmax(log P(U_i) + log-likelihood_i)`` and :meth:`BoltzmannIRL.fit`
  needs no MCMC: it returns that posterior in every draw and draws ``utility_index`` i.i.d. from it.
* **Library prior, latent β**: the library is summed out inside ``actions``' likelihood (log-sum-exp over
  entries) and NUTS samples β alone.
* **Linear prior**: NUTS samples theta (and β when latent); the soft Bellman solve is a differentiable Op.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import softmax

from utiliscope._validation import as_float_array, check_positive
from utiliscope._version import __version__
from utiliscope.demonstrations import Demonstrations
from utiliscope.diagnostics.fitted import demonstrations_of, saved_json, utility_prior_of, worlds_of
from utiliscope.models.base import PosteriorModel, utility_array
from utiliscope.models.soft_bellman import log_policy, log_policy_tensor, soft_q_tensor, soft_q_values
from utiliscope.models.target import ActionLikelihood, LibraryTarget
from utiliscope.priors.library import check_utility_prior
from utiliscope.worlds.mdp import as_world_set

#: PyMC distributions with positive support that a latent β may take, by name.
BETA_DISTRIBUTIONS = ("LogNormal", "HalfNormal", "Gamma", "Exponential", "HalfCauchy", "HalfStudentT")
#: The prior of a latent β: median e ≈ 2.7, 95% between 0.38 and 19 (rewards of order 1, e.g. unit theta).
DEFAULT_BETA_PRIOR = {"dist": "LogNormal", "mu": 1.0, "sigma": 1.0}


class BoltzmannIRL(PosteriorModel):
    """Bayesian IRL with a Boltzmann-rational operator: P(U | demonstrations) ∝ P(U) Π pi_U(a | s)^n[s, a].

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ; the operator plans on the averaged dynamics ``worlds.mean_transitions``.
    demonstrations : Demonstrations
        The observed behaviour; only its counts ``n[s, a]`` enter the likelihood.
    utility_prior : UtilityLibrary or LinearUtility
        P(U), the same priors the Utiliscope takes.
    beta : float or None
        The inverse temperature, > 0, in units of 1 / reward; ``None`` makes it a latent with ``beta_prior``.
    beta_prior : dict, optional
        Only with ``beta=None``: ``{"dist": name, **parameters}`` with ``name`` one of
        :data:`BETA_DISTRIBUTIONS` and the parameters of that PyMC distribution. Default
        :data:`DEFAULT_BETA_PRIOR`, LogNormal(mu=1, sigma=1).

    Examples
    --------
    >>> import utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    >>> library = us.priors.UtilityLibrary.from_features(world.features)
    >>> agent = us.agents.Boltzmann(library.rewards[1], beta=5.0)
    >>> demos = agent.demonstrate(world, n_trajectories=20, horizon=10, seed=0)
    >>> birl = us.models.BoltzmannIRL(world, demos, library, beta=5.0)
    >>> posterior = birl.exact_posterior()
    >>> posterior.dims, bool(abs(float(posterior.sum()) - 1.0) < 1e-12)
    (('utility',), True)
    """

    model_name = "boltzmann_irl"

    def __init__(self, worlds, demonstrations, utility_prior, beta, *, beta_prior: Mapping | None = None) -> None:
        self.worlds = as_world_set(worlds)
        self.demonstrations = check_demonstrations(demonstrations, self.worlds)
        self.utility_prior = utility_prior
        check_utility_prior(utility_prior, self.worlds)
        self.beta = None if beta is None else check_positive(beta, "beta")
        self.beta_prior = _check_beta_prior(beta_prior, latent=self.beta is None)
        if self.is_library and not self.is_latent_beta:
            # A library at a fixed β: the prior and the action likelihood are constants, summed exactly.
            actions = ActionLikelihood(self.log_likelihoods(), self.counts)
            self.target = LibraryTarget(self.worlds, None, utility_prior, None, [actions])

    # ------------------------------------------------------------------ problem pieces
    @property
    def is_latent_beta(self) -> bool:
        """Whether β is a latent variable (``beta=None``) rather than fixed."""
        return self.beta is None

    @property
    def counts(self) -> np.ndarray:
        """The demonstrations' counts ``n[s, a]``."""
        return self.demonstrations.counts

    def library_log_policies(self, beta: float | None = None) -> np.ndarray:
        """``log pi_i(a | s)``, shape (N, S, A): each library entry's Boltzmann policy at β (default: fixed β)."""
        beta = self._fixed_beta("library_log_policies") if beta is None else check_positive(beta, "beta")
        q = soft_q_values(self.worlds.mean_transitions, self.worlds.gamma, self.rewards, beta)
        return log_policy(q, beta)

    def log_likelihoods(self, beta: float | None = None) -> np.ndarray:
        """``Σ_{s,a} n[s, a] log pi_i(a | s)`` for every library entry i, shape (N,), at β (default: fixed β)."""
        return np.sum(self.counts * self.library_log_policies(beta), axis=(1, 2))

    def _fixed_beta(self, method: str) -> float:
        if self.beta is None:
            raise ValueError(f"{method} needs a fixed beta; this model has beta=None (latent): pass beta=...")
        return self.beta

    # ------------------------------------------------------------------ the graph
    def coords(self) -> dict:
        coords = {"state": list(self.worlds.state_names), "action": list(self.worlds.action_names)}
        if self.is_library:
            coords["utility"] = list(self.utility_prior.names)
        else:
            coords["feature"] = list(self.utility_prior.feature_names)
        return coords

    def _beta(self):
        """The ``beta`` node: the prior's PyMC variable when latent, else a Data node (``pm.set_data`` changes it).

        The i.i.d. draws of :meth:`fit` and :meth:`exact_posterior` read the fixed β of the constructor.
        """
        if not self.is_latent_beta:
            return pm.Data("beta", self.beta)
        settings = dict(self.beta_prior)
        return getattr(pm, settings.pop("dist"))("beta", **settings)

    def build_model(self) -> pm.Model:
        """Build the PyMC model (see the module docstring for its nodes)."""
        with pm.Model(coords=self.coords()) as model:
            # The counts live in a Data node: a study changes them with pm.set_data, without rebuilding.
            counts = pm.Data("counts", self.counts, dims=("state", "action"))
            beta = self._beta()
            if self.is_library:
                self._build_library(counts, beta)
            else:
                self._build_linear(counts, beta)
        return model

    def _build_library(self, counts, beta) -> None:
        log_prior = self.utility_prior.log_prior
        rewards = pm.Data("rewards", self.rewards, dims=("utility", "state", "action"))
        pm.Data("description_bits", self.utility_prior.description_bits, dims="utility")
        log_pi = log_policy_tensor(soft_q_tensor(self.worlds, rewards, beta), beta)
        _observe_mixture(log_pi, log_prior, counts)
        posterior = pm.Deterministic(
            "U", pt.special.softmax(log_prior + pt.sum(counts * log_pi, axis=(1, 2))), dims="utility"
        )
        pm.Deterministic("pi", pt.tensordot(posterior, pt.exp(log_pi), axes=1), dims=("state", "action"))

    def _build_linear(self, counts, beta) -> None:
        theta = self.utility_prior.create_theta()
        pm.Deterministic("U", theta, dims="feature")
        q = pm.Deterministic(
            "Q", soft_q_tensor(self.worlds, pt.dot(self.features, theta), beta), dims=("state", "action")
        )
        log_pi = log_policy_tensor(q, beta)
        pm.Deterministic("pi", pt.exp(log_pi), dims=("state", "action"))
        pm.CustomDist(
            "actions",
            log_pi,
            logp=lambda value, log_pi: pt.sum(value * log_pi),
            signature="(s,a)->(s,a)",
            observed=counts,
            dims=("state", "action"),
        )

    # ------------------------------------------------------------------ exact quantities
    def exact_posterior(self) -> xr.DataArray:
        r"""``P(U_i | demonstrations) ∝ P(U_i) Π_{s,a} pi_i(a | s)^n[s, a]`` in closed form, with no sampling.

        Needs a library prior and a fixed β.

        Returns
        -------
        xarray.DataArray
            Probabilities summing to 1, dim ``utility`` with the library's names.
        """
        if not self.is_library:
            raise ValueError(
                "exact_posterior needs a UtilityLibrary prior; with a LinearUtility prior use fit() and read "
                "idata.posterior['U']"
            )
        self._fixed_beta("exact_posterior")
        return utility_array(softmax(self._exact_log_joint()), self.utility_prior.names)

    def _exact_log_joint(self) -> np.ndarray:
        """``log P(U_i) + Σ n log pi_i``, shape (N,): the target's terms."""
        return self.target.exact_log_joint()[0]

    def exact_draws(self, draws: int, chains: int, seed) -> az.InferenceData:
        """The exact posterior in every draw, the posterior-averaged policy, and i.i.d. utility indices."""
        posterior = softmax(self._exact_log_joint())
        policy = np.tensordot(posterior, np.exp(self.library_log_policies()), axes=1)
        picks = np.random.default_rng(seed).choice(len(posterior), size=(chains, draws), p=posterior)
        return az.from_dict(
            posterior={
                "U": np.broadcast_to(posterior, (chains, draws, len(posterior))),
                "pi": np.broadcast_to(policy, (chains, draws, *policy.shape)),
                "utility_index": picks,
            },
            observed_data={"actions": self.counts},
            constant_data={
                "counts": self.counts,
                "beta": np.array(self.beta),
                "rewards": self.rewards,
                "description_bits": np.asarray(self.utility_prior.description_bits),
            },
            coords=self.coords(),
            dims={
                "U": ["utility"],
                "pi": ["state", "action"],
                "actions": ["state", "action"],
                "counts": ["state", "action"],
                "rewards": ["utility", "state", "action"],
                "description_bits": ["utility"],
            },
        )

    @classmethod
    def _saved_arguments(cls, idata) -> dict:
        return {
            "worlds": worlds_of(idata),
            "demonstrations": demonstrations_of(idata),
            "utility_prior": utility_prior_of(idata),
            "beta": saved_json(idata, "beta"),
            "beta_prior": saved_json(idata, "beta_prior"),
        }

    def settings(self) -> dict:
        """The model's settings as JSON strings, stored in ``idata.attrs`` so that a saved fit says what it is."""
        return {
            "utiliscope_version": __version__,
            "model": self.model_name,
            "beta": json.dumps(self.beta),
            "beta_prior": json.dumps(self.beta_prior),
            "utility_prior": json.dumps(self.utility_prior.to_dict()),
            "demonstrations": json.dumps({"counts": self.counts.tolist()}),
        }


def _observe_mixture(log_pi, log_prior: np.ndarray, counts) -> None:
    """The observed ``actions``: ``log Σ_i P(U_i) Π pi_i(a|s)^n[s,a]``, the library summed out exactly."""

    def mixture_logp(value, log_pi, log_w):
        return pt.logsumexp(log_w + pt.sum(value * log_pi, axis=(-2, -1)))

    pm.CustomDist(
        "actions",
        log_pi,
        pt.as_tensor(log_prior),
        logp=mixture_logp,
        signature="(n,s,a),(n)->(s,a)",
        observed=counts,
        dims=("state", "action"),
    )


def check_demonstrations(demonstrations, worlds) -> Demonstrations:
    """Return ``demonstrations``, raising unless it is a Demonstrations whose counts fit the worlds' S and A."""
    if not isinstance(demonstrations, Demonstrations):
        raise TypeError(
            f"demonstrations must be a us.Demonstrations; got {type(demonstrations).__name__}. Wrap counts "
            "n[s, a] in us.Demonstrations.from_counts(counts)"
        )
    shape = (worlds.n_states, worlds.n_actions)
    if demonstrations.counts.shape != shape:
        raise ValueError(
            f"demonstrations has counts of shape {demonstrations.counts.shape} but the worlds have "
            f"{shape[0]} states and {shape[1]} actions"
        )
    return demonstrations


def _check_beta_prior(beta_prior: Mapping | None, latent: bool) -> dict | None:
    """The latent β's prior as a plain dict (None for a fixed β), checked to name a positive distribution."""
    if not latent:
        if beta_prior is not None:
            raise ValueError("beta_prior is only used when beta=None (a latent β); pass one or the other")
        return None
    settings = dict(DEFAULT_BETA_PRIOR if beta_prior is None else beta_prior)
    dist = settings.get("dist")
    if dist not in BETA_DISTRIBUTIONS:
        raise ValueError(
            f"beta_prior['dist'] is {dist!r}; choose a distribution with positive support from "
            f"{list(BETA_DISTRIBUTIONS)}, e.g. {{'dist': 'LogNormal', 'mu': 1.0, 'sigma': 1.0}}"
        )
    for key, value in settings.items():
        if key != "dist":
            settings[key] = float(as_float_array(value, f"beta_prior[{key!r}]", ndim=0))
    return settings


__all__ = [
    "BETA_DISTRIBUTIONS",
    "DEFAULT_BETA_PRIOR",
    "BoltzmannIRL",
    "check_demonstrations",
]
