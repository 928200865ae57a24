"""NUTS fits warn, like the weighted engines, when their draws' g lies outside the g method's accurate range."""

import warnings

import arviz as az
import numpy as np
import pytest

import utiliscope as us
from utiliscope.models.engines.nuts import warn_outside_range
from utiliscope.models.g_methods import GAccuracyWarning


def _scope(prior_of):
    world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    demos = us.agents.Random().demonstrate(world, n_trajectories=10, horizon=8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return us.Utiliscope(
            world,
            us.WorldModel.from_demonstrations(demos),
            prior_of(world),
            us.likelihoods.Normal(observed=3.0, sigma=1.0),
            g_method="monte_carlo",
            n_samples=256,
            seed=0,
        )


def _idata(g, u):
    return az.from_dict(posterior={"g": g[None], "U": u[None]})


def test_library_draws_warn_only_where_weight_lies_outside():
    scope = _scope(lambda world: us.priors.UtilityLibrary.from_features(world.features))
    _, high = scope.estimator.accurate_range
    n_utilities = len(scope.utility_prior.names)
    g = np.full((50, n_utilities), high - 1.0)
    u = np.full((50, n_utilities), 1.0 / n_utilities)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_outside_range(scope, _idata(g, u))
        # Entry 0 is far outside the range, but carries no posterior weight.
        g[:, 0], u[:, 0], u[:, 1] = high + 5.0, 0.0, u[:, 1] + u[:, 0]
        warn_outside_range(scope, _idata(g, u))
    u[:, 0], u[:, 1] = 0.5, u[:, 1] - 0.5
    with pytest.warns(GAccuracyWarning, match="outside the range"):
        warn_outside_range(scope, _idata(g, u))


def test_linear_draws_warn_when_their_g_is_outside():
    scope = _scope(lambda world: us.priors.LinearUtility(world.features, feature_names=world.feature_names))
    _, high = scope.estimator.accurate_range
    theta = np.zeros((50, len(scope.utility_prior.feature_names)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_outside_range(scope, _idata(np.full(50, high - 1.0), theta))
    with pytest.warns(GAccuracyWarning, match="outside the range"):
        warn_outside_range(scope, _idata(np.full(50, high + 5.0), theta))
