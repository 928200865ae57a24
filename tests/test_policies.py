"""Policy priors ξ: enumeration, sampling frequencies, Dirichlet moments and PolicySet validation."""

import itertools

import numpy as np
import pytest
from scipy import stats

import utiliscope as us
from utiliscope.policies import MAX_ENUMERATE, as_policy_prior, sample_policies


def chi_square_uniform_ok(counts: np.ndarray, expected: np.ndarray) -> bool:
    """Pearson's χ² against the expected counts, accepted below its 0.9999 quantile (a false alarm in 10^4)."""
    statistic = ((counts - expected) ** 2 / expected).sum()
    return statistic < stats.chi2.ppf(0.9999, df=counts.size - 1)


@pytest.mark.parametrize(("n_states", "n_actions"), [(1, 4), (3, 2), (4, 3), (2, 1)])
def test_uniform_deterministic_enumerates_every_policy_once_with_equal_weights(n_states, n_actions):
    prior = us.UniformDeterministic()
    policies, weights = prior.support(n_states, n_actions)
    assert policies.shape == (n_actions**n_states, n_states)
    assert np.issubdtype(policies.dtype, np.integer)
    assert {tuple(p) for p in policies} == set(itertools.product(range(n_actions), repeat=n_states))
    np.testing.assert_array_equal(weights, np.full(n_actions**n_states, 1.0 / n_actions**n_states))
    assert prior.support_size(n_states, n_actions) == n_actions**n_states
    assert prior.can_enumerate(n_states, n_actions)


def test_uniform_deterministic_refuses_beyond_max_enumerate_and_names_the_alternatives():
    small = us.UniformDeterministic(max_enumerate=100)
    assert small.can_enumerate(4, 3) and not small.can_enumerate(5, 3)  # 81 ≤ 100 < 243
    with pytest.raises(ValueError, match=r"3\^5.*max_enumerate=100.*'monte_carlo'.*'gaussian'"):
        small.support(5, 3)
    assert MAX_ENUMERATE == 2**20
    assert us.UniformDeterministic().can_enumerate(20, 2)
    with pytest.raises(ValueError, match=r"monte_carlo.*gaussian"):
        us.UniformDeterministic().support(21, 2)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_uniform_deterministic_rejects_bad_max_enumerate(value, error):
    with pytest.raises(error, match="max_enumerate"):
        us.UniformDeterministic(max_enumerate=value)


def test_uniform_deterministic_samples_every_policy_equally_often():
    draws = us.UniformDeterministic().sample(2, 3, 45_000, np.random.default_rng(5))
    assert draws.shape == (45_000, 2)
    counts = np.bincount(draws[:, 0] * 3 + draws[:, 1], minlength=9)
    assert chi_square_uniform_ok(counts, np.full(9, 5_000.0))


def test_sample_policies_is_reproducible_by_seed_and_checks_n_samples():
    a = sample_policies(None, 5, 3, 50, seed=1)
    np.testing.assert_array_equal(a, sample_policies(us.UniformDeterministic(), 5, 3, 50, seed=1))
    assert not np.array_equal(a, sample_policies(None, 5, 3, 50, seed=2))
    with pytest.raises(ValueError, match="n_samples is 0"):
        sample_policies(None, 5, 3, 0, seed=1)


@pytest.mark.parametrize("concentration", [0.3, 1.0, 4.0])
def test_dirichlet_rows_sum_to_one_and_mean_is_uniform(concentration):
    n, S, A = 4000, 3, 4
    draws = us.DirichletPolicies(concentration).sample(S, A, n, np.random.default_rng(9))
    assert draws.shape == (n, S, A)
    assert (draws >= 0).all()
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0, atol=1e-12)
    # Var of one Dirichlet(c·1) component: (1/A)(1 − 1/A)/(A·c + 1).
    standard_error = np.sqrt((1 / A) * (1 - 1 / A) / (A * concentration + 1) / n)
    assert np.abs(draws.mean(axis=0) - 1 / A).max() < 4 * standard_error


def test_dirichlet_with_tiny_concentration_gives_valid_nearly_deterministic_rows():
    draws = us.DirichletPolicies(1e-3).sample(4, 3, 500, np.random.default_rng(2))
    assert np.isfinite(draws).all()
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0, atol=1e-12)
    assert np.median(draws.max(axis=-1)) > 0.99


