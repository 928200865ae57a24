"""CombinedIRL: the weighted g′ and action evidence, exact posterior against brute force, limits and the graph."""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import utiliscope as us
from utiliscope.models.combined import CombinedIRL

LAYOUT = ["Sa", "bc"]
BETA = 2.0
G_PRIME = 5.0


@pytest.fixture(scope="module")
def worlds():
    return us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)], [0.3, 0.7])


@pytest.fixture(scope="module")
def library(worlds):
    return us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, simplicity_weight=0.5, feature_names=worlds.feature_names
    )


@pytest.fixture(scope="module")
def problem(worlds, library):
    """An ε-greedy agent's demonstrations and five candidate policies drawn from their Dirichlet belief."""
    agent = us.agents.EpsilonGreedy(library.rewards[library.index("+a-b")], epsilon=0.3)
    demos = agent.demonstrate(worlds, n_trajectories=6, horizon=6, seed=2)
    weights = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    policies = us.WorldModel.from_demonstrations(demos).sample(len(weights), seed=3)
    return demos, us.WorldModel.from_policies(policies, weights)


def _combined(worlds, library, problem, **weights):
    demos, world_model = problem
    likelihood = us.likelihoods.AsymmetricLaplace(observed=G_PRIME)
    return CombinedIRL(worlds, world_model, demos, library, likelihood, beta=BETA, **weights)


def _brute_force_g(worlds, policies, rewards):
    """g[j, n] against all 5^4 deterministic policies, each valued by one linear solve per world."""
    S, A = worlds.n_states, worlds.n_actions

    def values(pi):
        total = 0.0
        for w, P, mu0 in zip(worlds.weights, worlds.transitions, worlds.starts, strict=True):
            d = np.linalg.solve((np.eye(S) - worlds.gamma * np.einsum("sa,sat->st", pi, P)).T, mu0)
            total = total + w * np.einsum("s,sa,nsa->n", d, pi, rewards)
        return total

    others = np.array([values(np.eye(A)[list(a)]) for a in itertools.product(range(A), repeat=S)])
    g = np.empty((len(policies), len(rewards)))
    for j, pi in enumerate(policies):
        own = values(pi)
        tolerance = 1e-9 * np.maximum(np.abs(own), np.abs(others).max(axis=0))
        share = np.mean(others >= own - tolerance, axis=0)
        g[j] = np.where(share == 0, np.inf, -np.log2(np.where(share == 0, 1.0, share)))
    return g


def _boltzmann_log_likelihood(worlds, demos, rewards):
    """Σ over the trajectories' (s, a) of log pi(a | s), pi from plain soft value iteration (600 backups)."""
    P = np.einsum("e,esat->sat", worlds.weights, worlds.transitions)
    result = []
    for r in rewards:
        q = np.zeros_like(r)
        for _ in range(600):
            q = r + worlds.gamma * P @ (np.log(np.sum(np.exp(BETA * q), axis=1)) / BETA)
        log_pi = BETA * q - np.log(np.sum(np.exp(BETA * q), axis=1, keepdims=True))
        result.append(
            sum(log_pi[s, a] for t in demos.trajectories for s, a in zip(t.states, t.actions, strict=True))
        )
    return np.array(result)


@pytest.fixture(scope="module")
def brute_force_pieces(worlds, library, problem):
    demos, world_model = problem
    rewards = library.reward_table(worlds.n_actions)
    g = _brute_force_g(worlds, world_model.policies, rewards)
    b = kappa = np.sqrt(np.log(2))
    # PyMC's AsymmetricLaplace(mu=g, b, kappa) is scipy's laplace_asymmetric(kappa, loc=g, scale=1/b).
    finite = np.isfinite(g)
    log_g_prime = np.full(g.shape, -np.inf)
    log_g_prime[finite] = stats.laplace_asymmetric(kappa, loc=g[finite], scale=1 / b).logpdf(G_PRIME)
    return log_g_prime, _boltzmann_log_likelihood(worlds, demos, rewards)


