"""Boltzmann-rational Bayesian IRL: the soft Bellman Op and its gradient, exactness against brute force, fits."""

import time

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad
from scipy import stats

import utiliscope as us
from utiliscope.models.boltzmann import BoltzmannIRL
from utiliscope.models.soft_bellman import SoftBellman, log_policy_tensor, soft_q_values

LAYOUT = ["S.a", "b.c"]
BETA = 3.0


@pytest.fixture(scope="module")
def worlds():
    return us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)], [0.4, 0.6])


@pytest.fixture(scope="module")
def library(worlds):
    return us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, simplicity_weight=0.5, feature_names=worlds.feature_names
    )


@pytest.fixture(scope="module")
def demos(worlds, library):
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=BETA)
    return agent.demonstrate(worlds, n_trajectories=8, horizon=6, seed=3)


def _brute_force_q(worlds, reward, beta):
    """Plain soft value iteration from Q = 0: 600 backups (0.9^600 ≈ 1e-28, far below float precision)."""
    P = sum(w * T for w, T in zip(worlds.weights, worlds.transitions, strict=True))
    q = np.zeros_like(reward)
    for _ in range(600):
        top = q.max(axis=1)
        v = top + np.log(np.sum(np.exp(beta * (q - top[:, None])), axis=1)) / beta
        q = reward + worlds.gamma * P @ v
    return q


def _brute_force_log_likelihood(worlds, demos, reward, beta):
    """Σ over every observed (s, a) of the trajectories of log softmax(β Q(s, ·))[a]."""
    q = _brute_force_q(worlds, reward, beta)
    return sum(
        beta * q[s, a] - np.log(np.sum(np.exp(beta * q[s])))
        for trajectory in demos.trajectories
        for s, a in zip(trajectory.states, trajectory.actions, strict=True)
    )


def _brute_force_posterior(worlds, demos, library, beta):
    log_like = np.array([_brute_force_log_likelihood(worlds, demos, r, beta) for r in library.reward_table(5)])
    log_post = -library.simplicity_weight * np.log(2) * np.asarray(library.description_bits) + log_like
    return np.exp(log_post - log_post.max()) / np.exp(log_post - log_post.max()).sum(), log_like


