"""from_arrays: worlds from next-state and probability tables, and its input checks."""

import numpy as np
import pytest

import utiliscope as us


def tables_of(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every next state listed for every (s, a), with its probability (zeros included)."""
    S, A, _ = transitions.shape
    return np.broadcast_to(np.arange(S), (S, A, S)).copy(), transitions.copy()


def test_from_arrays_builds_the_dense_world_it_lists():
    garnet = us.worlds.garnet(6, 3, 2, seed=4)
    next_states, probabilities = tables_of(garnet.transitions)
    world = us.worlds.from_arrays(next_states, probabilities, garnet.features, garnet.start, garnet.gamma)
    np.testing.assert_array_equal(world.transitions, garnet.transitions)
    np.testing.assert_array_equal(world.features, garnet.features)


def test_from_arrays_adds_probabilities_of_a_state_listed_twice():
    world = us.worlds.from_arrays([[[0, 0, 1]]] * 2, [[[0.25, 0.25, 0.5]]] * 2, None, [1, 0], 0.9)
    np.testing.assert_array_equal(world.transitions[:, 0], [[0.5, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize(
    ("next_states", "probabilities", "match"),
    [
        ([[[0, 2]]], [[[0.5, 0.5]]], r"next_states\[0, 0, 1\] is 2, outside the states 0..0"),
        ([[[0]]], [[[0.5, 0.5]]], "give one probability per listed next state"),
        ([[[0.0, 0.0]]], [[[0.5, 0.5]]], "integer state indices"),
        ([[[0, 0]]], [[[0.5, 0.4]]], r"probabilities\[0, 0\] sums to 0.9"),
    ],
)
def test_from_arrays_names_the_bad_entry(next_states, probabilities, match):
    with pytest.raises((ValueError, TypeError), match=match):
        us.worlds.from_arrays(next_states, probabilities, None, [1.0], 0.9)
