"""Seeds of the warmup metric: the Dirichlet's variances on PyMC's simplex scale, the model's seed, its use."""

import numpy as np
import pymc as pm
import pytest

import utiliscope as us
from utiliscope.models import jax_sampler
from utiliscope.models.warmup import dirichlet_simplex_variance


def test_dirichlet_simplex_variance_matches_draws_through_pymcs_transform():
    alpha = np.array([[0.5, 1.0, 3.0, 50.0], [1.0, 1.0, 1.0, 1.0], [20.0, 2.0, 7.0, 0.8]])
    n = 200_000
    for row in alpha:
        draws = np.random.default_rng(3).dirichlet(row, n)
        unconstrained = pm.distributions.transforms.simplex.forward(draws).eval()
        sample_variance = unconstrained.var(axis=0)
        # The standard error of a sample variance: sqrt((m4 − σ⁴) / n), from the draws' own fourth moment.
        centred = unconstrained - unconstrained.mean(axis=0)
        se = np.sqrt(((centred**4).mean(axis=0) - sample_variance**2) / n)
        exact = dirichlet_simplex_variance(row)
        assert exact.shape == (3,)
        assert np.all(np.abs(exact - sample_variance) < 4 * se), (row, exact, sample_variance, se)
    assert dirichlet_simplex_variance(alpha).shape == (3, 3)


def test_the_seed_is_the_metric_the_sampler_uses():
    """With no tuning, step size 1 on x ~ N(0, 0.01²): the identity metric rejects almost every step, the seeded
    one (the true variance) whitens the target and accepts most."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 0.01, shape=3)
    rates = {}
    for name, variances in (("identity", None), ("seeded", {"x": np.full(3, 1e-4)})):
        idata = jax_sampler.sample_jax(model, 200, 0, 2, 0, False, 0.8, variances)
        rates[name] = float(idata.sample_stats["acceptance_rate"].mean())
    assert rates["identity"] < 0.1 < 0.6 < rates["seeded"]


def test_initial_inverse_mass_orders_values_and_fills_the_rest_with_ones():
    with pm.Model() as model:
        pm.Normal("a", shape=(2, 2))
        pm.HalfNormal("b", shape=3)
    names = [var.name for var in model.value_vars]
    assert names == ["a", "b_log__"]
    shapes = [np.shape(model.initial_point()[name]) for name in names]
    flat = jax_sampler.initial_inverse_mass(names, shapes, {"a": np.array([[1.0, 2.0], [3.0, 4.0]])})
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"name \['c'\]"):
        jax_sampler.initial_inverse_mass(names, shapes, {"c": np.ones(1)})
    with pytest.raises(ValueError, match="warmup variance of b_log__ has shape"):
        jax_sampler.initial_inverse_mass(names, shapes, {"b_log__": np.ones(2)})
    with pytest.raises(ValueError, match="positive and finite"):
        jax_sampler.initial_inverse_mass(names, shapes, {"b_log__": np.array([1.0, 0.0, 1.0])})


@pytest.fixture(scope="module")
def demos(worlds, library):
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=3.0)
    return agent.demonstrate(worlds, n_trajectories=20, horizon=10, seed=4)


def _scope(worlds, world_model, prior):
    return us.Utiliscope(
        worlds,
        world_model,
        prior,
        us.likelihoods.AsymmetricLaplace(observed=4.0),
        g_method="monte_carlo",
        n_samples=200,
    )


def test_utiliscope_seeds_pi_from_its_current_alpha_and_z_from_the_prior(worlds, library, demos):
    linear = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    scope = _scope(worlds, us.WorldModel.from_demonstrations(demos), linear)
    variances = scope.warmup_variances()
    assert sorted(variances) == ["pi_simplex__", "z"]
    np.testing.assert_array_equal(variances["z"], np.full(linear.n_directions, linear.z_variance))
    np.testing.assert_allclose(variances["pi_simplex__"], dirichlet_simplex_variance(scope.world_model.alpha))
    # A study's pm.set_data of new counts changes the seed with them.
    new_alpha = scope.world_model.alpha + 10.0
    with scope.model:
        pm.set_data({"alpha": new_alpha})
    np.testing.assert_allclose(scope.warmup_variances()["pi_simplex__"], dirichlet_simplex_variance(new_alpha))
    assert list(_scope(worlds, us.WorldModel.from_demonstrations(demos), library).warmup_variances()) == [
        "pi_simplex__"
    ]
    policies = np.random.default_rng(1).dirichlet(np.ones(5), size=(3, worlds.n_states))
    finite = us.WorldModel.from_policies(policies)
    assert list(_scope(worlds, finite, linear).warmup_variances()) == ["z"]
    assert _scope(worlds, finite, library).warmup_variances() == {}
