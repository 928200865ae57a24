"""The agent zoo against brute-force planning and simulation: shards, wrong world models, per-state β, naive
hyperbolic discounting and habits."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import utiliscope as us
from utiliscope.agents import (
    Boltzmann,
    Habitual,
    HyperbolicDiscounter,
    Optimal,
    ShardAgent,
    StateBoltzmann,
    WrongModel,
)

LAYOUT = ["S.a", "b.c"]


@pytest.fixture(scope="module")
def grid():
    """The 6-cell gridworld in two worlds (slips 0.1 and 0.3)."""
    return us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])


def utilities(worlds, n, seed):
    return np.random.default_rng(seed).standard_normal((n, worlds.n_states))


# -- shards ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [None, 3.0])
def test_a_shard_agent_acts_in_region_k_as_utility_k_would(grid, beta):
    shards = utilities(grid, 3, seed=1)
    context = np.array([0, 1, 2, 0, 1, 2])
    agent = ShardAgent(shards, context, beta=beta)
    policy = agent.policy(grid)
    for k, u in enumerate(shards):
        own = (Optimal(u) if beta is None else Boltzmann(u, beta)).policy(grid)
        np.testing.assert_allclose(policy[context == k], own[context == k], atol=1e-12)
    # The shards disagree: no one of them explains the whole policy.
    assert all(not np.allclose(policy, Optimal(u).policy(grid)) for u in shards)


def test_a_shard_agent_from_a_context_feature_and_its_designer_g(grid):
    shards = utilities(grid, 2, seed=2)
    feature = grid.features[:, 0]  # colour a
    agent = ShardAgent.from_feature(shards, feature, reward=shards[0])
    np.testing.assert_array_equal(agent.context, (feature > 0.5).astype(int))
    assert agent.context.any() and not agent.context.all()
    g = agent.designer_intelligence(grid)
    assert g == pytest.approx(us.intelligence(grid, agent.policy(grid), shards[0]))
    assert g <= Optimal(shards[0]).true_intelligence(grid) + 1e-12
    assert agent.designer_intelligence(grid, shards[1]) == pytest.approx(
        us.intelligence(grid, agent.policy(grid), shards[1])
    )


# -- wrong world model -------------------------------------------------------------------------------------------


def test_an_agent_in_a_wrong_world_model_plans_there_and_loses_g_here(brute):
    true, believed = brute.plain_world(4, 3, seed=5), brute.plain_world(4, 3, seed=6)
    reward = np.random.default_rng(3).standard_normal(4)
    agent = WrongModel(Optimal(reward), believed)
    np.testing.assert_array_equal(agent.policy(true), Optimal(reward).policy(believed))
    assert not np.array_equal(agent.policy(true), Optimal(reward).policy(true))  # a real misspecification
    np.testing.assert_array_equal(agent.reward_table(true), Optimal(reward).reward_table(true))
    assert agent.designer_intelligence(true) < Optimal(reward).true_intelligence(true)
    assert agent.to_dict()["inner"]["name"] == "optimal"


# -- state-dependent β -------------------------------------------------------------------------------------------


def test_state_boltzmann_with_one_beta_is_boltzmann(grid):
    reward = utilities(grid, 1, seed=4)[0]
    np.testing.assert_allclose(
        StateBoltzmann(reward, np.full(grid.n_states, 2.5)).policy(grid),
        Boltzmann(reward, 2.5).policy(grid),
        atol=1e-12,
    )


def test_state_boltzmann_solves_its_soft_bellman_equation(grid):
    reward = utilities(grid, 1, seed=5)[0][:, None] * np.ones(grid.n_actions)
    beta = np.array([0.3, 5.0, 1.0, 20.0, 0.7, 2.0])
    policy = StateBoltzmann(reward[:, 0], beta).policy(grid)
    # Plain value iteration with each state's own soft maximum, written out here.
    P = grid.mean_transitions
    q = np.zeros_like(reward)
    for _ in range(2000):
        v = logsumexp(beta[:, None] * q, axis=1) / beta
        q = reward + grid.gamma * np.einsum("sat,t->sa", P, v)
    want = np.exp(beta[:, None] * q - logsumexp(beta[:, None] * q, axis=1, keepdims=True))
    np.testing.assert_allclose(policy, want, atol=1e-9)
    sharp, loose = policy[3].max(), policy[0].max()
    assert sharp > loose  # β = 20 is near greedy, β = 0.3 near uniform


# -- naive hyperbolic discounting --------------------------------------------------------------------------------


def delayed_reward_world(gamma=0.9):
    """0 → 1 (the choice); at 1: action 0 takes 1 now, action 1 waits for 2 one step later (at 2); 3 absorbs."""
    P = np.zeros((4, 2, 4))
    P[0, :, 1] = 1.0
    P[1, 0, 3] = P[1, 1, 2] = 1.0
    P[2, :, 3] = P[3, :, 3] = 1.0
    reward = np.zeros((4, 2))
    reward[1, 0], reward[2, :] = 1.0, 2.0
    return us.TabularMDP(P, [1.0, 0.0, 0.0, 0.0], gamma), reward


def test_hyperbolic_choice_differs_from_exponential_and_is_time_inconsistent():
    world, reward = delayed_reward_world()
    agent = HyperbolicDiscounter(reward, k=2.0)
    assert Optimal(reward).policy(world)[1].argmax() == 1  # γ = 0.9: 0.9 · 2 > 1, wait
    assert agent.plan(world, 3)[0][1].argmax() == 0  # at the choice: 1 > 2 / (1 + 2), take it now
    assert agent.plan(world, 4)[1][1].argmax() == 1  # one step earlier it planned to wait: 1/3 < 2/5
    demos = agent.demonstrate(world, 20, 4, seed=0)
    assert all(t.actions[1] == 0 for t in demos.trajectories)  # and, naive, abandons that plan every time
    assert HyperbolicDiscounter(reward, k=0.0).plan(world, 3)[0][1].argmax() == 1  # undiscounted: wait


def deterministic_world(n_states, n_actions, seed):
    rng = np.random.default_rng(seed)
    P = np.eye(n_states)[rng.integers(n_states, size=(n_states, n_actions))]
    return us.TabularMDP(P, np.full(n_states, 1.0 / n_states), 0.9), rng.standard_normal((n_states, n_actions))


@pytest.mark.parametrize("seed", range(3))
def test_hyperbolic_first_action_maximises_the_discounted_sum_over_action_sequences(seed):
    world, reward = deterministic_world(4, 2, seed)
    k, steps = 1.5, 4
    first = HyperbolicDiscounter(reward, k).plan(world, steps)[0]
    for s in range(world.n_states):
        best = -np.inf, set()
        for actions in itertools.product(range(world.n_actions), repeat=steps):
            state, total = s, 0.0
            for d, a in enumerate(actions):
                total += reward[state, a] / (1 + k * d)
                state = int(world.transitions[state, a].argmax())
            if total > best[0] + 1e-12:
                best = total, {actions[0]}
            elif total > best[0] - 1e-12:
                best[1].add(actions[0])
        assert set(np.flatnonzero(first[s])) == best[1]


# -- habits ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("habit", [0.3, 0.8])
def test_habitual_demonstrations_repeat_actions_at_rate_at_least_habit(grid, habit):
    inner = Boltzmann(utilities(grid, 1, seed=6)[0], beta=1.0)
    demos = Habitual(inner, habit).demonstrate(grid, 400, 10, seed=2)
    repeats = np.concatenate([t.actions[1:] == t.actions[:-1] for t in demos.trajectories])
    se = np.sqrt(habit * (1 - habit) / repeats.size)
    assert repeats.mean() >= habit - 3 * se
    # Beyond the habit, the inner agent repeats by chance: the rate is clearly above habit for a noisy inner.
    assert repeats.mean() > habit + 3 * se


def test_without_a_habit_the_behaviour_is_the_inner_policy_where_it_goes(grid):
    inner = Boltzmann(utilities(grid, 1, seed=7)[0], beta=2.0)
    agent = Habitual(inner, 0.0)
    counts = agent.expected_counts(grid, 6)
    visited = counts.sum(axis=1) > 0
    np.testing.assert_allclose(agent.behaviour_policy(grid, 6)[visited], inner.policy(grid)[visited], atol=1e-12)


@pytest.mark.parametrize(
    "agent",
    [
        Habitual(Boltzmann(np.arange(6.0), beta=1.0), 0.6),
        HyperbolicDiscounter(np.array([0.0, 0.0, 1.0, 0.0, 0.0, 3.0]), k=1.0),
    ],
    ids=["habitual", "hyperbolic"],
)
def test_expected_counts_match_the_simulated_demonstrations(grid, agent):
    n, horizon = 4000, 6
    demos = agent.demonstrate(grid, n, horizon, seed=11)
    per_trajectory = np.stack(
        [
            np.bincount(t.states * grid.n_actions + t.actions, minlength=grid.n_states * grid.n_actions)
            for t in demos.trajectories
        ]
    )
    mean, se = per_trajectory.mean(axis=0), per_trajectory.std(axis=0) / np.sqrt(n)
    expected = agent.expected_counts(grid, horizon).ravel()
    assert expected.sum() == pytest.approx(horizon)
    assert np.all(np.abs(mean - expected) <= 4 * se + 1e-3)
    g = agent.designer_intelligence(grid, horizon=horizon)
    assert g == pytest.approx(
        us.intelligence(grid, agent.behaviour_policy(grid, horizon), agent.reward_table(grid))
    )


# -- bad inputs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda w: ShardAgent(np.zeros((2, 6)), [0, 2, 0, 0, 0, 0]), ValueError, r"context\[1\] is 2"),
        (lambda w: ShardAgent(np.zeros((2, 6)), [0.0] * 6), ValueError, "integer shard indices"),
        (lambda w: ShardAgent(np.zeros((2, 6)), [0, 1, 0]).policy(w), ValueError, "context has 3 entries"),
        (lambda w: ShardAgent(np.zeros((2, 5)), [0] * 6).policy(w), ValueError, r"utilities has shape \(2, 5\)"),
        (lambda w: ShardAgent(np.zeros((2, 6)), [0] * 6, beta=-1.0), ValueError, "beta is -1.0"),
        (lambda w: ShardAgent(np.zeros((2, 6)), [0] * 6).designer_intelligence(w), ValueError, "has no reward"),
        (lambda w: WrongModel("optimal", w), TypeError, "inner must be an agent"),
        (
            lambda w: WrongModel(Optimal(np.zeros(6)), us.worlds.garnet(4, 5, 2)).policy(w),
            ValueError,
            "believed_worlds have 4 states",
        ),
        (lambda w: StateBoltzmann(np.zeros(6), [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]), ValueError, r"beta\[1\] is 0.0"),
        (lambda w: StateBoltzmann(np.zeros(6), [1.0, np.nan]), ValueError, r"beta\[1\] is nan"),
        (lambda w: StateBoltzmann(np.zeros(6), np.ones(4)).policy(w), ValueError, "beta has 4 entries"),
        (lambda w: HyperbolicDiscounter(np.zeros(6), k=-0.5), ValueError, "k is -0.5"),
        (lambda w: HyperbolicDiscounter(np.zeros(6), k=1.0).policy(w), TypeError, "non-stationary"),
        (
            lambda w: HyperbolicDiscounter(np.zeros(6), k=1.0).designer_intelligence(w),
            ValueError,
            "pass horizon=",
        ),
        (lambda w: HyperbolicDiscounter(np.zeros(6), k=1.0).demonstrate(w, 2, 0), ValueError, "horizon is 0"),
        (lambda w: Habitual(Optimal(np.zeros(6)), 1.5), ValueError, "habit is 1.5"),
        (lambda w: Habitual(Optimal(np.zeros(6)), -0.1), ValueError, "habit is -0.1"),
        (lambda w: Habitual(None, 0.5), TypeError, "inner must be an agent"),
        (
            lambda w: Habitual(Optimal(np.zeros(6)), 0.5).designer_intelligence(w, np.zeros(4), horizon=3),
            ValueError,
            r"reward has shape \(4,\)",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(grid, make, error, message):
    with pytest.raises(error, match=message):
        make(grid)


def test_a_behaviour_that_returns_bad_probabilities_is_refused(grid):
    with pytest.raises(ValueError, match="behaviour returned shape"):
        us.demonstrations.simulate_behaviour(grid, lambda t, s, b: np.ones((s.size, 2)), 3, 2)
    with pytest.raises(ValueError, match="sums to"):
        us.demonstrations.simulate_behaviour(grid, lambda t, s, b: np.ones((s.size, grid.n_actions)), 3, 2)
