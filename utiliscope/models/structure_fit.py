r"""Fits of a :class:`~utiliscope.models.Utiliscope` by the structure engines: ``iid`` (i.i.d. draws from the
priors, weighted by the evidence; :mod:`utiliscope.models.iid_engine`) and ``smc`` (tempered SMC;
:mod:`utiliscope.models.smc_engine`).

Both engines see the model through an :class:`EvidenceTarget`: draws of the latents from their priors, the
evidence of each draw, and what each draw contributes to the estimate. The latents are pi (Dirichlet rows) for a
utility library, whose U is summed out exactly,

.. math::

    w(\pi) = \sum_i P(U_i)\, f(g' \mid g(\pi, U_i)), \qquad \text{estimate: } P(U_i \mid \pi, g'),

and pi with the direction theta for a linear prior, drawn uniform on the sphere of its constant-free complement
and weighted by the simplicity potential,

.. math::

    w(\pi, \theta) = e^{-\lambda \ln 2\, K(\theta)}\, f(g' \mid g(\pi, \theta)), \qquad \text{estimate: } \theta.

g is the g method's hard count (no smoothing): exact g when ξ is enumerated, else the model's Monte Carlo or
importance reference, or the Gaussian closed form.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp, softmax

from utiliscope._validation import check_count, check_positive
from utiliscope.evaluation import feature_expectations
from utiliscope.models.iid_engine import (
    DEFAULT_BATCH,
    DEFAULT_TARGET_MCSE,
    evidence_of_batch,
    redraw,
    resample,
    run_importance,
)
from utiliscope.models.smc_engine import DEFAULT_STEPS, log_gamma_density, log_gamma_variates, run_smc

#: The keyword arguments ``fit`` takes for each structure engine.
ENGINE_OPTIONS = {
    "iid": frozenset({"target_mcse", "max_draws", "batch_size", "min_draws", "client"}),
    "smc": frozenset({"n_steps"}),
}


class EvidenceTarget(ABC):
    """What the structure engines need of a model: the latents' priors and each draw's evidence.

    Natural latents ``x[n, D]`` are flat: pi's table, then (linear priors) theta. SMC walks in unconstrained
    coordinates ``u`` (log-Gamma variates for pi's rows, then z for theta).
    """

    #: The dimension of the estimate: ``"utility"`` (library) or ``"feature"`` (linear).
    estimate_dim: str

    def __init__(self, scope) -> None:
        self.scope = scope
        self.alpha = scope.world_model.alpha
        self.table_size = self.alpha.size

    def policies(self, x: np.ndarray) -> np.ndarray:
        """pi[n, S, A] of natural latents."""
        return x[:, : self.table_size].reshape(len(x), *self.alpha.shape)

    @abstractmethod
    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` natural latents from the proposal of ``iid`` (the priors)."""

    @abstractmethod
    def evidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log w[n], values[n, N])``: the log weight of each draw and its contribution to the estimate."""

    @abstractmethod
    def smc_start(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unconstrained latents from the prior."""

    @abstractmethod
    def smc_log_prior(self, u: np.ndarray) -> np.ndarray:
        """The log prior density of unconstrained latents (up to a constant)."""

    @abstractmethod
    def natural(self, u: np.ndarray) -> np.ndarray:
        """Natural latents of unconstrained ones."""

    @abstractmethod
    def posterior(self, x: np.ndarray) -> tuple[dict, dict]:
        """Posterior variables of each draw (``U``, ``pi``, ``g``) and their dims."""

    def log_likelihood(self, u: np.ndarray) -> np.ndarray:
        return self.evidence(self.natural(u))[0]


def _conditional(joint: np.ndarray) -> np.ndarray:
    """``P(U_i | pi, g′)`` of each draw from its log joint ``joint[draw, i]``; NaN for a draw of zero weight
    (every entry −inf), which the estimates leave out, without NumPy's warning about it."""
    with np.errstate(invalid="ignore"):
        return softmax(joint, axis=1)


class LibraryTarget(EvidenceTarget):
    """A utility library over Dirichlet rows: U summed out, the estimate is ``P(U_i | pi, g′)``."""

    estimate_dim = "utility"

    def draw(self, n, rng):
        return self.scope.world_model.sample(n, rng).reshape(n, -1)

    def evidence(self, x):
        joint = self.scope.log_joint(self.policies(x))[1]
        log_w = logsumexp(joint, axis=1)
        return log_w, _conditional(joint)

    def smc_start(self, n, rng):
        return log_gamma_variates(self.alpha, n, rng).reshape(n, -1)

    def smc_log_prior(self, u):
        return log_gamma_density(u.reshape(len(u), *self.alpha.shape), self.alpha)

    def natural(self, u):
        return softmax(u.reshape(len(u), *self.alpha.shape), axis=-1).reshape(len(u), -1)

    def posterior(self, x):
        g, joint = self.scope.log_joint(self.policies(x))
        variables = {"U": _conditional(joint), "pi": self.policies(x), "g": g}
        return variables, {"U": ["utility"], "pi": ["state", "action"], "g": ["utility"]}


