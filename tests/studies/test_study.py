"""Recovery studies and the Dask plumbing: tidy tables, worker-independent seeds, failures kept and reported."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

import utiliscope as us
from utiliscope.studies.parallel import run_tasks
from utiliscope.studies.study import recovery_study, true_utility_index

WORLD = us.worlds.gridworld(["Sa", "bc"], slip=0.1)
LIBRARY = us.priors.UtilityLibrary.from_features(WORLD.features, max_terms=1, feature_names=WORLD.feature_names)
SETTINGS = [{"lam": 0.0, "sigma": 1.0}, {"lam": 1.0, "sigma": 3.0}]


def agent_factory(i, rng):
    """A Boltzmann agent whose utility is a random non-constant library entry."""
    entry = int(rng.integers(1, len(LIBRARY)))
    return us.agents.Boltzmann(LIBRARY.rewards[entry], beta=float(rng.uniform(2.0, 6.0))), WORLD


def scope_factory(agent, worlds, setting, rng):
    """The agent's own policy as a point-mass world model, so that every fit is exact and instant."""
    g_star = agent.true_intelligence(worlds)
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_policies(agent.policy(worlds)),
        LIBRARY.with_simplicity_weight(setting["lam"]),
        us.likelihoods.Normal(observed=g_star + rng.normal(), sigma=setting["sigma"]),
    )


def failing_agent_factory(i, rng):
    if i == 1:
        raise ValueError("agent 1 cannot be built")
    return agent_factory(i, rng)


FIT = {"draws": 50, "chains": 1}


@pytest.fixture(scope="module")
def table():
    return recovery_study(agent_factory, scope_factory, 2, SETTINGS, seed=7, client="serial", fit_kwargs=FIT)


def test_table_has_one_row_per_agent_and_setting(table):
    assert len(table) == 2 * len(SETTINGS)
    assert table[["agent", "setting"]].values.tolist() == [[i, k] for i in range(2) for k in range(2)]
    assert table["lam"].tolist() == [0.0, 1.0] * 2 and table["sigma"].tolist() == [1.0, 3.0] * 2
    assert set(table["agent_type"]) == {"Boltzmann"}
    assert table["error"].isna().all()
    assert {"mass_on_truth", "rank", "bayes_factor", "g_true", "g_true_in_90", "U_true"} <= set(table.columns)


def test_settings_share_the_agent(table):
    """Every setting of an agent sees the same agent: same true utility and g*."""
    for _, rows in table.groupby("agent"):
        assert rows["U_true"].nunique() == 1 and rows["g_true"].nunique() == 1


def test_mass_on_truth_matches_a_hand_computed_posterior(table):
    """Point-mass world model: P(U_i | g′) ∝ 2^(−λ K_i) N(g′; g(pi*, U_i), σ), recomputed here."""
    for row in table.itertuples():
        # SeedSequence.spawn is stateful: rebuild the agent's sequence for every row.
        agent_seed, data_seed, _ = np.random.SeedSequence(7).spawn(2)[row.agent].spawn(3)
        agent, _ = agent_factory(row.agent, np.random.default_rng(agent_seed))
        g_star = agent.true_intelligence(WORLD)
        observed = g_star + np.random.default_rng(data_seed).normal()
        g = us.intelligence_table(WORLD, agent.policy(WORLD)[None], LIBRARY.rewards)[0][0]
        log_post = -row.lam * LIBRARY.description_bits * np.log(2) - 0.5 * ((observed - g) / row.sigma) ** 2
        log_post[~np.isfinite(g)] = -np.inf
        posterior = np.exp(log_post - log_post.max())
        posterior /= posterior.sum()
        truth = LIBRARY.index(row.U_true)
        assert row.mass_on_truth == pytest.approx(posterior[truth], abs=1e-9)
        assert row.rank == 1 + np.count_nonzero(posterior > posterior[truth] + 1e-12)
        assert row.g_true == pytest.approx(g_star)


def test_table_names_the_model(table):
    assert set(table["model_type"]) == {"Utiliscope"}


# ---------------------------------------------------------------------------------------------- two models
BETA = 3.0
MODELS = [{"model": "utiliscope"}, {"model": "boltzmann"}]


def _demonstrations(agent, rng):
    return agent.demonstrate(WORLD, n_trajectories=6, horizon=5, seed=rng)


