"""TabularMDP and WorldSet: stored arrays, defaults, and input validation that names the argument and index."""

import re

import numpy as np
import pytest

import utiliscope as us
from utiliscope.worlds import as_world_set


def uniform_transitions(n_states: int = 3, n_actions: int = 2) -> np.ndarray:
    """P[s, a, s'] = 1/S: the simplest valid dynamics."""
    return np.full((n_states, n_actions, n_states), 1.0 / n_states)


def with_entry(array, index, value) -> np.ndarray:
    """A copy of ``array`` with one entry replaced."""
    out = np.array(array, dtype=float)
    out[index] = value
    return out


P3 = uniform_transitions()
START3 = np.array([1.0, 0.0, 0.0])
ROW_OFF = with_entry(P3, (1, 0, 2), 0.5)  # row (1, 0) sums to 1/3 + 1/3 + 1/2
NEGATIVE = with_entry(with_entry(P3, (2, 1, 0), -0.2), (2, 1, 1), 1.0 / 3 + 0.2 + 1.0 / 3)

# (keyword arguments overriding a valid TabularMDP, exception, regex the message must match)
MDP_CASES = [
    (dict(transitions=ROW_OFF), ValueError, r"transitions\[1, 0\] sums to 1\.16667"),
    (dict(transitions=NEGATIVE), ValueError, r"transitions\[2, 1, 0\] is -0\.2.*non-negative"),
    (dict(transitions=with_entry(P3, (0, 1, 2), np.nan)), ValueError, r"transitions\[0, 1, 2\] is nan.*finite"),
    (dict(transitions=with_entry(P3, (2, 0, 1), np.inf)), ValueError, r"transitions\[2, 0, 1\] is inf.*finite"),
    (dict(transitions=np.full((3, 2, 4), 0.25)), ValueError, r"transitions has shape \(3, 2, 4\).*\(S, A, S\)"),
    (dict(transitions=np.full((3, 3), 1 / 3)), ValueError, r"transitions must be 3-d; got shape \(3, 3\)"),
    (dict(transitions=np.zeros((0, 2, 0))), ValueError, r"transitions has shape \(0, 2, 0\).*at least one"),
    (dict(transitions="abc"), TypeError, r"transitions must be an array of numbers"),
    (dict(start=[0.5, 0.5]), ValueError, r"start has shape \(2,\); it must be \(3,\)"),
    (dict(start=[0.5, 0.6, 0.0]), ValueError, r"start.* sums to 1\.1.*must sum to 1"),
    (dict(start=[1.2, -0.2, 0.0]), ValueError, r"start\[1\] is -0\.2.*non-negative"),
    (dict(start=[np.nan, 1.0, 0.0]), ValueError, r"start\[0\] is nan"),
    (dict(gamma=1.0), ValueError, r"gamma is 1\.0.*\[0, 1\)"),
    (dict(gamma=-0.1), ValueError, r"gamma is -0\.1.*\[0, 1\)"),
    (dict(gamma=np.nan), ValueError, r"gamma is nan.*\[0, 1\)"),
    (dict(gamma="high"), TypeError, r"gamma must be a number in \[0, 1\)"),
    (dict(features=np.ones((2, 4))), ValueError, r"features has shape \(2, 4\).*\(3, K\) or \(3, 2, K\)"),
    (dict(features=np.ones((3, 3, 4))), ValueError, r"features has shape \(3, 3, 4\)"),
    (dict(features=np.ones((3, 0))), ValueError, r"features has no columns"),
    (dict(features=with_entry(np.ones((3, 2)), (1, 1), np.inf)), ValueError, r"features\[1, 1\] is inf"),
    (dict(state_names=["a", "b"]), ValueError, r"state_names has 2 entries.*\(3\)"),
    (dict(action_names=["go", "go"]), ValueError, r"action_names\[1\] = 'go' repeats action_names\[0\]"),
    (dict(features=np.ones((3, 2)), feature_names=["x"]), ValueError, r"feature_names has 1 entries"),
]


@pytest.mark.parametrize(("override", "error", "message"), MDP_CASES)
def test_tabular_mdp_rejects_bad_input_naming_argument_and_index(override, error, message):
    kwargs = dict(transitions=P3, start=START3, gamma=0.9) | override
    with pytest.raises(error, match=message):
        us.TabularMDP(**kwargs)


