"""Sparse dynamics: SparseTransitions against the dense tables it stands for, builders, world sets, saving, and
that nothing S×A×S is made for a large sparse world."""

import numpy as np
import pytest
import scipy.sparse

import utiliscope as us
from utiliscope.worlds.sparse import SparseTransitions, successor_tables


def random_dense(rng, S=7, A=3, zeros=0.6) -> np.ndarray:
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) > zeros)
    P[:, :, 0] += 1e-3  # no empty row
    return P / P.sum(axis=-1, keepdims=True)


def test_from_dense_round_trips_and_multiplies_as_the_dense_table():
    rng = np.random.default_rng(7)
    P = random_dense(rng)
    sparse = SparseTransitions.from_dense(P)
    np.testing.assert_array_equal(sparse.to_dense(), P)
    np.testing.assert_array_equal(np.asarray(sparse), P)
    assert sparse.shape == P.shape and sparse.next_states.shape[-1] < P.shape[-1]
    v, V = rng.standard_normal(7), rng.standard_normal((7, 4))
    np.testing.assert_allclose(sparse @ v, P @ v, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(sparse @ V, P @ V, rtol=1e-13, atol=1e-14)


def test_from_matrix_reads_rows_s_times_a_plus_a():
    rng = np.random.default_rng(7)
    P = random_dense(rng)
    matrix = scipy.sparse.coo_array(P.reshape(-1, 7))
    np.testing.assert_allclose(SparseTransitions.from_matrix(matrix, 3).to_dense(), P, rtol=1e-15)
    with pytest.raises(ValueError, match=r"it must be \(S·A, S\) = \(14, 7\) for 2 actions"):
        SparseTransitions.from_matrix(matrix, 2)


@pytest.mark.parametrize("slip", [0.0, 0.3])
def test_sparse_and_dense_builders_make_the_same_world(slip):
    layout = ["S.a.", ".#b.", "c..."]
    dense, sparse = (us.worlds.gridworld(layout, slip=slip, sparse=flag) for flag in (False, True))
    assert isinstance(sparse.transitions, SparseTransitions)
    np.testing.assert_array_equal(sparse.transitions.to_dense(), dense.transitions)
    garnets = [us.worlds.garnet(9, 3, 3, seed=5, sparse=flag) for flag in (False, True)]
    np.testing.assert_array_equal(garnets[1].transitions.to_dense(), garnets[0].transitions)
    np.testing.assert_array_equal(garnets[1].features, garnets[0].features)


def test_builders_choose_dense_for_small_and_sparse_for_large_worlds():
    assert isinstance(us.worlds.gridworld(["S.a"]).transitions, np.ndarray)
    assert isinstance(us.worlds.gridworld(["." * 30] * 30).transitions, SparseTransitions)


def test_a_world_set_of_sparse_worlds_averages_saves_and_loads():
    rng = np.random.default_rng(7)
    Ps = [random_dense(rng) for _ in range(2)]
    worlds = [us.TabularMDP(SparseTransitions.from_dense(P), np.full(7, 1 / 7), 0.9) for P in Ps[:1]]
    worlds.append(us.TabularMDP(Ps[1], np.eye(7)[2], 0.9))  # a dense world beside a sparse one
    zeta = us.WorldSet(worlds, weights=[0.3, 0.7])
    assert isinstance(zeta.transitions, tuple)
    np.testing.assert_allclose(np.asarray(zeta.mean_transitions), 0.3 * Ps[0] + 0.7 * Ps[1], rtol=1e-14)
    loaded = us.WorldSet.from_dataset(zeta.to_dataset())
    for before, after in zip(zeta.transitions, loaded.transitions, strict=True):
        assert isinstance(after, SparseTransitions)
        np.testing.assert_array_equal(after.to_dense(), np.asarray(before))
    np.testing.assert_array_equal(loaded.starts, zeta.starts)
    np.testing.assert_array_equal(loaded.weights, zeta.weights)


def test_a_fit_of_a_sparse_world_saves_and_loads_it(tmp_path):
    world = us.worlds.garnet(30, 2, 2, seed=3, sparse=True)
    library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1, max_weight=1)
    pi = np.full((30, 2), 0.5)
    scope = us.Utiliscope(
        world,
        us.WorldModel.from_policies([pi]),
        library,
        us.likelihoods.AsymmetricLaplace(observed=1.0),
        g_method="monte_carlo",
        n_samples=50,
    )
    idata = scope.fit(seed=0)
    us.save(idata, tmp_path / "fit.nc")
    loaded = us.WorldSet.from_dataset(us.load(tmp_path / "fit.nc")["worlds"])
    np.testing.assert_array_equal(loaded.transitions[0].to_dense(), world.transitions.to_dense())


def test_simulating_a_sparse_world_listing_every_state_repeats_the_dense_draws():
    dense = us.worlds.garnet(6, 2, 3, seed=2)
    every = np.broadcast_to(np.arange(6), dense.transitions.shape)
    sparse = us.TabularMDP(SparseTransitions(every, dense.transitions), dense.start, dense.gamma)
    policy = np.full((6, 2), 0.5)
    runs = [us.demonstrations.simulate(w, policy, 20, 15, seed=4) for w in (dense, sparse)]
    for a, b in zip(runs[0].trajectories, runs[1].trajectories, strict=True):
        np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(successor_tables(dense.transitions)[1], dense.transitions)


def test_a_large_sparse_world_is_never_made_dense(monkeypatch):
    """A 40×40 gridworld: build, evaluate, plan, simulate and save without any S×A×S or S×S array."""
    world = us.worlds.gridworld(["S" + "." * 38 + "a"] + ["." * 40] * 38 + ["b" + "." * 39], gamma=0.9)
    assert world.n_states == 1600

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse world was made dense")

    monkeypatch.setattr(SparseTransitions, "to_dense", refuse)
    monkeypatch.setattr(SparseTransitions, "__array__", refuse)
    reward = world.features[:, 0] - world.features[:, 1]
    agent = us.agents.Boltzmann(reward, beta=50.0)
    value = us.evaluate(world, agent.policy(world), reward)
    assert 0 < value < 1 / (1 - world.gamma)
    demos = agent.demonstrate(world, n_trajectories=3, horizon=5, seed=0)
    assert demos.counts.sum() == 15
    assert "next_states" in us.WorldSet([world]).to_dataset()