def paired_scope_factory(agent, worlds, setting, rng):
    """The same demonstrations for both models: the Utiliscope sees their posterior-mean policy (a point-mass
    world model, so its fit is exact), Boltzmann IRL their counts at a fixed β."""
    demos = _demonstrations(agent, rng)
    if setting["model"] == "boltzmann":
        return us.models.BoltzmannIRL(worlds, demos, LIBRARY, beta=BETA)
    policy = us.WorldModel.from_demonstrations(demos).mean()
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_policies(policy),
        LIBRARY,
        us.likelihoods.AsymmetricLaplace(observed=agent.true_intelligence(worlds)),
    )


@pytest.fixture(scope="module")
def paired_table():
    return recovery_study(agent_factory, paired_scope_factory, 3, MODELS, seed=11, client="serial", fit_kwargs=FIT)


def _brute_force_g(policy, reward):
    """g in bits against all 5^4 deterministic policies, each valued by its own solve (docs/model.md#ties)."""

    def value(pi):
        p_pi = np.einsum("sa,sat->st", pi, WORLD.transitions)
        v = np.linalg.solve(np.eye(WORLD.n_states) - WORLD.gamma * p_pi, np.sum(pi * reward[:, None], axis=1))
        return WORLD.start @ v

    identity = np.eye(WORLD.n_actions)
    others = np.array([value(identity[list(a)]) for a in itertools.product(range(5), repeat=WORLD.n_states)])
    own = value(policy)
    tolerance = 1e-9 * max(abs(own), np.abs(others).max())
    return -np.log2(np.mean(others >= own - tolerance))


def _brute_force_posterior(row, demos, agent):
    """P(U_i | data) by hand: 2^-K_i times, per model, its likelihood of the demonstrations."""
    log_prior = -LIBRARY.description_bits * np.log(2)
    if row.model == "boltzmann":
        # The agents' own planner (not the model's soft Bellman Op) gives each entry's Boltzmann policy.
        policies = [us.agents.Boltzmann(r, BETA).policy(WORLD) for r in LIBRARY.rewards]
        log_like = np.array([np.sum(demos.counts * np.log(pi)) for pi in policies])
    else:
        # PyMC's AsymmetricLaplace(mu=g, b, kappa) is scipy's laplace_asymmetric(kappa, loc=g, scale=1/b).
        b = kappa = np.sqrt(np.log(2))
        mean_policy = (demos.counts + 1.0) / (demos.counts + 1.0).sum(axis=1, keepdims=True)
        g_star = _brute_force_g(agent.policy(WORLD), agent.reward)
        g = np.array([_brute_force_g(mean_policy, r) for r in LIBRARY.rewards])
        log_like = stats.laplace_asymmetric(kappa, loc=g, scale=1 / b).logpdf(g_star)
    log_post = log_prior + log_like
    return np.exp(log_post - logsumexp(log_post))


def _centred_unit(table):
    centred = np.ravel(table) - np.mean(table)
    return centred / np.linalg.norm(centred)


def test_both_models_see_the_same_agents(paired_table):
    assert paired_table["model"].tolist() == ["utiliscope", "boltzmann"] * 3
    assert paired_table["model_type"].tolist() == ["Utiliscope", "BoltzmannIRL"] * 3
    assert paired_table["error"].isna().all()
    for _, rows in paired_table.groupby("agent"):
        assert rows["U_true"].nunique() == 1


def test_model_without_g_has_no_g_columns(paired_table):
    boltzmann = paired_table[paired_table["model"] == "boltzmann"]
    utiliscope = paired_table[paired_table["model"] == "utiliscope"]
    assert boltzmann[["g_true", "g_true_in_90"]].isna().all().all()
    assert utiliscope["g_true"].notna().all()


def test_new_columns_match_a_brute_force(paired_table):
    """mass on truth, constant and negation, rank and the posterior-mean reward's cosine, all recomputed."""
    constant = int(np.flatnonzero(np.ptp(LIBRARY.rewards, axis=1) == 0)[0])
    for row in paired_table.itertuples():
        agent_seed, data_seed, _ = np.random.SeedSequence(11).spawn(3)[row.agent].spawn(3)
        agent, _ = agent_factory(row.agent, np.random.default_rng(agent_seed))
        demos = _demonstrations(agent, np.random.default_rng(data_seed))
        posterior = _brute_force_posterior(row, demos, agent)
        truth_direction = _centred_unit(agent.reward)
        directions = [_centred_unit(r) if np.ptp(r) > 0 else np.zeros_like(r) for r in LIBRARY.rewards]
        truth = int(np.argmax([d @ truth_direction for d in directions]))
        negation = int(np.argmin([d @ truth_direction for d in directions]))
        assert directions[truth] @ truth_direction == pytest.approx(1.0)
        assert directions[negation] @ truth_direction == pytest.approx(-1.0)
        assert row.U_true == LIBRARY.names[truth]
        assert row.mass_on_truth == pytest.approx(posterior[truth], abs=1e-8)
        assert row.rank == 1 + np.count_nonzero(posterior > posterior[truth] + 1e-12)
        assert row.bayes_factor == pytest.approx(posterior[truth] / LIBRARY.prior[truth], rel=1e-6)
        assert row.mass_on_constant == pytest.approx(posterior[constant], abs=1e-8)
        assert row.mass_on_negation == pytest.approx(posterior[negation], abs=1e-8)
        mean_reward = sum(p * r for p, r in zip(posterior, LIBRARY.rewards, strict=True))
        assert row.cosine == pytest.approx(_centred_unit(mean_reward) @ truth_direction, abs=1e-8)


