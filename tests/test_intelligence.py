"""Intelligence g against brute-force counts written here, ties, +inf, estimator agreement and the far tail."""

import importlib
import inspect
import itertools
import math

import numpy as np
import pytest

import utiliscope as us
from utiliscope.counting import bits, bits_from_values, exceedance, gaussian_bits

METHODS = ["exact", "monte_carlo", "gaussian"]


def brute_values(worlds: us.WorldSet, policies: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """V(pi) = Σ_e w_e d_e · r_pi for each table, with one np.linalg.solve per policy and world."""
    r = np.repeat(reward[:, None], worlds.n_actions, axis=1) if reward.ndim == 1 else reward
    out = np.zeros(len(policies))
    for m, pi in enumerate(policies):
        for w, world in zip(worlds.weights, worlds.worlds, strict=True):
            P_pi = np.einsum("sa,sat->st", pi, world.transitions)
            d = np.linalg.solve((np.eye(world.n_states) - world.gamma * P_pi).T, world.start)
            out[m] += w * d @ (pi * r).sum(axis=1)
    return out


def all_deterministic(n_states: int, n_actions: int) -> np.ndarray:
    """Every deterministic policy as a one-hot table, from itertools rather than the package's enumeration."""
    return np.eye(n_actions)[np.array(list(itertools.product(range(n_actions), repeat=n_states)))]


def brute_g(v_pi: float, reference: np.ndarray) -> float:
    """−log2 of the fraction of reference values with V' ≥ V − 1e-9·max(|V|, max |V'|) (docs/model.md#ties)"""
    tolerance = 1e-9 * max(abs(v_pi), np.abs(reference).max())
    count = np.count_nonzero(reference >= v_pi - tolerance)
    return math.inf if count == 0 else -math.log2(count / len(reference))


def shared_features(worlds: list[us.TabularMDP]) -> us.WorldSet:
    """A WorldSet of garnets that all carry the first garnet's features."""
    return us.WorldSet(
        [us.TabularMDP(w.transitions, w.start, w.gamma, features=worlds[0].features) for w in worlds]
    )


def garnet_pair(n_states: int, n_actions: int, seed: int) -> us.WorldSet:
    return shared_features(
        [us.worlds.garnet(n_states, n_actions, 3, gamma=0.9, seed=100 * seed + e) for e in (0, 1)]
    )


def quantile_policies(worlds, reward, quantiles) -> np.ndarray:
    """Deterministic policies at given quantiles of the brute-force values: g spread over the body of ξ."""
    tables = all_deterministic(worlds.n_states, worlds.n_actions)
    order = np.argsort(brute_values(worlds, tables, reward))
    return tables[order[(np.asarray(quantiles) * (len(tables) - 1)).astype(int)]]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("constant", [0.0, 3.0, -1e6])
def test_constant_utility_gives_zero_bits_for_every_policy_and_method(two_garnets, rng, method, constant):
    policies = np.concatenate([rng.dirichlet(np.ones(3), size=(3, 4)), np.eye(3)[rng.integers(0, 3, (3, 4))]])
    for reward in (np.full(4, constant), np.full((4, 3), constant)):
        g, _ = us.intelligence_table(two_garnets, policies, reward[None], method=method, n_samples=200)
        np.testing.assert_array_equal(g, 0.0)
    assert (
        us.intelligence(two_garnets, policies[0], np.full(4, constant), us.DirichletPolicies(), "monte_carlo") == 0
    )


def q_star(world: us.TabularMDP, reward: np.ndarray) -> np.ndarray:
    """Optimal Q of one world by value iteration to convergence (γ^2000 is far below float precision)."""
    V = np.zeros(world.n_states)
    for _ in range(2000):
        Q = reward[:, None] + world.gamma * world.transitions @ V
        V = Q.max(axis=1)
    return Q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_deterministic_policy_gets_log2_of_support_over_number_tied_at_the_top(seed):
    """State 4 is unreachable and actions 1 and 2 are duplicates, so many policies tie with the best."""
    base = us.worlds.garnet(5, 3, 3, gamma=0.9, seed=seed)
    P = np.array(base.transitions)
    P[:, :, 4] = 0.0
    P /= P.sum(axis=-1, keepdims=True)
    P[:, 2] = P[:, 1]
    world = us.TabularMDP(P, [0.25, 0.25, 0.25, 0.25, 0.0], 0.9)
    reward = np.random.default_rng(seed).standard_normal(5)
    Q = q_star(world, reward)[:4]
    best = Q.max(axis=1, keepdims=True)
    tied = np.isclose(Q, best, rtol=0, atol=1e-9)
    # The tie is exact or absent: the nearest non-tied action is far from the top.
    assert (best - np.where(tied, -np.inf, Q)).min() > 1e-6
    n_top = 3 * np.prod(tied.sum(axis=1))  # any action in the unreachable state × the tied best actions
    assert n_top > 3  # the duplicated actions do tie somewhere
    policy = np.eye(3)[np.append(Q.argmax(axis=1), 0)]
    expected = math.log2(3**5 / n_top)
    assert us.intelligence(world, policy, reward) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_exact_equals_brute_force_count_on_two_world_garnets(seed):
    worlds = garnet_pair(5, 3, seed)
    gen = np.random.default_rng(seed)
    reference = all_deterministic(5, 3)
    for reward in (gen.standard_normal(5), gen.standard_normal((5, 3)), worlds.features @ gen.standard_normal(4)):
        values = brute_values(worlds, reference, reward)
        policies = np.concatenate(
            [quantile_policies(worlds, reward, [0.0, 0.3, 0.9, 1.0]), gen.dirichlet(np.ones(3), size=(3, 5))]
        )
        g, se = us.intelligence_table(worlds, policies, reward[None])
        expected = [brute_g(v, values) for v in brute_values(worlds, policies, reward)]
        np.testing.assert_allclose(g[:, 0], expected, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(se, 0.0)


def test_exact_with_a_weighted_policy_set_equals_weighted_brute_force(two_garnets, rng):
    tables = rng.dirichlet(np.ones(3), size=(30, 4))
    weights = rng.dirichlet(np.ones(30))
    reward = rng.standard_normal((4, 3))
    values = brute_values(two_garnets, tables, reward)
    prior = us.PolicySet(tables, weights=weights)
    for m in (0, 7, int(values.argmax())):
        tolerance = 1e-9 * max(abs(values[m]), np.abs(values).max())
        expected = -math.log2(weights[values >= values[m] - tolerance].sum())
        assert us.intelligence(two_garnets, tables[m], reward, prior) == pytest.approx(expected, abs=1e-12)


def mixing_beats_every_deterministic_policy() -> tuple[us.WorldSet, np.ndarray, np.ndarray]:
    """Two equally likely worlds; in one action 0 reaches the rewarding absorbing state 1, in the other action 1.

    A deterministic policy reaches it in only one world (V = 0.5·γ/(1 − γ) = 4.5); tossing a coin reaches it in
    both (V = γ/2 / (1 − γ/2) / (1 − γ) ≈ 8.2).
    """
    to_goal, stay = [0.0, 1.0], [1.0, 0.0]
    first = us.TabularMDP([[to_goal, stay], [to_goal, to_goal]], [1.0, 0.0], 0.9)
    second = us.TabularMDP([[stay, to_goal], [to_goal, to_goal]], [1.0, 0.0], 0.9)
    return us.WorldSet([first, second]), np.full((2, 2), 0.5), np.array([0.0, 1.0])


def test_a_stochastic_policy_beating_every_deterministic_one_gets_plus_infinity_not_nan():
    worlds, coin, reward = mixing_beats_every_deterministic_policy()
    deterministic = brute_values(worlds, all_deterministic(2, 2), reward)
    assert brute_values(worlds, coin[None], reward)[0] > deterministic.max() + 1.0  # the case exists
    assert us.intelligence(worlds, coin, reward) == math.inf
    g_mc, se_mc = us.intelligence(worlds, coin, reward, method="monte_carlo", n_samples=99, return_se=True)
    assert g_mc == pytest.approx(math.log2(100))  # beats the whole sample: finite, −log2(1 / (M + 1))
    assert np.isfinite(se_mc)
    g_gauss, se_gauss = us.intelligence(worlds, coin, reward, method="gaussian", return_se=True)
    assert not math.isnan(g_gauss) and not math.isnan(se_gauss)


@pytest.mark.parametrize("method", METHODS)
def test_g_is_invariant_to_positive_affine_maps_of_the_utility(two_garnets, rng, method):
    policies = np.concatenate([rng.dirichlet(np.ones(3), size=(4, 4)), np.eye(3)[rng.integers(0, 3, (4, 4))]])
    reward = rng.standard_normal((4, 3))
    g, _ = us.intelligence_table(two_garnets, policies, reward[None], method=method, n_samples=300, seed=5)
    for c, d in [(3.7, -12.5), (0.01, 2.0), (250.0, 0.0)]:
        mapped, _ = us.intelligence_table(
            two_garnets, policies, (c * reward + d)[None], method=method, n_samples=300, seed=5
        )
        tolerance = 1e-9 if method == "gaussian" else 1e-12  # the normal tail is recomputed from shifted moments
        np.testing.assert_allclose(mapped, g, rtol=tolerance, atol=tolerance)


def test_monte_carlo_lies_within_four_reported_standard_errors_of_exact():
    worlds = garnet_pair(6, 3, seed=7)
    gen = np.random.default_rng(7)
    checked = 0
    for reward in (gen.standard_normal(6), worlds.features @ gen.standard_normal(4), gen.standard_normal((6, 3))):
        policies = np.concatenate(
            [quantile_policies(worlds, reward, [0.4, 0.75, 0.9, 0.97, 0.99]), gen.dirichlet(np.ones(3), (2, 6))]
        )
        exact, _ = us.intelligence_table(worlds, policies, reward[None])
        for seed in (0, 1):
            g, se = us.intelligence_table(
                worlds, policies, reward[None], method="monte_carlo", n_samples=2000, seed=seed
            )
            assert (se > 0).all()
            assert (np.abs(g - exact) < 4 * se).all(), (g, exact, se)
            checked += g.size
    assert checked == 42


def test_monte_carlo_standard_error_matches_the_spread_over_seeds():
    worlds = garnet_pair(6, 3, seed=8)
    reward = worlds.features @ np.random.default_rng(8).standard_normal(4)
    policy = quantile_policies(worlds, reward, [0.9])[0]
    runs = [
        us.intelligence(worlds, policy, reward, method="monte_carlo", n_samples=400, seed=s, return_se=True)
        for s in range(40)
    ]
    g, se = np.array(runs).T
    # 40 draws estimate the spread to about ±11 %; the delta-method SE must agree within a factor 1.6.
    assert 1 / 1.6 < g.std(ddof=1) / se.mean() < 1.6


def softmax_of_q(worlds: us.WorldSet, reward: np.ndarray, beta: float) -> np.ndarray:
    """Boltzmann policy on the ζ-averaged dynamics, with β relative to the largest |Q|: a graded policy."""
    Q = q_star(us.TabularMDP(worlds.mean_transitions, worlds.mean_start, worlds.gamma), reward)
    logits = beta * (Q - Q.max(axis=1, keepdims=True)) / np.abs(Q).max()
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("n_states", "n_actions"), [(7, 3), (5, 4)])
def test_gaussian_within_one_bit_of_exact_for_linear_utilities_below_four_bits(n_states, n_actions):
    """Every garnet seed listed and every policy with exact g ≤ 4 bits must pass, none picked afterwards."""
    assert n_actions**n_states >= 1000
    for seed in range(4):
        worlds = garnet_pair(n_states, n_actions, seed)
        gen = np.random.default_rng(seed)
        reward = worlds.features @ gen.standard_normal(4)
        policies = np.concatenate(
            [
                np.eye(n_actions)[gen.integers(0, n_actions, (40, n_states))],
                [softmax_of_q(worlds, reward, beta) for beta in (1, 3, 10, 30)],
            ]
        )
        exact, _ = us.intelligence_table(worlds, policies, reward[None])
        gaussian, _ = us.intelligence_table(worlds, policies, reward[None], method="gaussian", n_samples=1000)
        body = exact <= 4
        assert body.sum() >= 30
        assert np.abs(gaussian - exact)[body].max() < 1.0, seed


def neg_log2_normal_tail(x: np.ndarray) -> np.ndarray:
    """−log2 Φ(−x) for large x by the asymptotic series Φ(−x) ≈ φ(x)/x · (1 − 1/x² + 3/x⁴ − 15/x⁶ + 105/x⁸)."""
    series = 1 - x**-2.0 + 3 * x**-4.0 - 15 * x**-6.0 + 105 * x**-8.0
    return (x**2 / 2 + np.log(x) + 0.5 * math.log(2 * math.pi) - np.log(series)) / math.log(2)


def test_gaussian_bits_stay_finite_and_accurate_far_in_the_tail():
    x = np.array([6.0, 8.0, 12.0, 20.0, 38.5, 60.0])  # 30 to 2600 bits; Φ(−38.5) underflows a plain cdf
    g = gaussian_bits(x, np.zeros(6), np.ones(6), np.abs(x))
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, neg_log2_normal_tail(x), rtol=1e-6)
    assert g[1] > 40 and g[-1] > 2000


