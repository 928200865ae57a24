"""The robust rule's occupancy-measure programs (HiGHS) against enumeration, grids and the flow constraints."""

import numpy as np
import pytest

import utiliscope as us
from utiliscope.decisions import (
    UtilitySample,
    decide,
    normalised_values,
    value_ranges,
    weighted_lower_cvar,
    weighted_lower_quantile,
)
from utiliscope.decisions import occupancy as programs
from utiliscope.decisions.occupancy import TailProgram, flow_constraints, policy_of
from utiliscope.decisions.robust import CVAR, QUANTILE, TAILS
from utiliscope.evaluation import occupancy


def random_sample(rng, n_states, n_actions, n):
    rewards = rng.standard_normal((n, n_states, n_actions))
    return UtilitySample(rewards, rng.dirichlet(np.ones(n)), tuple(f"u{i}" for i in range(n)))


def enumerated_tails(brute, worlds, sample, ranges, alpha):
    """The tails of Ṽ of every deterministic policy (brute-force values, the enumerated ranges)."""
    tables = brute.deterministic_tables(worlds.n_states, worlds.n_actions)
    values = np.array([[brute.value(worlds, pi, r) for r in sample.rewards] for pi in tables])
    normalised = ranges.normalise(values)
    return {tail: measure(normalised, sample.weights, alpha) for tail, measure in TAILS.items()}


@pytest.mark.parametrize("tail", [QUANTILE, CVAR])
@pytest.mark.parametrize("seed", range(4))
def test_program_is_never_worse_than_any_deterministic_policy(brute, seed, tail):
    world = us.WorldSet([brute.plain_world(4, 3, seed=30 + seed)])
    rng = np.random.default_rng(seed)
    sample = random_sample(rng, 4, 3, 10)
    alpha = (0.1, 0.2, 0.35)[seed % 3]
    ranges = value_ranges(world, sample.rewards, max_enumerate=10**6)
    decision = decide(world, sample, "robust", alpha=alpha, tail=tail, max_enumerate=1, ranges=ranges)
    assert "program" in decision.search and decision.exact
    best = enumerated_tails(brute, world, sample, ranges, alpha)[tail].max()
    assert decision.objective >= best - 1e-8
    # The objective is the decision's own tail, recomputed from exact values of its policy.
    values = ranges.normalise(np.array([brute.value(world, decision.policy, r) for r in sample.rewards]))
    assert decision.objective == pytest.approx(TAILS[tail](values[None], sample.weights, alpha)[0], abs=1e-9)


@pytest.mark.parametrize("tail", [QUANTILE, CVAR])
def test_program_finds_the_best_mixed_action_of_a_bandit_on_a_grid(tail):
    # One state, three actions: each Ṽ_n is linear on the simplex of policies, so a fine grid finds the optimum
    # (within its step times the slope). Utilities a and b each prefer one of actions 0 and 1, c action 2.
    bandit = us.WorldSet([us.TabularMDP(np.ones((1, 3, 1)), [1.0], 0.5)])
    rewards = np.array([[[1.0, 0.9, -3.0]], [[0.9, 1.0, -3.0]], [[0.0, 0.0, 1.0]]])
    sample = UtilitySample(rewards, np.array([0.45, 0.45, 0.1]), tuple("abc"))
    ranges = value_ranges(bandit, rewards)
    steps = 200
    grid = np.array([(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)]) / steps
    values = normalised_values(bandit, grid[:, None, :], sample, ranges)
    for alpha in (0.05, 0.3):
        best = TAILS[tail](values, sample.weights, alpha).max()
        decision = decide(bandit, sample, "robust", alpha=alpha, tail=tail, max_enumerate=1)
        assert best - 1e-8 <= decision.objective <= best + 0.05
        assert decision.policy.max() < 1 - 1e-3  # the best hedge mixes actions


