"""The convergence report: hand-built good and bad InferenceData, each failure with its own message."""

import arviz as az
import numpy as np
import pytest
from scipy import stats

import utiliscope as us
from utiliscope.diagnostics import check

CHAINS, DRAWS = 4, 500


def _rank_normalised(x: np.ndarray) -> np.ndarray:
    """Blom's normal scores of the ranks of every draw (average ranks for ties), shape kept."""
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return stats.norm.ppf((ranks - 3 / 8) / (x.size + 1 / 4))


def _split_r_hat(x: np.ndarray) -> float:
    """Gelman–Rubin R-hat of the chains of ``x[chain, draw]`` split in halves (draws even)."""
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, half:]])
    n = split.shape[1]
    within = split.var(axis=1, ddof=1).mean()
    between = n * split.mean(axis=1).var(ddof=1)
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def _rank_r_hat(x: np.ndarray) -> float:
    """Vehtari et al. (2021): the larger of the rank-normalised split R-hat of x and of |x − median x|."""
    return max(_split_r_hat(_rank_normalised(x)), _split_r_hat(_rank_normalised(np.abs(x - np.median(x)))))


def _bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain: mean squared energy change over the energy's variance."""
    return np.mean(np.diff(energy, axis=1) ** 2, axis=1) / energy.var(axis=1, ddof=1)


def _good_stats(rng, **changes) -> dict:
    stats_ = {
        "diverging": np.zeros((CHAINS, DRAWS), dtype=bool),
        "energy": rng.normal(size=(CHAINS, DRAWS)),
        "reached_max_treedepth": np.zeros((CHAINS, DRAWS), dtype=bool),
    }
    return {**stats_, **changes}


def _idata(x, sample_stats=None) -> az.InferenceData:
    return az.from_dict(
        posterior={"x": x}, sample_stats=sample_stats, coords={"k": ["a", "b", "c"]}, dims={"x": ["k"]}
    )


@pytest.fixture
def draws():
    """I.i.d. normal draws x[chain, draw, k] with k = 3 elements."""
    return np.random.default_rng(11).normal(size=(CHAINS, DRAWS, 3))


def test_good_draws_pass_and_the_table_matches_brute_force(draws):
    rng = np.random.default_rng(1)
    report = check(_idata(draws, _good_stats(rng)))
    assert report.ok, str(report)
    assert str(report).startswith("Convergence check: OK")
    row = report.table.loc["x"]
    expected = [_rank_r_hat(draws[:, :, k]) for k in range(3)]
    assert row["r_hat"] == pytest.approx(max(expected), rel=1e-10)
    assert row["r_hat_at"] == f"x[{'abc'[int(np.argmax(expected))]}]"
    assert row["status"] == "ok"
    assert row["ess_bulk"] >= 100 * CHAINS
    assert report.as_dict()["divergences"] == 0


def test_stuck_chain_fails_on_r_hat_and_ess(draws):
    draws[1, :, 2] = 3.0
    report = check(_idata(draws))
    assert not report.ok
    text = str(report)
    assert "R-hat of x" in text and "at x[c]" in text and "want ≤ 1.01" in text and "run longer" in text
    assert "bulk ESS of x" in text and "100 per chain × 4 chains" in text
    assert report.table.loc["x", "status"] == "failed"
    assert report.table.loc["x", "r_hat"] == pytest.approx(_rank_r_hat(draws[:, :, 2]), rel=1e-10)


def test_chains_at_different_modes_fail_on_r_hat(draws):
    draws[2:, :, 0] += 4.0
    report = check(_idata(draws))
    assert not report.ok
    failure = next(f for f in report.failures if f.criterion == "R-hat")
    assert failure.variable == "x" and "x[a]" in failure.where
    assert failure.value == pytest.approx(_rank_r_hat(draws[:, :, 0]), rel=1e-10)
    assert failure.value > 1.5
    assert "different modes" in failure.message


def test_divergences_fail_and_are_counted_per_chain(draws):
    rng = np.random.default_rng(2)
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging[1, [3, 50, 70]] = True
    diverging[3, 9] = True
    report = check(_idata(draws, _good_stats(rng, diverging=diverging)))
    assert not report.ok
    assert "divergences of sample_stats.diverging = 4 (chain 1: 3, chain 3: 1); want ≤ 0" in str(report)
    assert "target_accept" in str(report)
    assert check(_idata(draws, _good_stats(rng, diverging=diverging)), max_divergences=4).ok


def test_low_bfmi_fails_in_the_chain_that_has_it(draws):
    rng = np.random.default_rng(3)
    energy = rng.normal(size=(CHAINS, DRAWS))
    # A slowly moving energy (AR(1) with coefficient 0.95) has E-BFMI ≈ 2(1 − 0.95) = 0.1.
    for t in range(1, DRAWS):
        energy[2, t] = 0.95 * energy[2, t - 1] + rng.normal()
    expected = _bfmi(energy)
    assert expected[2] < 0.3 < expected[[0, 1, 3]].min()
    report = check(_idata(draws, _good_stats(rng, energy=energy)))
    assert not report.ok
    [failure] = report.failures
    assert failure.criterion == "E-BFMI" and failure.where == "in chain 2"
    assert failure.value == pytest.approx(expected[2], rel=1e-10)
    assert "want ≥ 0.3" in failure.message and "reparametrise" in failure.message
    assert report.sampler["min_bfmi"] == pytest.approx(expected.min(), rel=1e-10)


