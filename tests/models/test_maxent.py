"""Maximum causal entropy IRL: the exact gradient, recovering a Boltzmann agent's reward, the ridge, bad inputs."""

import dataclasses

import numpy as np
import pytest

import utiliscope as us
from utiliscope.evaluation import feature_table
from utiliscope.models.maxent import MaxEntConvergenceWarning, MaxEntIRL
from utiliscope.studies.study import centred_cosine

LAYOUT = ["S.a", "b.c"]
#: The reward of the agents that demonstrate: +1 on colour a, −0.5 on b, +0.8 on c.
TRUE_THETA = np.array([1.0, -0.5, 0.8])


@pytest.fixture(scope="module")
def world():
    return us.worlds.gridworld(LAYOUT, slip=0.1)


@pytest.fixture(scope="module")
def boltzmann_demos(world):
    """A β = 1 Boltzmann agent (the model's own operator) with many trajectories: 500 × 20 steps."""
    agent = us.agents.Boltzmann(world.features @ TRUE_THETA, beta=1.0)
    return agent.demonstrate(world, n_trajectories=500, horizon=20, seed=11)


def _brute_force_log_likelihood(worlds, counts, reward):
    """Σ n[s, a] log softmax(Q[s, ·])[a], with Q by 600 plain soft value iterations from 0 on P̄."""
    q = np.zeros_like(reward)
    for _ in range(600):
        v = np.log(np.sum(np.exp(q), axis=1))
        q = reward + worlds.gamma * worlds.mean_transitions @ v
    return float(np.sum(counts * (q - np.log(np.sum(np.exp(q), axis=1, keepdims=True)))))


def _central_differences(model, theta, step=1e-5):
    """``(ℓ(θ + h e_k) − ℓ(θ − h e_k)) / 2h`` for each k."""
    return np.array(
        [
            (
                model.log_likelihood_and_gradient(theta + step * e)[0]
                - model.log_likelihood_and_gradient(theta - step * e)[0]
            )
            / (2 * step)
            for e in np.eye(theta.size)
        ]
    )


# ---------------------------------------------------------------------- the likelihood and its gradient
def test_log_likelihood_matches_plain_soft_value_iteration(worlds, rng):
    """Two worlds: ℓ plans on the ζ-averaged dynamics, as a brute-force soft value iteration does."""
    demos = us.agents.Random().demonstrate(worlds, n_trajectories=10, horizon=8, seed=1)
    model = MaxEntIRL(worlds, demos)
    theta = rng.normal(size=3)
    log_likelihood, _ = model.log_likelihood_and_gradient(theta)
    expected = _brute_force_log_likelihood(model.worlds, demos.counts, model.features @ theta)
    assert log_likelihood == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("case", ["gridworld_two_worlds", "garnet_state_action_features"])
def test_gradient_matches_central_differences(worlds, two_garnets, rng, case):
    if case == "gridworld_two_worlds":
        scope, features = worlds, None
    else:
        S, A = two_garnets.n_states, two_garnets.n_actions
        scope, features = two_garnets, rng.normal(size=(S, A, 4))
    demos = us.agents.Random().demonstrate(scope, n_trajectories=20, horizon=10, seed=2)
    model = MaxEntIRL(scope, demos, features=features)
    theta = rng.normal(size=model.n_features)
    _, gradient = model.log_likelihood_and_gradient(theta)
    numeric = _central_differences(model, theta)
    assert np.abs(gradient - numeric).max() <= 1e-5 * np.abs(numeric).max()


# ---------------------------------------------------------------------- the estimate
def test_recovers_a_boltzmann_agents_reward(world, boltzmann_demos):
    estimate = MaxEntIRL(world, boltzmann_demos).fit()
    assert estimate.converged, estimate.message
    assert centred_cosine(estimate.reward, feature_table(world) @ TRUE_THETA) > 0.9
    assert estimate.theta.shape == (3,)
    assert estimate.reward.shape == (world.n_states, world.n_actions)
    np.testing.assert_allclose(estimate.reward, feature_table(world) @ estimate.theta)
    np.testing.assert_allclose(estimate.policy.sum(axis=1), 1.0)
    assert estimate.feature_names == ("a", "b", "c")
    assert estimate.n_iterations >= 1