@pytest.mark.parametrize("tail", [QUANTILE, CVAR])
def test_program_on_a_sparse_world_equals_the_program_on_its_dense_twin(tail):
    dense = us.worlds.gridworld(["S.a.", ".#b.", "a..b"], slip=0.2, gamma=0.9, sparse=False)
    sparse = us.worlds.gridworld(["S.a.", ".#b.", "a..b"], slip=0.2, gamma=0.9, sparse=True)
    assert isinstance(dense.transitions, np.ndarray) and not isinstance(sparse.transitions, np.ndarray)
    sample = random_sample(np.random.default_rng(5), dense.n_states, dense.n_actions, 12)
    decisions = [decide(w, sample, "robust", alpha=0.2, tail=tail, max_enumerate=1) for w in (dense, sparse)]
    assert decisions[0].objective == pytest.approx(decisions[1].objective, abs=1e-8)
    np.testing.assert_allclose(decisions[0].normalised_values, decisions[1].normalised_values, atol=1e-6)


def test_worlds_that_share_dynamics_get_the_program_and_others_the_deterministic_search(brute):
    world = brute.plain_world(4, 3, seed=40)
    starts = np.eye(4)[[0, 2]]
    shared = us.WorldSet([us.TabularMDP(world.transitions, start, world.gamma) for start in starts], [0.3, 0.7])
    sample = random_sample(np.random.default_rng(9), 4, 3, 8)
    ranges = value_ranges(shared, sample.rewards, max_enumerate=10**6)
    decision = decide(shared, sample, "robust", alpha=0.25, tail=CVAR)
    assert "program" in decision.search and decision.exact
    assert decision.objective >= enumerated_tails(brute, shared, sample, ranges, 0.25)[CVAR].max() - 1e-8
    # Its value is the shared policy's true value in each world (the program's occupancy is exact here).
    values = ranges.normalise(np.array([brute.value(shared, decision.policy, r) for r in sample.rewards]))
    np.testing.assert_allclose(decision.normalised_values, values, atol=1e-7)
    different = us.WorldSet([world, brute.plain_world(4, 3, seed=41)])
    fallback = decide(different, sample, "robust", alpha=0.25, tail=CVAR)
    assert fallback.search.startswith("enumeration") and fallback.exact
    assert not decide(different, sample, "robust", alpha=0.25, tail=CVAR, max_enumerate=10).exact


def test_expected_rule_is_exact_beyond_enumeration_when_worlds_share_dynamics(brute):
    world = brute.plain_world(5, 3, seed=42)
    shared = us.WorldSet([us.TabularMDP(world.transitions, s, world.gamma) for s in np.eye(5)[[0, 3]]])
    sample = random_sample(np.random.default_rng(2), 5, 3, 6)
    local = decide(shared, sample, "expected", max_enumerate=10)
    assert local.exact and "share their dynamics" in local.search
    assert local.expected == pytest.approx(decide(shared, sample, "expected").expected, abs=1e-9)


def test_flow_constraints_hold_for_the_occupancy_of_any_policy(rng):
    world = us.worlds.gridworld(["S.a.", ".#b.", "a..b"], slip=0.3, gamma=0.8, sparse=True)
    worlds = us.WorldSet([world])
    flow, start = flow_constraints(worlds)
    assert flow.shape == (world.n_states, world.n_states * world.n_actions)
    assert flow.nnz <= world.transitions.matrix.nnz + world.n_states * world.n_actions
    pi = rng.dirichlet(np.ones(world.n_actions), size=world.n_states)
    d = occupancy(worlds, pi[None])[0]
    np.testing.assert_allclose(flow @ d.ravel(), start, atol=1e-10)
    np.testing.assert_allclose(policy_of(d), pi, atol=1e-10)


def test_policy_of_an_unreached_state_is_uniform():
    d = np.array([[0.0, 0.0, 0.0], [1.0, 3.0, 0.0], [-1e-18, 0.0, 0.0]])
    np.testing.assert_allclose(policy_of(d), [[1 / 3] * 3, [0.25, 0.75, 0.0], [1 / 3] * 3])


