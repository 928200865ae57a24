"""The PyTensor g estimators equal the numpy ones of utiliscope.intelligence on random garnets."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import utiliscope as us
from utiliscope.intelligence import intelligence_table
from utiliscope.models import graph
from utiliscope.models.reference import ReferencePolicies, sorted_tails


def _problem(seed):
    first, second = us.worlds.garnet(5, 3, 2, seed=seed), us.worlds.garnet(5, 3, 3, seed=seed + 100)
    # Worlds of one set share their features: give the second world the first's.
    second = us.TabularMDP(second.transitions, second.start, second.gamma, features=first.features)
    worlds = us.WorldSet([first, second], weights=[0.3, 0.7])
    rng = np.random.default_rng(seed)
    rewards = rng.standard_normal((4, 5, 3))
    rewards[0] = 1.0  # a constant utility: every policy ties
    policies = rng.dirichlet(np.ones(3), size=(6, 5))
    return worlds, rewards, policies


def _compile_on_policy(worlds, build):
    pi = pt.matrix("pi")
    return pytensor.function([pi], build(pi, graph.occupancy_tensor(worlds, pi)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_occupancy_tensor_matches_numpy(seed):
    worlds, _, policies = _problem(seed)
    f = _compile_on_policy(worlds, lambda pi, rho: rho)
    for policy in policies:
        np.testing.assert_allclose(f(policy), us.occupancy(worlds, policy)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_library_g_equals_numpy(seed):
    worlds, rewards, policies = _problem(seed)
    reference = ReferencePolicies.enumerate(worlds, us.UniformDeterministic())
    values = reference.values(worlds, rewards)
    sorted_values, tail = sorted_tails(values, reference.weights)
    flat = rewards.reshape(4, -1)
    f = _compile_on_policy(
        worlds, lambda pi, rho: graph.exact_bits_sorted(pt.dot(flat, rho.ravel()), sorted_values, tail)
    )
    expected, _ = intelligence_table(worlds, policies, rewards, method="exact")
    got = np.array([f(p) for p in policies])
    np.testing.assert_array_equal(got, expected)
    assert np.all(got[:, 0] == 0.0)
    # the best deterministic policy reaches log2(A^S / ties) in the graph too
    best = reference.policies[np.argmax(values[:, 1])]
    g_best = f(np.eye(3)[best])[1]
    ties = np.sum(values[:, 1] >= values[:, 1].max() - 1e-9 * np.abs(values[:, 1]).max())
    assert g_best == pytest.approx(np.log2(3**5 / ties), abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_monte_carlo_g_unsmoothed_equals_numpy_and_smoothed_is_close(seed):
    worlds, rewards, policies = _problem(seed)
    reference = ReferencePolicies.sample(worlds, us.UniformDeterministic(), 500, seed)
    values = reference.values(worlds, rewards)
    flat = rewards.reshape(4, -1)
    expected, _ = intelligence_table(worlds, policies, rewards, method="monte_carlo", n_samples=500, seed=seed)
    hard = _compile_on_policy(
        worlds, lambda pi, rho: graph.monte_carlo_bits(pt.dot(flat, rho.ravel()), pt.as_tensor(values), 0.0)
    )
    soft = _compile_on_policy(
        worlds, lambda pi, rho: graph.monte_carlo_bits(pt.dot(flat, rho.ravel()), pt.as_tensor(values), 1e-4)
    )
    got_hard = np.array([hard(p) for p in policies])
    np.testing.assert_allclose(got_hard, expected, rtol=0, atol=1e-12)
    got_soft = np.array([soft(p) for p in policies])
    assert np.all(np.isfinite(got_soft))
    np.testing.assert_allclose(got_soft, expected, atol=0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_g_equals_numpy(seed):
    worlds, rewards, policies = _problem(seed)
    reference = ReferencePolicies.sample(worlds, us.UniformDeterministic(), 400, seed)
    values = reference.values(worlds, rewards)
    flat = rewards.reshape(4, -1)

    def build(pi, rho):
        v = pt.dot(flat, rho.ravel())
        scale = pt.maximum(pt.abs(v), np.abs(values).max(axis=0))
        return graph.gaussian_bits(v, values.mean(axis=0), values.std(axis=0), scale)

    f = _compile_on_policy(worlds, build)
    expected, _ = intelligence_table(worlds, policies, rewards, method="gaussian", n_samples=400, seed=seed)
    got = np.array([f(p) for p in policies])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.all(got[:, 0] == 0.0)


@pytest.mark.slow
def test_linear_exact_g_equals_numpy_and_gradients_are_finite():
    worlds, _, policies = _problem(3)
    reference = ReferencePolicies.enumerate(worlds, us.UniformDeterministic())
    mu = reference.feature_expectations(worlds, worlds.features)
    phi = np.repeat(worlds.features[:, None, :], 3, axis=1).reshape(-1, worlds.features.shape[1])
    theta = pt.vector("theta")
    pi = pt.matrix("pi")
    v = pt.dot(pt.dot(graph.occupancy_tensor(worlds, pi).ravel(), phi), theta)
    g_exact = graph.exact_bits(v[None], pt.dot(mu, theta)[:, None], reference.weights)[0]
    g_mc = graph.monte_carlo_bits(v[None], pt.dot(mu, theta)[:, None], 0.05)[0]
    f = pytensor.function([pi, theta], [g_exact, *pytensor.grad(g_mc, [pi, theta])])
    rng = np.random.default_rng(0)
    for policy in policies:
        th = rng.standard_normal(worlds.features.shape[1])
        g, d_pi, d_theta = f(policy, th)
        expected, _ = intelligence_table(worlds, policy, worlds.features @ th, method="exact")
        assert g == pytest.approx(expected[0, 0], rel=1e-12, abs=1e-12)
        assert np.all(np.isfinite(d_pi)) and np.all(np.isfinite(d_theta))
        assert np.abs(d_pi).sum() > 0


@pytest.mark.slow
def test_gaussian_guard_returns_zero_bits_for_a_degenerate_utility():
    v = pt.vector("v")
    f = pytensor.function([v], graph.gaussian_bits(v, np.array([2.0]), np.array([0.0]), pt.abs(v) + 2.0))
    assert f(np.array([2.0]))[0] == 0.0
    assert f(np.array([3.0]))[0] == np.inf