@pytest.mark.parametrize("flag", ["reached_max_treedepth", "maxdepth_reached"], ids=["pymc", "nutpie"])
def test_saturated_tree_depth_fails_under_either_samplers_name(draws, flag):
    rng = np.random.default_rng(4)
    stats_ = _good_stats(rng)
    del stats_["reached_max_treedepth"]
    hits = np.zeros((CHAINS, DRAWS), dtype=bool)
    hits[0, :5] = True
    stats_[flag] = hits
    report = check(_idata(draws, stats_))
    assert not report.ok
    assert f"tree-depth hits of sample_stats.{flag} = 5 (chain 0: 5)" in str(report)
    assert "max_treedepth" in str(report)


def test_constant_elements_are_skipped_not_failed(draws):
    draws[:, :, 1] = 0.0
    report = check(
        az.from_dict(
            posterior={"x": draws, "zero": np.zeros((CHAINS, DRAWS))},
            coords={"k": ["a", "b", "c"]},
            dims={"x": ["k"]},
        )
    )
    assert report.ok, str(report)
    assert report.table.loc["x", "constant"] == 1
    assert report.table.loc["x", "r_hat_at"] in ("x[a]", "x[c]")
    assert report.table.loc["zero", "status"] == "constant"
    assert np.isnan(report.table.loc["zero", "r_hat"])
    assert "x: 1 of 3 element(s) constant across draws, skipped" in str(report)
    assert "no NUTS statistics" in str(report)


def test_one_chain_cannot_be_judged():
    x = np.random.default_rng(5).normal(size=(1, DRAWS))
    report = check(az.from_dict(posterior={"x": x}))
    assert not report.ok
    assert "chains of posterior = 1; want ≥ 2" in str(report)


def test_thresholds_are_configurable(draws):
    draws[2:, :, 0] += 0.3
    strict = check(_idata(draws))
    assert not strict.ok
    assert check(_idata(draws), max_r_hat=2.0, min_ess_bulk_per_chain=1, min_ess_tail_per_chain=1).ok
    assert not check(_idata(draws), min_ess_bulk_per_chain=10_000, max_r_hat=2.0).ok


def test_r_hat_is_shown_with_the_decimal_that_decides_the_threshold(draws):
    worst = float(az.rhat(_idata(draws), method="rank")["x"].max())
    report = check(_idata(draws), max_r_hat=worst - 1e-6)  # fails by a hair: the message must not round it away
    (failure,) = [f for f in report.failures if f.criterion == "R-hat"]
    assert f"= {worst:.4f} at" in failure.message
    assert f"{worst:.4f}" in str(report).split("\n\n", 1)[1]


def test_bad_arguments_are_named(draws):
    with pytest.raises(TypeError, match=r"idata must be an arviz\.InferenceData"):
        check({"x": draws})
    with pytest.raises(ValueError, match=r"var_names\[0\] is 'y'"):
        check(_idata(draws), var_names=["y"])
    with pytest.raises(ValueError, match="max_r_hat"):
        check(_idata(draws), max_r_hat=-1)


def test_exact_draws_of_a_finite_world_model_pass():
    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, max_terms=1, max_weight=1)
    policies = np.random.default_rng(6).dirichlet(np.full(5, 0.3), size=(4, worlds.n_states))
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.Normal(observed=3.0)
    )
    # I.i.d. draws: with 4 × 1000 of them R-hat of such draws exceeds 1.01 with negligible probability.
    idata = scope.fit(draws=1000, chains=4, seed=0, progressbar=False)
    report = check(idata)
    assert report.ok, str(report)
    assert set(report.table.index) == {"U", "pi", "g", "policy_index"}
    assert "no NUTS statistics" in str(report)
    # g under the constant utility is 0 bits in every draw.
    assert report.table.loc["g", "constant"] >= 1


@pytest.mark.slow
def test_a_nuts_fit_passes_and_reports_its_sampler_statistics():
    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, max_terms=1, max_weight=1)
    agent = us.agents.Boltzmann(library.reward_table(5)[1], beta=3.0)
    wm = us.WorldModel.from_demonstrations(agent.demonstrate(worlds, 30, 10, seed=2))
    scope = us.Utiliscope(worlds, wm, library, us.likelihoods.AsymmetricLaplace(observed=4.0))
    # 4 × 1000 draws: at 4 × 500 the largest R-hat over these 44 scalars is R-hat's own noise, 1.005–1.013 over
    # seeds 1–5; at 4 × 1000 it was 1.002–1.004.
    idata = scope.fit(draws=1000, tune=500, chains=4, seed=1, progressbar=False, sampler="blackjax")
    report = check(idata)
    assert report.ok, str(report)
    assert report.sampler["divergences"] == 0 and report.sampler["tree_depth_hits"] == 0
    assert report.sampler["min_bfmi"] >= 0.3


def test_an_iid_fit_is_judged_the_same_with_and_without_its_table():
    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, max_terms=1, max_weight=1)
    wm = us.WorldModel.from_demonstrations(
        us.agents.Boltzmann(library.reward_table(5)[1], 3.0).demonstrate(worlds, 30, 10, seed=2)
    )
    idata = us.Utiliscope(worlds, wm, library, us.likelihoods.AsymmetricLaplace(observed=4.0)).fit(
        seed=0, draws=50, chains=2
    )
    full, quick = check(idata), check(idata, describe=False)
    assert full.ok == quick.ok and [f.message for f in full.failures] == [f.message for f in quick.failures]
    assert len(full.table) == 3 and quick.table.empty
    assert full.sampler == quick.sampler