def test_weighted_lower_cvar_is_the_rockafellar_uryasev_maximum(rng):
    values = rng.standard_normal((6, 9))
    weights = rng.dirichlet(np.ones(9))
    for alpha in (0.05, 0.3, 0.77, 1.0 - 1e-9):
        # max over t of t − (1/α) Σ P (t − V)^+ is attained at one of the values.
        t = values[:, :, None]
        objective = t[..., 0] - np.einsum("n,mtn->mt", weights, np.clip(t - values[:, None, :], 0, None)) / alpha
        np.testing.assert_allclose(weighted_lower_cvar(values, weights, alpha), objective.max(axis=1), atol=1e-12)
        assert np.all(
            weighted_lower_cvar(values, weights, alpha) <= weighted_lower_quantile(values, weights, alpha)
        )


def test_quantile_program_does_not_count_a_mass_of_exactly_alpha_as_below():
    # Ten equally likely utilities, alpha = 0.2: the quantile is the second lowest value, not the third.
    bandit = us.WorldSet([us.TabularMDP(np.ones((1, 3, 1)), [1.0], 0.5)])
    rng = np.random.default_rng(11)
    sample = UtilitySample(rng.standard_normal((10, 1, 3)), np.full(10, 0.1), tuple(map(str, range(10))))
    decision = decide(bandit, sample, "robust", alpha=0.2, max_enumerate=1)
    program = TailProgram(0.2, quantile=True).solve(bandit, sample, value_ranges(bandit, sample.rewards))
    assert program.gap == 0
    np.testing.assert_allclose(program.policy, decision.policy)
    assert decision.objective == pytest.approx(np.sort(decision.normalised_values)[1], abs=1e-12)


def test_a_quantile_program_stopped_at_its_node_limit_says_so_and_keeps_the_better_policy(monkeypatch):
    monkeypatch.setattr(programs, "NODE_LIMIT", 1)
    world = us.worlds.garnet(10, 3, 3, gamma=0.9, seed=3)
    sample = random_sample(np.random.default_rng(0), 10, 3, 12)
    decision = decide(world, sample, "robust", alpha=0.3, max_enumerate=1)
    assert not decision.exact and "node limit" in decision.search
    cvar = decide(world, sample, "robust", alpha=0.3, tail=CVAR, max_enumerate=1)
    assert cvar.exact and decision.objective >= cvar.quantile(0.3) - 1e-12
    monkeypatch.undo()
    proven = decide(world, sample, "robust", alpha=0.3, max_enumerate=1)
    assert proven.exact and proven.objective >= decision.objective - 1e-8


def test_a_bad_tail_is_named(small_grid):
    sample = random_sample(np.random.default_rng(0), small_grid.n_states, small_grid.n_actions, 3)
    with pytest.raises(ValueError, match="tail is 'mean'; choose one of 'quantile', 'cvar'"):
        decide(small_grid, sample, "robust", tail="mean")


@pytest.mark.slow
def test_taxi_expected_and_robust_decisions_finish():
    gymnasium = pytest.importorskip("gymnasium")
    world = us.worlds.from_gymnasium(gymnasium.make("Taxi-v4"), gamma=0.95)
    rng = np.random.default_rng(0)
    theta = np.array([-10.0, -1.0, 20.0]) + 4.0 * rng.standard_normal((16, 3))
    rewards = np.einsum("sak,nk->nsa", world.features, theta)
    sample = UtilitySample(rewards, rng.dirichlet(np.ones(16)), tuple(f"u{i}" for i in range(16)))
    ranges = value_ranges(world, rewards)
    expected = decide(world, sample, "expected", ranges=ranges)
    assert expected.exact and "value iteration" in expected.search
    for tail in TAILS:
        robust = decide(world, sample, "robust", alpha=0.1, tail=tail, ranges=ranges)
        assert robust.exact and "program" in robust.search
        assert robust.objective >= TAILS[tail](expected.normalised_values[None], sample.weights, 0.1)[0] - 1e-8
