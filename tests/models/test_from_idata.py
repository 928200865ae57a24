"""A saved run rebuilds its model (``from_idata``), and predictive groups of g′ (``Utiliscope.predictive``)."""

import json

import numpy as np
import pymc as pm
import pytest

import utiliscope as us
from utiliscope.models.combined import CombinedIRL

FIT = {"draws": 200, "chains": 2, "progressbar": False}


@pytest.fixture(scope="module")
def problem():
    world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(world.features)
    demos = us.agents.Boltzmann(library.rewards[1], beta=5.0).demonstrate(
        world, n_trajectories=20, horizon=10, seed=0
    )
    return world, library, demos


def _round_trip(scope, tmp_path, name, **fit):
    idata = scope.fit(seed=3, **{**FIT, **fit})
    loaded = us.load(us.save(idata, tmp_path / f"{name}.nc"))
    return idata, loaded, type(scope).from_idata(loaded)


def _same_decision(a, b):
    return np.array_equal(a.policy, b.policy) and a.rule == b.rule


def test_dirichlet_library_round_trip(problem, tmp_path):
    world, library, demos = problem
    scope = us.Utiliscope(
        world, us.WorldModel.from_demonstrations(demos), library, us.likelihoods.AsymmetricLaplace(observed=4.0)
    )
    idata, loaded, rebuilt = _round_trip(scope, tmp_path, "dirichlet", target_mcse=0.02, max_draws=20_000)
    assert rebuilt.settings() == scope.settings()
    assert _same_decision(rebuilt.decide(loaded), scope.decide(idata))
    refit = rebuilt.fit(seed=3, **FIT, target_mcse=0.02, max_draws=20_000)
    assert refit.attrs["engine"] == idata.attrs["engine"]
    np.testing.assert_array_equal(rebuilt.utility_posterior(refit), scope.utility_posterior(idata))


def test_finite_world_model_round_trip(problem, tmp_path):
    world, library, demos = problem
    candidates = us.WorldModel.from_demonstrations(demos).sample(30, seed=1)
    scope = us.Utiliscope(
        world, us.WorldModel.from_policies(candidates), library, us.likelihoods.Normal(observed=3.0, sigma=1.0)
    )
    idata, loaded, rebuilt = _round_trip(scope, tmp_path, "finite")
    assert rebuilt.settings() == scope.settings()
    np.testing.assert_allclose(rebuilt.exact_posterior(), scope.exact_posterior(), rtol=0, atol=1e-12)
    assert _same_decision(rebuilt.decide(loaded), scope.decide(idata))
    np.testing.assert_array_equal(
        rebuilt.utility_posterior(rebuilt.fit(seed=3, **FIT)), scope.utility_posterior(idata)
    )


def test_combined_and_boltzmann_round_trip(problem, tmp_path):
    world, library, demos = problem
    candidates = us.WorldModel.from_demonstrations(demos).sample(20, seed=2)
    combined = CombinedIRL(
        world,
        us.WorldModel.from_policies(candidates),
        demos,
        library,
        us.likelihoods.AsymmetricLaplace(observed=4.0),
        beta=5.0,
        action_weight=0.5,
    )
    _, _, rebuilt = _round_trip(combined, tmp_path, "combined")
    assert rebuilt.settings() == combined.settings()
    np.testing.assert_allclose(rebuilt.exact_posterior(), combined.exact_posterior(), rtol=0, atol=1e-12)
    birl = us.models.BoltzmannIRL(world, demos, library, beta=5.0)
    _, loaded, rebuilt = _round_trip(birl, tmp_path, "birl")
    assert rebuilt.settings() == birl.settings()
    np.testing.assert_allclose(rebuilt.exact_posterior(), birl.exact_posterior(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"BoltzmannIRL\.from_idata"):
        us.Utiliscope.from_idata(loaded)


def test_refuses_naming_what_is_missing(problem, tmp_path):
    world, library, demos = problem
    candidates = us.WorldModel.from_demonstrations(demos).sample(10, seed=1)
    scope = us.Utiliscope(
        world,
        us.WorldModel.from_policies(candidates),
        library,
        us.likelihoods.Normal(observed=3.0),
        policy_prior=us.policies.PolicySet(candidates),
    )
    idata = scope.fit(seed=0, **FIT)
    with pytest.raises(ValueError, match="PolicySet"):
        us.Utiliscope.from_idata(idata)
    del idata.attrs["world_model"]
    idata.attrs["policy_prior"] = json.dumps({"name": "uniform_deterministic"})
    with pytest.raises(ValueError, match="'world_model'"):
        us.Utiliscope.from_idata(idata)
    del idata.worlds
    with pytest.raises(ValueError, match="'worlds' group"):
        us.Utiliscope.from_idata(idata)


def test_predictive_groups(problem):
    world, library, demos = problem
    candidates = us.WorldModel.from_demonstrations(demos).sample(30, seed=1)
    sigma = 1.0
    scope = us.Utiliscope(
        world, us.WorldModel.from_policies(candidates), library, us.likelihoods.Normal(observed=3.0, sigma=sigma)
    )
    idata = scope.fit(seed=0, draws=1000, chains=2, progressbar=False)
    out = scope.predictive(idata, seed=1)
    assert "posterior_predictive" not in idata.groups()
    ppc = out.posterior_predictive["g_prime"]
    assert ppc.dims == ("chain", "draw") and ppc.shape == (2, 1000)
    assert out.prior_predictive["g_prime"].shape == (1, 2000) and out.prior["U"].shape == (1, 2000)
    # E[g′] = mean over draws of Σ_U P(U | pi, g′) g(pi, U): Normal(mu=g) has mean g.
    expected = float((idata.posterior["U"] * idata.posterior["g"]).sum("utility").mean())
    values = ppc.values.ravel()
    assert abs(values.mean() - expected) < 4 * values.std() / np.sqrt(values.size)
    prior = out.prior_predictive["g_prime"].values.ravel()
    g_prior = out.prior["g"].values.ravel()
    assert abs(prior.mean() - g_prior.mean()) < 4 * sigma / np.sqrt(prior.size)
    with pytest.raises(TypeError, match="potential"):
        us.Utiliscope(
            world, us.WorldModel.from_policies(candidates), library, us.likelihoods.Exponential()
        ).predictive(idata)


def test_rebuilt_scope_observes_what_the_fit_observed(problem):
    """A study's pm.set_data of g′ is read back from the fit's observed_data."""
    world, library, demos = problem
    candidates = us.WorldModel.from_demonstrations(demos).sample(30, seed=1)
    scope = us.Utiliscope(
        world, us.WorldModel.from_policies(candidates), library, us.likelihoods.Normal(observed=3.0, sigma=1.0)
    )
    with scope.model:
        pm.set_data({"g_prime_observed": 6.0})
    rebuilt = us.Utiliscope.from_idata(scope.fit(seed=0, **FIT))
    assert rebuilt.observed_g_prime == 6.0 and rebuilt.settings() == scope.settings()
    np.testing.assert_allclose(rebuilt.exact_posterior(), scope.exact_posterior(), rtol=0, atol=1e-12)
