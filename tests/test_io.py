"""Saved runs: bit-exact round trips, refusal to overwrite, atomic writes that survive a crash, versions."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import arviz as az
import numpy as np
import pytest

import utiliscope as us
from utiliscope.io import load, save

ROOT = Path(__file__).resolve().parents[1]


def _assert_identical(a: az.InferenceData, b: az.InferenceData) -> None:
    """Same groups, each dataset identical (values, coords, attrs) and every array equal to the last bit."""
    assert set(a.groups()) == set(b.groups())
    assert dict(a.attrs) == dict(b.attrs)
    for group in a.groups():
        left, right = a[group], b[group]
        assert left.identical(right), group
        for name, variable in left.variables.items():
            other = right.variables[name]
            assert variable.dtype.kind == other.dtype.kind, (group, name)
            if variable.dtype.kind in "biuf":
                assert variable.values.tobytes() == other.values.astype(variable.dtype).tobytes(), (group, name)


def _no_temporaries(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture(scope="module")
def fit():
    """A real fit (exact draws of a finite world model) with every group a Utiliscope fit has."""
    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=1, feature_names=worlds.feature_names
    )
    policies = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, worlds.n_states))
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.Normal(observed=2.5)
    )
    return scope.fit(draws=50, chains=2, seed=0, progressbar=False)


@pytest.fixture
def sampled():
    """Hand-built draws with sampler statistics (booleans), string coordinates, NaN, -0.0 and group attrs."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 30, 3))
    x[0, 0, 0], x[0, 1, 0] = np.nan, -0.0
    return az.from_dict(
        posterior={"x": x, "g": np.full((2, 30), np.inf)},
        sample_stats={"diverging": rng.uniform(size=(2, 30)) < 0.1, "energy": rng.normal(size=(2, 30))},
        observed_data={"g_prime": np.array(2.5)},
        coords={"utility": ["const", "+a-b", "−c"]},
        dims={"x": ["utility"]},
        attrs={"utiliscope_version": us.__version__, "likelihood": '{"name": "normal"}', "seed": 3},
    )


def test_a_fit_round_trips_to_the_last_bit(tmp_path, fit):
    path = save(fit, tmp_path / "fit.nc")
    assert path == tmp_path / "fit.nc"
    back = load(path)
    _assert_identical(fit, back)
    assert {"posterior", "observed_data", "constant_data"} <= set(back.groups())
    assert back.attrs["likelihood"] == fit.attrs["likelihood"]
    _no_temporaries(tmp_path)


def test_sampler_stats_nan_and_strings_round_trip(tmp_path, sampled):
    back = load(save(sampled, tmp_path / "s.nc"))
    _assert_identical(sampled, back)
    assert back.sample_stats["diverging"].dtype == bool
    assert np.signbit(back.posterior["x"].values[0, 1, 0])


def test_version_is_added_when_missing_without_changing_the_input(tmp_path, sampled):
    del sampled.attrs["utiliscope_version"]
    back = load(save(sampled, tmp_path / "v.nc"))
    assert back.attrs["utiliscope_version"] == us.__version__
    assert "utiliscope_version" not in sampled.attrs


