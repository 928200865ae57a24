"""Acting on fitted posteriors: decide on every model, from a saved run alone, and the policy loss in recovery."""

import json

import numpy as np
import pytest

import utiliscope as us
from utiliscope.decisions import policy_loss, rule_names, sample_of_library
from utiliscope.diagnostics import Truth, decide_fit, recovery
from utiliscope.io import load, save
from utiliscope.models import BoltzmannIRL, CombinedIRL
from utiliscope.studies.study import truth_metrics

TRUE = "+a-b"


@pytest.fixture(scope="module")
def agent(worlds, library):
    return us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index(TRUE)], beta=4.0)


@pytest.fixture(scope="module")
def demos(worlds, agent):
    return agent.demonstrate(worlds, n_trajectories=20, horizon=8, seed=3)


@pytest.fixture(scope="module")
def fitted(worlds, library, agent, demos):
    """The default engine on Dirichlet rows (i.i.d. draws weighted by the evidence): under a second."""
    g_star = agent.true_intelligence(worlds)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=g_star)
    scope = us.Utiliscope(worlds, us.WorldModel.from_demonstrations(demos), library, likelihood)
    return scope, scope.fit(seed=0, progressbar=False)


@pytest.mark.parametrize("rule", rule_names())
def test_decide_uses_the_models_posterior(worlds, library, fitted, rule):
    scope, idata = fitted
    decision = scope.decide(idata, rule=rule)
    sample = sample_of_library(scope.rewards, scope.utility_posterior(idata).values, library.names)
    direct = us.decisions.decide(worlds, sample, rule, policy_prior=scope.policy_prior)
    np.testing.assert_allclose(decision.normalised_values, direct.normalised_values, atol=1e-12)
    assert decision.rule == rule and decision.exact
    assert set(decision.posterior["probabilities"]) == set(library.names)
    json.dumps(decision.to_dict())  # plain values only


def test_boltzmann_and_combined_decide_from_their_exact_posteriors(worlds, library, demos):
    for model in (
        BoltzmannIRL(worlds, demos, library, beta=2.0),
        CombinedIRL(
            worlds,
            us.WorldModel.from_policies(us.WorldModel.from_demonstrations(demos).sample(4, seed=1)),
            demos,
            library,
            us.likelihoods.AsymmetricLaplace(observed=8.0),
            beta=2.0,
        ),
    ):
        idata = model.fit(draws=100, chains=2, seed=0, progressbar=False)
        sample = sample_of_library(model.rewards, model.utility_posterior(idata).values, library.names)
        for rule in ("expected", "robust"):
            parameters = {"alpha": 0.2} if rule == "robust" else {}  # a parameter of another rule is an error
            got = model.decide(idata, rule=rule, **parameters)
            want = us.decisions.decide(worlds, sample, rule, **parameters)
            assert got.objective == pytest.approx(want.objective, abs=1e-12)


def test_a_saved_run_decides_alone(fitted, tmp_path):
    scope, idata = fitted
    save(idata, tmp_path / "run.nc")
    loaded = load(tmp_path / "run.nc")
    for rule in rule_names():
        alone, with_scope = decide_fit(loaded, rule), scope.decide(idata, rule=rule)
        np.testing.assert_allclose(alone.normalised_values, with_scope.normalised_values, atol=1e-12)


def test_a_run_without_worlds_says_what_to_do(fitted):
    _, idata = fitted
    older = idata.copy()
    del older["worlds"]
    with pytest.raises(ValueError, match="no 'worlds' group"):
        decide_fit(older)


def test_recovery_reports_policy_loss_and_g_for_every_rule(worlds, agent, fitted, tmp_path):
    scope, idata = fitted
    truth = Truth.from_agent(agent, scope)
    result = recovery(idata, truth, scope)
    reward = agent.reward_table(worlds)
    assert [outcome.rule for outcome in result.decisions] == list(rule_names())
    for outcome in result.decisions:
        decision = scope.decide(idata, rule=outcome.rule)
        assert outcome.policy_loss == pytest.approx(policy_loss(worlds, decision, reward), abs=1e-12)
        assert outcome.g == pytest.approx(us.intelligence(worlds, decision.acting_policy(worlds), reward))
        assert result.as_dict()[f"policy_loss_{outcome.rule}"] == outcome.policy_loss
    assert "acting on the posterior" in str(result)
    save(idata, tmp_path / "run.nc")
    alone = recovery(load(tmp_path / "run.nc"), truth)
    assert alone.as_dict() == pytest.approx(result.as_dict(), nan_ok=True)
    assert recovery(idata, truth, scope, rules=()).decisions == ()


@pytest.mark.slow
def test_study_rows_and_report_carry_the_policy_loss(worlds, agent, fitted, tmp_path):
    scope, idata = fitted
    row = truth_metrics(idata, scope, agent, worlds)
    for rule in rule_names():
        assert 0 <= row[f"policy_loss_{rule}"] < 1 and row[f"g_decided_{rule}"] >= 0
    page = us.diagnostics.report(idata, Truth.from_agent(agent, scope), tmp_path / "report", scope)
    assert "policy_loss_robust" in page.read_text(encoding="utf-8")
