"""The command line, run as a user would: in a subprocess, and in-process through ``main`` where that is enough."""

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest

import utiliscope as us
from utiliscope.cli import main
from utiliscope.spec import SpecError, fit_problem


def test_unknown_command_is_an_error():
    result = subprocess.run(
        [sys.executable, "-m", "utiliscope.cli", "frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "quickstart" in result.stderr


#: Markup of reStructuredText that plain-text help must not show.
REST_MARKUP = ("``", "::", ":func:", ":mod:", ":class:", ":meth:", ":attr:")


@pytest.mark.parametrize("command", ["", "quickstart", "fit", "report", "decide", "study"])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: utiliscope" in text
    assert [markup for markup in REST_MARKUP if markup in text] == []


def test_the_command_line_imports_no_sampler_before_a_command_runs():
    code = (
        "import sys, utiliscope.cli; "
        "from utiliscope.cli import _parser; _parser(); "
        "print(sorted(m for m in ('pymc', 'pytensor', 'arviz', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def utiliscope(*args, cwd=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "utiliscope.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def run_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """``utiliscope ARGS`` through ``main`` in this process: where a new process would add only its start-up, or
    so that a test can patch it. The exit status and the captured output, as :func:`utiliscope` returns them."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, captured.out, captured.err)


FINITE_FIT = """
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


def test_bad_spec_is_one_line_naming_the_key(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(FINITE_FIT.replace('type = "boltzmann"', 'type = "boltzman"'))
    result = run_in_process(capsys, "fit", spec, "--out", tmp_path / "run.nc")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("utiliscope: error: [agent].type is 'boltzman'; choose one of")
    assert "'boltzmann'" in lines[0]
    assert not (tmp_path / "run.nc").exists()


def test_fit_refuses_an_existing_output(tmp_path, capsys):
    spec, out = tmp_path / "fit.toml", tmp_path / "run.nc"
    spec.write_text(FINITE_FIT)
    out.write_text("keep me")
    result = run_in_process(capsys, "fit", spec, "--out", out)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"utiliscope: error: --out {str(out)!r} already exists; pass --overwrite to replace it"
    )
    assert out.read_text() == "keep me"


@pytest.mark.slow
def test_fit_then_report_record_and_recover_the_truth(tmp_path, capsys):
    import utiliscope as us

    spec, out, folder = tmp_path / "fit.toml", tmp_path / "run.nc", tmp_path / "report"
    spec.write_text(FINITE_FIT)
    out.write_text("old")
    fitted = run_in_process(capsys, "fit", spec, "--out", out, "--overwrite")
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    for expected in ("Convergence check", "Posterior over the utility", "bayes_factor", "Recovery of U* = '+a'"):
        assert expected in fitted.stdout
    idata = us.load(out)
    assert json.loads(idata.attrs["truth"])["utility"] == "+a"
    assert json.loads(idata.attrs["agent"])["beta"] == 4.0
    assert json.loads(idata.attrs["spec"])["agent"]["utility"] == "+a"

    reported = run_in_process(capsys, "report", out, "--out", folder)
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert "Convergence check" in reported.stdout and "Recovery of U* = '+a'" in reported.stdout
    for name in ("index.html", "trace.png", "rank.png", "utility_posterior.png", "g_posterior.png"):
        assert (folder / name).stat().st_size > 0
    assert "Recovery" in (folder / "index.html").read_text()


@pytest.mark.slow
def test_fit_and_report_with_nuts_and_observed_counts(tmp_path, capsys):
    counts = "[" + ", ".join(["[3, 0, 1, 0, 2]"] * 6) + "]"
    spec = (
        FINITE_FIT.split("[agent]")[0]
        + f"""
[observations]
counts = {counts}

[likelihood]
name = "normal"
observed = 4.0

[sampler]
draws = 40
tune = 40
chains = 2
"""
    )
    path, out = tmp_path / "nuts.toml", tmp_path / "run.nc"
    path.write_text(spec)
    fitted = run_in_process(capsys, "fit", path, "--out", out, "--no-progress")
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    assert "Convergence check" in fitted.stdout
    reported = run_in_process(capsys, "report", out, "--out", tmp_path / "report")
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert "No agent's truth is recorded" in reported.stdout
    assert (tmp_path / "report" / "index.html").exists()


STUDY = """
[worlds]
type = "gridworld"
layout = ["S.a", "b.c"]

[prior]
type = "library"
max_terms = 1
max_weight = 1

[likelihood]
name = "normal"
observed = "agent"

[world_model]
kind = "agent_policy"

[sampler]
draws = 50
chains = 2

[study]
n_agents = 3
seed = 4

[[study.agents]]
type = "boltzmann"
beta = 4.0

[[study.agents]]
type = "myopic"
horizon = 1

[study.grid]
simplicity_weight = [0.0, 2.0]
"""


@pytest.mark.slow
def test_study_serial_and_on_dask_give_the_same_table(tmp_path, capsys):
    """The serial study in this process (a new one would only add its start-up), the Dask one as a user runs it."""
    import pandas as pd

    spec = tmp_path / "study.toml"
    spec.write_text(STUDY)
    serial_out = tmp_path / "serial.csv"
    serial_run = run_in_process(capsys, "study", spec, "--workers", 0, "--out", serial_out, "--no-progress")
    assert serial_run.returncode == 0 and "mass_on_truth" in serial_run.stdout
    result = utiliscope("study", spec, "--workers", 2, "--out", tmp_path / "dask.csv", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mass_on_truth" in result.stdout
    serial = pd.read_csv(serial_out)
    assert len(serial) == 6 and serial["error"].isna().all()
    assert list(serial["agent_type"]) == ["Boltzmann"] * 2 + ["Myopic"] * 2 + ["Boltzmann"] * 2
    assert set(serial["simplicity_weight"]) == {0.0, 2.0}
    pd.testing.assert_frame_equal(serial, pd.read_csv(tmp_path / "dask.csv"))


# ---------------------------------------------------------------------------------------------- lost work
def test_fit_whose_output_appears_meanwhile_is_saved_beside_it(tmp_path, monkeypatch, capsys):
    import utiliscope as us

    spec, out = tmp_path / "fit.toml", tmp_path / "run.nc"
    spec.write_text(FINITE_FIT)
    fit = us.Utiliscope.fit

    def fit_while_someone_writes_out(self, *args, **kwargs):
        idata = fit(self, *args, **kwargs)
        out.write_text("someone else's")
        return idata

    monkeypatch.setattr(us.Utiliscope, "fit", fit_while_someone_writes_out)
    result = run_in_process(capsys, "fit", spec, "--out", out, "--no-progress")
    beside = tmp_path / "run-1.nc"
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"utiliscope: error: --out {str(out)!r} was created by something else while this fit ran and is left as "
        f"it is; this fit is saved beside it as {str(beside)!r}"
    )
    assert out.read_text() == "someone else's"
    assert json.loads(us.load(beside).attrs["truth"])["utility"] == "+a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.toml", "run-1.nc", "run.nc"]


@pytest.mark.slow
def test_study_whose_output_appears_meanwhile_is_saved_beside_it(tmp_path, monkeypatch, capsys):
    import pandas as pd

    import utiliscope.diagnostics

    spec, out = tmp_path / "study.toml", tmp_path / "table.csv"
    spec.write_text(STUDY)
    (tmp_path / "table-1.csv").write_text("taken too")
    study = utiliscope.diagnostics.recovery_study

    def study_while_someone_writes_out(*args, **kwargs):
        table = study(*args, **kwargs)
        out.write_text("someone else's")
        return table

    monkeypatch.setattr(utiliscope.diagnostics, "recovery_study", study_while_someone_writes_out)
    result = run_in_process(capsys, "study", spec, "--out", out, "--no-progress")
    assert result.returncode == 2
    assert f"this study is saved beside it as {str(tmp_path / 'table-2.csv')!r}" in result.stderr
    assert out.read_text() == "someone else's" and (tmp_path / "table-1.csv").read_text() == "taken too"
    table = pd.read_csv(tmp_path / "table-2.csv")
    assert len(table) == 6 and table["error"].isna().all()


def test_an_interrupted_study_writes_its_finished_rows(tmp_path, monkeypatch, capsys):
    """Ctrl-C during the third fit of a serial study: the two finished rows are written, the rest marked."""
    import pandas as pd

    import utiliscope as us

    spec, out = tmp_path / "study.toml", tmp_path / "table.csv"
    spec.write_text(STUDY)
    fit, calls = us.Utiliscope.fit, []

    def fit_until_interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(us.Utiliscope, "fit", fit_until_interrupted)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        result = run_in_process(capsys, "study", spec, "--out", out, "--no-progress")
    assert result.returncode == 130
    assert result.stderr.strip() == (
        f"utiliscope: interrupted: the study was interrupted; wrote the 2 finished row(s) of 6 to {out}, the "
        "others carry an 'Interrupted: ...' error"
    )
    table = pd.read_csv(out)
    assert len(table) == 6
    assert table["error"].iloc[:2].isna().all() and table["mass_on_truth"].iloc[:2].notna().all()
    assert table["error"].iloc[2:].str.startswith("Interrupted: this fit did not finish").all()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------- decide
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A fit with ``[decide] rule = "robust"``: the run and the decision file it wrote."""
    folder = tmp_path_factory.mktemp("decide")
    spec, out = folder / "fit.toml", folder / "run.nc"
    spec.write_text(FINITE_FIT + '\n[decide]\nrule = "robust"\nalpha = 0.2\n')
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
        fit_problem(tomllib.loads(FINITE_FIT + f"\n[decide]\n{section}\n"))
    assert message in str(error.value)
