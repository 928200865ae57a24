r"""The PyMC model of a :class:`~utiliscope.models.target.Target`: the proposal's Bayes net, for NUTS.

Nodes: ``U`` (the utility), ``pi`` (the operator's policy), ``g`` (its intelligence under U, deterministic) and
``g_prime`` (the observed, noisy intelligence). Discrete latents are marginalised exactly rather than sampled:
a **utility library** and a **finite world model** are summed out inside ``g_prime``'s likelihood, by
log-sum-exp over the components ``(policy, utility)`` of every term's PyTensor value
(:meth:`~utiliscope.models.target.Target.tensor_of`), and ``U`` is the Deterministic ``P(U = i | pi, data)``
per draw. Without discrete latents (a linear prior over Dirichlet rows) each term other than g′'s is a
``pm.Potential`` of its own name (the prior's is ``simplicity``). g in the graph is the g method's in-graph
estimator (smoothed for NUTS where the method smooths).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import softmax

from utiliscope.evaluation import feature_expectations
from utiliscope.models import graph
from utiliscope.models.target import GPrimeLikelihood, Latents, LibraryTarget, Target
from utiliscope.world_model import FiniteWorldModel


def build_pymc_model(target: Target, coords: dict, g_table: np.ndarray | None = None) -> pm.Model:
    """The PyMC model of ``target`` with ``coords``; ``g_table`` is a finite world model's hard g table
    ``g[j, n]`` (a library's g is then data, not a graph of pi)."""
    with pm.Model(coords=coords) as model:
        for term in target.terms:
            term.add_data()
        pi = _policy(target.world_model)
        if isinstance(target, LibraryTarget):
            _library(target, pi, g_table)
        else:
            _linear(target, pi)
    return model


def _policy(world_model):
    """The ``pi`` node: the finite candidates (data, marginalised) or Dirichlet rows (latent)."""
    if isinstance(world_model, FiniteWorldModel):
        return pm.Data("pi", world_model.policies, dims=("policy", "state", "action"))
    alpha = pm.Data("alpha", world_model.alpha, dims=("state", "action"))
    return pm.Dirichlet("pi", a=alpha, dims=("state", "action"))


def _library(target: LibraryTarget, pi, g_table) -> None:
    """One mixture component per (candidate policy,) library entry; ``U`` is the mixture's posterior."""
    n_utilities = len(target.utility_prior.names)
    pm.Data("rewards", target.rewards, dims=("utility", "state", "action"))
    pm.Data("description_bits", target.utility_prior.description_bits, dims="utility")
    if target.is_finite:
        g = pm.Deterministic("g", pt.as_tensor(g_table), dims=("policy", "utility"))
        batch = Latents(pi=pi, g=g)
        log_w = pt.as_tensor(np.log(target.world_model.weights))[:, None]
    else:
        flat = target.rewards.reshape(n_utilities, -1)
        v_pi = pt.dot(flat, graph.occupancy_tensor(target.worlds, pi).ravel())
        g = pm.Deterministic("g", target.estimator.library_tensor(v_pi), dims="utility")
        batch = Latents(pi=pi[None], g=g[None])
        log_w = pt.zeros((1, 1))
    joint = _observe(target, batch, log_w)
    pm.Deterministic("U", pt.exp(joint - pt.logsumexp(joint)).sum(axis=0), dims="utility")


def _linear(target: Target, pi) -> None:
    theta = target.utility_prior.create_direction()
    pm.Deterministic("U", theta, dims="feature")
    reference = target.estimator.linear_reference_data()
    if target.is_finite:
        # Data rather than constants, as the importance reference above: models whose candidate policies
        # differ (a study's world models) then share one compiled density.
        features = feature_expectations(target.worlds, target.world_model.policies, target.features)
        mu_pi = pm.Data("policy_features", features, dims=("policy", "feature"))
        g = pm.Deterministic(
            "g", target.estimator.linear_tensor(pt.dot(mu_pi, theta), theta, *reference), dims="policy"
        )
        _observe(target, Latents(pi=pi, theta=theta[None], g=g), pt.as_tensor(np.log(target.world_model.weights)))
        return
    phi = target.features.reshape(-1, target.features.shape[-1])
    mu_pi = pt.dot(graph.occupancy_tensor(target.worlds, pi).ravel(), phi)
    g = pm.Deterministic("g", target.estimator.linear_tensor(pt.dot(mu_pi, theta)[None], theta, *reference)[0])
    batch = Latents(pi=pi[None], theta=theta[None], g=g[None])
    g_prime = target.g_prime
    for term in target.terms:
        if term is not g_prime:
            pm.Potential(term.name, pt.sum(term.tensor(batch)))
    _observed_node(g_prime, g[None], pt.zeros(1))


def _observe(target: Target, batch: Latents, log_w) -> pt.TensorVariable:
    """Add ``g_prime`` as the exact mixture over the batch's components, weighted by every other term and
    ``log_w``; return the components' log joint."""
    g_prime = target.g_prime
    others = log_w + target.tensor_of(batch, exclude=(g_prime,))
    others = others + pt.zeros_like(batch.g)
    _observed_node(g_prime, batch.g.ravel(), others.ravel())
    return others + g_prime.tensor(batch)


def _observed_node(g_prime: GPrimeLikelihood, g, log_w) -> None:
    """The observed ``g_prime``: log-sum-exp over components of ``log w + w_g log f(g′ | g)``; its draws pick a
    component with probability ``softmax(log w)`` and draw g′ from the likelihood at its g."""
    likelihood = g_prime.likelihood

    def mixture_logp(value, g, log_w):
        return pt.logsumexp(log_w + g_prime.tensor(Latents(g=g), value=value))

    def mixture_random(g, log_w, rng=None, size=None):
        rng = np.random.default_rng(rng)
        component = rng.choice(len(log_w), p=softmax(log_w))
        return np.asarray(likelihood.random(g[component], rng), dtype=float)

    pm.CustomDist(
        "g_prime",
        g,
        log_w,
        logp=mixture_logp,
        random=mixture_random if likelihood.generative else None,
        signature="(n),(n)->()",
        shape=(),
        observed=g_prime.node,
    )


__all__ = ["build_pymc_model"]
