"""Decision rules and policy loss against brute-force enumeration of deterministic policies."""

import math

import numpy as np
import pytest

import utiliscope as us
from utiliscope.decisions import (
    PolicyMixture,
    UtilitySample,
    decide,
    normalised_value,
    policy_loss,
    weighted_lower_quantile,
)


def brute_normalised(brute, worlds, rewards):
    """Ṽ[m, n] of every deterministic table under every reward, straight from the definition."""
    tables = brute.deterministic_tables(worlds.n_states, worlds.n_actions)
    uniform = np.full(tables[0].shape, 1.0 / worlds.n_actions)
    values = np.array([[brute.value(worlds, pi, r) for r in rewards] for pi in tables])
    v_uniform = np.array([brute.value(worlds, uniform, r) for r in rewards])
    span = values.max(axis=0) - v_uniform
    return np.where(span > 1e-9, (values - v_uniform) / np.where(span > 1e-9, span, 1.0), 0.0), tables


def brute_quantile(values, weights, alpha):
    """The lower alpha-quantile of one row by sorting, as in a textbook."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return values[order][np.nonzero(cumulative >= alpha - 1e-12)[0][0]]


def random_sample(rng, worlds, n):
    rewards = rng.standard_normal((n, worlds.n_states, worlds.n_actions))
    weights = rng.dirichlet(np.ones(n))
    return UtilitySample(rewards, weights, tuple(f"u{i}" for i in range(n)))


@pytest.fixture(params=["one world", "two worlds"])
def small_worlds(request, brute):
    if request.param == "one world":
        return us.WorldSet([brute.plain_world(4, 3, seed=11)])
    return us.WorldSet([brute.plain_world(4, 3, seed=12), brute.plain_world(4, 3, seed=13)], weights=[0.4, 0.6])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_rule_matches_brute_force(brute, small_worlds, seed):
    sample = random_sample(np.random.default_rng(seed), small_worlds, 5)
    normalised, tables = brute_normalised(brute, small_worlds, sample.rewards)
    objective = normalised @ sample.weights
    decision = decide(small_worlds, sample, "expected")
    assert decision.exact
    assert decision.expected == pytest.approx(objective.max(), abs=1e-9)
    np.testing.assert_allclose(decision.normalised_values, normalised[int(np.argmax(objective))], atol=1e-9)
    assert any(np.array_equal(decision.policy, pi) for pi in tables)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.6])
def test_robust_rule_matches_brute_force(brute, small_worlds, alpha):
    sample = random_sample(np.random.default_rng(7), small_worlds, 6)
    normalised, _ = brute_normalised(brute, small_worlds, sample.rewards)
    best = max(brute_quantile(row, sample.weights, alpha) for row in normalised)
    decision = decide(small_worlds, sample, "robust", alpha=alpha)
    assert decision.exact
    assert decision.objective == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("max_enumerate", [10**6, 10], ids=["enumerated", "local search"])
@pytest.mark.parametrize("seed", range(4))
def test_robust_is_never_worse_than_expected_on_its_own_objective(small_worlds, seed, max_enumerate):
    sample = random_sample(np.random.default_rng(100 + seed), small_worlds, 8)
    expected = decide(small_worlds, sample, "expected", max_enumerate=max_enumerate)
    robust = decide(small_worlds, sample, "robust", alpha=0.2, max_enumerate=max_enumerate)
    assert robust.exact == (max_enumerate > 81 or len(small_worlds) == 1)  # one world: the occupancy program
    assert robust.objective >= expected.quantile(0.2) - 1e-12
    assert expected.expected >= robust.expected - 1e-9 or not expected.exact


def test_local_search_says_so_and_finds_the_one_world_optimum(brute):
    world = us.WorldSet([brute.plain_world(4, 3, seed=11)])
    sample = random_sample(np.random.default_rng(3), world, 4)
    local = decide(world, sample, "expected", max_enumerate=10)
    assert "value iteration" in local.search and local.exact  # one world: planning is exact
    assert local.expected == pytest.approx(decide(world, sample, "expected").expected, abs=1e-9)
    two = us.WorldSet([brute.plain_world(4, 3, seed=12), brute.plain_world(4, 3, seed=13)])
    assert not decide(two, random_sample(np.random.default_rng(3), two, 4), "robust", max_enumerate=10).exact


def bandit(n_actions):
    """One state, A actions: V = r(a) / (1 − γ), so Ṽ is read off the rewards."""
    return us.TabularMDP(np.ones((1, n_actions, 1)), [1.0], 0.5)


def test_robust_avoids_the_expected_rules_disaster():
    # U1 (P 0.8) likes action 0; U2 (P 0.2) rates it far below acting at random. Action 1 is fine for both.
    world = bandit(3)
    rewards = np.array([[[1.0, 0.6, 0.0]], [[0.0, 0.6, 1.0]]])
    sample = UtilitySample(rewards, np.array([0.8, 0.2]), ("U1", "U2"))
    expected = decide(world, sample, "expected")
    robust = decide(world, sample, "robust", alpha=0.1)
    np.testing.assert_array_equal(expected.policy, [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(robust.policy, [[0.0, 1.0, 0.0]])
    assert expected.normalised_values[1] < -1  # a credible utility rates the expected rule's choice a disaster
    assert robust.normalised_values.min() > 0


@pytest.mark.parametrize("q", [2**-2, 2**-4])
def test_quantilizer_g_under_the_posterior_mean_utility_is_at_least_minus_log2_q(small_worlds, q):
    sample = random_sample(np.random.default_rng(5), small_worlds, 5)
    decision = decide(small_worlds, sample, "quantilize", q=q)
    mean_utility = us.decisions.mixture_reward(sample, us.decisions.value_ranges(small_worlds, sample.rewards))
    g = us.intelligence(small_worlds, decision.acting_policy(small_worlds), mean_utility)
    # The Quantilizer's documented bound: its top set's value is at least the q-quantile's, so g ≥ −log2 q.
    assert g >= -math.log2(q) - 1e-9
    assert g <= us.intelligence(small_worlds, decide(small_worlds, sample, "expected").policy, mean_utility)
    if len(small_worlds) == 1:
        assert decision.policy is not None and decision.mixture is not None
    else:
        assert decision.policy is None
        assert decision.mixture.occupancy(small_worlds).sum() == pytest.approx(1 / (1 - small_worlds.gamma))
        drawn = decision.mixture.sample_policy(seed=0)
        assert any(np.array_equal(drawn, pi) for pi in decision.mixture.policies)


def brute_ladder(normalised, weights, max_bits):
    """The soft rule's candidates for ξ uniform on the deterministic tables, by sorting the tables by their
    expected normalised value: each q-quantilizer (q = 2^-j, j ≤ max_bits) averages the top ``ceil(q · M)`` rows;
    the expected rule's policy is the top row alone, q = 1/M. Returns the q's and the candidates' ``Ṽ`` rows."""
    order = np.argsort(-(normalised @ weights), kind="stable")
    qs = [2.0**-j for j in range(max_bits + 1)] + [1 / len(order)]
    return np.array(qs), np.array(
        [normalised[order[: math.ceil(q * len(order) - 1e-12)]].mean(axis=0) for q in qs]
    )


