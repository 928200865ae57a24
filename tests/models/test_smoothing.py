"""The calibrated smoothing of importance g: the widest width whose smoothed count stays near the hard count."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import utiliscope as us
from utiliscope.models import graph
from utiliscope.models.smoothing import (
    CANDIDATE_WIDTHS,
    FALLBACK_WIDTH,
    MAX_BIAS_BITS,
    calibrated_smoothing,
)


def _in_graph_bits():
    """The model's own weighted count (graph.monte_carlo_bits, no tie tolerance) at each width, and hard."""
    threshold, values, weights = pt.vector("t"), pt.vector("v"), pt.vector("w")
    reference = pt.repeat(values[:, None], threshold.shape[0], axis=1)
    v_pi = threshold  # rtol = 0: the threshold is V(pi) itself
    outputs = [graph.monte_carlo_bits(v_pi, reference, width, 0.0, weights) for width in (0.0, *CANDIDATE_WIDTHS)]
    return pytensor.function([threshold, values, weights], outputs)


def _window_bias(function, values, weights, thresholds, hard_bits, top):
    """Per candidate width, the largest one-bit window's |mean(smoothed − hard)| (windows counted down from
    ``top``), computed independently of the module with the in-graph estimator."""
    hard, *smoothed = function(thresholds, values, weights)
    np.testing.assert_allclose(hard, hard_bits, atol=1e-9)
    window = np.floor(top - hard).astype(int)
    return [max(abs((g - hard)[window == k].mean()) for k in np.unique(window)) for g in smoothed]


def _exponential_tail_sample(rng, M=2000):
    """Importance-like sample: a target density ∝ e^{−v} on [0, 12] (P(V ≥ t) ≈ e^{−t}, a tail of 1/ln 2 bits
    per unit of value), drawn from a uniform proposal tilted toward the rare top, with weights target/proposal."""
    v = rng.uniform(0.0, 12.0, M)
    return v, np.exp(-v) / M


def _hard(values, weights, thresholds):
    floor, total = weights.min(), weights.sum()
    count = (values[None] >= thresholds[:, None]).astype(float) @ weights
    return np.log2(floor + total) - np.log2(floor + count)


@pytest.mark.slow
def test_the_chosen_width_is_the_widest_candidate_within_the_bound():
    rng = np.random.default_rng(0)
    values, weights = _exponential_tail_sample(rng)
    g_range = (2.0, 12.0)
    (width,), (bias,) = calibrated_smoothing(values[:, None], weights, g_range)
    assert width in CANDIDATE_WIDTHS and bias <= MAX_BIAS_BITS
    # Recompute every candidate's window bias with the in-graph estimator at midpoints between the values.
    distinct = np.unique(values)
    midpoints = 0.5 * (distinct[1:] + distinct[:-1])
    hard = _hard(values, weights, midpoints)
    keep = (hard >= g_range[0]) & (hard <= g_range[1])
    biases = _window_bias(_in_graph_bits(), values, weights, midpoints[keep], hard[keep], g_range[1])
    chosen = int(np.flatnonzero(CANDIDATE_WIDTHS == width)[0])
    # Every wider candidate misses the bound on all test thresholds; the chosen one meets it with margin for the
    # module's subsample of 32 thresholds a bit.
    assert all(b > MAX_BIAS_BITS for b in biases[:chosen])
    assert biases[chosen] <= 1.5 * MAX_BIAS_BITS
    # The locally exponential tail's closed form: the bias of the logistic of temperature τ is
    # log2(π s / sin(π s)) with s = rate · τ, so the chosen τ is near the τ of MAX_BIAS_BITS, within a step of √2.
    # Rate 1 per unit of value, so s = τ.
    s = np.linspace(0.01, 0.9, 2000)
    s_bound = s[np.searchsorted(np.log2(np.pi * s / np.sin(np.pi * s)), MAX_BIAS_BITS)]
    assert s_bound / 2.0 <= width * values.std() <= s_bound * np.sqrt(2.0)


def test_a_compressed_top_gets_a_narrower_width():
    """The same tail below a spread five times as wide: the same temperature, a five times smaller fraction."""
    rng = np.random.default_rng(1)
    values, weights = _exponential_tail_sample(rng)
    # The common low values (g < 1.5 bits) moved far down: the spread grows, the tail above 2 bits stays.
    spread_out = np.where(values < 1.0, values - 60.0, values)
    assert spread_out.std() > 4 * values.std()
    widths, _ = calibrated_smoothing(np.stack([values, spread_out], axis=1), weights, (2.0, 10.0))
    assert widths[1] < widths[0] / 2
    tau = widths * np.array([values.std(), spread_out.std()])
    assert tau[0] / 2 <= tau[1] <= tau[0] * 2


