"""A decision rule is a plug-in: a toy rule defined here reaches decide, decide_fit, recovery, study columns, the
``[decide]`` spec section and ``utiliscope decide`` without any package file naming it."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

import utiliscope as us
from utiliscope.cli import _parser, main
from utiliscope.decisions import Choice, Rule, base, parameter
from utiliscope.decisions.robust import CVAR, QUANTILE
from utiliscope.diagnostics import Truth, decide_fit, recovery
from utiliscope.spec import SpecError
from utiliscope.spec.builders import decide_settings
from utiliscope.spec.schema import decide_schema
from utiliscope.studies.study import truth_columns

TRUE = "+a-b"


@pytest.fixture
def blend(monkeypatch):
    """The rule ``blend``: the default rule's policy mixed with the uniform one, ``(1 − share)·pi + share/A``.

    It registers itself into a copy of the registry that the test's end throws away.
    """
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @dataclass(frozen=True)
    class Blend(Rule):
        name = "blend"
        description = "the default rule's policy mixed with acting uniformly (share in [0, 1])"

        share: float = parameter(0.5, "the weight of the uniform policy, in [0, 1]")

        def __post_init__(self):
            if not 0.0 <= self.share <= 1.0:
                raise ValueError(f"share is {self.share}; it must lie in [0, 1], e.g. 0.5")

        def decide(self, problem):
            best = us.decisions.rule_from(us.decisions.DEFAULT_RULE).decide(problem).policy
            policy = (1.0 - self.share) * best + self.share / problem.worlds.n_actions
            return Choice(policy, None, "the default rule's policy, blended", True)

    return Blend


def blended(decision, worlds, share):
    """What ``blend`` must return, from the default rule's decision on the same posterior."""
    return (1.0 - share) * decision.policy + share / worlds.n_actions


@pytest.fixture(scope="module")
def fitted(worlds, library):
    """A finite world model of six policies: exact i.i.d. draws, instant."""
    agent = us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index(TRUE)], beta=4.0)
    others = np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(5, worlds.n_states))
    policies = np.concatenate([agent.policy(worlds)[None], others])
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.AsymmetricLaplace(observed=6.0)
    )
    return agent, scope, scope.fit(draws=200, chains=2, seed=1, progressbar=False)


def test_the_toy_rule_is_registered_with_its_parameter(blend):
    assert "blend" in us.decisions.rule_names()
    assert us.decisions.rule_parameters()["share"].defaults == {"blend": 0.5}
    assert blend().settings == {"share": 0.5}


def test_the_toy_rule_is_gone_after_its_test():
    assert "blend" not in us.decisions.rule_names()


def test_decide_runs_the_toy_rule_by_name_and_as_an_object(blend, worlds):
    rewards = np.random.default_rng(0).standard_normal((3, worlds.n_states, worlds.n_actions))
    sample = us.decisions.UtilitySample(rewards, np.array([0.5, 0.3, 0.2]), ("u0", "u1", "u2"))
    default = us.decisions.decide(worlds, sample)
    by_name = us.decisions.decide(worlds, sample, "blend", share=0.25)
    np.testing.assert_allclose(by_name.policy, blended(default, worlds, 0.25), atol=1e-15)
    assert by_name.rule == "blend" and by_name.settings["share"] == 0.25
    assert by_name.objective == pytest.approx(by_name.expected)  # the base class's objective
    as_object = us.decisions.decide(worlds, sample, blend(share=0.25))
    np.testing.assert_array_equal(as_object.policy, by_name.policy)
    with pytest.raises(ValueError, match=r"share is 1\.5"):
        us.decisions.decide(worlds, sample, "blend", share=1.5)
    with pytest.raises(ValueError, match=r"alpha is a parameter of rule 'robust'.*, not of rule 'blend'"):
        us.decisions.decide(worlds, sample, "blend", alpha=0.1)
    with pytest.raises(TypeError, match="carries its parameters"):
        us.decisions.decide(worlds, sample, blend(), share=0.1)


def test_decide_fit_model_decide_and_recovery_run_the_toy_rule(blend, worlds, fitted, tmp_path):
    agent, scope, idata = fitted
    default = scope.decide(idata)
    got = scope.decide(idata, rule="blend", share=0.25)
    np.testing.assert_allclose(got.policy, blended(default, worlds, 0.25), atol=1e-15)
    us.save(idata, tmp_path / "run.nc")
    alone = decide_fit(us.load(tmp_path / "run.nc"), "blend", share=0.25)
    np.testing.assert_allclose(alone.normalised_values, got.normalised_values, atol=1e-12)

    result = recovery(idata, Truth.from_agent(agent, scope), scope)
    assert [outcome.rule for outcome in result.decisions] == list(us.decisions.rule_names())
    outcome = result.decisions[-1]
    reward = agent.reward_table(worlds)
    assert outcome.rule == "blend"
    assert outcome.policy_loss == pytest.approx(
        us.decisions.policy_loss(worlds, scope.decide(idata, "blend"), reward)
    )
    assert {"policy_loss_blend", "g_decided_blend"} <= set(result.as_dict()) & set(truth_columns())
    only = recovery(idata, Truth.from_agent(agent, scope), scope, rules=[blend(share=1.0)])
    assert [o.rule for o in only.decisions] == ["blend"] and only.decisions[0].policy_loss == pytest.approx(1.0)