@pytest.mark.parametrize(
    ("value", "error"), [(0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError), ("a", TypeError)]
)
def test_dirichlet_rejects_bad_concentration(value, error):
    with pytest.raises(error, match="concentration"):
        us.DirichletPolicies(value)


def test_dirichlet_cannot_be_enumerated():
    prior = us.DirichletPolicies()
    assert prior.support_size(3, 2) == np.inf and not prior.can_enumerate(3, 2)
    with pytest.raises(ValueError, match=r"infinite support.*'monte_carlo'.*'gaussian'"):
        prior.support(3, 2)


TABLES = np.array([np.eye(3)[[0, 1]], np.eye(3)[[2, 2]], np.full((2, 3), 1 / 3)])


def test_policy_set_weights_default_equal_and_support_returns_them():
    policies, weights = us.PolicySet(TABLES).support(2, 3)
    np.testing.assert_array_equal(policies, TABLES)
    np.testing.assert_array_equal(weights, np.full(3, 1 / 3))
    given = us.PolicySet(TABLES, weights=[0.5, 0.25, 0.25])
    np.testing.assert_array_equal(given.support(2, 3)[1], [0.5, 0.25, 0.25])
    assert given.support_size(2, 3) == 3 and given.can_enumerate(2, 3)


def test_policy_set_samples_by_weight():
    prior = us.PolicySet(np.array([[0, 0], [1, 2], [2, 1]]), weights=[0.6, 0.3, 0.1])
    draws = prior.sample(2, 3, 20_000, np.random.default_rng(4))
    counts = np.array([(draws == p).all(axis=1).sum() for p in prior.policies])
    assert counts.sum() == 20_000
    assert chi_square_uniform_ok(counts, 20_000 * np.array([0.6, 0.3, 0.1]))


@pytest.mark.parametrize(
    ("policies", "weights", "error", "message"),
    [
        (TABLES, [0.5, 0.6, -0.1], ValueError, r"weights\[2\] is -0\.1.*non-negative"),
        (TABLES, [0.5, 0.6, 0.1], ValueError, r"weights.* sums to 1\.2"),
        (TABLES, [0.5, 0.5], ValueError, r"weights has shape \(2,\).*one weight per policy \(3\)"),
        (TABLES, [np.nan, 0.5, 0.5], ValueError, r"weights\[0\] is nan"),
        (np.full((2, 2, 3), 0.3), None, ValueError, r"policies\[0, 0\] sums to 0\.9"),
        (np.full((2, 3), 0.5), None, ValueError, r"policies must be 3-d"),
        (np.zeros((0, 2, 3)), None, ValueError, r"policies is empty"),
        (np.array([0, 1, 2]), None, ValueError, r"policies has shape \(3,\); integer policies are a\[m, s\]"),
    ],
)
def test_policy_set_rejects_bad_input(policies, weights, error, message):
    with pytest.raises(error, match=message):
        us.PolicySet(policies, weights=weights)


@pytest.mark.parametrize(
    ("policies", "n_states", "n_actions"),
    [(TABLES, 3, 3), (TABLES, 2, 4), (np.array([[0, 3]]), 2, 3), (np.array([[0, 1, 1]]), 2, 3)],
)
def test_policy_set_rejects_worlds_of_another_size(policies, n_states, n_actions):
    prior = us.PolicySet(policies)
    with pytest.raises(ValueError, match=r"PolicySet holds policies of shape .* but the worlds have"):
        prior.support(n_states, n_actions)
    with pytest.raises(ValueError, match=r"PolicySet holds policies"):
        prior.sample(n_states, n_actions, 3, np.random.default_rng(0))


def test_as_policy_prior_defaults_to_uniform_deterministic_and_rejects_other_types():
    assert isinstance(as_policy_prior(None), us.UniformDeterministic)
    prior = us.DirichletPolicies(2.0)
    assert as_policy_prior(prior) is prior
    with pytest.raises(TypeError, match=r"policy_prior must be a PolicyPrior.*got str"):
        as_policy_prior("uniform")


def test_to_dict_records_settings():
    assert us.UniformDeterministic(max_enumerate=50).to_dict() == {
        "name": "uniform_deterministic",
        "max_enumerate": 50,
    }
    assert us.DirichletPolicies(0.5).to_dict() == {"name": "dirichlet", "concentration": 0.5}
    assert us.PolicySet(TABLES).to_dict() == {"name": "policy_set", "n_policies": 3}
