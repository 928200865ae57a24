"""Simulation-based calibration: PIT formulas, a calibrated exact problem passes, a mismatched one fails."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import utiliscope as us
from utiliscope.studies.sbc import rank_pit, sbc, weighted_pit


@pytest.fixture(scope="module")
def policies(worlds):
    return np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(4, worlds.n_states))


def _finite_scope(worlds, library, policies, lam=0.5, sigma=1.0):
    """Library prior and finite world model: the posterior is exact, so SBC costs no MCMC."""
    world_model = us.WorldModel.from_policies(policies, [0.1, 0.2, 0.3, 0.4])
    likelihood = us.likelihoods.Normal(observed=3.0, sigma=sigma)
    return us.Utiliscope(worlds, world_model, library.with_simplicity_weight(lam), likelihood)


@pytest.fixture(scope="module")
def scope(worlds, library, policies):
    return _finite_scope(worlds, library, policies)


@pytest.fixture(scope="module")
def calibrated(scope):
    return sbc(scope, 200, seed=3, client="serial", alpha=0.001, progressbar=False)


def test_weighted_pit_by_hand():
    values, weights = np.array([0, 1, 2, 3]), np.array([0.1, 0.2, 0.3, 0.4])
    assert weighted_pit(values, weights, 2, 0.0) == pytest.approx(0.3)
    assert weighted_pit(values, weights, 2, 1.0) == pytest.approx(0.6)
    assert weighted_pit(values, weights, 2, 0.5) == pytest.approx(0.45)
    # ties between several values equal to the truth are randomised together
    assert weighted_pit(np.array([1.0, 1.0, 2.0]), np.array([0.25, 0.25, 0.5]), 1.0, 0.5) == pytest.approx(0.25)


def test_rank_pit_by_hand():
    draws = np.array([0.1, 0.5, 0.5, 0.9])
    assert rank_pit(draws, 0.5, 0.0) == pytest.approx(1 / 5)  # one draw below
    assert rank_pit(draws, 0.5, 1.0) == pytest.approx(4 / 5)  # ... plus the two ties and the truth itself
    assert rank_pit(draws, 2.0, 0.5) == pytest.approx(4.5 / 5)


def test_rank_pit_is_uniform_for_exchangeable_draws():
    """Truth and draws i.i.d. from the same distribution: the randomised rank is Uniform(0, 1)."""
    rng = np.random.default_rng(11)
    pits = np.array([rank_pit(rng.integers(0, 3, 20), rng.integers(0, 3), rng.random()) for _ in range(4000)])
    # Mean 1/2 and variance 1/12 within 5 standard errors (the variance of a U(0,1)² is 1/180 - ...).
    assert abs(pits.mean() - 0.5) < 5 * np.sqrt(1 / 12 / pits.size)
    assert abs(pits.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / pits.size)


def test_calibrated_problem_passes(calibrated):
    assert calibrated.variables == ("U", "g", "pi")
    assert len(calibrated.table) == 200 and calibrated.n_failed == 0
    assert calibrated.ok, str(calibrated)
    for name in calibrated.variables:
        pit = calibrated.pit(name)
        assert np.all((pit >= 0) & (pit <= 1))
        assert calibrated.histogram(name, bins=5).sum() == 200


def test_pit_of_U_brackets_the_exact_posterior(scope, library, calibrated):
    """Each row's PIT of U lies between P(U < u*) and P(U ≤ u*) under the exact posterior at its g′.

    The posterior is written out here with scipy's normal density: P(U_i | g′) ∝ P(U_i) Σ_j w_j N(g′; g_ji, 1).
    """
    g = scope.g_table_finite()  # checked against an enumeration of every policy in tests/models
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    for row in calibrated.table.itertuples():
        density = np.where(np.isfinite(g), stats.norm.pdf(row.g_prime, np.where(np.isfinite(g), g, 0.0)), 0.0)
        posterior = library.with_simplicity_weight(0.5).prior * (weights @ density)
        posterior /= posterior.sum()
        u = library.index(row.U_true)
        assert posterior[:u].sum() - 1e-9 <= row.pit_U <= posterior[: u + 1].sum() + 1e-9


def test_simulated_g_prime_follows_the_likelihood(calibrated):
    """g′ − g* ~ Normal(0, 1): mean and variance within 5 standard errors."""
    noise = (calibrated.table["g_prime"] - calibrated.table["g_true"]).to_numpy()
    assert abs(noise.mean()) < 5 / np.sqrt(noise.size)
    assert abs(noise.var() - 1.0) < 5 * np.sqrt(2 / noise.size)


def test_prior_mismatch_fails_the_uniformity_test(worlds, library, policies, scope):
    """Simulating with λ = 3 but fitting with λ = 0.5 must be caught."""
    mismatched = _finite_scope(worlds, library, policies, lam=3.0)
    result = sbc(scope, 100, seed=3, client="serial", simulate_from=mismatched, progressbar=False)
    assert not result.ok
    tests = result.tests.set_index("variable")
    assert tests.loc["U", "p_value"] < 1e-6
    assert "NOT calibrated" in str(result)


def test_likelihood_mismatch_fails_the_uniformity_test(worlds, library, policies, scope):
    """Simulating g′ with σ = 4 but fitting with σ = 1 must be caught."""
    noisy = _finite_scope(worlds, library, policies, sigma=4.0)
    result = sbc(scope, 100, seed=3, client="serial", simulate_from=noisy, progressbar=False)
    assert not result.ok


def test_table_does_not_depend_on_workers(scope, clients):
    serial = sbc(scope, 30, seed=5, client="serial", progressbar=False).table
    for client in clients:
        pd.testing.assert_frame_equal(sbc(scope, 30, seed=5, client=client, progressbar=False).table, serial)


def test_exponential_likelihood_is_refused(worlds, library, policies):
    scope = us.Utiliscope(worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.Exponential())
    with pytest.raises(TypeError, match="not a distribution of g′"):
        sbc(scope, 10, client="serial")


def test_mismatched_simulator_is_refused(worlds, library, policies, scope):
    other = us.Utiliscope(worlds, us.WorldModel.from_policies(policies[:2]), library, scope.likelihood)
    with pytest.raises(ValueError, match="simulate_from"):
        sbc(scope, 10, client="serial", simulate_from=other)
    with pytest.raises(TypeError, match=r"scope must be a us\.Utiliscope"):
        sbc("scope", 10)


def test_plot_draws_one_ecdf_per_variable(calibrated):
    axes = calibrated.plot()
    assert len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["SBC: U", "SBC: g", "SBC: pi"]


@pytest.mark.slow
def test_dirichlet_world_model_runs_mcmc(worlds, library):
    """The MCMC path (Dirichlet rows): a few simulations, to exercise it; too few for a calibration claim."""
    world_model = us.WorldModel.dirichlet(np.full((worlds.n_states, worlds.n_actions), 2.0))
    scope = us.Utiliscope(worlds, world_model, library, us.likelihoods.Normal(observed=3.0))
    nuts = {"sampler": "blackjax"}
    # One chain per fit: check cannot judge its convergence and says so for every fit.
    with pytest.warns(us.models.SamplerWarning, match="chains"):
        result = sbc(
            scope, 4, seed=0, client="serial", draws=100, tune=100, chains=1, progressbar=False, fit_kwargs=nuts
        )
    assert result.n_failed == 0, result.table["error"].tolist()
    assert len(result.variables) == 2 + worlds.n_states * worlds.n_actions
    pits = result.table[[f"pit_{name}" for name in result.variables]].to_numpy()
    assert np.all((pits >= 0) & (pits <= 1))
    assert "divergences" in result.table


@pytest.mark.slow
def test_dirichlet_world_model_with_the_default_engine_is_calibrated():
    """The default engine (iid) on a small library over Dirichlet rows: 200 refits, uniform PITs. A few simulated
    g′ lie where the world model's draws rarely reach; those refits move to SMC, whose short runs may fail their
    diagnostics and say so: a few percent of the refits at most."""
    world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1)
    world_model = us.WorldModel.dirichlet(np.full((world.n_states, world.n_actions), 3.0))
    scope = us.Utiliscope(world, world_model, library, us.likelihoods.Normal(observed=2.0, sigma=0.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", us.models.SamplerWarning)
        result = sbc(scope, 200, seed=0, client="serial", draws=200, chains=2, progressbar=False)
    sampler_warnings = [w for w in caught if issubclass(w.category, us.models.SamplerWarning)]
    for other in (w for w in caught if w not in sampler_warnings):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    assert len(sampler_warnings) <= 10
    assert result.n_failed == 0, result.table["error"].dropna().tolist()[:3]
    assert result.ok, str(result)