def test_the_spec_reader_takes_the_toy_rule_and_its_parameter(blend):
    assert "share" in decide_schema()
    assert decide_settings({"rule": "blend", "share": 0.25, "out": "p.json"}) == {
        "rule": "blend",
        "share": 0.25,
        "out": "p.json",
    }
    with pytest.raises(SpecError, match=r"\[decide\].share is a setting of rule = 'blend', not of 'robust'"):
        decide_settings({"rule": "robust", "share": 0.25})
    with pytest.raises(SpecError, match=r"\[decide\]: share is 2.0"):
        decide_settings({"rule": "blend", "share": 2.0})
    with pytest.raises(SpecError, match=r"\[decide\].share is 'half'"):
        decide_settings({"rule": "blend", "share": "half"})


def test_the_command_line_takes_the_toy_rule_and_its_option(blend, worlds, fitted, tmp_path, capsys):
    args = _parser("decide").parse_args(
        ["decide", "run.nc", "--rule", "blend", "--share", "0.25", "--out", "p.json"]
    )
    assert args.rule == "blend" and args.share == 0.25
    _, scope, idata = fitted
    us.save(idata, tmp_path / "run.nc")
    target = tmp_path / "policy.json"
    assert (
        main(["decide", str(tmp_path / "run.nc"), "--rule", "blend", "--share", "0.25", "--out", str(target)]) == 0
    )
    data = json.loads(target.read_text())
    assert data["rule"] == "blend" and data["settings"]["share"] == 0.25
    np.testing.assert_allclose(data["policy"], scope.decide(idata, "blend", share=0.25).policy, atol=1e-15)
    with pytest.raises(SystemExit):
        main(["decide", str(tmp_path / "run.nc"), "--share", "0.25", "--out", str(tmp_path / "q.json")])
    assert "--share is a setting of --rule blend, not of --rule expected" in capsys.readouterr().err


def test_what_a_rule_reports_choosing_joins_the_settings_under_names_of_its_own(monkeypatch, worlds):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @dataclass(frozen=True)
    class Pick(Rule):
        name = "pick"
        description = "the default rule's policy, reporting a number it chose"

        level: float = parameter(0.5, "a number")
        key: str = parameter("chosen", "the name it reports the number under")

        def decide(self, problem):
            policy = us.decisions.rule_from(us.decisions.DEFAULT_RULE).decide(problem).policy
            return Choice(policy, None, "the default rule's policy", True, {self.key: 2 * self.level})

    rewards = np.random.default_rng(1).standard_normal((2, worlds.n_states, worlds.n_actions))
    sample = us.decisions.UtilitySample(rewards, np.array([0.5, 0.5]), ("u0", "u1"))
    decision = us.decisions.decide(worlds, sample, "pick", level=0.25)
    assert decision.settings == {"max_enumerate": us.decisions.MAX_ENUMERATE, "level": 0.25, "key": "chosen"} | {
        "chosen": 0.5
    }
    assert json.loads(json.dumps(decision.to_dict()))["settings"]["chosen"] == 0.5
    with pytest.raises(TypeError, match="reports level, which its settings already name"):
        us.decisions.decide(worlds, sample, "pick", key="level")


def test_a_rule_name_taken_by_another_class_is_refused(blend):
    with pytest.raises(ValueError, match="'blend' is already taken"):

        @dataclass(frozen=True)
        class Other(Rule):
            name = "blend"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("seed: int = parameter(0, 'x')", "deciding takes itself"),
        ("weights: list = parameter(None, 'x')", "one of the types float, int, str"),
        ("level: float", "must have a default"),
    ],
)
def test_bad_parameters_are_refused_when_the_rule_is_looked_up(monkeypatch, body, message):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    namespace = {"dataclass": dataclass, "Rule": Rule, "parameter": parameter}
    exec(
        f"@dataclass(frozen=True)\nclass Bad(Rule):\n        name = 'bad'\n        {body}\n",
        namespace,
    )
    with pytest.raises(TypeError, match=message):
        us.decisions.rule_class("bad")


def test_a_rule_that_is_not_a_frozen_dataclass_is_refused(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    class Loose(Rule):
        name = "loose"

    with pytest.raises(TypeError, match="frozen"):
        us.decisions.rule_class("loose")


def test_the_robust_rules_tail_reaches_the_spec_and_the_command_line_from_the_registry():
    tail = us.decisions.rule_parameters()["tail"]
    assert tail.type is str and tail.defaults == {"robust": QUANTILE}
    assert decide_settings({"rule": "robust", "tail": CVAR})["tail"] == CVAR
    with pytest.raises(SpecError, match=r"\[decide\]: tail is 'mean'; choose one of 'quantile', 'cvar'"):
        decide_settings({"rule": "robust", "tail": "mean"})
    args = _parser("decide").parse_args(
        ["decide", "run.nc", "--rule", "robust", "--tail", CVAR, "--out", "p.json"]
    )
    assert args.tail == CVAR
