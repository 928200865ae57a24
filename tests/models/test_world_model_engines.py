"""The structure engines of a library prior over Dirichlet rows: ``iid`` (i.i.d. draws from the world model,
weighted by the evidence) and ``smc`` (tempered SMC), against a posterior known in closed form.

The problem is a one-state bandit with A = 6 actions under a uniform Dirichlet world model: a policy is a point p
of the simplex, its value ``p · r / (1 − γ)``, and ξ's deterministic policies are the six actions. So
``g = log2(A / K)`` with K the number of actions whose reward is at least ``p · r``, and for distinct rewards the
probability that ``p · r`` exceeds c under the uniform simplex is the divided difference
``Σ_a (r_a − c)₊^{A−1} / Π_{b≠a} (r_a − r_b)``: the posterior of U is a finite sum, computed here independently
of the package.
"""

import math

import arviz as az
import numpy as np
import pytest

import utiliscope as us
from utiliscope.diagnostics import check
from utiliscope.models.iid_engine import ImportanceRun, batch_rng, redraw, run_importance, weight_diagnostics
from utiliscope.models.smc_engine import run_smc

A = 6
REWARDS = np.array([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 4.5], [0, 1, 2, 3, 4.5, 5]], dtype=float)


def bandit() -> us.TabularMDP:
    transitions = np.zeros((1, A, 1))
    transitions[0, :, 0] = 1.0
    return us.TabularMDP(transitions, start=[1.0], gamma=0.5)


def library() -> us.priors.UtilityLibrary:
    return us.priors.UtilityLibrary(REWARDS[:, None, :], [2.0, 3.0, 2.5], names=["linear", "flat_top", "late"])


def p_above(r: np.ndarray, c: float) -> float:
    """P(p · r > c) for p uniform on the simplex and distinct rewards r."""
    return sum(
        (r[a] - c) ** (len(r) - 1) / np.prod([r[a] - r[b] for b in range(len(r)) if b != a])
        for a in range(len(r))
        if r[a] > c
    )


def closed_form(likelihood, prior) -> np.ndarray:
    """``P(U_i | g′) ∝ P(U_i) Σ_k f(g′ | log2(A / k)) P_i(K = k)``, where
    ``P(K = k) = P(v > r_(k+1)) − P(v > r_(k))`` for the rewards sorted in descending order."""
    mass = []
    for r in REWARDS:
        descending = np.sort(r)[::-1]
        total = 0.0
        for k in range(1, A + 1):
            above_next = 1.0 if k == A else p_above(r, descending[k])
            g = math.log2(A / k)
            total += math.exp(float(likelihood.logp(np.array(g)))) * (above_next - p_above(r, descending[k - 1]))
        mass.append(total)
    posterior = np.asarray(prior) * np.array(mass)
    return posterior / posterior.sum()


def scope_for(likelihood) -> us.Utiliscope:
    return us.Utiliscope(bandit(), us.WorldModel.dirichlet(np.ones((1, A))), library(), likelihood)


#: A likelihood the world model's draws reach easily: importance weights are well behaved.
EASY = us.likelihoods.Normal(observed=1.0, sigma=0.5)
#: g′ at the top (log2 6 bits, sharp): only 0.05–0.8% of the world model's draws reach it.
HARD = us.likelihoods.Normal(observed=math.log2(A), sigma=0.15)


def test_iid_agrees_with_the_closed_form_within_its_stated_error():
    scope = scope_for(EASY)
    truth = closed_form(EASY, library().prior)
    idata = scope.fit(seed=3)
    assert idata.attrs["engine"] == "iid"
    estimate = scope.utility_posterior(idata).values
    mcse = idata.utility_estimate["mcse"].values
    assert np.all(mcse <= 0.002)
    assert np.all(np.abs(estimate - truth) <= 4 * mcse)


def test_iid_stated_error_matches_the_spread_over_seeds():
    """The delta-method MCSE is honest: over 8 seeds the estimates scatter by about it, not far more."""
    scope = scope_for(EASY)
    truth = closed_form(EASY, library().prior)
    z = []
    for seed in range(8):
        idata = scope.fit(seed=seed, sampler="iid", draws=10, chains=2)
        z.append((scope.utility_posterior(idata).values - truth) / idata.utility_estimate["mcse"].values)
    # 24 standard-normal scores: their rms is 1 ± 0.3 at two standard deviations.
    assert 0.5 < np.sqrt(np.mean(np.square(z))) < 1.6