def test_existing_file_is_refused_unless_overwrite(tmp_path, fit, sampled):
    path = save(fit, tmp_path / "fit.nc")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"fit\.nc.*overwrite=True"):
        save(sampled, path)
    assert path.read_bytes() == before
    save(sampled, path, overwrite=True)
    _assert_identical(sampled, load(path))


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, fit, sampled, error):
    path = save(fit, tmp_path / "fit.nc")
    before = path.read_bytes()

    def crash_midway(self, filename, *args, **kwargs):
        Path(filename).write_bytes(before[: len(before) // 2])  # half a file, then the crash
        raise error

    monkeypatch.setattr(az.InferenceData, "to_netcdf", crash_midway)
    with pytest.raises(type(error)):
        save(sampled, path, overwrite=True)
    assert path.read_bytes() == before
    _no_temporaries(tmp_path)


#: A child process imports only utiliscope.io (a stub parent package skips importing PyMC): a few seconds less.
CHILD_PREAMBLE = f"""
import os, sys, time, types
package = types.ModuleType("utiliscope"); package.__path__ = [{str(ROOT / "utiliscope")!r}]
sys.modules["utiliscope"] = package
import arviz as az
import numpy as np
from utiliscope.io import load, save
"""


def _writer_stopped_mid_save(source, path) -> subprocess.Popen:
    """A child process saving ``load(source)`` over ``path``, paused after writing its temporary file (checked to
    exist) and before publishing it: the moment to signal it."""
    script = CHILD_PREAMBLE + textwrap.dedent(
        f"""
        write = az.InferenceData.to_netcdf

        def slow(self, filename, *args, **kwargs):
            write(self, filename, *args, **kwargs)
            print("written", flush=True)
            time.sleep(60)

        az.InferenceData.to_netcdf = slow
        save(load({str(source)!r}), {str(path)!r}, overwrite=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
        assert [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]  # mid-way: the temporary exists
    except BaseException:
        child.kill()
        child.stdout.close()
        raise
    return child


@pytest.mark.slow
def test_a_killed_writer_leaves_the_old_file_intact(tmp_path, fit, sampled):
    """SIGKILL a writer mid-way: ``path`` still holds the old fit (a hidden temporary may stay; see io.py)."""
    path = save(fit, tmp_path / "fit.nc")
    before = path.read_bytes()
    save(sampled, tmp_path / "new.nc")
    child = _writer_stopped_mid_save(tmp_path / "new.nc", path)
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    _assert_identical(fit, load(path))


def test_saved_files_get_the_usual_permissions(tmp_path, sampled):
    umask = os.umask(0)
    os.umask(umask)
    path = save(sampled, tmp_path / "p.nc")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_load_warns_about_another_version(tmp_path, sampled):
    sampled.attrs["utiliscope_version"] = "0.0.1"
    path = save(sampled, tmp_path / "old.nc")
    with pytest.warns(UserWarning, match=r"written by utiliscope 0\.0\.1; this is utiliscope"):
        back = load(path)
    assert back.attrs["utiliscope_version"] == "0.0.1"
    plain = tmp_path / "plain.nc"
    az.from_dict(posterior={"x": np.zeros((1, 3))}).to_netcdf(str(plain))
    with pytest.warns(UserWarning, match="no 'utiliscope_version'"):
        load(plain)


def test_bad_paths_and_files_are_named(tmp_path, sampled):
    with pytest.raises(FileNotFoundError, match=r"missing\.nc"):
        load(tmp_path / "missing.nc")
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not a netCDF file")
    with pytest.raises(ValueError, match=r"garbage\.nc.*cannot be read"):
        load(garbage)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save(sampled, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(sampled, tmp_path / "no" / "such" / "fit.nc")
    with pytest.raises(TypeError, match="idata must be"):
        save({"x": 1}, tmp_path / "x.nc")


def test_save_and_load_work_after_a_distributed_client_has_closed(tmp_path, fit):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster):
        pass
    back = load(save(fit, tmp_path / "after.nc"))
    _assert_identical(fit, back)


# ---------------------------------------------------------------------------------------------- races and signals
#: A child that writes with utiliscope.io only (a stub parent package skips importing PyMC: a few seconds less).


@pytest.mark.slow
def test_two_writers_racing_to_one_new_path_never_both_succeed(tmp_path):
    """Both write their temporary file, meet, then publish: exactly one wins, the other gets FileExistsError."""
    target = tmp_path / "fit.nc"
    script = CHILD_PREAMBLE + textwrap.dedent(
        f"""
        me = sys.argv[1]
        write = az.InferenceData.to_netcdf

        def write_then_meet(self, filename, *args, **kwargs):
            write(self, filename, *args, **kwargs)
            open(os.path.join({str(tmp_path)!r}, "ready-" + me), "w").close()
            while sum(name.startswith("ready-") for name in os.listdir({str(tmp_path)!r})) < 2:
                time.sleep(0.01)

        az.InferenceData.to_netcdf = write_then_meet
        try:
            save(az.from_dict(posterior={{"x": np.full((1, 5), float(me))}}), {str(target)!r})
            print("saved")
        except FileExistsError as err:
            print("FileExistsError", err)
        """
    )
    writers = {
        me: subprocess.Popen([sys.executable, "-c", script, me], stdout=subprocess.PIPE, text=True) for me in "12"
    }
    outcomes = {me: child.communicate(timeout=120)[0].strip() for me, child in writers.items()}
    assert sorted(outcome.split()[0] for outcome in outcomes.values()) == ["FileExistsError", "saved"], outcomes
    [winner] = [me for me, outcome in outcomes.items() if outcome == "saved"]
    [loser] = [outcome for outcome in outcomes.values() if outcome != "saved"]
    assert "fit.nc" in loser and "created while this file was being written" in loser
    # The file is the winner's, complete; the loser was told and still holds its fit.
    assert load(target).posterior["x"].values.tolist() == [[float(winner)] * 5]
    _no_temporaries(tmp_path)


@pytest.mark.slow
def test_a_sigterm_during_a_save_leaves_no_temporary(tmp_path, fit, sampled):
    """SIGTERM a writer mid-way: it dies of SIGTERM as it would have, with the old file intact and no temporary."""
    path = save(fit, tmp_path / "fit.nc")
    before = path.read_bytes()
    save(sampled, tmp_path / "new.nc")
    child = _writer_stopped_mid_save(tmp_path / "new.nc", path)
    try:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGTERM
    _no_temporaries(tmp_path)
    assert path.read_bytes() == before


def test_a_sigterm_handler_of_the_caller_runs_and_the_temporary_goes(tmp_path, monkeypatch, sampled):
    """A SIGTERM handler installed before the save (one that raises) still runs, after which the temporary is
    removed; the caller's handler is back in place after the save."""

    class Terminated(Exception):
        pass

    def raise_terminated(signum, frame):
        raise Terminated

    write = az.InferenceData.to_netcdf

    def write_then_sigterm(self, filename, *args, **kwargs):
        write(self, filename, *args, **kwargs)
        signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        monkeypatch.setattr(az.InferenceData, "to_netcdf", write_then_sigterm)
        with pytest.raises(Terminated):
            save(sampled, tmp_path / "fit.nc")
        assert signal.getsignal(signal.SIGTERM) is raise_terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_writes_any_file_and_refuses_an_existing_one(tmp_path):
    from utiliscope.io import write_atomically

    path = write_atomically(tmp_path / "table.csv", lambda p: p.write_text("a,b\n1,2\n"))
    assert path.read_text() == "a,b\n1,2\n"
    with pytest.raises(FileExistsError, match=r"--out '.*table\.csv' already exists; pass --overwrite"):
        write_atomically(path, lambda p: p.write_text("new"), what="--out")
    write_atomically(path, lambda p: p.write_text("new"), overwrite=True)
    assert path.read_text() == "new"
    _no_temporaries(tmp_path)


def test_without_hard_links_an_exclusive_create_claims_the_name(tmp_path, monkeypatch, sampled):
    """A filesystem without hard links: the no-overwrite promise still holds when the file is written."""
    import errno

    def no_links(source, target):
        raise OSError(errno.EPERM, "hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    path = save(sampled, tmp_path / "fit.nc")
    _assert_identical(sampled, load(path))
    write = az.InferenceData.to_netcdf

    def someone_else_creates_it(self, filename, *args, **kwargs):
        write(self, filename, *args, **kwargs)
        (tmp_path / "late.nc").write_text("someone else's")

    monkeypatch.setattr(az.InferenceData, "to_netcdf", someone_else_creates_it)
    with pytest.raises(FileExistsError, match="created while this file was being written"):
        save(sampled, tmp_path / "late.nc")
    assert (tmp_path / "late.nc").read_text() == "someone else's"
    _no_temporaries(tmp_path)


def test_a_file_without_a_posterior_is_refused_by_name(tmp_path):
    import xarray as xr

    plain = tmp_path / "dataset.nc"
    xr.Dataset({"x": ("draw", np.arange(3.0))}).to_netcdf(plain)
    with pytest.raises(ValueError, match=r"dataset\.nc' holds no posterior"):
        load(plain)
    prior_only = tmp_path / "prior.nc"
    az.from_dict(prior={"x": np.zeros((1, 3))}).to_netcdf(str(prior_only))
    with pytest.raises(ValueError, match=r"prior\.nc' holds no posterior \(its ArviZ groups: prior\)"):
        load(prior_only)
