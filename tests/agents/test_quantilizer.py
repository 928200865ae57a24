"""The q-quantilizer against brute-force rankings and occupancies."""

import math

import numpy as np
import pytest

import utiliscope as us
from utiliscope.agents import Optimal, Quantilizer
from utiliscope.agents.quantilizer import top_fraction


def brute_top(brute, worlds, r, q):
    """The ceil(q·M) best deterministic policies by brute-force value, and their values."""
    tables = np.array(brute.deterministic_tables(worlds.n_states, worlds.n_actions))
    values = np.array([brute.value(worlds, pi, r) for pi in tables])
    order = np.argsort(-values, kind="stable")[: math.ceil(q * len(tables))]
    return tables[order], values[order]


def as_rows(policies):
    return sorted(map(tuple, np.asarray(policies).reshape(len(policies), -1).tolist()))


def test_q_one_is_the_occupancy_average_of_every_policy(brute):
    worlds = us.WorldSet([brute.plain_world(3, 2, seed) for seed in (0, 1)], weights=[0.25, 0.75])
    r = np.random.default_rng(0).standard_normal(3)
    visits, rho = np.zeros(3), np.zeros((3, 2))
    for pi in brute.deterministic_tables(3, 2):
        d = sum(
            w * brute.world_occupancy(world, pi) for w, world in zip(worlds.weights, worlds.worlds, strict=True)
        )
        visits += d
        rho += d[:, None] * pi
    np.testing.assert_allclose(Quantilizer(r, 1.0).policy(worlds), rho / visits[:, None], rtol=1e-10)


def test_smallest_q_is_the_optimal_policy(brute):
    world = brute.plain_world(4, 3, seed=3)
    r = np.random.default_rng(3).standard_normal((4, 3))
    np.testing.assert_allclose(Quantilizer(r, 1e-6).policy(world), Optimal(r).policy(world))


@pytest.mark.parametrize("q", [0.05, 0.2, 0.5])
def test_top_set_and_value_match_the_mixture_for_one_world(brute, q):
    world = brute.plain_world(4, 3, seed=4)
    r = np.random.default_rng(4).standard_normal((4, 3))
    agent = Quantilizer(r, q)
    top, values = brute_top(brute, world, r, q)
    policies, weights = agent.policy_mixture(world)
    assert as_rows(policies) == as_rows(top)
    np.testing.assert_allclose(weights, 1 / len(top))
    assert brute.value(world, agent.policy(world), r) == pytest.approx(values.mean(), rel=1e-9)
    assert agent.true_intelligence(world) >= -math.log2(q) - 1e-9


def test_unvisited_states_get_uniform_rows():
    P = np.zeros((3, 2, 3))
    P[0, :, 1] = P[1, :, 0] = P[2, :, 2] = 1.0  # 0 and 1 swap forever; 2 is never reached from 0
    world = us.TabularMDP(P, [1.0, 0.0, 0.0], 0.9)
    pi = Quantilizer(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), 0.25).policy(world)
    np.testing.assert_allclose(pi, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def test_weighted_support_takes_the_best_policies_up_to_weight_q(brute):
    world = brute.plain_world(3, 2, seed=5)
    r = np.random.default_rng(5).standard_normal(3)
    tables = np.array(brute.deterministic_tables(3, 2))[:5]
    weights = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    values = np.array([brute.value(world, pi, r) for pi in tables])
    order = np.argsort(-values)
    n_top = int(np.searchsorted(np.cumsum(weights[order]), 0.4)) + 1
    chosen = order[:n_top]
    agent = Quantilizer(r, 0.4, policy_prior=us.PolicySet(tables, weights))
    policies, mixture = agent.policy_mixture(world)
    np.testing.assert_array_equal(policies, tables[np.sort(chosen)])
    np.testing.assert_allclose(mixture, weights[np.sort(chosen)] / weights[chosen].sum())


def test_large_problems_rank_a_seeded_sample_of_candidates(brute):
    world = brute.plain_world(4, 3, seed=6)
    r = np.random.default_rng(6).standard_normal(4)
    prior = us.UniformDeterministic(max_enumerate=10)
    agent = Quantilizer(r, 0.1, policy_prior=prior, n_candidates=200, seed=1)
    sample = np.eye(3)[prior.sample(4, 3, 200, np.random.default_rng(1))]
    values = np.array([brute.value(world, pi, r) for pi in sample])
    policies, _ = agent.policy_mixture(world)
    assert as_rows(policies) == as_rows(sample[np.argsort(-values, kind="stable")[:20]])


def test_stochastic_candidates_give_a_valid_policy(brute):
    world = brute.plain_world(3, 2, seed=7)
    r = np.random.default_rng(7).standard_normal(3)
    agent = Quantilizer(r, 0.1, policy_prior=us.DirichletPolicies(), n_candidates=300)
    policies, _ = agent.policy_mixture(world)
    assert policies.shape == (30, 3, 2)
    np.testing.assert_allclose(agent.policy(world).sum(axis=1), 1.0)


def test_demonstrations_follow_one_top_policy_per_trajectory(brute):
    world = brute.plain_world(3, 2, seed=8)
    always = np.array([np.eye(2)[[0, 0, 0]], np.eye(2)[[1, 1, 1]]])
    agent = Quantilizer(np.zeros(3), 1.0, policy_prior=us.PolicySet(always))
    demos = agent.demonstrate(world, n_trajectories=400, horizon=15, seed=3)
    first_actions = np.array([t.actions[0] for t in demos.trajectories])
    for t in demos.trajectories:
        assert np.all(t.actions == t.actions[0])
    share, se = first_actions.mean(), math.sqrt(0.25 / 400)
    assert abs(share - 0.5) < 4 * se


def test_top_fraction_admits_ties_at_the_cut_in_prior_order():
    values = np.array([1.0, 3.0, 3.0 + 1e-14, 3.0, 0.0])
    mask = top_fraction(values, np.full(5, 0.2), 0.4)
    np.testing.assert_array_equal(mask, [False, True, True, False, False])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"q": 0.0}, "q is"), ({"q": 1.5}, "q is"), ({"q": 0.5, "n_candidates": 0}, "n_candidates")],
)
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Quantilizer([0.0, 1.0], **kwargs)


def test_policy_prior_must_be_a_prior():
    with pytest.raises(TypeError, match="policy_prior"):
        Quantilizer([0.0, 1.0], 0.5, policy_prior="uniform")
