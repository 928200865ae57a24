"""The hard count the structure engines use is accurate for every draw, whichever direction theta points.

The reference here is a brute-force count written with numpy alone: every deterministic policy of a 3×3
gridworld with one wall (5^8 = 390,625 policies) is valued (``utiliscope.evaluation`` gives only the values),
and g is −log2 of the fraction at least as good under the tie rule. It shares no estimator with the code it checks.
"""

import itertools
import json
import warnings

import numpy as np
import pytest

import utiliscope as us
from utiliscope.evaluation import feature_expectations
from utiliscope.models.g_methods import GAccuracyWarning

GRID = ["S.a", ".#b", "a.b"]
RTOL = 1e-9
#: The issue's bound on any draw carrying weight.
TOLERANCE_BITS = 0.25
LIKELIHOOD = us.likelihoods.Normal(observed=12.0, sigma=1.0)
#: Policies per pilot at which every draw of these problems is within the bound.
ACCURATE_N_SAMPLES = 6000


def _worlds(slips):
    return us.WorldSet([us.worlds.gridworld(GRID, slip=slip, gamma=0.9) for slip in slips])


def _every_policy(worlds):
    return np.array(list(itertools.product(range(worlds.n_actions), repeat=worlds.n_states)))


def _brute_force_bits(v, reference):
    """g of values ``v[n]`` against ``reference[m, n]`` (every policy of ξ), ties against the policy."""
    tolerance = RTOL * np.maximum(np.abs(v), np.abs(reference).max(axis=0))
    return -np.log2((reference >= v - tolerance).mean(axis=0))


def _scope(worlds, prior, seed=0, n_samples=1000):
    demos = us.agents.Random().demonstrate(worlds, n_trajectories=20, horizon=10, seed=seed)
    world_model = us.WorldModel.from_demonstrations(demos)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return us.Utiliscope(worlds, world_model, prior, LIKELIHOOD, seed=seed, n_samples=n_samples)


def _draws(worlds, rewards, rng):
    """Policies that look intelligent under their own reward: Boltzmann at inverse temperatures spread so that
    their g covers the likelihood's mass range."""
    betas = rng.uniform(2.0, 40.0, size=len(rewards))
    return np.stack([us.agents.Boltzmann(r, beta=b).policy(worlds) for r, b in zip(rewards, betas, strict=True)])


@pytest.mark.slow
@pytest.mark.parametrize("slips", [(0.1,), (0.1, 0.3)], ids=["one_world", "two_worlds"])
def test_linear_g_is_accurate_in_every_direction(slips):
    worlds = _worlds(slips)
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    # 6000 policies per pilot: the largest error in the mass range falls below 0.25 bits only there
    # (benchmarks/results/g_accuracy.md, per draw).
    scope = _scope(worlds, prior, n_samples=ACCURATE_N_SAMPLES)
    assert scope.g_method == "importance"
    rng = np.random.default_rng(1)
    theta = prior.sample_prior(200, seed=rng)
    rewards = np.einsum("sak,nk->nsa", scope.features, theta)
    mu = feature_expectations(worlds, _draws(worlds, rewards, rng), scope.features)
    v = np.einsum("nk,nk->n", mu, theta)
    reference = feature_expectations(worlds, _every_policy(worlds), scope.features) @ theta.T
    truth = _brute_force_bits(v, reference)
    g = scope.estimator.linear_bits(v, theta)
    low, high = scope.likelihood_mass
    carrying = (truth >= low - 2.0) & (truth <= high)
    assert carrying.sum() >= 40  # the draws reach the mass range in many directions
    # Directions far from the pilot are counted as well as near ones.
    cosine = theta[carrying] @ scope.estimator.pilot_direction()
    assert (cosine < 0.5).sum() >= 20
    assert np.abs(g - truth)[carrying].max() <= TOLERANCE_BITS


@pytest.mark.slow
@pytest.mark.parametrize("slips", [(0.1,), (0.1, 0.3)], ids=["one_world", "two_worlds"])
def test_library_g_is_accurate_for_every_entry(slips):
    worlds = _worlds(slips)
    library = us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, feature_names=worlds.feature_names
    )
    # As for a linear prior: every entry is a pilot of the one shared pool.
    scope = _scope(worlds, library, n_samples=ACCURATE_N_SAMPLES)
    assert scope.estimator.reference.levels.size == len(library) - 1  # the constant needs no pilot
    rng = np.random.default_rng(2)
    rewards = scope.rewards
    pick = rng.integers(len(rewards), size=150)
    policies = _draws(worlds, rewards[pick], rng)
    v = us.evaluate_policies(worlds, policies, rewards)
    reference = us.evaluate_policies(worlds, _every_policy(worlds), rewards)
    truth = np.stack([_brute_force_bits(v[:, n], reference[:, [n] * len(v)]) for n in range(len(rewards))], axis=1)
    g = scope.target.hard_g(policies)
    low, high = scope.likelihood_mass
    carrying = (truth >= low - 2.0) & (truth <= high)
    assert carrying.sum() >= 40
    assert np.abs(g - truth)[carrying].max() <= TOLERANCE_BITS


def test_the_fit_says_which_estimator_ran_and_where_it_is_accurate():
    worlds = _worlds((0.1, 0.3))
    scope = _scope(worlds, us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names))
    settings = scope.settings()
    assert settings["g_estimator"] == "importance"
    low, high = json.loads(settings["g_accurate_range"])
    assert low == 0.0 and high >= scope.likelihood_mass[1]


def test_warns_only_when_weight_lies_outside_the_accurate_range():
    worlds = _worlds((0.1, 0.3))
    scope = _scope(worlds, us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names))
    _, high = scope.estimator.accurate_range
    inside = np.full(100, high - 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scope.estimator.warn_outside(inside)
        # Outside, but carrying no weight: no warning.
        scope.estimator.warn_outside(np.append(inside, high + 5.0), np.append(np.ones(100), 0.0))
    with pytest.warns(GAccuracyWarning, match="outside the range"):
        scope.estimator.warn_outside(np.append(inside, np.full(10, high + 5.0)))