def test_a_degenerate_world_model_switches_to_smc_and_finds_the_answer():
    scope = scope_for(HARD)
    truth = closed_form(HARD, library().prior)
    with pytest.warns(us.models.base.SamplerWarning, match="MCSE of P"):
        iid = scope.fit(seed=0, sampler="iid")
    assert iid.attrs["engine"] == "iid"
    assert not check(iid).ok, "the iid fit's own diagnostics must say it cannot be trusted"
    idata = scope.fit(seed=0, chains=4, draws=1000)
    assert idata.attrs["engine"] == "smc"
    assert "poor proposal" in idata.attrs["engine_reason"]
    assert "iid:" in idata.attrs["engine_reason"]
    estimate = scope.utility_posterior(idata).values
    assert np.all(np.abs(estimate - truth) <= 0.03)


def test_smc_agrees_with_the_closed_form_on_the_easy_problem():
    scope = scope_for(EASY)
    idata = scope.fit(seed=1, sampler="smc", chains=4, draws=1000)
    assert idata.attrs["engine"] == "smc"
    np.testing.assert_allclose(
        scope.utility_posterior(idata).values, closed_form(EASY, library().prior), atol=0.02
    )
    assert check(idata, var_names=["U"]).ok


def test_iid_fit_is_reproducible_and_its_draws_are_redrawn_exactly():
    scope = scope_for(EASY)
    first, second = scope.fit(seed=5, draws=50, chains=2), scope.fit(seed=5, draws=50, chains=2)
    np.testing.assert_array_equal(first.posterior["pi"].values, second.posterior["pi"].values)
    np.testing.assert_array_equal(first.utility_estimate["log_weight"], second.utility_estimate["log_weight"])
    # Every posterior draw is one of the run's weighted draws: its log weight is found among them.
    g, log_joint = scope.target.log_joint(first.posterior["pi"].values.reshape(-1, 1, A))
    log_w = np.logaddexp.reduce(log_joint, axis=1)
    assert np.isin(np.round(log_w, 10), np.round(first.utility_estimate["log_weight"].values, 10)).all()
    np.testing.assert_array_equal(g, first.posterior["g"].values.reshape(-1, 3))


def test_redraw_returns_the_policies_of_the_given_draws():
    world_model = us.WorldModel.dirichlet(np.ones((2, 3)))

    def draw(n, rng):
        return world_model.sample(n, rng)

    everything = np.concatenate([draw(7, batch_rng(11, b)) for b in range(3)])
    picks = np.array([20, 0, 8, 8, 13])
    np.testing.assert_array_equal(redraw(draw, 11, 7, picks), everything[picks])


def test_iid_result_has_the_groups_and_attributes_a_fit_has(tmp_path):
    scope = scope_for(EASY)
    idata = scope.fit(seed=0, draws=20, chains=2)
    assert set(idata.posterior.data_vars) == {"U", "pi", "g"}
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 20
    assert {"observed_data", "constant_data", "utility_estimate"} <= set(idata.groups())
    assert idata.attrs["g_method"] == "exact"
    us.save(idata, tmp_path / "run.nc")
    loaded = us.load(tmp_path / "run.nc")
    np.testing.assert_array_equal(scope.utility_posterior(loaded), scope.utility_posterior(idata))
    assert loaded.utility_estimate.attrs["engine"] == "iid"


def test_engine_options_are_checked():
    scope = scope_for(EASY)
    with pytest.raises(TypeError, match="does not take"):
        scope.fit(sampler="iid", n_steps=3)
    with pytest.raises(ValueError, match="target_mcse"):
        scope.fit(sampler="iid", target_mcse=-1.0)
    with pytest.raises(ValueError, match="max_draws"):
        scope.fit(sampler="iid", max_draws=0)


def test_structure_engines_are_refused_where_they_do_not_fit(worlds):
    """A linear prior over a finite world model has no structure engine (NUTS fits it)."""
    prior = us.priors.LinearUtility(worlds.features)
    world_model = us.WorldModel.from_policies(
        np.full((2, worlds.n_states, worlds.n_actions), 1 / worlds.n_actions)
    )
    scope = us.Utiliscope(worlds, world_model, prior, us.likelihoods.Normal(observed=2.0, sigma=1.0))
    for engine in ("iid", "smc", "exact"):
        with pytest.raises(ValueError, match="does not fit this model"):
            scope.fit(sampler=engine)


#: Three colours over the bandit's six actions (three, two and one of them): a linear utility's direction lives
#: on a circle (one-hot colours covering every action add a constant along (1, 1, 1)).
COLOURS = np.eye(3)[[0, 0, 0, 1, 1, 2]][None]