class LinearTarget(EvidenceTarget):
    """A linear prior over Dirichlet rows: theta uniform on its sphere, weighted by the simplicity potential;
    the estimate is theta."""

    estimate_dim = "feature"

    def __init__(self, scope) -> None:
        super().__init__(scope)
        self.prior = scope.utility_prior

    def thetas(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.table_size :]

    def _direction(self, z: np.ndarray) -> np.ndarray:
        return (z @ self.prior.basis.T) / np.linalg.norm(z, axis=1, keepdims=True)

    def draw(self, n, rng):
        pi = self.scope.world_model.sample(n, rng).reshape(n, -1)
        return np.concatenate([pi, self._direction(rng.standard_normal((n, self.prior.n_directions)))], axis=1)

    def g(self, x: np.ndarray) -> np.ndarray:
        """g of each draw's pi under its own theta, by the hard count of the model's g method."""
        theta = self.thetas(x)
        mu = feature_expectations(self.scope.worlds, self.policies(x), self.scope.features)
        return self.scope.estimator.linear_bits(np.einsum("nk,nk->n", mu, theta), theta)

    def evidence(self, x):
        g = self.g(x)
        log_w = self.prior.log_prior_direction(self.thetas(x)) + self.scope._log_likelihood_numpy(g)
        return log_w, self.thetas(x)

    def smc_start(self, n, rng):
        y = log_gamma_variates(self.alpha, n, rng).reshape(n, -1)
        return np.concatenate([y, rng.standard_normal((n, self.prior.n_directions))], axis=1)

    def smc_log_prior(self, u):
        y, z = u[:, : self.table_size], u[:, self.table_size :]
        gamma = log_gamma_density(y.reshape(len(u), *self.alpha.shape), self.alpha)
        return gamma - 0.5 * np.sum(z**2, axis=1) + self.prior.log_prior_direction(self._direction(z))

    def natural(self, u):
        y, z = u[:, : self.table_size], u[:, self.table_size :]
        pi = softmax(y.reshape(len(u), *self.alpha.shape), axis=-1).reshape(len(u), -1)
        return np.concatenate([pi, self._direction(z)], axis=1)

    def posterior(self, x):
        variables = {"U": self.thetas(x), "pi": self.policies(x), "g": self.g(x)}
        return variables, {"U": ["feature"], "pi": ["state", "action"], "g": []}


def evidence_target(scope) -> EvidenceTarget:
    """The target of a Utiliscope with Dirichlet rows and a library or a linear prior."""
    return LibraryTarget(scope) if scope.is_library else LinearTarget(scope)


def fit_structure(scope, engine: str, draws: int, chains: int, seed: int, fallback: bool, options: dict):
    """Fit ``scope`` by ``iid`` (moving on to ``smc`` when ``fallback`` and its weights cannot be trusted) or
    by ``smc``; return the InferenceData with the group ``utility_estimate``."""
    allowed = ENGINE_OPTIONS[engine] | (ENGINE_OPTIONS["smc"] if fallback else frozenset())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(
            f"sampler {engine!r} does not take {unknown}; it takes {sorted(allowed) or 'no extra arguments'}"
        )
    target = evidence_target(scope)
    smc_options = {key: options[key] for key in ENGINE_OPTIONS["smc"] & set(options)}
    if engine == "smc":
        return _smc_fit(target, draws, chains, seed, reason="requested", **smc_options)
    iid_options = {key: options[key] for key in ENGINE_OPTIONS["iid"] & set(options)}
    default_target = DEFAULT_TARGET_MCSE if scope.is_library else None
    target_mcse = iid_options.pop("target_mcse", default_target)
    target_mcse = None if target_mcse is None else check_positive(target_mcse, "target_mcse")
    client = iid_options.pop("client", None)
    counts = {key: check_count(value, key) for key, value in iid_options.items()}
    spread = {} if client is None else _dask_batches(client, target, seed, counts.get("batch_size", DEFAULT_BATCH))
    run = run_importance(target.draw, target.evidence, seed, target_mcse=target_mcse, **counts, **spread)
    summary = (
        f"{run.stopped}; Pareto k̂ = {run.pareto_k:.2f}, ESS = {run.ess:.0f}, largest MCSE of the estimate = "
        f"{run.max_mcse:.2g}"
    )
    if fallback and not run.trustworthy(target_mcse):
        reason = (
            f"iid: {summary}. The world model is a poor proposal for this evidence (g′ points where its draws "
            "rarely go), so the fit moved on to tempered SMC"
        )
        return _smc_fit(target, draws, chains, seed, reason=reason, **smc_options)
    picks = resample(run, chains * draws, seed)
    x = redraw(target.draw, seed, run.batch_size, picks).reshape(chains, draws, -1)
    attrs = {
        "ess": run.ess,
        "pareto_k": run.pareto_k,
        "n_draws": run.n_draws,
        "target_mcse": math.nan if target_mcse is None else target_mcse,
        "stopped": run.stopped,
    }
    extra = {"log_weight": (("world_model_draw",), run.log_weights)}
    return _idata(target, "iid", summary, x, run.estimate, run.mcse, extra, attrs)