@pytest.mark.parametrize("alpha", [0.1, 0.4])
@pytest.mark.parametrize("seed", range(3))
def test_soft_rule_is_the_best_quantilizer_on_the_ladder_by_brute_force(brute, small_worlds, seed, alpha):
    sample = random_sample(np.random.default_rng(200 + seed), small_worlds, 6)
    normalised, _ = brute_normalised(brute, small_worlds, sample.rewards)
    qs, rows = brute_ladder(normalised, sample.weights, 8)
    lower = np.array([brute_quantile(row, sample.weights, alpha) for row in rows])
    decision = decide(small_worlds, sample, "soft", alpha=alpha, max_bits=8)
    assert decision.exact
    assert decision.objective == pytest.approx(lower.max(), abs=1e-9)
    best = max((q, i) for i, q in enumerate(qs) if lower[i] >= lower.max() - 1e-9)[1]  # ties: the larger q
    assert decision.settings["q"] == pytest.approx(qs[best], rel=1e-12)
    assert decision.settings["bits"] == pytest.approx(math.log2(1 / qs[best]), rel=1e-12)
    np.testing.assert_allclose(decision.normalised_values, rows[best], atol=1e-9)


@pytest.mark.parametrize("prior", ["uniform", "dirichlet"])
@pytest.mark.parametrize("max_enumerate", [10**6, 10], ids=["enumerated", "local search"])
@pytest.mark.parametrize("seed", range(6))
def test_soft_is_never_below_expected_and_quantilize_on_its_own_lower_quantile(
    small_worlds, seed, max_enumerate, prior
):
    # By construction: the ladder holds q = 2^-6 (the quantilize rule's default) and ends with the expected policy.
    sample = random_sample(np.random.default_rng(300 + seed), small_worlds, 7)
    settings = {"max_enumerate": max_enumerate, "seed": seed}
    if prior == "dirichlet":
        settings["policy_prior"] = us.DirichletPolicies(0.5)
    soft = decide(small_worlds, sample, "soft", alpha=0.2, n_candidates=500, **settings)
    expected = decide(small_worlds, sample, "expected", **settings)
    quantilize = decide(small_worlds, sample, "quantilize", q=2**-6, n_candidates=500, **settings)
    assert soft.objective == pytest.approx(soft.quantile(0.2), abs=1e-12)
    assert soft.objective >= expected.quantile(0.2) - 1e-9
    assert soft.objective >= quantilize.quantile(0.2) - 1e-9
    assert soft.settings["bits"] == pytest.approx(-math.log2(soft.settings["q"]))


