"""Optimal, Boltzmann, ε-greedy, myopic and random agents against brute-force planning."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

import utiliscope as us
from utiliscope.agents import Agent, Boltzmann, EpsilonGreedy, Myopic, Optimal, Random

RTOL = 1e-9


def two_worlds(brute, n_states, n_actions, seed):
    worlds = [brute.plain_world(n_states, n_actions, seed + k) for k in (0, 100)]
    return us.WorldSet(worlds, weights=[0.35, 0.65])


def brute_best(brute, worlds, r):
    """The first policy in enumeration order within the tie tolerance of the best value, and all values."""
    tables = brute.deterministic_tables(worlds.n_states, worlds.n_actions)
    values = np.array([brute.value(worlds, pi, r) for pi in tables])
    first = int(np.argmax(values >= values.max() - RTOL * np.abs(values).max()))
    return tables[first], values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_matches_enumeration_over_two_worlds(brute, seed):
    worlds = two_worlds(brute, 4, 3, seed)
    r = np.random.default_rng(seed).standard_normal((4, 3))
    best, _ = brute_best(brute, worlds, r)
    np.testing.assert_array_equal(Optimal(r).policy(worlds), best)


def test_optimal_breaks_ties_by_enumeration_order(brute):
    world = brute.plain_world(3, 2, seed=4)
    r = np.ones(3)  # every policy is worth 1/(1 - γ) up to round-off, which must not pick the winner
    np.testing.assert_array_equal(Optimal(r).policy(world), np.eye(2)[[0, 0, 0]])


@pytest.mark.parametrize("seed", [0, 1])
def test_optimal_agrees_with_value_iteration_for_one_world(brute, seed):
    world = brute.plain_world(5, 3, seed)
    r = np.random.default_rng(10 + seed).standard_normal((5, 3))
    greedy = np.eye(3)[brute.optimal_q(world, r).argmax(axis=1)]
    np.testing.assert_array_equal(Optimal(r).policy(world), greedy)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coordinate_ascent_reaches_the_enumerated_optimum_for_one_world(brute, seed):
    world = brute.plain_world(5, 3, seed, gamma=0.95)
    r = np.random.default_rng(20 + seed).standard_normal(5)
    _, values = brute_best(brute, world, r)
    policy = Optimal(r, max_enumerate=1).policy(world)
    assert brute.value(world, policy, r) == pytest.approx(values.max(), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 8])
def test_coordinate_ascent_is_a_local_optimum_over_two_worlds(brute, seed):
    # Seed 0: the averaged MDP's optimum is not a local optimum; seed 8: the local optimum is not global.
    worlds = two_worlds(brute, 5, 3, seed=seed)
    r = np.random.default_rng(seed).standard_normal((5, 3))
    policy = Optimal(r, max_enumerate=1).policy(worlds)
    v = brute.value(worlds, policy, r)
    averaged_optimum = np.eye(3)[brute.optimal_q(worlds, r).argmax(axis=1)]
    assert v >= brute.value(worlds, averaged_optimum, r)
    for s in range(5):
        for a in range(3):
            other = policy.copy()
            other[s] = np.eye(3)[a]
            assert brute.value(worlds, other, r) <= v + 1e-9 * abs(v)
    _, values = brute_best(brute, worlds, r)
    assert v <= values.max() + 1e-9 * abs(v)


def soft_bellman_residual(worlds, r, q, beta):
    P = np.einsum("e,esat->sat", worlds.weights, worlds.transitions)
    v = logsumexp(beta * q, axis=1) / beta
    return np.abs(q - (r + worlds.gamma * np.einsum("sat,t->sa", P, v))).max()


@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_boltzmann_is_the_softmax_of_the_soft_bellman_fixed_point(brute, beta):
    worlds = two_worlds(brute, 5, 3, seed=3)
    r = np.random.default_rng(3).standard_normal((5, 3))
    agent = Boltzmann(r, beta)
    q = agent.q_values(worlds)
    assert soft_bellman_residual(worlds, r, q, beta) < 1e-10
    softmax = np.exp(beta * q) / np.exp(beta * q).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(agent.policy(worlds), softmax, rtol=1e-10)


def test_boltzmann_approaches_optimal_for_large_beta_and_uniform_for_small(brute):
    world = brute.plain_world(5, 3, seed=5)
    r = np.random.default_rng(5).standard_normal((5, 3))
    optimal = Optimal(r).policy(world)
    np.testing.assert_allclose(Boltzmann(r, 1e4).policy(world), optimal, atol=1e-6)
    np.testing.assert_allclose(Boltzmann(r, 1e-8).policy(world), np.full((5, 3), 1 / 3), atol=1e-6)
    values = [brute.value(world, Boltzmann(r, beta).policy(world), r) for beta in (0.1, 1.0, 10.0)]
    assert values[0] < values[1] < values[2] < brute.value(world, optimal, r)


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_mixes_optimal_with_uniform(brute, epsilon):
    worlds = two_worlds(brute, 4, 3, seed=1)
    r = np.random.default_rng(1).standard_normal((4, 3))
    best, _ = brute_best(brute, worlds, r)
    np.testing.assert_allclose(EpsilonGreedy(r, epsilon).policy(worlds), (1 - epsilon) * best + epsilon / 3)


def test_myopic_horizon_one_takes_the_best_immediate_action(brute):
    world = brute.plain_world(4, 3, seed=2)
    r = np.random.default_rng(2).standard_normal((4, 3))
    np.testing.assert_array_equal(Myopic(r, 1).policy(world), np.eye(3)[r.argmax(axis=1)])


def test_myopic_is_uniform_over_tied_actions(brute):
    world = brute.plain_world(2, 3, seed=2)
    r = np.array([[1.0, 1.0, 0.0], [2.0, 2.0 + 1e-12, 2.0]])  # the 1e-12 is below the relative tolerance
    np.testing.assert_allclose(Myopic(r, 1).policy(world), [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_myopic_horizon_two_is_one_step_of_lookahead(brute):
    worlds = two_worlds(brute, 4, 3, seed=6)
    r = np.random.default_rng(6).standard_normal(4)
    P = np.einsum("e,esat->sat", worlds.weights, worlds.transitions)
    q2 = r[:, None] + worlds.gamma * np.einsum("sat,t->sa", P, r)
    np.testing.assert_array_equal(Myopic(r, 2).policy(worlds), np.eye(3)[q2.argmax(axis=1)])


def test_myopic_with_a_long_horizon_is_optimal_for_one_world(brute):
    world = brute.plain_world(5, 3, seed=8)
    r = np.random.default_rng(8).standard_normal((5, 3))
    np.testing.assert_array_equal(Myopic(r, 500).policy(world), Optimal(r).policy(world))


def test_random_is_uniform_and_needs_a_reward_for_its_intelligence(brute):
    world = brute.plain_world(3, 4, seed=0)
    np.testing.assert_array_equal(Random().policy(world), np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="reward"):
        Random().true_intelligence(world)
    r = np.random.default_rng(0).standard_normal(3)
    tables = brute.deterministic_tables(3, 4)
    v = brute.value(world, np.full((3, 4), 0.25), r)
    share = np.mean([brute.value(world, pi, r) >= v - RTOL * abs(v) for pi in tables])
    assert Random(r).true_intelligence(world) == pytest.approx(-math.log2(share))


def test_optimal_intelligence_is_log2_of_policies_over_ties(brute):
    generic = brute.plain_world(4, 3, seed=9)
    r = np.random.default_rng(9).standard_normal((4, 3))
    assert Optimal(r).true_intelligence(generic) == pytest.approx(4 * math.log2(3))
    # Make actions 0 and 1 of state 2 identical: every policy has a twin, so the best two tie.
    P = generic.transitions.copy()
    P[2, 1] = P[2, 0]
    r[2, 1] = r[2, 0]
    world = us.TabularMDP(P, generic.start, generic.gamma)
    _, values = brute_best(brute, world, r)
    n_ties = int(np.sum(values >= values.max() - RTOL * np.abs(values).max()))
    assert n_ties == 2
    assert Optimal(r).true_intelligence(world) == pytest.approx(math.log2(3**4 / n_ties))


def test_state_reward_is_broadcast_over_actions(brute):
    world = brute.plain_world(4, 2, seed=1)
    r = np.array([0.0, 1.0, -1.0, 2.0])
    agent = Optimal(r)
    np.testing.assert_array_equal(agent.reward_table(world), np.repeat(r[:, None], 2, axis=1))
    np.testing.assert_array_equal(agent.policy(world), Optimal(agent.reward_table(world)).policy(world))


def test_to_dict_names_the_agent_and_its_parameters():
    r = [0.0, 1.0]
    assert Boltzmann(r, 2.0).to_dict() == {"name": "boltzmann", "reward": [0.0, 1.0], "beta": 2.0}
    assert Myopic(r, 3).to_dict()["horizon"] == 3
    assert EpsilonGreedy(r, 0.1).to_dict()["epsilon"] == 0.1
    assert Random().to_dict() == {"name": "random", "reward": None}


def test_base_agent_has_no_policy(brute):
    with pytest.raises(NotImplementedError):
        Agent([0.0, 1.0]).policy(brute.plain_world(2, 2, seed=0))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Boltzmann([0.0, 1.0], 0.0), "beta"),
        (lambda: Boltzmann([0.0, 1.0], -1.0), "beta"),
        (lambda: EpsilonGreedy([0.0, 1.0], 1.5), "epsilon"),
        (lambda: EpsilonGreedy([0.0, 1.0], -0.1), "epsilon"),
        (lambda: Myopic([0.0, 1.0], 0), "horizon"),
        (lambda: Optimal([0.0, np.nan]), r"reward\[1\]"),
        (lambda: Optimal(np.zeros((2, 2, 2))), "reward"),
        (lambda: Optimal([]), "reward"),
    ],
)
def test_bad_settings_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_reward_of_the_wrong_size_is_reported(brute):
    world = brute.plain_world(3, 2, seed=0)
    with pytest.raises(ValueError, match="reward has shape"):
        Optimal([0.0, 1.0]).policy(world)
    with pytest.raises(ValueError, match="reward has shape"):
        Boltzmann(np.zeros((2, 3)), 1.0).policy(world)