def circle_posterior_mean(prior, likelihood, n_policies=100_000, n_angles=720) -> np.ndarray:
    """E[theta | g′] by quadrature over the circle of directions, with the integral over pi as a mean over
    ``n_policies`` uniform Dirichlet draws shared by every angle. On the bandit V(p) ∝ p · r and ξ's policies are
    the actions, so g = log2(A / #{a : r_a ≥ p · r}) (ties are measure zero for a generic angle)."""
    angles = (np.arange(n_angles) + 0.5) * 2 * np.pi / n_angles
    thetas = np.cos(angles)[:, None] * prior.basis[:, 0] + np.sin(angles)[:, None] * prior.basis[:, 1]
    p = np.random.default_rng(7).dirichlet(np.ones(A), size=n_policies)
    weights = []
    for theta in thetas:
        r = COLOURS[0] @ theta
        count = (r[None, :] >= (p @ r)[:, None] - 1e-12).sum(axis=1)
        g = np.log2(A / count)
        mean_likelihood = np.exp(likelihood.logp(g)).mean()
        weights.append(np.exp(prior.log_prior_direction(theta)) * mean_likelihood)
    weights = np.asarray(weights)
    return weights @ thetas / weights.sum()


@pytest.mark.slow
def test_linear_prior_engines_agree_with_quadrature_over_the_circle():
    prior = us.priors.LinearUtility(COLOURS, simplicity_weight=1.0)
    likelihood = us.likelihoods.Normal(observed=2.3, sigma=0.3)
    scope = us.Utiliscope(bandit(), us.WorldModel.dirichlet(np.ones((1, A))), prior, likelihood)
    truth = circle_posterior_mean(prior, likelihood)
    iid = scope.fit(seed=0, target_mcse=0.005)
    assert iid.attrs["engine"] == "iid"
    mcse = iid.utility_estimate["mcse"].values
    assert np.all(np.abs(iid.utility_estimate["mean"].values - truth) <= 4 * mcse + 0.005)
    smc = scope.fit(seed=0, sampler="smc", chains=4, draws=1000)
    np.testing.assert_allclose(smc.utility_estimate["mean"].values, truth, atol=0.03)
    assert smc.posterior["U"].dims == ("chain", "draw", "feature")


def test_impossible_evidence_is_an_error_not_a_nan():
    """Zero likelihood for every draw under every utility (g = +inf under a rise-then-fall likelihood)."""
    world_model = us.WorldModel.dirichlet(np.ones((1, A)))

    def evidence(x):
        return np.full(len(x), -np.inf), x

    def log_prior(u):
        return np.zeros(len(u))

    with pytest.raises(ValueError, match="impossible under every utility"):
        run_importance(world_model.sample, evidence, seed=0)
    start = np.zeros((100, 3))
    with pytest.raises(ValueError, match="impossible under every utility"):
        run_smc(start, log_prior, lambda u: evidence(u)[0], np.random.default_rng(0))


def test_weight_diagnostics_flag_heavy_tails_and_pass_even_weights():
    rng = np.random.default_rng(0)
    even = np.log(rng.uniform(0.5, 1.5, size=4000))
    heavy = rng.standard_cauchy(4000) ** 2  # weights of tail index 1/2: k̂ near 2, far above 0.7
    ess_even, k_even = weight_diagnostics(even)
    _, k_heavy = weight_diagnostics(np.log(heavy))
    assert ess_even > 3500 and k_even < 0.5
    assert k_heavy > 0.7


def test_run_importance_stops_at_its_target():
    scope = scope_for(EASY)
    target = scope.target
    run = run_importance(target.draw, target.evidence, seed=0, target_mcse=0.001, batch_size=500)
    assert isinstance(run, ImportanceRun)
    assert run.max_mcse <= 0.001 and "every MCSE" in run.stopped
    assert run.n_draws % 500 == 0


def test_iid_batches_spread_over_dask_give_the_answer_of_one_process():
    from distributed import Client, LocalCluster

    scope = scope_for(EASY)
    alone = scope.fit(seed=2, draws=10, chains=2, batch_size=500)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        spread = scope.fit(seed=2, draws=10, chains=2, batch_size=500, client=client)
    np.testing.assert_array_equal(spread.utility_estimate["log_weight"], alone.utility_estimate["log_weight"])
    np.testing.assert_array_equal(scope.utility_posterior(spread), scope.utility_posterior(alone))
    np.testing.assert_array_equal(spread.posterior["pi"], alone.posterior["pi"])