def test_soft_spends_no_bits_when_the_posterior_cannot_tell_good_from_bad():
    # Two equally credible utilities that disagree on every action: any optimisation is bought with one of them,
    # so acting at random (q = 1, 0 bits) has the best lower quantile.
    world = bandit(2)
    sample = UtilitySample(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]), np.array([0.5, 0.5]), ("U1", "U2"))
    decision = decide(world, sample, "soft", alpha=0.1)
    assert decision.settings["q"] == 1.0 and decision.settings["bits"] == 0.0
    np.testing.assert_allclose(decision.policy, [[0.5, 0.5]])
    one = UtilitySample(np.array([[[1.0, 0.0]]]), np.array([1.0]), ("U1",))
    assert decide(world, one, "soft", alpha=0.1).settings["bits"] == 1.0  # sure of U1: the best of two actions


def test_soft_reports_infinite_bits_for_an_expected_policy_beyond_all_of_xi(small_worlds):
    # ξ holds only the uniform policy: the expected rule's deterministic optimum beats all of it.
    sample = random_sample(np.random.default_rng(8), small_worlds, 1)
    xi = us.PolicySet(np.full((1, small_worlds.n_states, small_worlds.n_actions), 1 / small_worlds.n_actions))
    decision = decide(small_worlds, sample, "soft", policy_prior=xi)
    assert decision.settings["q"] == 0.0 and decision.settings["bits"] == math.inf
    assert decision.objective == pytest.approx(decide(small_worlds, sample, "expected").quantile(0.1), abs=1e-12)