def test_bits_from_values_gaussian_uses_the_sample_moments_in_the_far_tail():
    reference = np.random.default_rng(1).normal(5.0, 2.0, size=(1000, 1))
    mean, sd = reference.mean(), reference.std()
    z = np.array([[9.0, 15.0, 30.0]])
    g, se = bits_from_values(mean + z * sd, reference, None, "gaussian")
    np.testing.assert_allclose(g[0], neg_log2_normal_tail(z[0]), rtol=1e-6)
    assert g.min() > 60 and np.isfinite(se).all() and (se > 0).all()


def test_gaussian_with_no_spread_treats_the_reference_as_ties():
    reference = np.full((50, 1), 2.0) + 1e-16 * np.arange(50)[:, None]  # a constant utility's float noise
    g, _ = bits_from_values(np.array([[2.0], [1.0], [3.0]]), reference, None, "gaussian")
    np.testing.assert_array_equal(g[:, 0], [0.0, 0.0, np.inf])


def test_gaussian_with_no_spread_reports_zero_standard_error():
    reference = np.full((50, 1), 2.0) + 1e-16 * np.arange(50)[:, None]
    _, se = bits_from_values(np.array([[2.0]]), reference, None, "gaussian")
    assert se[0, 0] == 0.0


def test_bits_and_exceedance_edge_cases():
    np.testing.assert_array_equal(bits(np.array([1.0, 0.5, 0.25, 0.0])), [0.0, 1.0, 2.0, np.inf])
    assert not np.signbit(bits(np.array([1.0]))).any()
    reference = np.array([[1.0], [2.0], [3.0], [4.0]])
    np.testing.assert_array_equal(
        exceedance(np.array([[0.0], [2.0], [4.0], [5.0]]), reference), [[1], [0.75], [0.25], [0]]
    )
    weighted = exceedance(np.array([[3.0]]), reference, weights=np.array([0.1, 0.2, 0.3, 0.4]))
    assert weighted[0, 0] == pytest.approx(0.7)