def test_fallbacks_for_no_spread_and_an_unreached_range():
    rng = np.random.default_rng(2)
    values, weights = _exponential_tail_sample(rng, M=500)
    reference = np.stack([np.full(500, 3.0), values], axis=1)
    widths, bias = calibrated_smoothing(reference, weights, (40.0, 50.0))  # the sample reaches ~17 bits
    np.testing.assert_array_equal(widths, [FALLBACK_WIDTH, FALLBACK_WIDTH])
    np.testing.assert_array_equal(bias, [0.0, 0.0])


def test_importance_scopes_use_the_calibrated_smoothing_unless_given(worlds, library):
    demos = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=3.0).demonstrate(
        worlds, n_trajectories=20, horizon=10, seed=0
    )
    likelihood = us.likelihoods.AsymmetricLaplace(observed=8.0)

    def scope(**kwargs):
        return us.Utiliscope(
            worlds,
            us.WorldModel.from_demonstrations(demos),
            library,
            likelihood,
            g_method="importance",
            n_samples=300,
            **kwargs,
        )

    calibrated = scope()
    expected, bias = calibrated_smoothing(
        calibrated.estimator.reference_values, calibrated.estimator.reference.weights, calibrated.likelihood_mass
    )
    np.testing.assert_array_equal(calibrated.smoothing, expected)
    np.testing.assert_array_equal(calibrated.smoothing_bias, bias)
    assert calibrated.smoothing.shape == (len(library.names),)
    assert np.isin(calibrated.smoothing, [*CANDIDATE_WIDTHS, FALLBACK_WIDTH]).all()
    # The tabulated count uses each entry's own width.
    spread = calibrated.estimator.reference_values.std(axis=0)
    varying = ~calibrated.estimator.count_table.degenerate
    np.testing.assert_allclose(calibrated.estimator.count_table.tau[varying], (expected * spread)[varying])
    assert json_widths(calibrated) == pytest.approx(list(expected))
    given = scope(smoothing=0.02)
    assert given.smoothing == 0.02 and given.smoothing_bias is None
    assert json_widths(given) == 0.02


def json_widths(scope):
    import json

    return json.loads(scope.settings()["smoothing"])


def test_a_linear_prior_calibrates_one_width_on_its_pilot_sample_and_holds_it_as_data(worlds):
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    agent = us.agents.Boltzmann(worlds.features @ prior.project([1.0, -1.0, 0.5]), beta=5.0)
    scope = us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(agent.demonstrate(worlds, 40, 10, seed=0)),
        prior,
        us.likelihoods.AsymmetricLaplace(observed=8.0),
        g_method="importance",
        n_samples=300,
    )
    pilot = scope.estimator.reference.values(worlds, (scope.features @ scope.estimator.pilot_direction())[None])
    (expected,), _ = calibrated_smoothing(pilot, scope.estimator.reference.weights, scope.likelihood_mass)
    assert isinstance(scope.smoothing, float) and scope.smoothing == expected
    # A Data node, so that the models of a study (each calibrated on its own pilot) share one compiled density.
    assert float(scope.model["reference_smoothing"].get_value()) == expected


def test_monte_carlo_calibrates_with_unit_weights(worlds, library):
    demos = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=3.0).demonstrate(
        worlds, n_trajectories=20, horizon=10, seed=0
    )
    world_model = us.WorldModel.from_demonstrations(demos)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=4.0)
    scope = us.Utiliscope(worlds, world_model, library, likelihood, g_method="monte_carlo", n_samples=300)
    expected, bias = calibrated_smoothing(
        scope.estimator.reference_values, np.ones(300), (0.0, np.log2(300) - 3.0)
    )
    np.testing.assert_array_equal(scope.smoothing, expected)
    np.testing.assert_array_equal(scope.smoothing_bias, bias)
    # Over Monte Carlo's own accurate range, not the likelihood's: a new g′ keeps the table (and its compile).
    higher = us.Utiliscope(
        worlds,
        world_model,
        library,
        us.likelihoods.AsymmetricLaplace(observed=6.0),
        g_method="monte_carlo",
        n_samples=300,
    )
    np.testing.assert_array_equal(higher.smoothing, scope.smoothing)
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    linear = us.Utiliscope(worlds, world_model, prior, likelihood, g_method="monte_carlo", n_samples=300)
    pilot = linear.estimator.reference_features @ linear.estimator.pilot_direction()
    (width,), _ = calibrated_smoothing(pilot[:, None], np.ones(300), (0.0, np.log2(300) - 3.0))
    assert linear.smoothing == width
    assert float(linear.model["reference_smoothing"].get_value()) == width
    # The pilot's sample is the reference itself, not a second draw.
    np.testing.assert_array_equal(
        linear.estimator.reference_features,
        linear.estimator.reference.feature_expectations(worlds, linear.features),
    )
    exact = us.Utiliscope(worlds, world_model, library, likelihood, g_method="exact")
    assert exact.smoothing == 0.0 and exact.smoothing_bias is None
