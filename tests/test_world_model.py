"""The world model P(pi | WM): constructors, mean, sampling within Monte Carlo error, and validation."""

import numpy as np
import pytest

import utiliscope as us
from utiliscope.demonstrations import Demonstrations
from utiliscope.world_model import WorldModel

Z = 5.0


def test_from_demonstrations_adds_the_concentration_to_the_counts():
    counts = np.array([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    wm = WorldModel.from_demonstrations(Demonstrations.from_counts(counts), concentration=0.5)
    assert wm.kind == "dirichlet" and (wm.n_states, wm.n_actions) == (2, 3)
    np.testing.assert_array_equal(wm.alpha, counts + 0.5)
    np.testing.assert_allclose(wm.mean(), [[3.5 / 5.5, 1.5 / 5.5, 0.5 / 5.5], [1 / 3, 1 / 3, 1 / 3]])
    assert isinstance(wm, us.world_model.DirichletWorldModel) and not hasattr(wm, "policies")


def test_dirichlet_samples_match_the_mean_and_variance():
    alpha = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 4.0]])
    n = 4000
    samples = WorldModel.dirichlet(alpha).sample(n, seed=1)
    assert samples.shape == (n, 2, 3)
    np.testing.assert_allclose(samples.sum(axis=-1), 1.0)
    a0 = alpha.sum(axis=1, keepdims=True)
    mean = alpha / a0
    var = mean * (1 - mean) / (a0 + 1)
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= Z * np.sqrt(var / n))
    # For x in [0, 1] the central fourth moment is at most var, so the sample variance's SE is ≤ sqrt(var / n).
    assert np.all(np.abs(samples.var(axis=0) - var) <= Z * np.sqrt(var / n))


def test_tiny_concentrations_give_one_hot_rows_in_proportion_to_alpha():
    alpha = np.array([[1e-4, 3e-4]])
    n = 2000
    samples = WorldModel.dirichlet(alpha).sample(n, seed=2)
    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples.sum(axis=-1), 1.0)
    assert np.mean(samples.max(axis=-1) > 0.999) > 0.99
    share = samples[:, 0, 1].mean()
    assert abs(share - 0.75) <= Z * np.sqrt(0.75 * 0.25 / n)


def test_one_policy_is_a_point_mass():
    pi = np.array([[0.2, 0.8], [1.0, 0.0]])
    wm = WorldModel.from_policies(pi)
    assert wm.kind == "finite" and wm.policies.shape == (1, 2, 2)
    np.testing.assert_array_equal(wm.weights, [1.0])
    np.testing.assert_array_equal(wm.mean(), pi)
    np.testing.assert_array_equal(wm.sample(3, seed=0), np.stack([pi] * 3))
    assert isinstance(wm, us.world_model.FiniteWorldModel) and not hasattr(wm, "alpha")


def test_a_weighted_set_samples_in_proportion_to_its_weights():
    stack = np.stack([np.eye(2)[[0, 0]], np.eye(2)[[1, 0]], np.eye(2)[[1, 1]]])
    weights = np.array([0.5, 0.3, 0.2])
    wm = WorldModel.from_policies(stack, weights)
    np.testing.assert_allclose(wm.mean(), np.einsum("m,msa->sa", weights, stack))
    n = 3000
    samples = wm.sample(n, seed=3)
    which = samples[:, 0, 1] + samples[:, 1, 1]  # 0, 1 or 2 ones: the index of the drawn policy
    share = np.bincount(which.astype(int), minlength=3) / n
    assert np.all(np.abs(share - weights) <= Z * np.sqrt(weights * (1 - weights) / n))


def test_same_seed_gives_the_same_sample():
    wm = WorldModel.dirichlet(np.ones((3, 2)))
    np.testing.assert_array_equal(wm.sample(5, seed=7), wm.sample(5, seed=7))
    assert not np.array_equal(wm.sample(5, seed=7), wm.sample(5, seed=8))


@pytest.mark.parametrize(
    "wm",
    [WorldModel.dirichlet([[1.0, 2.0]]), WorldModel.from_policies(np.full((2, 1, 2), 0.5), [0.25, 0.75])],
)
def test_to_dict_round_trips(wm):
    again = WorldModel.from_dict(wm.to_dict())
    assert type(again) is type(wm) and again.kind == wm.kind
    np.testing.assert_array_equal(again.mean(), wm.mean())
    assert again.to_dict() == wm.to_dict()


def test_check_compatible_compares_states_and_actions():
    world = us.worlds.garnet(3, 2, 2, seed=0)
    WorldModel.dirichlet(np.ones((3, 2))).check_compatible(world)
    with pytest.raises(ValueError, match="3 states and 3 actions but the worlds have 3 and 2"):
        WorldModel.dirichlet(np.ones((3, 3))).check_compatible(world)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: WorldModel.dirichlet([[1.0, 0.0]]), ValueError, r"alpha\[0, 1\] is 0; .* must be > 0"),
        (lambda: WorldModel.dirichlet([[1.0, -2.0]]), ValueError, r"alpha\[0, 1\]"),
        (lambda: WorldModel.dirichlet([[1.0, np.inf]]), ValueError, r"alpha\[0, 1\] is inf"),
        (lambda: WorldModel.dirichlet([1.0, 2.0]), ValueError, "alpha must be 2-d"),
        (lambda: WorldModel.dirichlet(np.ones((0, 2))), ValueError, "alpha has shape"),
        (lambda: WorldModel.from_policies([[0.5, 0.6]]), ValueError, r"policies\[0, 0\] sums to 1.1"),
        (lambda: WorldModel.from_policies([[1.0, 0.0]], [0.5, 0.5]), ValueError, "weights has shape"),
        (lambda: WorldModel.from_policies(np.full((2, 1, 2), 0.5), [0.5, 0.6]), ValueError, "weights"),
        (lambda: WorldModel.from_policies(np.ones(3)), ValueError, "policies must be 2-d or 3-d"),
        (lambda: WorldModel.from_dict({"kind": "gaussian"}), ValueError, "kind"),
        (lambda: WorldModel.from_demonstrations(np.ones((2, 2))), TypeError, "from_counts"),
        (
            lambda: WorldModel.from_demonstrations(Demonstrations.from_counts(np.ones((2, 2))), 0.0),
            ValueError,
            "concentration",
        ),
    ],
)
def test_bad_input_names_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_sample_size_must_be_positive():
    with pytest.raises(ValueError, match="n is 0"):
        WorldModel.dirichlet(np.ones((1, 2))).sample(0)