def test_policy_loss_is_zero_for_the_optimum_and_one_for_uniform(brute, small_worlds):
    reward = np.random.default_rng(9).standard_normal((small_worlds.n_states, small_worlds.n_actions))
    tables = brute.deterministic_tables(small_worlds.n_states, small_worlds.n_actions)
    values = [brute.value(small_worlds, pi, reward) for pi in tables]
    best, worst = tables[int(np.argmax(values))], tables[int(np.argmin(values))]
    uniform = np.full(best.shape, 1 / small_worlds.n_actions)
    assert policy_loss(small_worlds, best, reward) == pytest.approx(0.0, abs=1e-12)
    assert policy_loss(small_worlds, uniform, reward) == pytest.approx(1.0, abs=1e-12)
    assert policy_loss(small_worlds, worst, reward) > 1
    assert policy_loss(small_worlds, uniform, reward + 3.0) == pytest.approx(1.0, abs=1e-12)
    assert policy_loss(small_worlds, best, 2.5 * reward - 1) == pytest.approx(0.0, abs=1e-12)
    assert policy_loss(small_worlds, best, np.zeros(small_worlds.n_states)) == 1.0  # no range: Ṽ = 0


def test_mixture_value_is_its_weighted_value(small_worlds, brute):
    reward = np.random.default_rng(4).standard_normal((small_worlds.n_states, small_worlds.n_actions))
    tables = np.array(brute.deterministic_tables(small_worlds.n_states, small_worlds.n_actions)[:3])
    mixture = PolicyMixture(tables, np.array([0.2, 0.3, 0.5]))
    pairs = zip(mixture.weights, tables, strict=True)
    expected = sum(w * brute.value(small_worlds, pi, reward) for w, pi in pairs)
    assert mixture.value(small_worlds, reward) == pytest.approx(expected, rel=1e-10)
    assert normalised_value(small_worlds, mixture, reward) == pytest.approx(
        1 - policy_loss(small_worlds, mixture, reward), abs=1e-12
    )


def test_weighted_lower_quantile_matches_sorting(rng):
    values = rng.standard_normal((20, 7))
    weights = rng.dirichlet(np.ones(7))
    for alpha in (0.01, 0.25, 0.5, 0.99):
        expected = [brute_quantile(row, weights, alpha) for row in values]
        np.testing.assert_array_equal(weighted_lower_quantile(values, weights, alpha), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "best"}, "rule is 'best'"),
        ({"rule": "robust", "alpha": 1.0}, "alpha is 1.0"),
        ({"rule": "robust", "alpha": 0.0}, "alpha"),
        ({"rule": "quantilize", "q": 1.5}, "q is 1.5"),
        ({"rule": "soft", "alpha": 1.5}, "alpha is 1.5"),
        ({"rule": "soft", "max_bits": -1}, "max_bits is -1"),
        ({"rule": "soft", "n_candidates": 0}, "n_candidates is 0"),
        ({"rule": "soft", "q": 0.5}, "q is a parameter of rule 'quantilize', not of rule 'soft'"),
    ],
)
def test_bad_settings_are_named(small_worlds, kwargs, message):
    sample = random_sample(np.random.default_rng(0), small_worlds, 3)
    with pytest.raises(ValueError, match=message):
        decide(small_worlds, sample, **kwargs)


def test_bad_samples_are_named():
    with pytest.raises(ValueError, match="sum to"):
        UtilitySample(np.zeros((2, 1, 2)), np.array([0.5, 0.6]), ("a", "b"))
    with pytest.raises(ValueError, match="one entry per reward"):
        UtilitySample(np.zeros((2, 1, 2)), np.array([1.0]), ("a",))


def test_local_search_on_sparse_worlds_equals_the_search_on_their_dense_twins():
    layout = ["S.a.", ".#b.", "a..b"]
    pairs = [[us.worlds.gridworld(layout, slip=s, sparse=sparse) for s in (0.1, 0.4)] for sparse in (False, True)]
    dense, sparse = (us.WorldSet(worlds, weights=[0.3, 0.7]) for worlds in pairs)
    sample = random_sample(np.random.default_rng(4), dense, 6)
    got = [decide(worlds, sample, "expected", max_enumerate=10) for worlds in (dense, sparse)]
    assert not got[0].exact and "coordinate ascent" in got[0].search
    np.testing.assert_array_equal(got[0].policy, got[1].policy)
    np.testing.assert_allclose(got[0].normalised_values, got[1].normalised_values, atol=1e-9)
