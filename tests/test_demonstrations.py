"""Demonstrations: simulation against tallies and known distributions, and validation of counts."""

import numpy as np
import pytest

import utiliscope as us
from utiliscope.agents import Boltzmann
from utiliscope.demonstrations import Demonstrations, Trajectory, simulate

#: Standard errors allowed for a frequency (well beyond chance for the dozens of cells checked together).
Z = 5.0


def plain_world(n_states, n_actions, seed, start=None):
    world = us.worlds.garnet(n_states, n_actions, 2, seed=seed)
    return us.TabularMDP(world.transitions, world.start if start is None else start, world.gamma)


@pytest.fixture
def worlds():
    start = np.array([0.5, 0.0, 0.3, 0.2])
    return us.WorldSet([plain_world(4, 3, 0), plain_world(4, 3, 1, start)], weights=[0.3, 0.7])


@pytest.fixture
def policy():
    return np.array([[0.2, 0.8, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0], [0.6, 0.1, 0.3]])


def assert_frequencies(counts, probabilities):
    """Each row of counts against its probabilities, within Z binomial standard errors."""
    n = counts.sum(axis=-1, keepdims=True)
    seen = n[..., 0] > 0
    freq = counts[seen] / n[seen]
    p = np.broadcast_to(probabilities, counts.shape)[seen]
    se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n[seen])
    assert np.all(np.abs(freq - p) <= Z * se + 1e-12)
    assert np.all(freq[p == 0] == 0)


def test_counts_are_the_tally_of_the_trajectories(worlds, policy):
    demos = simulate(worlds, policy, n_trajectories=30, horizon=7, seed=1)
    tally = np.zeros((4, 3))
    for t in demos.trajectories:
        assert len(t.states) == len(t.actions) == 7
        for s, a in zip(t.states, t.actions, strict=True):
            tally[s, a] += 1
    np.testing.assert_array_equal(demos.counts, tally)
    assert demos.counts.sum() == 30 * 7
    assert demos.n_trajectories == 30 and (demos.n_states, demos.n_actions) == (4, 3)


def test_action_frequencies_converge_to_the_policy(worlds, policy):
    demos = simulate(worlds, policy, n_trajectories=2000, horizon=10, seed=2)
    assert_frequencies(demos.counts, policy)


def test_worlds_starts_and_transitions_follow_the_world_set(worlds, policy):
    demos = simulate(worlds, policy, n_trajectories=4000, horizon=5, seed=3)
    world_counts = np.bincount([t.world for t in demos.trajectories], minlength=2)
    assert_frequencies(world_counts.astype(float), worlds.weights)
    starts = np.zeros((2, 4))
    moves = np.zeros((2, 4, 3, 4))
    for t in demos.trajectories:
        starts[t.world, t.states[0]] += 1
        np.add.at(moves[t.world], (t.states[:-1], t.actions[:-1], t.states[1:]), 1)
    assert_frequencies(starts, worlds.starts)
    assert_frequencies(moves, worlds.transitions)


def test_a_stack_of_policies_draws_one_per_trajectory(worlds):
    stack = np.array([np.eye(3)[[0, 0, 0, 0]], np.eye(3)[[2, 2, 2, 2]]])
    demos = simulate(worlds, stack, n_trajectories=1000, horizon=6, seed=4, policy_weights=[0.2, 0.8])
    used = np.array([t.actions[0] for t in demos.trajectories]) // 2
    assert all(np.all(t.actions == t.actions[0]) for t in demos.trajectories)
    assert_frequencies(np.bincount(used, minlength=2).astype(float), [0.2, 0.8])


def test_same_seed_gives_identical_demonstrations_and_another_seed_differs(worlds):
    agent = Boltzmann(np.arange(4.0), beta=1.0)
    a, b = (agent.demonstrate(worlds, 20, 8, seed=5) for _ in range(2))
    c = agent.demonstrate(worlds, 20, 8, seed=6)
    np.testing.assert_array_equal(a.counts, b.counts)
    for x, y in zip(a.trajectories, b.trajectories, strict=True):
        assert x.world == y.world
        np.testing.assert_array_equal(x.states, y.states)
        np.testing.assert_array_equal(x.actions, y.actions)
    assert not all(
        np.array_equal(x.actions, y.actions) and np.array_equal(x.states, y.states)
        for x, y in zip(a.trajectories, c.trajectories, strict=True)
    )


def test_from_counts_keeps_counts_and_no_trajectories():
    demos = Demonstrations.from_counts([[3, 1.5], [0, 2]])
    np.testing.assert_array_equal(demos.counts, [[3, 1.5], [0, 2]])
    assert demos.trajectories == () and demos.n_trajectories == 0
    with pytest.raises(ValueError):
        demos.counts[0, 0] = 1.0  # read-only


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([[1.0, -1.0]], r"counts\[0, 1\] is -1"),
        ([[1.0, np.nan]], r"counts\[0, 1\]"),
        ([1.0, 2.0], "counts must be 2-d"),
        (np.zeros((0, 2)), "at least one state"),
    ],
)
def test_from_counts_rejects_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        Demonstrations.from_counts(counts)


def test_from_trajectories_tallies_and_checks_indices():
    records = [Trajectory(0, np.array([0, 1, 1]), np.array([1, 0, 0]))]
    demos = Demonstrations.from_trajectories(records, n_states=2, n_actions=2)
    np.testing.assert_array_equal(demos.counts, [[0, 1], [2, 0]])
    with pytest.raises(ValueError, match=r"trajectories\[0\].actions holds an index outside 0..1"):
        Demonstrations.from_trajectories([(0, [0], [2])], n_states=2, n_actions=2)
    with pytest.raises(ValueError, match=r"trajectories\[0\] has 2 states but 1 actions"):
        Demonstrations.from_trajectories([(0, [0, 1], [1])], n_states=2, n_actions=2)
    with pytest.raises(ValueError, match=r"trajectories\[0\].world is -1"):
        Demonstrations.from_trajectories([(-1, [0], [1])], n_states=2, n_actions=2)
    with pytest.raises(ValueError, match="tally"):
        Demonstrations(np.ones((2, 2)), records)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_trajectories": 0}, "n_trajectories"),
        ({"horizon": 0}, "horizon"),
        ({"policy_weights": [0.5, 0.5]}, "policy_weights"),
    ],
)
def test_simulate_rejects_bad_settings(worlds, policy, kwargs, match):
    settings = {"n_trajectories": 2, "horizon": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        simulate(worlds, policy, **settings)


def test_simulate_rejects_a_policy_of_the_wrong_shape(worlds):
    with pytest.raises(ValueError, match="policies has shape"):
        simulate(worlds, np.full((3, 3), 1 / 3), 2, 2)


def test_from_episodes_tallies_state_action_pairs_in_world_zero():
    demos = us.Demonstrations.from_episodes([[(0, 1), (1, 0), (0, 1)], []], n_states=2, n_actions=2)
    np.testing.assert_array_equal(demos.counts, [[0, 2], [1, 0]])
    assert [t.world for t in demos.trajectories] == [0, 0]
    np.testing.assert_array_equal(demos.trajectories[0].states, [0, 1, 0])


@pytest.mark.parametrize("episode", [[(0, 1, 2)], [(0.5, 1)], [0, 1]])
def test_from_episodes_refuses_anything_but_index_pairs(episode):
    with pytest.raises(ValueError, match=r"episodes\[0\] must be a sequence of \(state, action\) pairs"):
        us.Demonstrations.from_episodes([episode], n_states=2, n_actions=2)
