"""`utiliscope decide` and the `[decide]` section of a fit spec, run in-process."""

import json
import tomllib

import numpy as np
import pytest

import utiliscope as us
from utiliscope.cli import main
from utiliscope.spec import SpecError, fit_problem

SPEC = """
[worlds]
type = "gridworld"
layout = ["S.a", "b.c"]
slip = [0.1, 0.3]

[prior]
type = "library"
max_terms = 1
max_weight = 1

[agent]
type = "boltzmann"
utility = "+a"
beta = 4.0

[agent.demonstrations]
n_trajectories = 20
horizon = 10
seed = 1

[world_model]
kind = "sampled"
n_policies = 40

[likelihood]
name = "asymmetric_laplace"
observed = "agent"

[sampler]
draws = 200
chains = 2
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A fit with ``[decide] rule = "robust"``: the run and the decision file it wrote."""
    folder = tmp_path_factory.mktemp("decide")
    spec, out = folder / "fit.toml", folder / "run.nc"
    spec.write_text(SPEC + '\n[decide]\nrule = "robust"\nalpha = 0.2\n')
    assert main(["fit", str(spec), "--out", str(out), "--no-progress"]) == 0
    return out, folder / "run.decision.json"


def test_fit_applies_the_decide_section(run):
    out, written = run
    data = json.loads(written.read_text())
    assert data["rule"] == "robust" and data["settings"]["alpha"] == 0.2
    idata = us.load(out)
    want = us.diagnostics.decide_fit(idata, "robust", alpha=0.2)
    np.testing.assert_allclose(data["policy"], want.policy)
    assert data["objective"] == pytest.approx(want.objective, abs=1e-12)


@pytest.mark.parametrize(("rule", "extra"), [("expected", []), ("robust", ["--alpha", "0.1"]), ("quantilize", [])])
def test_decide_writes_the_policy_and_its_summary(run, tmp_path, capsys, rule, extra):
    out, _ = run
    target = tmp_path / "policy.json"
    assert main(["decide", str(out), "--rule", rule, *extra, "--out", str(target)]) == 0
    data = json.loads(target.read_text())
    assert data["rule"] == rule and np.asarray(data["policy"] or data["mixture"]["policies"]).shape[-2:] == (6, 5)
    assert f"Decision by rule {rule!r}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rule", "expected", "--alpha", "0.1"], "--alpha is a setting of --rule robust"),
        (["--rule", "robust", "--alpha", "1.5"], "alpha is 1.5"),
        (["--rule", "quantilize", "--q", "2"], "q is 2"),
    ],
)
def test_bad_decide_arguments_are_one_line_and_status_2(run, tmp_path, capsys, arguments, message):
    out, _ = run
    with pytest.raises(SystemExit) as stop:
        main(["decide", str(out), *arguments, "--out", str(tmp_path / "p.json")])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "p.json").exists()


def test_decide_keeps_an_existing_output(run, tmp_path, capsys):
    out, _ = run
    target = tmp_path / "policy.json"
    target.write_text("keep me")
    with pytest.raises(SystemExit):
        main(["decide", str(out), "--out", str(target)])
    assert target.read_text() == "keep me"
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('rule = "best"', "[decide].rule is 'best'"),
        ('rule = "expected"\nalpha = 0.1', "[decide].alpha is a setting of rule = 'robust'"),
        ('rule = "robust"\nalpha = 2.0', "[decide]: alpha is 2.0"),
        ('rule = "quantilize"\nq = "half"', "[decide].q"),
        ('rule = "expected"\nmargin = 1', "margin"),
    ],
)
def test_bad_decide_sections_are_named(section, message):
    with pytest.raises(SpecError) as error:
        fit_problem(tomllib.loads(SPEC + f"\n[decide]\n{section}\n"))
    assert message in str(error.value)
