"""Builders: gridworld against hand-computed transitions on a tiny layout, and garnet's structure and seeding."""

import numpy as np
import pytest

import utiliscope as us
from utiliscope.worlds import GRID_ACTIONS

LAYOUT = ["S.a", ".#b"]
# Free cells in reading order: s0 = (0,0) 'S', s1 = (0,1), s2 = (0,2) 'a', s3 = (1,0), s4 = (1,2) 'b'.
# Where each action (up, right, down, left, stay) leads, worked out by hand: walls and edges keep the agent put.
HAND_MOVES = np.array(
    [
        [0, 1, 3, 0, 0],  # s0: up edge, right s1, down s3, left edge
        [1, 2, 1, 0, 1],  # s1: up edge, right s2, down wall, left s0
        [2, 2, 4, 1, 2],  # s2: up edge, right edge, down s4, left s1
        [0, 3, 3, 3, 3],  # s3: up s0, right wall, down edge, left edge
        [2, 4, 4, 4, 4],  # s4: up s2, right edge, down edge, left wall
    ]
)


def hand_transitions(slip: float) -> np.ndarray:
    """P[s, a, s'] = (1 − slip)·[s' = move(s, a)] + slip/5 · #{b : move(s, b) = s'} (the docstring's rule)."""
    P = np.zeros((5, 5, 5))
    for s in range(5):
        for a in range(5):
            P[s, a, HAND_MOVES[s, a]] += 1.0 - slip
            for b in range(5):
                P[s, a, HAND_MOVES[s, b]] += slip / 5
    return P


def test_grid_actions_are_up_right_down_left_stay():
    assert list(GRID_ACTIONS) == ["up", "right", "down", "left", "stay"]
    assert list(GRID_ACTIONS.values()) == [(-1, 0), (0, 1), (1, 0), (0, -1), (0, 0)]


@pytest.mark.parametrize("slip", [0.0, 0.2, 1.0])
def test_gridworld_transitions_match_hand_computed_moves(slip):
    world = us.worlds.gridworld(LAYOUT, slip=slip, gamma=0.75)
    np.testing.assert_allclose(world.transitions, hand_transitions(slip), atol=1e-15)
    assert world.gamma == 0.75


def test_gridworld_slip_gives_intended_move_one_minus_slip_plus_slip_over_five():
    P = us.worlds.gridworld(LAYOUT, slip=0.2).transitions
    # From s0 'right': s1 with 0.8 + 0.04; s0 via up, left, stay 3 × 0.04; s3 via down 0.04.
    np.testing.assert_allclose(P[0, 1], [0.12, 0.84, 0.0, 0.04, 0.0])
    # From s4 'up': s2 with 0.8 + 0.04, otherwise s4 (right, down, left, stay).
    np.testing.assert_allclose(P[4, 0], [0.0, 0.0, 0.84, 0.0, 0.16])


def test_gridworld_names_features_and_start():
    world = us.worlds.gridworld(LAYOUT)
    assert world.state_names == ("r0c0", "r0c1", "r0c2", "r1c0", "r1c2")
    assert world.action_names == ("up", "right", "down", "left", "stay")
    assert world.feature_names == ("a", "b")
    np.testing.assert_array_equal(world.features, [[0, 0], [0, 0], [1, 0], [0, 0], [0, 1]])
    np.testing.assert_array_equal(world.start, [1, 0, 0, 0, 0])


def test_gridworld_colours_sorted_one_hot_and_uniform_start_without_s():
    world = us.worlds.gridworld(["cab", "#.a"])
    assert world.feature_names == ("a", "b", "c")
    np.testing.assert_array_equal(world.features, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(world.start, np.full(5, 0.2))


def test_gridworld_without_colours_has_no_features():
    world = us.worlds.gridworld(["S.", ".."])
    assert world.features is None
    assert world.feature_names == ()


@pytest.mark.parametrize(
    ("layout", "slip", "message"),
    [
        ("S.a", 0.1, r"layout must be a non-empty list of strings"),
        ([], 0.1, r"layout must be a non-empty list"),
        (["S.a", ".#"], 0.1, r"layout\[1\] has 2 cells but layout\[0\] has 3"),
        (["S.a", ".#?"], 0.1, r"layout\[1\]\[2\] is '\?'"),
        (["##", "##"], 0.1, r"layout has no free cells"),
        (["S.S"], 0.1, r"layout has 2 start cells"),
        (["S.a"], 1.5, r"slip is 1\.5.*\[0, 1\]"),
        (["S.a"], -0.1, r"slip is -0\.1"),
    ],
)
def test_gridworld_rejects_bad_layouts_and_slips(layout, slip, message):
    with pytest.raises(ValueError, match=message):
        us.worlds.gridworld(layout, slip=slip)


@pytest.mark.parametrize(("n_states", "n_actions", "branching"), [(6, 3, 2), (5, 2, 5), (4, 4, 1)])
def test_garnet_has_exactly_branching_successors_per_state_action(n_states, n_actions, branching):
    world = us.worlds.garnet(n_states, n_actions, branching, gamma=0.7, n_features=3, seed=4)
    assert world.transitions.shape == (n_states, n_actions, n_states)
    np.testing.assert_array_equal((world.transitions > 0).sum(axis=-1), branching)
    np.testing.assert_allclose(world.transitions.sum(axis=-1), 1.0)
    np.testing.assert_allclose(world.start, np.full(n_states, 1.0 / n_states))
    assert world.features.shape == (n_states, 3)
    assert world.gamma == 0.7


def test_garnet_same_seed_same_world_other_seed_other_world():
    a, b, c = (us.worlds.garnet(5, 3, 2, seed=seed) for seed in (7, 7, 8))
    np.testing.assert_array_equal(a.transitions, b.transitions)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.transitions, c.transitions)
    assert not np.array_equal(a.features, c.features)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(branching=6), ValueError, r"branching is 6; it must be at most n_states \(5\)"),
        (dict(branching=0), ValueError, r"branching is 0"),
        (dict(n_states=0), ValueError, r"n_states is 0"),
        (dict(n_actions=2.5), TypeError, r"n_actions must be an integer"),
        (dict(n_features=0), ValueError, r"n_features is 0"),
        (dict(gamma=1.0), ValueError, r"gamma is 1\.0"),
    ],
)
def test_garnet_rejects_bad_arguments(kwargs, error, message):
    arguments = dict(n_states=5, n_actions=3, branching=2) | kwargs
    with pytest.raises(error, match=message):
        us.worlds.garnet(**arguments)