def test_tabular_mdp_stores_read_only_arrays_and_default_names():
    phi = np.arange(6.0).reshape(3, 2)
    world = us.TabularMDP(P3.tolist(), START3.tolist(), 0.5, features=phi)
    assert (world.n_states, world.n_actions, world.gamma) == (3, 2, 0.5)
    np.testing.assert_array_equal(world.transitions, P3)
    np.testing.assert_array_equal(world.features, phi)
    assert world.state_names == ("s0", "s1", "s2")
    assert world.action_names == ("a0", "a1")
    assert world.feature_names == ("f0", "f1")
    for array in (world.transitions, world.start, world.features):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0


def test_tabular_mdp_accepts_rows_within_tolerance_and_state_action_features():
    jitter = with_entry(P3, (0, 0, 0), 1.0 / 3 + 1e-10)
    world = us.TabularMDP(jitter, START3, 0.0, features=np.ones((3, 2, 4)))
    assert world.features.shape == (3, 2, 4)
    assert world.feature_names == ("f0", "f1", "f2", "f3")


def world(n_states=3, n_actions=2, gamma=0.9, features=None) -> us.TabularMDP:
    start = np.zeros(n_states)
    start[0] = 1.0
    return us.TabularMDP(uniform_transitions(n_states, n_actions), start, gamma, features=features)


W = world()

# (worlds, weights, exception, regex)
WORLD_SET_CASES = [
    ([], None, ValueError, r"worlds is empty"),
    ([W, "world"], None, TypeError, r"worlds\[1\] is a str; expected a TabularMDP"),
    ([W, W, world(n_states=4)], None, ValueError, r"worlds\[2\] has n_states=4 but worlds\[0\] has 3"),
    ([W, world(n_actions=3)], None, ValueError, r"worlds\[1\] has n_actions=3 but worlds\[0\] has 2"),
    ([W, world(gamma=0.8)], None, ValueError, r"worlds\[1\] has gamma=0\.8 but worlds\[0\] has 0\.9"),
    ([W, world(features=np.ones((3, 1)))], None, ValueError, r"worlds\[1\] has different features"),
    ([W, W], [0.5, 0.6], ValueError, r"weights.* sums to 1\.1.*must sum to 1"),
    ([W, W], [1.5, -0.5], ValueError, r"weights\[1\] is -0\.5.*non-negative"),
    ([W, W], [0.5, np.nan], ValueError, r"weights\[1\] is nan"),
    ([W, W], [np.inf, 0.0], ValueError, r"weights\[0\] is inf"),
    ([W, W], [1.0], ValueError, r"weights has shape \(1,\).*one weight per world \(2\)"),
    ([W, W], [[0.5, 0.5]], ValueError, r"weights must be 1-d"),
]


@pytest.mark.parametrize(("worlds", "weights", "error", "message"), WORLD_SET_CASES)
def test_world_set_rejects_bad_input_naming_argument_and_index(worlds, weights, error, message):
    with pytest.raises(error, match=message):
        us.WorldSet(worlds, weights=weights)


def test_world_set_stacks_worlds_and_averages_dynamics():
    a = world(features=np.eye(3))
    other = np.roll(uniform_transitions(), 1, axis=2)
    other[:, 0] = np.eye(3)
    b = us.TabularMDP(other, [0.0, 0.5, 0.5], 0.9, features=np.eye(3))
    zeta = us.WorldSet([a, b], weights=[0.25, 0.75])
    assert (zeta.n_worlds, zeta.n_states, zeta.n_actions, zeta.gamma, len(zeta)) == (2, 3, 2, 0.9, 2)
    np.testing.assert_array_equal(zeta.transitions[1], other)
    np.testing.assert_array_equal(zeta.starts, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(zeta.mean_transitions, 0.25 * uniform_transitions() + 0.75 * other)
    np.testing.assert_allclose(zeta.mean_start, [0.25, 0.375, 0.375])
    # incoming[e, s', s, a] is transitions[e, s, a, s'] with the next state first.
    np.testing.assert_array_equal(zeta.incoming[1, 2, 0, 1], other[0, 1, 2])
    np.testing.assert_array_equal(zeta.features, np.eye(3))


def test_world_set_default_weights_are_equal_and_single_world_is_wrapped():
    np.testing.assert_array_equal(us.WorldSet([W, W, W]).weights, np.full(3, 1.0 / 3))
    assert us.WorldSet(W).n_worlds == 1
    assert as_world_set(W).worlds == (W,)
    assert as_world_set([W, W]).n_worlds == 2
    zeta = us.WorldSet([W])
    assert as_world_set(zeta) is zeta


@pytest.mark.parametrize("bad", [None, "world", [], [W, 3], np.ones((3, 2, 3))])
def test_as_world_set_rejects_other_types_and_says_how_to_wrap(bad):
    with pytest.raises(TypeError, match=re.escape("us.WorldSet([...])")):
        as_world_set(bad)
