"""Issue 32's families of misuse, one table per family: each case is refused before any work with one line
naming the argument or the saved attribute (the command line: one line on stderr and exit status 2), and
nothing a user saved is replaced. (Family 1, a study on a cluster that loses tasks, is in
``tests/studies/test_faults.py``.)"""

import errno
import re
import tempfile

import numpy as np
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


# ---------------------------------------------------------------------------------------------- family 7
def _drop_posterior_of_u(idata):
    del idata.posterior["U"]


def _set_attr(key, value):
    def tamper(idata):
        idata.attrs[key] = value

    return tamper


def _negate_posterior_of_u(idata):
    idata.posterior["U"] = -idata.posterior["U"]


def _gamma_as_text(idata):
    idata.worlds.attrs["gamma"] = "0.9"


def _trim_actions(idata):
    idata.worlds = idata.worlds.isel(action=slice(0, 3))


#: (how the saved run is damaged, what the one-line error names).
DAMAGED_RUNS = [
    pytest.param(_drop_posterior_of_u, "neither the group utility_estimate nor posterior['U']", id="no_posterior"),
    pytest.param(_set_attr("utility_prior", "[1,2]"), "attrs['utility_prior']", id="prior_a_list"),
    pytest.param(_set_attr("utility_prior", "{oops"), "attrs['utility_prior']", id="prior_not_json"),
    pytest.param(_negate_posterior_of_u, "posterior['U'] holds -", id="negative_probabilities"),
    pytest.param(_gamma_as_text, "'gamma' is '0.9'", id="gamma_a_text"),
    pytest.param(_trim_actions, "group worlds has 3 actions but its group posterior has 5", id="trimmed_actions"),
]
#: What ``from_idata`` reads (the attributes of the model's settings and the worlds, not the posterior).
DAMAGED_SETTINGS = [
    pytest.param(_set_attr("likelihood", "{oops"), "attrs['likelihood']", id="likelihood_not_json"),
    pytest.param(_set_attr("seed", "zero"), "attrs['seed']", id="seed_not_a_number"),
    pytest.param(_set_attr("world_model", '{"kind": "dirichlet"}'), "attrs['world_model']", id="world_model_cut"),
    pytest.param(_set_attr("policy_prior", "[]"), "attrs['policy_prior']", id="policy_prior_a_list"),
    *(case for case in DAMAGED_RUNS if case.id not in ("no_posterior", "negative_probabilities")),
]


def _damaged(saved_run, tamper):
    import utiliscope as us

    idata = us.load(saved_run)
    tamper(idata)
    return idata


@pytest.mark.parametrize(("tamper", "fragment"), DAMAGED_RUNS)
def test_a_damaged_run_is_one_error_naming_the_piece(tamper, fragment, saved_run, tmp_path, capsys):
    import utiliscope as us
    from utiliscope._saved import DamagedRunError

    idata = _damaged(saved_run, tamper)
    with pytest.raises(DamagedRunError, match=re.escape(fragment)):
        us.diagnostics.decide_fit(idata)
    path = tmp_path / "damaged.nc"
    us.save(idata, path)
    assert_refused(*run_main(capsys, "decide", path, "--out", tmp_path / "p.json"), fragment)
    status, _, err = run_main(capsys, "report", path, "--out", tmp_path / "rep")
    assert status == 2 and len(err.splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "rep" / "index.html").exists()


@pytest.mark.parametrize(("tamper", "fragment"), DAMAGED_SETTINGS)
def test_from_idata_names_the_damaged_attribute(tamper, fragment, saved_run):
    import utiliscope as us
    from utiliscope._saved import DamagedRunError

    with pytest.raises(DamagedRunError, match=re.escape(fragment)):
        us.Utiliscope.from_idata(_damaged(saved_run, tamper))


# ---------------------------------------------------------------------------------------------- family 8
def test_policy_loss_is_scale_free_up_to_the_largest_floats():
    import numpy as np

    import utiliscope as us

    world = us.worlds.garnet(4, 2, 2, seed=0)
    reward = np.arange(4.0)
    policy = np.random.default_rng(0).dirichlet(np.ones(2), size=4)
    loss = us.diagnostics.policy_loss(world, policy, reward)
    assert loss > 0 and loss != pytest.approx(1.0)
    for scale in (1e-300, 1e300, 1e308 / 3):
        assert us.diagnostics.policy_loss(world, policy, reward * scale) == pytest.approx(loss, rel=1e-9)


