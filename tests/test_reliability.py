"""Issue 32's families of misuse, one table per family: each case is refused before any work with one line
naming the argument or the saved attribute (the command line: one line on stderr and exit status 2), and
nothing a user saved is replaced. (Family 1, a study on a cluster that loses tasks, is in
``tests/studies/test_faults.py``.)"""

import errno
import tempfile

import pytest
from test_cli import FINITE_FIT

from utiliscope.cli import main


def run_main(capsys, *args) -> tuple[int, str, str]:
    """``utiliscope ARGS`` in this process: exit status, stdout and stderr."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(status: int, out: str, err: str, fragment: str) -> None:
    """One line on stderr naming ``fragment``, status 2, and nothing printed: no work was started."""
    assert status == 2, (status, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("utiliscope: error: "), err
    assert fragment in lines[0], lines[0]
    assert out == "", out


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A quick finite fit saved as run.nc beside its spec s.toml."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "s.toml").write_text(FINITE_FIT)
    assert main(["fit", str(folder / "s.toml"), "--out", str(folder / "run.nc"), "--no-progress"]) == 0
    return folder / "run.nc"


# ---------------------------------------------------------------------------------------------- family 2
#: (command line, [decide] section, what the one-line error names). Paths are relative to the test's folder,
#: in which s.toml (the spec), r.nc (a copy of a run) and rep/index.html (a report) exist.
OUTPUT_CASES = [
    pytest.param(
        ["fit", "s.toml", "--out", "run.nc", "--overwrite"],
        'out = "run.nc"',
        "[decide] out",
        id="decide_out_is_the_run",
    ),
    pytest.param(
        ["fit", "s.toml", "--out", "run.nc", "--overwrite"],
        'out = "s.toml"',
        "[decide] out",
        id="decide_out_is_the_spec",
    ),
    pytest.param(
        ["fit", "s.toml", "--out", "run.nc"],
        'out = "missing/d.json"',
        "the folder of [decide] out",
        id="decide_out_folder_missing_before_the_fit",
    ),
    pytest.param(["fit", "s.toml", "--out", "s.toml", "--overwrite"], None, "is the spec", id="fit_out_spec"),
    pytest.param(
        ["decide", "r.nc", "--out", "r.nc", "--overwrite"], None, "is the run", id="decide_out_is_the_run"
    ),
    pytest.param(["report", "r.nc", "--out", "rep"], None, "already holds a report", id="report_keeps_a_report"),
    pytest.param(["report", "r.nc", "--out", "r.nc"], None, "is the run", id="report_out_is_the_run"),
    pytest.param(["study", "s.toml", "--out", "s.toml", "--overwrite"], None, "is the spec", id="study_out_spec"),
]


@pytest.mark.parametrize(("command", "decide", "fragment"), OUTPUT_CASES)
def test_no_output_replaces_a_run_a_spec_or_a_report(
    command, decide, fragment, saved_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    spec = FINITE_FIT + (f"\n[decide]\n{decide}\n" if decide else "")
    (tmp_path / "s.toml").write_text(spec)
    (tmp_path / "r.nc").write_bytes(saved_run.read_bytes())
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "index.html").write_text("an earlier report")
    before = {path.name: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert_refused(*run_main(capsys, *command), fragment)
    after = {path.name: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before


def test_decide_out_is_resolved_against_the_specs_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "specs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "specs" / "s.toml").write_text(FINITE_FIT + '\n[decide]\nout = "d.json"\n')
    monkeypatch.chdir(tmp_path / "elsewhere")
    status, _, err = run_main(capsys, "fit", "../specs/s.toml", "--out", "run.nc", "--no-progress")
    assert status == 0, err
    assert (tmp_path / "specs" / "d.json").is_file()
    assert not (tmp_path / "elsewhere" / "d.json").exists()


def test_report_replaces_a_report_with_overwrite(saved_run, tmp_path, capsys):
    (tmp_path / "index.html").write_text("an earlier report")
    status, _, err = run_main(capsys, "report", saved_run, "--out", tmp_path, "--overwrite")
    assert status == 0, err
    assert "an earlier report" not in (tmp_path / "index.html").read_text()


# ---------------------------------------------------------------------------------------------- family 3
def read_only_temporary_file(*args, **kwargs):
    """``tempfile.TemporaryFile`` on a read-only file system (tests run as root, whom permissions do not stop)."""
    raise OSError(errno.EROFS, "Read-only file system")


UNWRITABLE_CASES = [
    pytest.param(["fit", "s.toml", "--out", "run.nc"], id="fit"),
    pytest.param(["study", "s.toml", "--out", "table.csv"], id="study"),
    pytest.param(["decide", "r.nc", "--out", "p.json"], id="decide"),
    pytest.param(["report", "r.nc", "--out", "rep"], id="report"),
]


@pytest.mark.parametrize("command", UNWRITABLE_CASES)
def test_an_unwritable_output_is_refused_before_the_work(command, saved_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(FINITE_FIT)
    (tmp_path / "r.nc").write_bytes(saved_run.read_bytes())
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only_temporary_file)
    assert_refused(*run_main(capsys, *command), "Read-only file system")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["r.nc", "s.toml"]


def _study(fit_kwargs):
    """A serial study whose factories fail (the study would return the rows' errors): raising is a refusal of
    the settings before any fit."""
    import utiliscope as us

    def never_called(*args):
        raise AssertionError("a fit started")

    return us.diagnostics.recovery_study(never_called, never_called, 2, client="serial", fit_kwargs=fit_kwargs)


#: (fit_kwargs, error type, what the message names).
STUDY_SETTINGS_CASES = [
    pytest.param({"max_draws": -1}, ValueError, "max_draws", id="negative_max_draws"),
    pytest.param({"batch_size": 0}, ValueError, "batch_size", id="zero_batch"),
    pytest.param({"n_steps": 2.5}, TypeError, "n_steps", id="fractional_steps"),
    pytest.param({"target_mcse": -0.1}, ValueError, "target_mcse", id="negative_target"),
    pytest.param({"max_drawz": 10}, TypeError, "max_drawz", id="unknown_key"),
    pytest.param({"sampler": "smc", "cores": 2}, TypeError, "cores", id="pymc_option_without_pymc"),
]


@pytest.mark.parametrize(("fit_kwargs", "error", "fragment"), STUDY_SETTINGS_CASES)
def test_a_studys_fit_settings_are_refused_before_any_fit(fit_kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        _study(fit_kwargs)


def test_a_study_passes_unknown_keys_to_pymc():
    from utiliscope.models.many_fits import check_many_fits

    assert check_many_fits({"sampler": "pymc", "cores": 2, "max_draws": 5})["cores"] == 2