@pytest.mark.parametrize(("g_weight", "action_weight"), [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_exact_posterior_equals_brute_force(worlds, library, problem, brute_force_pieces, g_weight, action_weight):
    """P(U_i) ∝ 2^(−λK_i) (Π pi_i^n)^w_a Σ_j w_j P(g′ | g_ji)^w_g, every piece recomputed here."""
    log_g_prime, log_actions = brute_force_pieces
    weights = problem[1].weights
    log_prior = -0.5 * library.description_bits * np.log(2)
    log_post = (
        log_prior
        + action_weight * log_actions
        + logsumexp(np.log(weights)[:, None] + g_weight * log_g_prime, axis=0)
    )
    expected = np.exp(log_post - logsumexp(log_post))
    combined = _combined(worlds, library, problem, g_weight=g_weight, action_weight=action_weight)
    np.testing.assert_allclose(combined.exact_posterior().values, expected, rtol=0, atol=1e-9)


def test_zero_weights_give_the_two_models(worlds, library, problem):
    demos, world_model = problem
    likelihood = us.likelihoods.AsymmetricLaplace(observed=G_PRIME)
    scope = us.Utiliscope(worlds, world_model, library, likelihood)
    birl = us.models.BoltzmannIRL(worlds, demos, library, beta=BETA)
    only_g = _combined(worlds, library, problem, action_weight=0.0).exact_posterior()
    only_actions = _combined(worlds, library, problem, g_weight=0.0).exact_posterior()
    np.testing.assert_allclose(only_g.values, scope.exact_posterior().values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(only_actions.values, birl.exact_posterior().values, rtol=0, atol=1e-12)


def test_graph_logp_is_the_weighted_mixture(worlds, library, problem, brute_force_pieces):
    """The compiled logp of the model equals log Σ_ij w_j P(U_i) (Π pi_i^n)^w_a P(g′ | g_ji)^w_g."""
    log_g_prime, log_actions = brute_force_pieces
    combined = _combined(worlds, library, problem, g_weight=0.5, action_weight=2.0)
    model = combined.model
    assert {"U", "pi", "g", "g_prime", "counts", "action_log_likelihood"} <= set(model.named_vars)
    log_prior = -0.5 * library.description_bits * np.log(2)
    log_prior -= logsumexp(log_prior)
    expected = logsumexp(np.log(problem[1].weights)[:, None] + log_prior + 2.0 * log_actions + 0.5 * log_g_prime)
    assert model.compile_logp()({}) == pytest.approx(expected, abs=1e-9)


def test_fit_draws_match_the_exact_posterior(worlds, library, problem):
    combined = _combined(worlds, library, problem, g_weight=0.5, action_weight=2.0)
    idata = combined.fit(draws=400, chains=2, seed=1, progressbar=False)
    assert "sample_stats" not in idata.groups()
    assert idata.attrs["model"] == "combined_irl" and idata.attrs["action_weight"] == 2.0
    # The per-draw U is P(U | pi_j, data) of an exactly drawn candidate j: its average is within MC error.
    exact = combined.exact_posterior().values
    draws = idata.posterior["U"].values.reshape(-1, len(exact))
    sem = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) <= 5 * sem + 1e-12)


def test_bad_arguments_are_refused(worlds, library, problem):
    demos, world_model = problem
    likelihood = us.likelihoods.AsymmetricLaplace(observed=G_PRIME)
    with pytest.raises(ValueError, match="g_weight"):
        _combined(worlds, library, problem, g_weight=-1.0)
    with pytest.raises(ValueError, match="beta"):
        CombinedIRL(worlds, world_model, demos, library, likelihood, beta=0.0)
    with pytest.raises(TypeError, match="UtilityLibrary"):
        CombinedIRL(worlds, world_model, demos, us.priors.LinearUtility(worlds.features), likelihood, beta=1.0)


def test_importance_smoothing_defaults_to_the_utiliscopes_calibration(worlds, library, problem):
    demos, world_model = problem
    likelihood = us.likelihoods.AsymmetricLaplace(observed=G_PRIME)
    settings = {"g_method": "importance", "n_samples": 200}
    combined = CombinedIRL(worlds, world_model, demos, library, likelihood, beta=BETA, **settings)
    scope = us.Utiliscope(worlds, world_model, library, likelihood, **settings)
    np.testing.assert_array_equal(combined.smoothing, scope.smoothing)
    assert combined.smoothing.shape == (len(library.names),)