def _dask_batches(client, target: EvidenceTarget, seed: int, batch_size: int) -> dict:
    """``map_batches`` and ``round_size`` of :func:`~utiliscope.models.iid_engine.run_importance` that compute
    a round of batches (one per worker thread) on a ``distributed.Client``; the target travels once."""
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client; got {type(client).__name__}")
    [shared] = client.scatter([target], broadcast=True)

    def map_batches(batches):
        n = len(batches)
        futures = client.map(_batch_on_worker, [shared] * n, [seed] * n, [batch_size] * n, batches, pure=False)
        return client.gather(futures)

    return {"map_batches": map_batches, "round_size": max(1, sum(client.nthreads().values()))}


def _batch_on_worker(target: EvidenceTarget, seed: int, batch_size: int, batch: int) -> tuple:
    return evidence_of_batch(target.draw, target.evidence, seed, batch_size, batch)


def _smc_fit(target: EvidenceTarget, draws, chains, seed, reason, n_steps=DEFAULT_STEPS) -> az.InferenceData:
    """``chains`` independent SMC runs of ``draws`` particles; the estimate's MCSE from the spread of the runs."""
    n_steps = check_count(n_steps, "n_steps")
    runs = [
        run_smc(target.smc_start(draws, rng), target.smc_log_prior, target.log_likelihood, rng, n_steps)
        for rng in np.random.default_rng(seed).spawn(chains)
    ]
    x = np.stack([target.natural(run.particles) for run in runs])
    per_chain = np.stack([target.evidence(chain)[1].mean(axis=0) for chain in x])
    mcse = per_chain.std(axis=0, ddof=1) / math.sqrt(chains) if chains > 1 else np.full(per_chain.shape[1], np.nan)
    extra = {"log_evidence": (("chain",), np.array([run.log_evidence for run in runs]))}
    attrs = {
        "stages": json.dumps([len(run.betas) - 1 for run in runs]),
        "min_acceptance": float(min(run.acceptance.min() for run in runs)),
    }
    return _idata(target, "smc", reason, x, per_chain.mean(axis=0), mcse, extra, attrs)


def _idata(target: EvidenceTarget, engine, reason, x, estimate, mcse, extra, attrs) -> az.InferenceData:
    """InferenceData of equally weighted draws ``x[chain, draw, D]`` and the group ``utility_estimate``."""
    scope = target.scope
    chains, draws = x.shape[:2]
    variables, dims = target.posterior(x.reshape(chains * draws, -1))
    scope.estimator.warn_outside(variables["g"], variables["U"] if target.estimate_dim == "utility" else None)
    idata = az.from_dict(
        posterior={name: value.reshape(chains, draws, *value.shape[1:]) for name, value in variables.items()},
        observed_data={"g_prime": np.array(scope.observed_g_prime)},
        constant_data={"alpha": scope.world_model.alpha, **scope.constant_data()},
        coords=scope._coords(),
        dims={**dims, "alpha": ["state", "action"], **scope.constant_dims()},
    )
    dim = target.estimate_dim
    name = "probability" if dim == "utility" else "mean"
    group = xr.Dataset(
        {name: ((dim,), estimate), "mcse": ((dim,), mcse), **extra},
        coords={dim: scope._coords()[dim]},
        attrs={"engine": engine, **attrs},
    )
    idata.add_groups({"utility_estimate": group})
    idata.attrs.update({"engine": engine, "engine_reason": reason})
    return idata


__all__ = ["ENGINE_OPTIONS", "EvidenceTarget", "LibraryTarget", "LinearTarget", "evidence_target", "fit_structure"]