def test_a_library_scaled_near_the_largest_floats_has_no_false_repeats():
    import warnings

    import utiliscope as us

    world = us.worlds.gridworld(["S.a", "b.c"])
    library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        us.priors.UtilityLibrary(library.rewards * 1e300, library.description_bits)


#: (call, error type, what the message names).
MISUSE_CASES = [
    pytest.param(lambda scope, closed: scope.decide({}), TypeError, "idata is a dict", id="decide_a_dict"),
    pytest.param(
        lambda scope, closed: scope.utility_posterior({}), TypeError, "idata is a dict", id="posterior_of_a_dict"
    ),
    pytest.param(
        lambda scope, closed: us_sbc(scope, closed),
        ValueError,
        "client is a distributed.Client that is closed",
        id="closed_client",
    ),
]


def us_sbc(scope, client):
    import utiliscope as us

    return us.diagnostics.sbc(scope, 2, client=client, progressbar=False)


@pytest.fixture(scope="module")
def closed_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        client = Client(cluster, set_as_default=False)
        client.close()
        yield client


@pytest.mark.parametrize(("call", "error", "fragment"), MISUSE_CASES)
def test_misuse_is_one_clear_error(call, error, fragment, worlds, library, closed_client):
    import numpy as np

    import utiliscope as us

    policies = np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(2, worlds.n_states))
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.Normal(observed=3.0)
    )
    with pytest.raises(error, match=re.escape(fragment)):
        call(scope, closed_client)


# ---------------------------------------------------------------------------------------------- family 4
def _log_weights(kind: str):
    import numpy as np

    rng = np.random.default_rng(32)
    n = 2000
    return {
        # As the quickstart with 10,000 demonstrations: ESS 1,999 of 2,000, log weights spanning 0.17, a
        # Pareto-shaped spread within it that ArviZ's k̂ (0.80) reads as a heavy tail.
        "all_but_equal": 0.17 * np.minimum(1.0, 0.0005 / rng.uniform(size=n)),
        # Exact g of near-deterministic policies: few distinct weights, the largest tied.
        "tied": rng.choice([0.0, -3.0, -8.0], size=n, p=[0.05, 0.25, 0.7]),
        # Weights 1/u, u ~ U(0, 1): a Pareto tail of shape k = 1.
        "heavy_tail": -np.log(rng.uniform(size=n)),
        # Log-normal weights of spread 0.5: a light tail.
        "light_tail": rng.normal(0.0, 0.5, n),
    }[kind]


#: (log weights, whether k̂ is judged, the bounds it must lie in when it is).
PARETO_CASES = [
    pytest.param("all_but_equal", False, None, id="all_but_equal"),
    pytest.param("tied", False, None, id="tied"),
    pytest.param("heavy_tail", True, (0.7, 1.5), id="heavy_tail"),
    pytest.param("light_tail", True, (-1.0, 0.5), id="light_tail"),
]


@pytest.mark.parametrize(("kind", "judged", "bounds"), PARETO_CASES)
def test_pareto_k_is_judged_only_where_its_fit_means_something(kind, judged, bounds):
    import math

    import arviz as az

    from utiliscope.models.iid_engine import MAX_PARETO_K, MIN_IMPORTANCE_ESS, ImportanceRun, weight_diagnostics

    log_weights = _log_weights(kind)
    if kind == "all_but_equal":  # the wolf: k̂ fitted regardless would fail these weights
        assert az.psislw(log_weights - log_weights.max())[1] > MAX_PARETO_K
    ess, k = weight_diagnostics(log_weights)
    assert math.isnan(k) != judged, k
    if judged:
        assert bounds[0] < k < bounds[1]
    run = ImportanceRun(log_weights, None, None, ess, k, 2000, "")
    # The trust rule of the iid engine: all-but-equal and tied weights with a large ESS are trusted.
    assert run.trustworthy(None) == (not k > MAX_PARETO_K and ess >= MIN_IMPORTANCE_ESS)
    if not judged and ess >= MIN_IMPORTANCE_ESS:
        assert run.trustworthy(None)


