"""One target, written once: every engine fits the density of the model's evidence terms.

References here share no estimator with the engines they check: exact sums over a finite world model, the
package's own Utiliscope and BoltzmannIRL posteriors for the product rule, and the PyMC graph's logp compiled
from the terms' tensors against their NumPy values.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp, softmax

import utiliscope as us
from utiliscope.models.engines import ENGINES, get_engine
from utiliscope.models.target import EvidenceTerm, Latents

BETA = 5.0


@pytest.fixture(scope="module")
def problem():
    world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(world.features)
    agent = us.agents.Boltzmann(library.rewards[1], beta=BETA)
    demos = agent.demonstrate(world, n_trajectories=20, horizon=10, seed=0)
    return world, library, demos


def _likelihood():
    return us.likelihoods.AsymmetricLaplace(observed=4.0)


def _utiliscope(problem, world_model):
    world, library, _ = problem
    return us.Utiliscope(world, world_model, library, _likelihood(), g_method="exact")


def _combined(problem, world_model, weight):
    world, library, demos = problem
    return us.models.CombinedIRL(
        world, world_model, demos, library, _likelihood(), beta=BETA, g_method="exact", action_weight=weight
    )


def _log_actions(problem):
    """``log L_actions(U_i)``: the package's own BoltzmannIRL log-likelihood of the demonstrations."""
    world, library, demos = problem
    return us.models.BoltzmannIRL(world, demos, library, beta=BETA).log_likelihoods()


def _estimate(idata):
    group = idata.utility_estimate
    return group["probability"].values, group["mcse"].values


def _product(p_us, mcse_us, log_actions, weight, rng):
    """``P_us · L^w`` normalised, and its standard error by propagating P_us's MCSE (normal perturbations)."""
    expected = softmax(np.log(np.maximum(p_us, 1e-300)) + weight * log_actions)
    draws = np.maximum(p_us + mcse_us * rng.standard_normal((400, p_us.size)), 1e-300)
    spread = np.std(softmax(np.log(draws) + weight * log_actions, axis=1), axis=0)
    return expected, spread


# --------------------------------------------------------------------------- the bug the target fixes
@pytest.mark.parametrize("weight", [0.5, 1.0, 3.0])
def test_combined_posterior_is_the_product_rule_on_the_iid_engine(problem, weight):
    """P_comb(U) ∝ P_us(U) · L_actions(U)^w with a Dirichlet world model, within Monte Carlo error."""
    demos = problem[2]
    world_model = us.WorldModel.from_demonstrations(demos)
    p_us, mcse_us = _estimate(_utiliscope(problem, world_model).fit(seed=1, sampler="iid", target_mcse=0.002))
    combined = _combined(problem, world_model, weight)
    fit = combined.fit(seed=2, sampler="iid", target_mcse=0.002)
    p_comb, mcse_comb = _estimate(fit)
    log_actions = _log_actions(problem)
    expected, spread = _product(p_us, mcse_us, log_actions, weight, np.random.default_rng(0))
    np.testing.assert_array_less(np.abs(p_comb - expected), 5 * np.hypot(mcse_comb, spread) + 1e-3)
    assert np.abs(p_comb - p_us).max() > 0.05  # the demonstrated actions change the posterior


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.5, 1.0, 3.0])
def test_combined_posterior_is_the_product_rule_on_the_smc_engine(problem, weight):
    world_model = us.WorldModel.from_demonstrations(problem[2])
    p_us, mcse_us = _estimate(_utiliscope(problem, world_model).fit(seed=1, sampler="iid", target_mcse=0.002))
    fit = _combined(problem, world_model, weight).fit(seed=3, sampler="smc", chains=4, draws=500)
    p_comb, mcse_comb = _estimate(fit)
    expected, spread = _product(p_us, mcse_us, _log_actions(problem), weight, np.random.default_rng(0))
    np.testing.assert_array_less(np.abs(p_comb - expected), 5 * np.hypot(mcse_comb, spread) + 0.01)


