"""Policy evaluation against a brute-force reference written here, a Monte Carlo rollout, and validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import utiliscope as us
from utiliscope.evaluation import iterate_occupancy
from utiliscope.worlds.sparse import direct_solve_is_faster, iteration_count


def brute_value(worlds: us.WorldSet, policy: np.ndarray, reward: np.ndarray) -> float:
    """V = Σ_e w_e d_e · r_pi with (I − γ P_e^pi)ᵀ d_e = mu0_e, one np.linalg.solve per world."""
    r = np.asarray(reward, float)
    r = np.repeat(r[:, None], worlds.n_actions, axis=1) if r.ndim == 1 else r
    r_pi = (policy * r).sum(axis=1)
    return brute_mean_occupancy(worlds, policy) @ r_pi


def brute_mean_occupancy(worlds: us.WorldSet, policy: np.ndarray) -> np.ndarray:
    """Σ_e w_e d_e with d_e = mu0_eᵀ (I − γ P_e^pi)^{-1}, one np.linalg.solve per world."""
    total = np.zeros(worlds.n_states)
    for w, world in zip(worlds.weights, worlds.worlds, strict=True):
        P_pi = np.einsum("sa,sat->st", policy, world.transitions)
        total += w * np.linalg.solve((np.eye(world.n_states) - world.gamma * P_pi).T, world.start)
    return total


def random_policy(rng, n_states, n_actions, deterministic) -> np.ndarray:
    if deterministic:
        return np.eye(n_actions)[rng.integers(0, n_actions, n_states)]
    return rng.dirichlet(np.ones(n_actions), size=n_states)


@pytest.fixture(scope="module")
def one_garnet() -> us.WorldSet:
    return us.WorldSet([us.worlds.garnet(5, 3, 3, gamma=0.9, seed=11)])


@pytest.fixture(params=["one_garnet", "two_garnets", "small_grid"])
def worlds(request) -> us.WorldSet:
    return us.worlds.as_world_set(request.getfixturevalue(request.param))


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("reward_kind", ["state", "state_action"])
def test_evaluate_matches_brute_force(worlds, deterministic, reward_kind, rng):
    S, A = worlds.n_states, worlds.n_actions
    for _ in range(3):
        policy = random_policy(rng, S, A, deterministic)
        reward = rng.standard_normal(S if reward_kind == "state" else (S, A))
        expected = brute_value(worlds, policy, reward)
        assert us.evaluate(worlds, policy, reward) == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_evaluate_takes_a_single_mdp_and_a_list_of_worlds(two_garnets, rng):
    policy = random_policy(rng, 4, 3, deterministic=False)
    reward = rng.standard_normal(4)
    first = two_garnets.worlds[0]
    assert us.evaluate(first, policy, reward) == pytest.approx(brute_value(us.WorldSet([first]), policy, reward))
    equal = us.WorldSet(list(two_garnets.worlds))
    assert us.evaluate(list(two_garnets.worlds), policy, reward) == pytest.approx(
        brute_value(equal, policy, reward)
    )


def test_evaluate_policies_integer_actions_equal_one_hot_tables_and_brute_force(worlds, rng):
    S, A = worlds.n_states, worlds.n_actions
    actions = rng.integers(0, A, size=(40, S))
    tables = np.eye(A)[actions]
    rewards = rng.standard_normal((3, S, A))
    by_index = us.evaluate_policies(worlds, actions, rewards)
    by_table = us.evaluate_policies(worlds, tables, rewards)
    assert by_index.shape == (40, 3)
    np.testing.assert_allclose(by_index, by_table, rtol=1e-12, atol=1e-12)
    expected = [[brute_value(worlds, t, r) for r in rewards] for t in tables]
    np.testing.assert_allclose(by_index, expected, rtol=1e-10, atol=1e-10)
    single = us.evaluate_policies(worlds, actions, rewards[0])
    np.testing.assert_allclose(single, by_index[:, 0], rtol=1e-12)


def test_evaluate_policies_reads_a_non_square_2d_reward_as_a_stack_of_state_rewards(two_garnets, rng):
    actions = rng.integers(0, 3, size=(5, 4))
    rewards = rng.standard_normal((2, 4))  # shape (2, S) ≠ (S, A): two state rewards
    values = us.evaluate_policies(two_garnets, actions, rewards)
    expected = [[brute_value(two_garnets, np.eye(3)[a], r) for r in rewards] for a in actions]
    np.testing.assert_allclose(values, expected, rtol=1e-10)


def test_evaluate_policies_handles_stacks_larger_than_one_chunk(two_garnets, rng, monkeypatch):
    import utiliscope.evaluation as evaluation

    actions = rng.integers(0, 3, size=(25, 4))
    reward = rng.standard_normal(4)
    whole = us.evaluate_policies(two_garnets, actions, reward)
    monkeypatch.setattr(evaluation, "CHUNK", 7)
    np.testing.assert_allclose(us.evaluate_policies(two_garnets, actions, reward), whole, rtol=1e-12)


def test_occupancy_sums_to_one_over_one_minus_gamma_and_matches_brute_force(worlds, rng):
    S, A = worlds.n_states, worlds.n_actions
    tables = np.stack([random_policy(rng, S, A, deterministic=d) for d in (False, True, False)])
    rho = us.occupancy(worlds, tables)
    np.testing.assert_allclose(rho.sum(axis=(1, 2)), 1.0 / (1.0 - worlds.gamma), rtol=1e-12)
    D = us.state_occupancy(worlds, tables)
    np.testing.assert_allclose(D.sum(axis=1), 1.0 / (1.0 - worlds.gamma), rtol=1e-12)
    for m, table in enumerate(tables):
        d = brute_mean_occupancy(worlds, table)
        np.testing.assert_allclose(D[m], d, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rho[m], d[:, None] * table, rtol=1e-10, atol=1e-12)
    actions = tables[1].argmax(axis=1)
    np.testing.assert_allclose(us.occupancy(worlds, actions)[0], rho[1], rtol=1e-12, atol=1e-15)


def test_feature_expectations_dot_theta_equals_value_of_linear_reward(two_garnets, rng):
    tables = np.stack([random_policy(rng, 4, 3, deterministic=False) for _ in range(6)])
    theta = rng.standard_normal(3)
    mu = us.feature_expectations(two_garnets, tables)
    assert mu.shape == (6, 3)
    expected = [brute_value(two_garnets, t, two_garnets.features @ theta) for t in tables]
    np.testing.assert_allclose(mu @ theta, expected, rtol=1e-10)
    phi_sa = rng.standard_normal((4, 3, 2))
    mu_sa = us.feature_expectations(two_garnets, tables, features=phi_sa)
    expected_sa = [brute_value(two_garnets, t, phi_sa @ theta[:2]) for t in tables]
    np.testing.assert_allclose(mu_sa @ theta[:2], expected_sa, rtol=1e-10)


def test_feature_expectations_needs_features(rng):
    world = us.TabularMDP(np.full((2, 2, 2), 0.5), [1.0, 0.0], 0.9)
    with pytest.raises(ValueError, match=r"features is None.*features=phi"):
        us.feature_expectations(world, np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"features has shape .*; it must be \(2, K\) or \(2, 2, K\)"):
        us.feature_expectations(world, np.full((2, 2), 0.5), features=np.ones((3, 1)))


def test_monte_carlo_rollouts_agree_with_evaluate_within_four_standard_errors():
    """Simulate discounted returns in a 2-world set: pick a world by its weight, then roll out."""
    worlds = us.WorldSet(
        [us.worlds.gridworld(["S.a", ".#b"], slip=s, gamma=0.8) for s in (0.1, 0.5)], weights=[0.4, 0.6]
    )
    gen = np.random.default_rng(3)
    policy = gen.dirichlet(np.ones(5), size=5)
    reward = gen.standard_normal((5, 5))
    n, horizon = 20_000, 80  # truncation: |r| ≤ 3, so the tail 0.8^80 · 3 / 0.2 < 1e-6 is far below the error
    world = gen.choice(2, size=n, p=worlds.weights)
    state = np.array([gen.choice(5, p=worlds.starts[e]) for e in world])
    returns = np.zeros(n)
    for t in range(horizon):
        action = (gen.random(n)[:, None] > np.cumsum(policy[state], axis=1)).sum(axis=1).clip(max=4)
        returns += worlds.gamma**t * reward[state, action]
        cdf = np.cumsum(worlds.transitions[world, state, action], axis=1)
        state = (gen.random(n)[:, None] > cdf).sum(axis=1).clip(max=4)
    standard_error = returns.std(ddof=1) / np.sqrt(n)
    assert abs(returns.mean() - us.evaluate(worlds, policy, reward)) < 4 * standard_error


BAD_POLICY = np.full((4, 3), 1.0 / 3)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (np.where(np.arange(3) == 0, 0.5, 0.2)[None].repeat(4, axis=0), r"policy\[0\] sums to 0\.9"),
        (np.vstack([BAD_POLICY[:2], [[1.2, -0.2, 0.0]], BAD_POLICY[3:]]), r"policy\[2, 1\] is -0\.2"),
        (np.vstack([BAD_POLICY[:3], [[np.nan, 0.5, 0.5]]]), r"policy\[3, 0\] is nan"),
        (np.full((4, 2), 0.5), r"policy has shape \(4, 2\); it must end in \(4, 3\)"),
        (np.full(3, 1.0 / 3), r"policy must be 2-d or 3-d"),
        (np.full((2, 4, 3), 1.0 / 3), r"policy has shape \(2, 4, 3\); pass one table"),
    ],
)
def test_evaluate_rejects_bad_policies(two_garnets, policy, message):
    with pytest.raises(ValueError, match=message):
        us.evaluate(two_garnets, policy, np.ones(4))


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        (np.ones(5), r"reward has shape \(5,\); it must be \(4,\) or \(4, 3\)"),
        (np.ones((4, 4)), r"reward has shape .*pass one reward"),
        (np.ones((2, 4, 2)), r"reward has shape \(2, 4, 2\)"),
        (np.array([1.0, np.inf, 0.0, 0.0]), r"reward\[1\] is inf"),
        (np.ones((2, 4)), r"reward has shape.*pass one reward"),
    ],
)
def test_evaluate_rejects_bad_rewards(two_garnets, reward, message):
    with pytest.raises(ValueError, match=message):
        us.evaluate(two_garnets, BAD_POLICY, reward)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: us.evaluate(w, BAD_POLICY, np.ones((4, 4))), r"reward has shape \(4, 4\);"),
        (
            lambda w: us.feature_expectations(w, BAD_POLICY, features=np.ones((3, 1))),
            r"features has shape \(3, 1\);",
        ),
    ],
    ids=["evaluate-reward", "feature_expectations-features"],
)
def test_shape_errors_report_the_shape_the_caller_passed(two_garnets, call, message):
    with pytest.raises(ValueError, match=message):
        call(two_garnets)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        (np.array([[0, 1, 3, 0]]), r"action index outside 0\.\.2"),
        (np.array([[0, -1, 2, 0]]), r"action index outside 0\.\.2"),
        (np.array([[0, 1, 2]]), r"policies has shape \(1, 3\); integer policies are action indices"),
        (np.full((2, 4, 3), 0.3), r"policies\[0, 0\] sums to 0\.9"),
    ],
)
def test_evaluate_policies_rejects_bad_stacks(two_garnets, policies, message):
    with pytest.raises(ValueError, match=message):
        us.evaluate_policies(two_garnets, policies, np.ones(4))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_states=st.integers(1, 6),
    n_actions=st.integers(1, 4),
    gamma=st.floats(0.0, 0.99),
    a=st.floats(-5, 5),
    b=st.floats(-5, 5),
)
def test_values_are_linear_in_reward_and_occupancy_sums_to_effective_horizon(
    seed, n_states, n_actions, gamma, a, b
):
    gen = np.random.default_rng(seed)
    world = us.worlds.garnet(n_states, n_actions, gen.integers(1, n_states + 1), gamma=gamma, seed=seed)
    policies = gen.dirichlet(np.ones(n_actions), size=(3, n_states))
    r1, r2 = gen.standard_normal((2, n_states, n_actions))
    combined = us.evaluate_policies(world, policies, a * r1 + b * r2)
    separate = a * us.evaluate_policies(world, policies, r1) + b * us.evaluate_policies(world, policies, r2)
    np.testing.assert_allclose(combined, separate, rtol=1e-9, atol=1e-9 * (1 + abs(a) + abs(b)) / (1 - gamma))
    np.testing.assert_allclose(us.occupancy(world, policies).sum(axis=(1, 2)), 1.0 / (1.0 - gamma), rtol=1e-10)


def sparse_and_dense_sets(n_states: int, gamma: float, seed: int) -> tuple[us.WorldSet, us.WorldSet]:
    """Two random garnets (different branching), as one set held sparse and the same set held dense."""
    sets = []
    for sparse in (True, False):
        worlds = [us.worlds.garnet(n_states, 3, b, gamma, 2, seed=seed + b, sparse=sparse) for b in (2, 4)]
        features = worlds[0].features
        worlds = [us.TabularMDP(w.transitions, w.start, gamma, features=features) for w in worlds]
        sets.append(us.WorldSet(worlds, weights=[0.35, 0.65]))
    return sets[0], sets[1]


@pytest.mark.parametrize(("n_states", "gamma", "seed"), [(150, 0.9, 0), (220, 0.95, 1), (130, 0.5, 2)])
def test_sparse_iteration_and_dense_solve_agree_to_1e_10_on_random_worlds(n_states, gamma, seed):
    """Worlds large enough to be iterated (not densified) against the same worlds solved directly."""
    sparse, dense = sparse_and_dense_sets(n_states, gamma, seed)
    assert not direct_solve_is_faster(sparse.transitions[0], gamma)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 3, size=(6, n_states))
    tables = rng.dirichlet(np.ones(3), size=(4, n_states))
    rewards = rng.standard_normal((5, n_states, 3))
    scale = np.abs(rewards).max() / (1 - gamma)
    for policies in (actions, tables):
        v_sparse, v_dense = (us.evaluate_policies(w, policies, rewards) for w in (sparse, dense))
        assert np.abs(v_sparse - v_dense).max() <= 1e-10 * scale
        rho = us.occupancy(sparse, policies)
        np.testing.assert_allclose(rho, us.occupancy(dense, policies), rtol=0, atol=1e-10 / (1 - gamma))
        np.testing.assert_allclose(rho.sum(axis=(1, 2)), 1 / (1 - gamma), rtol=1e-12)
    mu_sparse, mu_dense = (us.feature_expectations(w, tables) for w in (sparse, dense))
    np.testing.assert_allclose(mu_sparse, mu_dense, rtol=0, atol=1e-10 * np.abs(mu_dense).max())


def test_sparse_iteration_alone_matches_the_brute_force_solve():
    """iterate_occupancy on a small world (the public path would densify it) against np.linalg.solve."""
    world = us.worlds.garnet(12, 4, 3, gamma=0.93, seed=9, sparse=True)
    policy = np.random.default_rng(9).dirichlet(np.ones(4), size=12)
    d = iterate_occupancy(world.transitions, world.start, world.gamma, policy[None], deterministic=False)
    dense = us.WorldSet([us.TabularMDP(world.transitions.to_dense(), world.start, world.gamma)])
    np.testing.assert_allclose(d[0], brute_mean_occupancy(dense, policy), rtol=1e-11)
    n = iteration_count(0.9)
    assert iteration_count(0.0) == 0 and 0.9 ** (n + 1) <= 1e-13 < 0.9**n  # the fewest sweeps that reach the bound


def test_a_gamma_of_zero_gives_the_start_distribution_as_occupancy():
    world = us.worlds.garnet(300, 2, 2, gamma=0.0, seed=1, sparse=True)
    np.testing.assert_array_equal(
        us.evaluation.state_occupancy(world, np.zeros((1, 300), dtype=int))[0], world.start
    )