# ---------------------------------------------------------------------------------------------- family 5
def _dirichlet_scope(concentration: float = 1.0):
    import numpy as np

    import utiliscope as us

    world = us.worlds.gridworld(["S.a", "b.c"], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1)
    alpha = np.full((world.n_states, world.n_actions), concentration)
    return us.Utiliscope(world, us.WorldModel.dirichlet(alpha), library, us.likelihoods.Normal(observed=3.0))


#: (fit's arguments, what the ValueError names) for SMC sizes refused before sampling.
SMC_SIZE_CASES = [
    pytest.param({"draws": 2, "chains": 2}, "draws is 2; SMC needs at least 50", id="two_particles"),
    pytest.param({"draws": 1, "chains": 4}, "draws is 1; SMC needs at least 50", id="one_particle"),
    pytest.param({"draws": 3 * 10**6, "chains": 1}, "SMC takes at most 200,000", id="three_million"),
]


@pytest.mark.parametrize(("arguments", "fragment"), SMC_SIZE_CASES)
def test_smc_refuses_particle_counts_it_cannot_answer_with(arguments, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        _dirichlet_scope().fit(sampler="smc", progressbar=False, **arguments)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        _study({"sampler": "smc", **arguments})


@pytest.mark.filterwarnings("ignore:the sampler's diagnostics failed")  # R-hat of near-deterministic pi
def test_smc_with_a_vanishing_concentration_agrees_with_iid():
    import numpy as np

    scope = _dirichlet_scope(1e-200)
    iid = scope.utility_posterior(scope.fit(seed=0, sampler="iid", draws=100, chains=2, progressbar=False))
    idata = scope.fit(seed=0, sampler="smc", draws=200, chains=4, progressbar=False)
    smc = scope.utility_posterior(idata)
    assert np.isfinite(smc.values).all()
    # Agreement within 6 of SMC's MCSEs, or 0.03 where the chains happen to agree closely.
    margin = np.maximum(6 * idata.utility_estimate["mcse"].values, 0.03)
    assert (np.abs(smc.values - iid.values) < margin).all(), (smc.values, iid.values)


def _run_importance(monkeypatch, **settings):
    """run_importance on a cheap target (a log weight uniform on [0, 1], two utilities), counting how often the
    stopping rule reads every weight."""
    import numpy as np

    from utiliscope.models import iid_engine

    calls = []
    diagnostics = iid_engine.weight_diagnostics
    monkeypatch.setattr(iid_engine, "weight_diagnostics", lambda w: calls.append(w.size) or diagnostics(w))

    def draw(n, rng):
        return rng.uniform(size=n)

    def evidence(x):
        return x, np.stack([x, 1.0 - x], axis=1)

    return iid_engine.run_importance(draw, evidence, 0, **settings), calls


def test_small_batches_read_the_weights_once_per_default_batch(monkeypatch):
    from utiliscope.models.iid_engine import DEFAULT_BATCH

    run, calls = _run_importance(monkeypatch, batch_size=1, target_mcse=None, max_draws=5 * DEFAULT_BATCH)
    # One reading per DEFAULT_BATCH draws (and the run's own at the end), not one per draw.
    assert len(calls) <= run.n_draws // DEFAULT_BATCH + 2, (len(calls), run.n_draws)


def test_the_budget_message_says_how_many_draws_were_made(monkeypatch):
    run, _ = _run_importance(monkeypatch, max_draws=1)
    assert run.stopped == "the budget of 1 draws was reached after 2000 draws (whole batches)"


# ---------------------------------------------------------------------------------------------- family 6
def _block_size(n_states: int):
    from types import SimpleNamespace

    from utiliscope.evaluation import block_size

    return block_size(SimpleNamespace(n_states=n_states, n_worlds=2))


#: (what is asked for, the error type or None, what the message names).
SIZE_CASES = [
    pytest.param(
        lambda: _dirichlet_scope().fit(draws=10**7, progressbar=False), ValueError, "lower draws", id="draws_1e7"
    ),
    pytest.param(lambda: _block_size(60_000), ValueError, "valuing a policy on 60,000 states", id="huge_world"),
    pytest.param(
        lambda: us_support_text(100 * 100, 5), ValueError, "5^10000 ≈ 10^6990 policies", id="gridworld_100x100"
    ),
]


def us_support_text(n_states: int, n_actions: int):
    import utiliscope as us

    prior = us.UniformDeterministic()
    assert prior.support_size(n_states, n_actions) == float("inf")
    return prior.support(n_states, n_actions)


@pytest.mark.parametrize(("call", "error", "fragment"), SIZE_CASES)
def test_sizes_past_the_limits_are_refused_before_allocation(call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call()


@pytest.mark.parametrize("observed", [1e7, 1e8, 1e12])
def test_a_huge_g_prime_builds_on_a_bounded_grid_and_reference(observed):
    """g′ of 1e8 bits once allocated 11.9 GiB for the likelihood's mass grid; the grid is bounded, and the
    importance proposals climb no further than log2 of ξ's support, which no policy exceeds."""
    import utiliscope as us
    from utiliscope.models.g_methods import MASS_GRID_POINTS, likelihood_mass_range

    likelihood = us.likelihoods.AsymmetricLaplace(observed=observed)
    low, high = likelihood_mass_range(likelihood)
    assert low <= observed <= high + (observed + 64) / MASS_GRID_POINTS
    world = us.worlds.gridworld(["S.a.", "b.a."], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1, max_weight=1)
    with pytest.warns(us.models.GSaturationWarning):
        scope = us.Utiliscope(world, us.WorldModel.dirichlet(np.ones((8, 5))), library, likelihood)
    assert scope.g_method == "importance"
    assert scope.estimator.target_bits <= 8 * np.log2(5) + 4


def test_large_worlds_are_valued_in_blocks_that_fit():
    from utiliscope.evaluation import BLOCK_BYTES, CHUNK

    assert _block_size(4) == CHUNK
    for n_states in (3000, 20_000):
        size = _block_size(n_states)
        assert size >= 1 and size * n_states**2 * 2 * 8 <= max(BLOCK_BYTES, n_states**2 * 2 * 8)


def test_the_command_line_reports_running_out_of_memory_in_one_line(monkeypatch, capsys):
    from utiliscope import cli

    def out_of_memory(args):
        raise MemoryError("Unable to allocate 11.9 GiB")

    monkeypatch.setattr(cli, "_fit", out_of_memory)
    status, _, err = run_main(capsys, "fit", "s.toml", "--out", "run.nc")
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("utiliscope: error: out of memory (Unable to allocate 11.9 GiB)")


def test_kish_ess_holds_for_log_weights_near_the_float_limits():
    """Log weights near −1e17 (a g′ of 1e6 bits): equal weights have an ESS of their number, never below 1."""
    import numpy as np

    from utiliscope.models.iid_engine import weight_diagnostics

    ess, _ = weight_diagnostics(np.full(2000, -1e17))
    assert ess == pytest.approx(2000)
    ess, _ = weight_diagnostics(np.array([-1e17, -1e17 - 64.0, -2e17]))
    assert ess == pytest.approx(1.0, abs=1e-12)


def test_the_quickstart_with_many_demonstrations_stays_on_iid():
    """The issue's reproducer: 10,000 demonstrations make the weights all but equal (ESS 1,999 of 2,000); a strict
    iid fit trusts them and says k̂ is not applicable instead of raising."""
    import utiliscope as us

    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    agent = us.agents.Boltzmann(library.rewards[library.index("+a-b")], beta=4.0)
    demos = agent.demonstrate(worlds, n_trajectories=10_000, horizon=12, seed=1)
    scope = us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(demos),
        library,
        us.likelihoods.AsymmetricLaplace(observed=agent.true_intelligence(worlds)),
    )
    idata = scope.fit(seed=0, sampler="iid", strict=True, progressbar=False)
    assert "Pareto k̂ = not applicable" in idata.attrs["engine_reason"]
    assert us.diagnostics.check(idata).ok