def test_combined_exact_posterior_is_the_product_rule(problem):
    demos = problem[2]
    candidates = us.WorldModel.from_policies(us.WorldModel.from_demonstrations(demos).sample(30, seed=0))
    p_us = _utiliscope(problem, candidates).exact_posterior().values
    for weight in (0.5, 1.0, 3.0):
        p_comb = _combined(problem, candidates, weight).exact_posterior().values
        expected = softmax(np.log(p_us) + weight * _log_actions(problem))
        np.testing.assert_allclose(p_comb, expected, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- each engine's log weights
def _brute_log_weight(scope, policies):
    """``log Σ_i P(U_i) f(g′ | g(pi, U_i)) L_i^w`` of each policy, from its own exact g (``us.intelligence``)."""
    likelihood = scope.likelihood
    out = []
    for pi in policies:
        g = np.array([us.intelligence(scope.worlds, pi, r) for r in scope.rewards])
        joint = scope.utility_prior.log_prior + likelihood.logp(g)
        if isinstance(scope, us.models.CombinedIRL):
            joint = joint + scope.action_weight * scope.action_log_likelihoods()
        out.append(logsumexp(joint))
    return np.array(out)


@pytest.fixture(scope="module")
def dirichlet_scope(problem):
    return _combined(problem, us.WorldModel.from_demonstrations(problem[2]), 0.7)


def test_iid_engine_log_weights_are_the_exact_sum(dirichlet_scope):
    target = dirichlet_scope.target
    x = target.draw(5, np.random.default_rng(0))
    log_w, _ = target.evidence(x)
    np.testing.assert_allclose(log_w, _brute_log_weight(dirichlet_scope, target.policies(x)), rtol=1e-10)


def test_smc_engine_log_likelihood_is_the_exact_sum(dirichlet_scope):
    target = dirichlet_scope.target
    u = target.smc_start(5, np.random.default_rng(1))
    policies = target.policies(target.natural(u))
    np.testing.assert_allclose(target.log_likelihood(u), _brute_log_weight(dirichlet_scope, policies), rtol=1e-10)


def test_exact_engine_log_joint_is_the_exact_sum(problem):
    policies = us.WorldModel.from_demonstrations(problem[2]).sample(4, seed=3)
    scope = _combined(problem, us.WorldModel.from_policies(policies), 0.7)
    joint = scope.target.exact_log_joint()
    expected = _brute_log_weight(scope, policies) + np.log(0.25)
    np.testing.assert_allclose(logsumexp(joint, axis=1), expected, rtol=1e-10)


def test_nuts_graph_log_density_is_the_exact_sum(problem):
    """The PyMC model's log density (what every NUTS engine samples) at a point equals the terms' NumPy sum
    plus the Dirichlet prior of pi (exact g: nothing is smoothed)."""
    from scipy.stats import dirichlet

    scope = _combined(problem, us.WorldModel.from_demonstrations(problem[2]), 0.7)
    model = scope.model
    pi = scope.world_model.sample(1, seed=5)[0]
    logp = model.compile_logp(jacobian=False)
    point = {model.rvs_to_values[model["pi"]].name: model.rvs_to_transforms[model["pi"]].forward(pi).eval()}
    alpha = scope.world_model.alpha
    prior = sum(dirichlet.logpdf(row, a) for row, a in zip(pi, alpha, strict=True))
    np.testing.assert_allclose(logp(point), prior + _brute_log_weight(scope, pi[None])[0], rtol=1e-9)


# --------------------------------------------------------------------------- a new term reaches every engine
class Tilt(EvidenceTerm):
    """A toy term: ``c`` nats for library entry ``k``, the same in NumPy and in the graph."""

    name = "tilt"

    def __init__(self, n: int, k: int, c: float) -> None:
        self.values = np.zeros(n)
        self.values[k] = c

    def log_weight(self, latents: Latents) -> np.ndarray:
        return self.values[None, :]

    def tensor(self, latents: Latents):
        return pt.as_tensor(self.values)[None, :]


def test_a_new_term_reaches_the_exact_engine(problem):
    policies = us.WorldModel.from_demonstrations(problem[2]).sample(10, seed=0)
    scope = _utiliscope(problem, us.WorldModel.from_policies(policies))
    before = scope.exact_posterior().values
    scope.add_evidence(Tilt(before.size, 3, 2.0))
    expected = softmax(np.log(before) + scope.target.terms[-1].values)
    np.testing.assert_allclose(scope.exact_posterior().values, expected, rtol=1e-9)
    fit = scope.fit(seed=0, draws=50, chains=2, progressbar=False)
    # Each exact draw carries P(U | pi_j, data) of its candidate, the tilt included.
    picks = fit.posterior["policy_index"].values.ravel()
    conditional = softmax(scope.target.exact_log_joint(), axis=1)[picks]
    np.testing.assert_allclose(fit.posterior["U"].values.reshape(picks.size, -1), conditional, atol=1e-12)


def test_a_new_term_reaches_the_iid_and_smc_engines_and_the_graph(problem):
    scope = _utiliscope(problem, us.WorldModel.from_demonstrations(problem[2]))
    p0, mcse0 = _estimate(scope.fit(seed=1, sampler="iid", target_mcse=0.003))
    tilt = Tilt(p0.size, 0, -1.5)
    scope.add_evidence(tilt)
    expected, spread = _product(p0, mcse0, tilt.values, 1.0, np.random.default_rng(0))
    p_iid, mcse_iid = _estimate(scope.fit(seed=2, sampler="iid", target_mcse=0.003))
    np.testing.assert_array_less(np.abs(p_iid - expected), 5 * np.hypot(mcse_iid, spread) + 1e-3)
    p_smc, mcse_smc = _estimate(scope.fit(seed=2, sampler="smc", chains=4, draws=400))
    assert abs(p_smc[0] - expected[0]) < 5 * np.hypot(mcse_smc[0], spread[0]) + 0.01
    # The graph: U at a point is the terms' conditional P(U | pi, data), the tilt included.
    model = scope.model
    pi = scope.world_model.sample(1, seed=5)[0]
    point = {model.rvs_to_values[model["pi"]].name: model.rvs_to_transforms[model["pi"]].forward(pi).eval()}
    graph_u = model.compile_fn(model.replace_rvs_by_values([model["U"]])[0], inputs=model.value_vars)(point)
    np.testing.assert_allclose(graph_u, softmax(scope.target.log_joint(pi[None])[1][0]), rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------- the registry
def test_engines_are_looked_up_by_name_and_refuse_what_they_do_not_fit(problem):
    finite = _utiliscope(problem, us.WorldModel.from_policies(np.full((1, 6, 5), 0.2)))
    dirichlet = _utiliscope(problem, us.WorldModel.from_demonstrations(problem[2]))
    supported = {name for name, engine in ENGINES.items() if engine.supports(dirichlet)}
    assert {"iid", "smc"} <= supported and "exact" not in supported
    assert get_engine("exact").supports(finite) and not get_engine("iid").supports(finite)
    with pytest.raises(ValueError, match="does not fit this model"):
        finite.fit(sampler="iid")
    with pytest.raises(TypeError, match=r"does not take \['n_steps'\]"):
        dirichlet.fit(sampler="iid", n_steps=3)
    with pytest.raises(ValueError, match="sampler is 'emcee'"):
        get_engine("emcee")