def test_true_utility_index_up_to_positive_affine_maps():
    r = LIBRARY.rewards[3]
    assert true_utility_index(LIBRARY.rewards, 2.0 * r + 5.0) == 3
    assert true_utility_index(LIBRARY.rewards, -r) == LIBRARY.negation_index(3)
    assert true_utility_index(LIBRARY.rewards, np.full(WORLD.n_states, 4.0)) == LIBRARY.constant_index()
    assert true_utility_index(LIBRARY.rewards[1:2], np.arange(WORLD.n_states, dtype=float) ** 2) is None


def test_table_does_not_depend_on_workers(table, clients):
    for client in clients:
        on_dask = recovery_study(
            agent_factory, scope_factory, 2, SETTINGS, seed=7, client=client, fit_kwargs=FIT, progressbar=False
        )
        pd.testing.assert_frame_equal(on_dask, table)


def test_failed_fit_is_reported_and_the_rest_kept(clients):
    with pytest.warns(RuntimeWarning, match="2 of 4 fits failed.*agent 1 cannot be built"):
        result = recovery_study(
            failing_agent_factory, scope_factory, 2, SETTINGS, seed=7, client=clients[1], fit_kwargs=FIT,
            progressbar=False,
        )  # fmt: skip
    failed = result[result["error"].notna()]
    assert failed["agent"].tolist() == [1, 1]
    assert failed["error"].str.contains("ValueError: agent 1 cannot be built").all()
    assert result.loc[result["agent"] != 1, "mass_on_truth"].notna().all()


def _square_or_fail(problem, payload):
    if payload == 2:
        raise ZeroDivisionError("payload 2")
    return {"value": problem * payload**2}


def test_run_tasks_keeps_order_and_failures():
    with pytest.warns(RuntimeWarning, match="1 of 4 things failed"):
        results = run_tasks(_square_or_fail, 10, [0, 1, 2, 3], "serial", label="thing")
    assert [r.row for r in results] == [{"value": 0}, {"value": 10}, None, {"value": 90}]
    assert results[2].error == "ZeroDivisionError: payload 2"


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match=r"settings\[0\]"):
        recovery_study(agent_factory, scope_factory, 1, [("lam", 1.0)], client="serial")
    with pytest.raises(TypeError, match="scope_factory must be callable"):
        recovery_study(agent_factory, None, 1, client="serial")
    with pytest.raises(TypeError, match="client must be"):
        run_tasks(_square_or_fail, 1, [0], client=3)


def test_a_setting_named_like_a_column_is_refused():
    for name in ("agent", "setting", "error", "agent_type", "mass_on_truth"):
        with pytest.raises(ValueError, match=rf"settings\[1\] has the key '{name}', the name of a column"):
            recovery_study(
                agent_factory, scope_factory, 1, [SETTINGS[0], {**SETTINGS[1], name: 1}], client="serial"
            )


def test_the_default_metric_has_the_columns_settings_may_not_take(table):
    from utiliscope.studies.study import TABLE_COLUMNS, truth_columns

    assert set(table.columns) - set(SETTINGS[0]) - set(TABLE_COLUMNS) == set(truth_columns())


def test_a_metric_column_named_like_a_setting_is_the_rows_error():
    def metric(idata, scope, agent, worlds):
        return {"lam": 1.0}

    with pytest.warns(RuntimeWarning, match="2 of 2 fits failed"):
        result = recovery_study(
            agent_factory, scope_factory, 1, SETTINGS, client="serial", fit_kwargs=FIT, metric=metric
        )
    assert result["lam"].tolist() == [0.0, 1.0]
    assert result["error"].str.contains(r"the metric returned the column\(s\) \['lam'\]").all()
