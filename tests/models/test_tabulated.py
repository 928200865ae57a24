"""The tabulated smoothed count equals the sum of M sigmoids it replaces, with its gradient, everywhere."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special

import utiliscope as us
from utiliscope.counting import RTOL
from utiliscope.models import graph
from utiliscope.models.tabulated import MARGIN, NODES_PER_BLOCK, TabulatedCount, _node_sums

#: Bits the interpolation may be off (measured: 1e-6 at most on problem (b) of benchmarks/performance.py).
TOLERANCE_BITS = 3e-6


def _direct(reference, smoothing, weights, t):
    """g_n at thresholds ``t[n]`` and dg/dt, summing every sigmoid (the formula of the module docstring)."""
    M, N = reference.shape
    w = np.ones((M, N)) if weights is None else np.broadcast_to(np.reshape(weights, (M, -1)), (M, N))
    floor = np.ones(N) if weights is None else w.min(axis=0)
    tau = smoothing * reference.std(axis=0)
    s = special.expit((reference - t) / tau)
    total = floor + (w * s).sum(axis=0)
    g = -np.log2(total / (floor + w.sum(axis=0)))
    slope = (w * s * (1 - s)).sum(axis=0) / tau / total / np.log(2.0)
    return g, slope


def _compiled(table):
    t = pt.vector("t")
    g = table.bits_tensor(t)
    return pytensor.function([t], [g, pytensor.grad(g.sum(), t)])


def _cases():
    rng = np.random.default_rng(0)
    reference = np.concatenate([rng.normal(size=(300, 3)), rng.standard_t(2, size=(300, 1))], axis=1)
    yield "unweighted", reference, 0.05, None
    yield (
        "weights per utility",
        reference,
        0.01,
        rng.exponential(size=(300, 4)) * 10.0 ** rng.uniform(-6, 0, (300, 4)),
    )
    yield "shared weights", reference, 0.05, rng.exponential(size=300)
    # One temperature per utility (calibrated importance smoothing): each utility gets its own number of nodes.
    yield "smoothing per utility", reference, np.array([0.05, 0.0025, 0.01, 0.02]), rng.exponential(size=300)


@pytest.mark.slow
@pytest.mark.parametrize("name, reference, smoothing, weights", list(_cases()), ids=[c[0] for c in _cases()])
def test_table_equals_the_sum_of_sigmoids_inside_and_beyond_its_nodes(name, reference, smoothing, weights):
    table = TabulatedCount.build(reference, smoothing, weights)
    function = _compiled(table)
    tau = smoothing * reference.std(axis=0)
    low, high = reference.min(axis=0) - 45 * tau, reference.max(axis=0) + 45 * tau
    rng = np.random.default_rng(1)
    for _ in range(200):
        t = low + rng.uniform(size=4) * (high - low)
        g, slope = function(t)
        expected_g, expected_slope = _direct(reference, smoothing, weights, t)
        np.testing.assert_allclose(g, expected_g, atol=TOLERANCE_BITS, rtol=0)
        np.testing.assert_allclose(slope, expected_slope, rtol=1e-3, atol=1e-6 / tau.min())


def test_the_windowed_node_sums_equal_the_sums_of_every_sigmoid():
    """Values far from a node enter in closed form: the sums still equal the full ones to rounding."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(size=400), rng.standard_t(1.5, size=100)])
    weights = rng.exponential(size=500) * 10.0 ** rng.uniform(-8, 0, 500)
    tau = 0.01
    nodes = np.linspace(values.min() - 80 * tau, values.max() + 80 * tau, 3 * NODES_PER_BLOCK + 7)
    total, spread_sum = _node_sums(values, weights, nodes, tau)
    z = (values[None] - nodes[:, None]) / tau
    np.testing.assert_allclose(total, special.expit(z) @ weights, rtol=1e-12, atol=0)
    # σ(z)σ(−z), not σ(1 − σ): 1 − σ(z) rounds to 0 for z > 37, where the closed form stays accurate.
    np.testing.assert_allclose(spread_sum, (special.expit(z) * special.expit(-z)) @ weights, rtol=1e-12, atol=0)


@pytest.mark.slow
def test_far_outside_the_nodes_it_reaches_the_limits_with_finite_gradients():
    reference = np.random.default_rng(2).normal(size=(200, 2))
    table = TabulatedCount.build(reference, 0.05)
    g, slope = _compiled(table)(np.array([-1e6, 1e6]))
    np.testing.assert_allclose(g, [0.0, np.log2(201.0)], atol=1e-12)
    assert np.all(np.isfinite(slope))
    tau = 0.05 * reference.std(axis=0)
    # The nodes reach MARGIN temperatures past the extreme values: just inside and just beyond agree.
    edge = reference.max(axis=0) + MARGIN * tau
    inside, _ = _compiled(table)(edge - 1e-9)
    beyond, _ = _compiled(table)(edge + 1e-9)
    np.testing.assert_allclose(inside, beyond, atol=1e-9)


def test_the_models_library_g_is_the_sum_of_sigmoids(worlds, library):
    demos = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=3.0).demonstrate(
        worlds, n_trajectories=20, horizon=10, seed=0
    )
    scope = us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(demos),
        library,
        us.likelihoods.AsymmetricLaplace(observed=4.0),
        g_method="monte_carlo",
        n_samples=500,
    )
    reference = scope.estimator.reference_values
    degenerate = reference.std(axis=0) <= graph.DEGENERATE * np.abs(reference).max(axis=0)
    assert degenerate.sum() == 1  # the constant utility: 0 bits exactly
    policies = scope.world_model.sample(20, seed=3)
    v_pi = us.evaluate_policies(worlds, policies, scope.rewards)
    v = pt.vector("v")
    in_graph = pytensor.function([v], scope.estimator.library_tensor(v))
    smoothing = np.broadcast_to(scope.smoothing, degenerate.shape)  # calibrated: one per entry
    for values in v_pi:
        threshold = values - RTOL * np.maximum(np.abs(values), np.abs(reference).max(axis=0))
        expected, _ = _direct(reference[:, ~degenerate], smoothing[~degenerate], None, threshold[~degenerate])
        g = in_graph(values)
        np.testing.assert_allclose(g[~degenerate], expected, atol=TOLERANCE_BITS, rtol=0)
        assert np.all(g[degenerate] == 0.0)