def test_exact_refuses_problems_too_large_to_enumerate_and_names_the_alternatives():
    big = us.worlds.garnet(21, 2, 2, seed=0)  # 2^21 > 2^20 policies
    policy = np.full((21, 2), 0.5)
    with pytest.raises(ValueError, match=r"'monte_carlo' or method='gaussian'"):
        us.intelligence(big, policy, np.arange(21.0))
    with pytest.raises(ValueError, match=r"infinite support.*'monte_carlo'.*'gaussian'"):
        us.intelligence(big, policy, np.arange(21.0), policy_prior=us.DirichletPolicies())
    assert np.isfinite(us.intelligence(big, policy, np.arange(21.0), method="monte_carlo", n_samples=50))


@pytest.mark.parametrize("method", ["monte_carlo", "gaussian"])
def test_sampled_methods_reproduce_with_the_same_seed(two_garnets, rng, method):
    policy, reward = rng.dirichlet(np.ones(3), size=4), rng.standard_normal(4)
    runs = [us.intelligence(two_garnets, policy, reward, method=method, n_samples=50, seed=s) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    prior = us.DirichletPolicies(0.5)
    a, b = (us.intelligence(two_garnets, policy, reward, prior, method, n_samples=50, seed=9) for _ in range(2))
    assert a == b


def test_unknown_method_and_bad_arguments_are_rejected(two_garnets):
    policy, reward = np.full((4, 3), 1 / 3), np.ones(4)
    with pytest.raises(ValueError, match=r"method is 'exakt'; choose one of 'exact', 'monte_carlo', 'gaussian'"):
        us.intelligence(two_garnets, policy, reward, method="exakt")
    with pytest.raises(ValueError, match=r"n_samples is 0"):
        us.intelligence(two_garnets, policy, reward, method="monte_carlo", n_samples=0)
    with pytest.raises(ValueError, match=r"one policy pi\[s, a\] and one reward; use intelligence_table"):
        us.intelligence(two_garnets, policy, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"one policy"):
        us.intelligence(two_garnets, policy[None].repeat(2, axis=0), reward)
    with pytest.raises(ValueError, match=r"policies\[1\] sums to"):
        us.intelligence(two_garnets, np.vstack([policy[:1], [[0.5, 0.1, 0.1]], policy[2:]]), reward)


def test_auto_is_exact_where_xi_can_be_enumerated(two_garnets):
    policy, reward = np.full((4, 3), 1 / 3), np.arange(4.0)
    exact = us.intelligence(two_garnets, policy, reward)
    assert us.intelligence(two_garnets, policy, reward, method="auto") == exact
    assert inspect.signature(us.intelligence).parameters["method"].default == "exact"  # the fixed API


def test_auto_works_where_exact_cannot_enumerate(monkeypatch):
    big = us.worlds.garnet(21, 2, 2, seed=0)  # 2^21 > 2^20 policies
    policy, reward = np.eye(2)[np.arange(21) % 2], np.arange(21.0)
    with pytest.raises(ValueError, match="method='auto' to let the package choose"):
        us.intelligence(big, policy, reward)
    auto = us.intelligence(big, policy, reward, method="auto", n_samples=200, seed=1)
    assert auto == us.intelligence(big, policy, reward, method="importance", n_samples=200, seed=1)
    module = importlib.import_module("utiliscope.intelligence")  # us.intelligence is the function
    monkeypatch.setattr(module, "AUTO_IMPORTANCE_MAX_STATES", 20)  # past it: monte_carlo
    auto = us.intelligence(big, policy, reward, method="auto", n_samples=200, seed=1)
    assert auto == us.intelligence(big, policy, reward, method="monte_carlo", n_samples=200, seed=1)


def test_true_intelligence_defaults_to_auto_at_any_size():
    small = us.worlds.garnet(4, 3, 2, seed=3)
    agent = us.agents.Boltzmann(np.arange(4.0), beta=2.0)
    assert agent.true_intelligence(small) == us.intelligence(small, agent.policy(small), np.arange(4.0))
    grid = us.worlds.gridworld(["S.a..", ".#...", "..b.."])  # 5^14 policies: too many to enumerate
    agent = us.agents.Boltzmann(grid.features @ [1.0, -1.0], beta=5.0)
    assert agent.true_intelligence(grid, n_samples=200) > 3