def test_unpenalised_estimate_is_the_maximum_likelihood_theta(world, boltzmann_demos, rng):
    model = MaxEntIRL(world, boltzmann_demos, l2=0.0)
    estimate = model.fit()
    assert estimate.converged, estimate.message
    truth, _ = model.log_likelihood_and_gradient(TRUE_THETA)
    assert estimate.log_likelihood >= truth
    for _ in range(5):
        nearby, _ = model.log_likelihood_and_gradient(estimate.theta + 0.01 * rng.normal(size=3))
        assert estimate.log_likelihood >= nearby
    assert estimate.log_likelihood == pytest.approx(model.log_likelihood_and_gradient(estimate.theta)[0])


def test_ridge_gives_a_finite_stationary_estimate_for_deterministic_demonstrations(world):
    """An optimal agent's demonstrations: ℓ rises without bound along θ*, the ridge stops it at ∇ℓ = λ θ̂."""
    demos = us.agents.Optimal(world.features @ TRUE_THETA).demonstrate(
        world, n_trajectories=50, horizon=10, seed=0
    )
    norms = []
    for l2 in (0.01, 1.0):
        model = MaxEntIRL(world, demos, l2=l2)
        estimate = model.fit()
        assert estimate.converged, estimate.message
        _, gradient = model.log_likelihood_and_gradient(estimate.theta)
        assert np.abs(gradient - l2 * estimate.theta).max() <= 1e-6 * demos.counts.sum()
        norms.append(np.linalg.norm(estimate.theta))
    assert np.isfinite(norms).all() and norms[0] > norms[1]


def test_several_worlds_plan_on_the_averaged_dynamics(worlds):
    demos = us.agents.Boltzmann(worlds.features @ TRUE_THETA, beta=1.0).demonstrate(worlds, 40, 10, seed=4)
    averaged = us.TabularMDP(worlds.mean_transitions, worlds.mean_start, worlds.gamma, features=worlds.features)
    np.testing.assert_allclose(MaxEntIRL(worlds, demos).fit().theta, MaxEntIRL(averaged, demos).fit().theta)


def test_non_convergence_warns_and_reports(world, boltzmann_demos):
    with pytest.warns(MaxEntConvergenceWarning, match="max_iterations"):
        estimate = MaxEntIRL(world, boltzmann_demos, max_iterations=1).fit()
    assert not estimate.converged
    assert estimate.n_iterations == 1 and estimate.message


def test_estimate_is_frozen(world, boltzmann_demos):
    estimate = MaxEntIRL(world, boltzmann_demos, max_iterations=50).fit()
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.converged = False
    with pytest.raises(ValueError, match="read-only"):
        estimate.theta[0] = 0.0


# ---------------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_argument(world, boltzmann_demos):
    plain = us.TabularMDP(world.transitions, world.start, world.gamma)
    cases = [
        (dict(worlds="grid"), TypeError, "worlds must be"),
        (dict(demonstrations=boltzmann_demos.counts), TypeError, "demonstrations must be a us.Demonstrations"),
        (dict(demonstrations=us.Demonstrations.from_counts(np.ones((2, 5)))), ValueError, "demonstrations has"),
        (
            dict(demonstrations=us.Demonstrations.from_counts(np.zeros((6, 5)))),
            ValueError,
            "demonstrations has no",
        ),
        (dict(worlds=plain), ValueError, "features is None and the worlds have no features"),
        (dict(features=np.ones((5, 2))), ValueError, r"features has shape \(5, 2\)"),
        (dict(features=np.ones((6, 4, 2))), ValueError, r"features has shape \(6, 4, 2\)"),
        (dict(l2=-1.0), ValueError, "l2 is -1.0"),
        (dict(l2=np.nan), ValueError, "l2 is nan"),
        (dict(tol=0.0), ValueError, "tol is 0.0"),
        (dict(max_iterations=0), ValueError, "max_iterations is 0"),
    ]
    for overrides, error, pattern in cases:
        arguments = {"worlds": world, "demonstrations": boltzmann_demos, **overrides}
        with pytest.raises(error, match=pattern):
            MaxEntIRL(**arguments)
    with pytest.raises(ValueError, match=r"theta has shape \(2,\); it must be \(3,\)"):
        MaxEntIRL(world, boltzmann_demos).log_likelihood_and_gradient(np.ones(2))


def test_features_given_explicitly_override_the_worlds(world, boltzmann_demos):
    """State features (S, K) passed by hand: the same fit as the worlds' own, with generic names."""
    mine = MaxEntIRL(world, boltzmann_demos, features=np.asarray(world.features)).fit()
    own = MaxEntIRL(world, boltzmann_demos).fit()
    np.testing.assert_allclose(mine.theta, own.theta)
    assert mine.feature_names == ("f0", "f1", "f2")