def nuts_estimate(idata) -> tuple[np.ndarray, np.ndarray]:
    posterior = idata.posterior["U"]
    return posterior.mean(("chain", "draw")).values, az.mcse(idata, var_names=["U"])["U"].values


@pytest.mark.slow
def test_default_and_nuts_agree_on_a_library_problem(worlds, library):
    """Exact g, the same hard step in both: NUTS and the default target the same posterior."""
    agent = us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index("+a-b")], beta=4.0)
    demos = agent.demonstrate(worlds, n_trajectories=50, horizon=12, seed=3)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=round(agent.true_intelligence(worlds), 1))
    scope = us.Utiliscope(worlds, us.WorldModel.from_demonstrations(demos), library, likelihood)
    default = scope.fit(seed=0)
    nuts = scope.fit(seed=0, sampler="blackjax", draws=1000, tune=1000, chains=4, progressbar=False)
    assert default.attrs["engine"] == "iid" and nuts.attrs["engine"] == "blackjax"
    p_nuts, se_nuts = nuts_estimate(nuts)
    p_default, se_default = scope.utility_posterior(default).values, default.utility_estimate["mcse"].values
    assert np.all(np.abs(p_default - p_nuts) <= 4 * np.hypot(se_default, se_nuts) + 1e-4)


@pytest.mark.slow
def test_default_and_nuts_agree_on_a_linear_problem():
    """The benchmark's problem (a), where NUTS converges: the posterior-mean rewards agree to a centred cosine of
    0.98 (NUTS samples a smoothed importance g, the default its hard count, so not to Monte Carlo error)."""
    worlds = us.WorldSet(
        [us.worlds.gridworld(["S.a.b", ".#.c.", "d...e", ".c.#.", "b..a."], slip=s) for s in (0.1, 0.3)]
    )
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    theta = np.array([1.0, -1.0, 0.5, 0.0, 0.0]) / 1.5
    agent = us.agents.Boltzmann(np.repeat((worlds.features @ theta)[:, None], worlds.n_actions, axis=1), beta=3.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=20, seed=1)
    g_star = agent.true_intelligence(worlds, method="monte_carlo", n_samples=1000, seed=0)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=g_star)
    scope = us.Utiliscope(worlds, us.WorldModel.from_demonstrations(demos), prior, likelihood)
    default = scope.fit(seed=0)
    nuts = scope.fit(seed=0, sampler="blackjax", draws=1000, tune=500, chains=4, progressbar=False)
    assert default.attrs["engine"] == "iid" and check(default).ok
    assert check(nuts, var_names=["U"]).ok, "the NUTS reference must converge"
    rewards = [
        (worlds.features @ estimate).ravel()
        for estimate in (default.utility_estimate["mean"].values, nuts_estimate(nuts)[0])
    ]
    a, b = (r - r.mean() for r in rewards)
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) >= 0.98


def test_impossible_evidence_of_a_finite_world_model_is_an_error():
    """ξ holds only the worst action, so the better policies of the world model beat all of it: g = +inf, which
    the rise-then-fall Normal gives zero density under every utility."""
    worst = us.PolicySet(np.zeros((1, 1), dtype=int))
    world_model = us.WorldModel.from_policies(np.eye(A)[[5, 4]][:, None, :])
    scope = us.Utiliscope(bandit(), world_model, library(), EASY, policy_prior=worst)
    with pytest.raises(ValueError, match="impossible under every utility"):
        scope.exact_posterior()
    with pytest.raises(ValueError, match="impossible under every utility"):
        scope.fit(seed=0)


@pytest.mark.parametrize("method", ["exact", "monte_carlo", "gaussian"])
def test_linear_targets_g_is_the_g_of_intelligence_for_each_draws_own_theta(worlds, method):
    """The linear hard count, each draw against ξ valued under its own theta, equals ``us.intelligence`` with the
    same reference sample (seed and size), draw by draw."""
    prior = us.priors.LinearUtility(worlds.features)
    world_model = us.WorldModel.dirichlet(np.ones((worlds.n_states, worlds.n_actions)))
    scope = us.Utiliscope(
        worlds, world_model, prior, us.likelihoods.Normal(observed=2.0), g_method=method, n_samples=500, seed=4
    )
    target = scope.target
    x = target.draw(6, np.random.default_rng(0))
    expected = [
        us.intelligence(worlds, pi, worlds.features @ theta, method=method, n_samples=500, seed=4)
        for pi, theta in zip(target.policies(x), target.thetas(x), strict=True)
    ]
    np.testing.assert_allclose(
        target.hard_g(target.policies(x), target.thetas(x)), expected, rtol=1e-12, atol=1e-12
    )