# ---------------------------------------------------------------------- the soft Bellman solver and Op
@pytest.mark.parametrize("beta", [0.2, 3.0, 50.0])
def test_soft_q_values_solve_the_soft_bellman_equation(worlds, rng, beta):
    rewards = rng.normal(size=(3, worlds.n_states, worlds.n_actions))
    q = soft_q_values(worlds.mean_transitions, worlds.gamma, rewards, beta)
    for reward, table in zip(rewards, q, strict=True):
        expected = _brute_force_q(worlds, reward, beta)
        np.testing.assert_allclose(table, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


@pytest.mark.slow
def test_soft_bellman_gradient_passes_verify_grad(worlds, rng):
    op = SoftBellman(worlds)
    reward = rng.normal(size=(worlds.n_states, worlds.n_actions))
    verify_grad(op, [reward, np.array(2.0)], rng=rng, mode="FAST_COMPILE")
    verify_grad(lambda r, b: log_policy_tensor(op(r, b), b), [reward, np.array(0.7)], rng=rng, mode="FAST_COMPILE")
    verify_grad(op, [rng.normal(size=(2, *reward.shape)), np.array(1.5)], rng=rng, mode="FAST_COMPILE")


def test_soft_bellman_gradient_matches_finite_differences_of_the_solver(worlds, rng):
    reward = rng.normal(size=(worlds.n_states, worlds.n_actions))
    weights = rng.normal(size=reward.shape)
    r, b = pt.matrix("r"), pt.scalar("b")
    grads = pytensor.function([r, b], pytensor.grad(pt.sum(SoftBellman(worlds)(r, b) * weights), [r, b]))
    grad_r, grad_b = grads(reward, 2.0)

    def objective(table, beta):
        return np.sum(soft_q_values(worlds.mean_transitions, worlds.gamma, table, beta) * weights)

    h = 1e-5
    numeric = np.zeros_like(reward)
    for index in np.ndindex(reward.shape):
        step = np.zeros_like(reward)
        step[index] = h
        numeric[index] = (objective(reward + step, 2.0) - objective(reward - step, 2.0)) / (2 * h)
    np.testing.assert_allclose(grad_r, numeric, atol=1e-7)
    assert grad_b == pytest.approx((objective(reward, 2.0 + h) - objective(reward, 2.0 - h)) / (2 * h), abs=1e-7)


# ---------------------------------------------------------------------- library prior: exactness
def test_exact_posterior_equals_brute_force(worlds, library, demos):
    expected, _ = _brute_force_posterior(worlds, demos, library, BETA)
    got = BoltzmannIRL(worlds, demos, library, beta=BETA).exact_posterior()
    assert got.dims == ("utility",)
    assert list(got.coords["utility"].values) == list(library.names)
    np.testing.assert_allclose(got.values, expected, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_model_logp_is_the_marginal_likelihood(worlds, library, demos):
    """The observed node sums the library out: log Σ_i P(U_i) Π pi_i(a|s)^n, at a fixed and at a latent β."""

    def log_marginal(beta):
        _, log_like = _brute_force_posterior(worlds, demos, library, beta)
        return np.logaddexp.reduce(library.log_prior + log_like)

    fixed = BoltzmannIRL(worlds, demos, library, beta=BETA).model
    assert fixed.compile_logp()(fixed.initial_point()) == pytest.approx(log_marginal(BETA), abs=1e-8)
    latent = BoltzmannIRL(worlds, demos, library, beta=None).model
    point = {"beta_log__": np.log(1.7)}
    logp = latent.compile_logp(vars=[latent["actions"]])(point)
    assert logp == pytest.approx(log_marginal(1.7), abs=1e-8)
    # The whole density adds LogNormal(1, 1) on log β, i.e. the normal density of log β.
    total = latent.compile_logp()(point)
    assert total - logp == pytest.approx(stats.norm.logpdf(np.log(1.7), 1.0, 1.0), abs=1e-10)


def test_fit_agrees_with_the_exact_posterior(worlds, library, demos):
    scope = BoltzmannIRL(worlds, demos, library, beta=BETA)
    idata = scope.fit(draws=2000, chains=2, seed=5, progressbar=False)
    exact = scope.exact_posterior().values
    np.testing.assert_allclose(scope.utility_posterior(idata).values, exact, rtol=0, atol=1e-12)
    # The i.i.d. utility indices: each frequency within 4 binomial standard errors of its exact probability.
    picks = idata.posterior["utility_index"].values.ravel()
    frequency = np.bincount(picks, minlength=len(exact)) / picks.size
    assert np.all(np.abs(frequency - exact) <= 4 * np.sqrt(exact * (1 - exact) / picks.size) + 1e-12)
    assert set(idata.groups()) >= {"posterior", "observed_data", "constant_data"}
    assert idata.attrs["model"] == "boltzmann_irl"
    np.testing.assert_allclose(idata.posterior["pi"].values[0, 0].sum(axis=1), 1.0, atol=1e-12)


def test_posterior_concentrates_on_the_true_utility_with_more_data(worlds, library):
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=BETA)
    mass = [
        BoltzmannIRL(worlds, agent.demonstrate(worlds, n, 8, seed=0), library, beta=BETA)
        .exact_posterior()
        .sel(utility="+a")
        .item()
        for n in (1, 40)
    ]
    assert mass[1] > mass[0]


# ---------------------------------------------------------------------- linear prior
@pytest.mark.slow
def test_linear_model_starts_finite_and_matches_brute_force(worlds, demos):
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    for beta in (BETA, None):
        model = BoltzmannIRL(worlds, demos, prior, beta=beta).model
        assert {"U", "Q", "pi", "beta", "actions"} <= set(model.named_vars)
        assert [v.name for v in model.observed_RVs] == ["actions"]
        point = model.initial_point()
        assert np.isfinite(model.compile_logp()(point))
        assert np.all(np.isfinite(model.compile_dlogp()(point)))
    model = BoltzmannIRL(worlds, demos, prior, beta=BETA).model
    z = np.array([0.3, -1.2, 0.5])
    theta = prior.basis @ z / np.linalg.norm(z)
    logp = model.compile_logp(vars=[model["actions"]])({"z": z})
    expected = _brute_force_log_likelihood(worlds, demos, worlds.features @ theta[:, None] * np.ones(5), BETA)
    assert logp == pytest.approx(expected, abs=1e-8)


@pytest.mark.slow
# 300 draws find the direction but not the ESS the check asks for (the funnel below): its warning is expected.
@pytest.mark.filterwarnings("ignore::utiliscope.models.SamplerWarning")
def test_linear_fit_recovers_a_boltzmann_agents_direction(worlds):
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    theta_true = prior.project([1.0, -1.0, 0.0])
    agent = us.agents.Boltzmann(worlds.features @ theta_true, beta=BETA)
    demos = agent.demonstrate(worlds, n_trajectories=50, horizon=10, seed=0)
    scope = BoltzmannIRL(worlds, demos, prior, beta=None)
    start = time.perf_counter()
    idata = scope.fit(draws=300, tune=300, chains=2, seed=1, progressbar=False)
    seconds = time.perf_counter() - start
    mean = idata.posterior["U"].values.reshape(-1, 3).mean(axis=0)
    cosine = mean @ theta_true / np.linalg.norm(mean)
    divergences = int(idata.sample_stats["diverging"].sum())
    # Reported, not asserted: the z/|z| direction has a funnel-like apex at z = 0 (11 of 600 draws diverged here).
    print(f"linear BoltzmannIRL fit: {seconds:.1f} s, cosine to theta* {cosine:.3f}, {divergences} divergences")
    assert cosine > 0.8


@pytest.mark.slow
def test_latent_beta_library_fit_agrees_with_quadrature(worlds, library, demos):
    """P(U | data) = ∫ P(U | data, β) p(β | data) dβ, by the trapezoid rule on a fine grid of log β."""
    scope = BoltzmannIRL(worlds, demos, library, beta=None)
    idata = scope.fit(draws=500, tune=500, chains=2, seed=2, progressbar=False)
    log_beta = np.linspace(-4.0, 5.0, 901)
    log_joint = np.array([library.log_prior + scope.log_likelihoods(np.exp(x)) for x in log_beta])
    log_joint += stats.norm.logpdf(log_beta, 1.0, 1.0)[:, None]
    joint = np.exp(log_joint - log_joint.max())
    expected = np.trapezoid(joint, log_beta, axis=0)
    expected /= expected.sum()
    fitted = scope.utility_posterior(idata).values
    assert np.max(np.abs(fitted - expected)) <= 0.03


def test_bad_arguments_are_named(worlds, library, demos):
    with pytest.raises(TypeError, match="demonstrations"):
        BoltzmannIRL(worlds, demos.counts, library, beta=1.0)
    with pytest.raises(ValueError, match="demonstrations"):
        BoltzmannIRL(worlds, us.Demonstrations.from_counts(np.ones((3, 5))), library, beta=1.0)
    with pytest.raises(TypeError, match="utility_prior"):
        BoltzmannIRL(worlds, demos, object(), beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        BoltzmannIRL(worlds, demos, library, beta=-1.0)
    with pytest.raises(ValueError, match="beta_prior"):
        BoltzmannIRL(worlds, demos, library, beta=None, beta_prior={"dist": "Normal", "sigma": 1.0})
    with pytest.raises(ValueError, match="beta_prior"):
        BoltzmannIRL(worlds, demos, library, beta=1.0, beta_prior={"dist": "HalfNormal", "sigma": 1.0})
    with pytest.raises(ValueError, match="beta=None"):
        BoltzmannIRL(worlds, demos, library, beta=None).exact_posterior()
    linear = BoltzmannIRL(worlds, demos, us.priors.LinearUtility(worlds.features), beta=1.0)
    with pytest.raises(ValueError, match="UtilityLibrary"):
        linear.exact_posterior()
    scope = BoltzmannIRL(worlds, demos, library, beta=1.0)
    with pytest.raises(ValueError, match="sampler"):
        scope.fit(sampler="metropolis")
    with pytest.raises(ValueError, match="draws"):
        scope.fit(draws=0)


def test_beta_prior_builds_the_named_distribution(worlds, library, demos):
    model = BoltzmannIRL(worlds, demos, library, beta=None, beta_prior={"dist": "HalfNormal", "sigma": 4.0}).model
    assert isinstance(model["beta"].owner.op, type(pm.HalfNormal.dist(1.0).owner.op))
