"""The BlackJAX sampler on a JAX build of the model: right answers, data as arguments, one compile."""

import pytest

# The nuts extra (its BlackJAX is imported by utiliscope.models.jax_sampler, after JAX's CPU devices are set).
pytest.importorskip("jax")

import os
import subprocess
import sys
import threading
import time
from functools import partial
from types import SimpleNamespace

import jax
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special

import utiliscope as us
from utiliscope.counting import RTOL
from utiliscope.models import jax_sampler
from utiliscope.models.fit_settings import DEFAULT_TARGET_ACCEPT

# These tests check the sampler's mechanics on small monte_carlo references (M = 300), whose accurate range the
# posterior of g leaves; the GAccuracyWarning that says so is true, and is tested in test_nuts_g_range.py.
pytestmark = pytest.mark.filterwarnings("ignore::utiliscope.models.g_methods.GAccuracyWarning")

#: A short run: the tests that use it check compiles, shapes and data handling, not convergence (those that would
#: warn of failed diagnostics say so in a mark).
FIT = {"draws": 200, "tune": 200, "chains": 2, "progressbar": False, "sampler": "blackjax"}


@pytest.fixture(scope="module")
def demos(worlds, library):
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index("+a")], beta=3.0)
    return agent.demonstrate(worlds, n_trajectories=30, horizon=10, seed=2)


def _scope(worlds, demos, library, g_prime=4.0, seed=0):
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(demos),
        library,
        us.likelihoods.AsymmetricLaplace(observed=g_prime),
        g_method="monte_carlo",
        n_samples=300,
        seed=seed,
    )


def test_jax_erfcx_matches_scipy():
    x = np.concatenate([np.linspace(-5.0, 5.0, 101), np.geomspace(5.0, 1e6, 50)])
    out = pt.vector("x")
    fn = jax_sampler.get_jaxified_graph(inputs=[out], outputs=[pt.erfcx(out)])
    np.testing.assert_allclose(np.asarray(fn(x)[0]), special.erfcx(x), rtol=1e-11)


def test_warmup_starts_from_the_inverse_gradient_magnitude():
    """nutpie's start: 1/|d log p/dx|, which is the standard deviation of a normal started one sd from its mean."""
    sd = np.array([0.05, 1.0, 20.0])

    def log_density(values):
        return -0.5 * jax.numpy.sum(((values[0] - 1.0) / sd) ** 2) - 0.5 * jax.numpy.sum(values[1] ** 2)

    start = [jax.numpy.asarray(1.0 + sd), jax.numpy.zeros(2)]  # one sd out; the second block at its mode
    inverse_mass = np.asarray(jax_sampler.gradient_inverse_mass(jax.grad(log_density)(start)))
    np.testing.assert_allclose(inverse_mass, [*sd, 1.0, 1.0], rtol=1e-12)  # a flat coordinate keeps 1


@pytest.mark.slow
def test_warmup_adapts_the_mass_matrix_to_scales_far_from_one():
    """On a normal with standard deviations from 0.01 to 10 the warmup's diagonal inverse mass matrix comes out
    within a factor 2 of the variances (the identity is off by up to 10^4), and NUTS then needs short trees."""
    sd = np.geomspace(0.01, 10.0, 6)

    def log_density(values):
        return -0.5 * jax.numpy.sum((values[0] / sd) ** 2)

    start = [jax.numpy.asarray(sd)]
    (_, parameters), _ = jax.jit(lambda key: _staged_warmup(log_density, start).run(key, start, num_steps=300))(
        jax.random.PRNGKey(0)
    )
    ratio = np.asarray(parameters["inverse_mass_matrix"]) / sd**2
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    assert 0.3 < float(parameters["step_size"]) < 3.0
    positions, stats = jax.jit(lambda key: jax_sampler.nuts_chain(log_density, start, key, 300, 200, 0.8))(
        jax.random.PRNGKey(0)
    )
    assert 0.3 < float(stats["step_size"][0]) < 3.0
    assert float(np.mean(stats["n_steps"])) < 8.0  # 2^3 - 1: the adapted metric makes the normal isotropic
    assert positions[0].shape == (200, 6)


def _staged_warmup(log_density, start):
    """BlackJAX's public warmup with the settings of :func:`jax_sampler.nuts_chain`."""
    import blackjax
    from blackjax.adaptation.base import get_filter_adapt_info_fn
    from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule

    return blackjax.staged_adaptation(
        blackjax.nuts,
        log_density,
        metric=jax_sampler.WARMUP_METRIC,
        initial_inverse_mass_matrix=jax_sampler.gradient_inverse_mass(jax.grad(log_density)(start)),
        schedule_fn=build_growing_window_schedule,
        target_acceptance_rate=0.8,
        adaptation_info_fn=get_filter_adapt_info_fn(),
    )


@pytest.mark.slow
def test_one_kernel_chain_gives_the_draws_of_blackjax_warmup_then_nuts():
    """nuts_chain runs BlackJAX's private adaptation engine step by step around one NUTS kernel: its draws must be
    those of the public ``staged_adaptation(...).run`` followed by ``blackjax.nuts(...).step``, bit for bit."""
    import blackjax

    sd = np.geomspace(0.1, 5.0, 4)

    def log_density(values):
        return -0.5 * jax.numpy.sum((values[0] / sd) ** 2) - 0.5 * jax.numpy.sum(values[1] ** 2)

    start = [jax.numpy.asarray(sd), jax.numpy.full(2, 0.3)]

    def public(key):
        warmup_key, sample_key = jax.random.split(key)
        (state, parameters), _ = _staged_warmup(log_density, start).run(warmup_key, start, num_steps=150)
        step = blackjax.nuts(log_density, max_num_doublings=jax_sampler.MAX_TREE_DEPTH, **parameters).step

        def one_draw(state, draw_key):
            state, info = step(draw_key, state)
            return state, (state.position, info.num_integration_steps)

        return jax.lax.scan(one_draw, state, jax.random.split(sample_key, 100))[1], parameters["step_size"]

    (expected, expected_steps), step_size = jax.jit(public)(jax.random.PRNGKey(3))
    positions, stats = jax.jit(lambda key: jax_sampler.nuts_chain(log_density, start, key, 150, 100, 0.8))(
        jax.random.PRNGKey(3)
    )
    for got, want in zip(positions, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(stats["n_steps"]), np.asarray(expected_steps))
    assert np.all(np.asarray(stats["step_size"]) == float(step_size))
    # No warmup: step size 1 and the identity metric, as blackjax.nuts's defaults.
    _, untuned = jax.jit(lambda key: jax_sampler.nuts_chain(log_density, start, key, 0, 20, 0.8))(
        jax.random.PRNGKey(3)
    )
    assert np.all(np.asarray(untuned["step_size"]) == 1.0)


@pytest.mark.slow
def test_fit_agrees_with_importance_sampling_of_the_same_posterior(worlds, demos, library):
    scope = _scope(worlds, demos, library)
    idata = scope.fit(draws=1000, tune=500, chains=2, seed=1, sampler="blackjax", progressbar=False)
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "constant_data"}
    assert idata.posterior["pi"].dims == ("chain", "draw", "state", "action")
    np.testing.assert_allclose(idata.posterior["pi"].sum("action"), 1.0, atol=1e-12)
    # The same posterior by importance sampling from P(pi | WM) with weights P(g' | g(pi, U_i)), where g is the
    # model's own smoothed estimator on its own reference values (computed here with numpy).
    pis = scope.world_model.sample(20000, seed=5)
    v_pi = us.evaluation.evaluate_policies(worlds, pis, scope.rewards)
    reference = scope.estimator.reference_values
    tie = RTOL * np.maximum(np.abs(v_pi), np.abs(reference).max(axis=0))
    tau = scope.smoothing * reference.std(axis=0)
    above = (reference[None] - (v_pi - tie)[:, None]) / np.where(tau > 0, tau, 1.0)
    count = special.expit(above).sum(axis=1)
    g = np.where(tau > 1e-12 * np.abs(reference).max(axis=0), -np.log2((1 + count) / (len(reference) + 1)), 0.0)
    log_w = library.log_prior[None, :] + scope.likelihood.logp(g)
    joint = np.exp(log_w - log_w.max())
    expected = joint.sum(axis=0) / joint.sum()
    np.testing.assert_allclose(scope.utility_posterior(idata).values, expected, atol=0.03)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::utiliscope.models.SamplerWarning")
@pytest.mark.filterwarnings("ignore::utiliscope.models.GSaturationWarning")
def test_new_data_reuses_the_compiled_sampler_and_gives_the_new_posterior(worlds, demos, library):
    first, second = _scope(worlds, demos, library, g_prime=4.0), _scope(worlds, demos, library, g_prime=4.0)
    compiled, key = jax_sampler.compile_density(first.model)
    assert jax_sampler.compile_density(second.model) == (compiled, key)
    # A different reference sample of ξ is a different graph.
    assert jax_sampler.compile_density(_scope(worlds, demos, library, seed=1).model)[1] != key
    pm.set_data({"g_prime_observed": 7.0}, model=first.model)
    fresh = _scope(worlds, demos, library, g_prime=7.0)
    assert jax_sampler.compile_density(fresh.model)[1] == key
    via_set_data, via_new_model = first.fit(seed=3, **FIT), fresh.fit(seed=3, **FIT)
    np.testing.assert_array_equal(via_set_data.posterior["U"], via_new_model.posterior["U"])
    at_four = second.fit(seed=3, **FIT)
    assert not np.array_equal(at_four.posterior["U"], via_new_model.posterior["U"])
    assert np.ravel(via_new_model.observed_data["g_prime"].values).tolist() == [7.0]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::utiliscope.models.SamplerWarning")
def test_linear_prior_with_gaussian_g(worlds, demos):
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    scope = us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(demos),
        prior,
        us.likelihoods.AsymmetricLaplace(observed=4.0),
        g_method="gaussian",
        n_samples=300,
    )
    idata = scope.fit(seed=0, **FIT)
    theta = idata.posterior["U"].values.reshape(-1, 3)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, atol=1e-9)
    assert np.all(np.isfinite(idata.posterior["g"].values))
    stats = idata.sample_stats
    assert {"diverging", "energy", "lp", "tree_depth", "reached_max_treedepth"} <= set(stats.data_vars)
    report = us.diagnostics.check(idata)
    assert np.isfinite(report.sampler["min_bfmi"])


def test_extra_sampler_arguments_are_refused(worlds, demos, library):
    with pytest.raises(TypeError, match="blackjax"):
        _scope(worlds, demos, library).fit(sampler="blackjax", init="adapt_diag")


def test_jax_uses_double_precision():
    assert jax.config.jax_enable_x64


def test_many_fits_options_go_to_pymc_only():
    from utiliscope.models.fit_settings import many_fits_kwargs

    pymc = {"cores": 1, "compute_convergence_checks": False, "draws": 5, "sampler": "pymc"}
    assert many_fits_kwargs({"draws": 5}, {"sampler": "pymc"}) == pymc
    assert many_fits_kwargs({"draws": 5}, None) == {"draws": 5}  # the default sampler is BlackJAX's
    assert many_fits_kwargs({"draws": 5}, {"sampler": "blackjax"}) == {"draws": 5, "sampler": "blackjax"}
    assert many_fits_kwargs({}, {"cores": 2})["cores"] == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::utiliscope.models.SamplerWarning")
def test_a_study_compiles_once(worlds, library, monkeypatch):
    def agent_factory(i, rng):
        return us.agents.Boltzmann(library.reward_table(5)[1 + i], beta=3.0), worlds

    def scope_factory(agent, worlds, setting, rng):
        demos = agent.demonstrate(worlds, n_trajectories=20, horizon=10, seed=rng)
        return us.Utiliscope(
            worlds,
            us.WorldModel.from_demonstrations(demos),
            library,
            us.likelihoods.AsymmetricLaplace(observed=setting["g_prime"]),
            g_method="monte_carlo",
            n_samples=300,
        )

    # An empty cache: other tests may already have compiled this structure.
    monkeypatch.setattr(jax_sampler, "_COMPILED", jax_sampler.OrderedDict())
    table = us.diagnostics.recovery_study(
        agent_factory,
        scope_factory,
        n_agents=3,
        settings=[{"g_prime": 3.0}, {"g_prime": 5.0}],
        client="serial",
        fit_kwargs={"sampler": "blackjax", "draws": 100, "tune": 100},
        progressbar=False,
    )
    assert table["error"].isna().all()
    (compiled,) = jax_sampler._COMPILED.values()
    assert list(compiled.chain_runners) == [(100, 100, DEFAULT_TARGET_ACCEPT)]


# ---------------------------------------------------------------------- chains in parallel, one per device
def test_run_chains_keeps_the_order_and_never_runs_two_chains_on_one_device():
    running: dict = {}
    lock = threading.Lock()

    def run(key, start, data):
        (device,) = start.devices()
        with lock:
            running[device] = running.get(device, 0) + 1
            assert running[device] == 1, "two chains at once on one device"
        time.sleep(0.02)
        with lock:
            running[device] -= 1
        return np.asarray(start) * 2 + data

    done = []
    chains = [(jax.random.PRNGKey(i), np.array(float(i))) for i in range(7)]
    devices = jax.devices("cpu")
    results = jax_sampler.run_chains(run, chains, 1.0, devices, done.append)
    assert [float(r) for r in results] == [2.0 * i + 1.0 for i in range(7)]
    assert done == [1] * 7


def test_run_chains_raises_a_chains_error():
    def run(key, start, data):
        if float(start) == 2.0:
            raise FloatingPointError("chain 2 failed")
        return start

    chains = [(jax.random.PRNGKey(i), np.array(float(i))) for i in range(4)]
    with pytest.raises(FloatingPointError, match="chain 2 failed"):
        jax_sampler.run_chains(run, chains, None, jax.devices("cpu"))


def test_one_cpu_device_per_core_unless_the_user_chose():
    from utiliscope.models import jax_setup

    expected = min(jax_setup.usable_cores(), jax_setup.MAX_HOST_DEVICES)
    assert len(jax.devices("cpu")) == expected
    assert not jax_setup.request_host_devices()  # JAX has started: too late to change, and nothing is changed


FIT_SCRIPT = """
import sys, warnings
import numpy as np
import jax
if sys.argv[1] == "one":
    jax.config.update("jax_num_cpu_devices", 1)
import utiliscope as us
world = us.worlds.gridworld(["S.a", "b.c"], slip=0.1)
library = us.priors.UtilityLibrary.from_features(world.features)
demos = us.agents.Boltzmann(library.rewards[1], beta=3.0).demonstrate(world, 20, 8, seed=0)
scope = us.Utiliscope(world, us.WorldModel.from_demonstrations(demos), library,
                      us.likelihoods.AsymmetricLaplace(observed=3.0), g_method="monte_carlo", n_samples=200)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    idata = scope.fit(draws=30, tune=30, chains=3, seed=4, progressbar=False, sampler="blackjax")
np.save(sys.argv[2], idata.posterior["pi"].values)
print(len(jax.devices("cpu")))
"""


@pytest.fixture(scope="module")
def fit_processes(tmp_path_factory):
    """``FIT_SCRIPT`` in three new processes: one CPU device per core twice with one fresh compile cache (the
    second finds the first's executables on disk), then one CPU device with this session's cache. Each run's
    draws, its device count and the fresh cache's JAX entries after it; the tests below share them."""
    folder = tmp_path_factory.mktemp("fit_processes")
    script = folder / "fit.py"
    script.write_text(FIT_SCRIPT)
    fresh = {key: value for key, value in os.environ.items() if not key.startswith("JAX_COMPILATION_CACHE")}
    fresh.update(
        PYTENSOR_FLAGS=f"base_compiledir={folder / 'pytensor'}", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"
    )
    runs = []
    for index, (mode, env) in enumerate([("default", fresh), ("default", fresh), ("one", dict(os.environ))]):
        out = folder / f"{index}.npy"
        result = subprocess.run(
            [sys.executable, str(script), mode, str(out)], capture_output=True, text=True, check=True, env=env
        )
        entries = sorted(path.name for path in (folder / "pytensor").glob("compiledir_*/jax/*"))
        runs.append(SimpleNamespace(draws=np.load(out), devices=int(result.stdout.split()[-1]), entries=entries))
    return runs


@pytest.mark.slow
def test_draws_do_not_depend_on_the_number_of_devices(fit_processes):
    """The same fit on one CPU device (chains one after the other) and on one per core (in parallel)."""
    per_core, _, one = fit_processes
    assert one.devices == 1
    np.testing.assert_array_equal(one.draws, per_core.draws)


def test_the_persistent_compilation_cache_sits_beside_pytensors_unless_the_user_chose(tmp_path, monkeypatch):
    import pytensor

    from utiliscope.models import jax_setup

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        pytest.skip("this run's JAX_COMPILATION_CACHE_DIR is the user's choice")
    assert jax.config.jax_compilation_cache_dir == os.path.join(pytensor.config.compiledir, "jax")
    assert jax.config.jax_compilation_cache_max_size == jax_setup.CACHE_MAX_BYTES
    assert not jax_setup.use_persistent_cache(tmp_path)  # a directory is set: left as it is
    assert jax.config.jax_compilation_cache_dir == os.path.join(pytensor.config.compiledir, "jax")


@pytest.mark.slow
def test_a_new_process_reuses_the_executables_of_a_structure_fitted_before(fit_processes):
    first, second, _ = fit_processes
    assert any(name.startswith("jit__run_chain") for name in first.entries)
    assert second.entries == first.entries  # every executable of the second process came from the disk cache
    np.testing.assert_array_equal(first.draws, second.draws)


@pytest.mark.slow
def test_a_refit_of_one_model_does_not_rebuild_its_density(worlds, demos, library, monkeypatch):
    model = _scope(worlds, demos, library).model
    first, key = jax_sampler.compile_density(model)
    calls = []
    fingerprint = jax_sampler.graph_fingerprint
    monkeypatch.setattr(jax_sampler, "graph_fingerprint", lambda *args: calls.append(args) or fingerprint(*args))
    pm.set_data({"g_prime_observed": 5.0}, model=model)
    assert jax_sampler.compile_density(model) == (first, key)
    assert calls == []  # same variables, same data shapes: the memo answers
    other = _scope(worlds, demos, library).model
    assert jax_sampler.compile_density(other) == (first, key)  # a new object of the same structure: hashed
    assert len(calls) == 1


@pytest.mark.slow
def test_fits_in_threads_look_up_and_fill_the_cache_one_at_a_time(worlds, demos, library, monkeypatch):
    models = [_scope(worlds, demos, library, seed=seed).model for seed in (0, 1, 2)]
    inside, most = [0], [0]
    lock = threading.Lock()
    fingerprint = jax_sampler.graph_fingerprint

    def slow_fingerprint(*args):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.2)
        with lock:
            inside[0] -= 1
        return fingerprint(*args)

    monkeypatch.setattr(jax_sampler, "graph_fingerprint", slow_fingerprint)
    threads = [threading.Thread(target=jax_sampler.compile_density, args=(model,)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    assert all(model in jax_sampler._BY_MODEL for model in models)


@pytest.mark.slow
def test_the_cache_releases_the_executables_of_structures_beyond_its_size(worlds, demos, library, monkeypatch):
    # Without the release, JAX's caches kept every structure's executables and a long study of distinct
    # structures ran out of memory maps.
    monkeypatch.setattr(jax_sampler, "_COMPILED", jax_sampler.OrderedDict())
    monkeypatch.setattr(jax_sampler, "MAX_COMPILED", 1)
    fit = {**FIT, "draws": 20, "tune": 20, "seed": 3}
    # Twenty draws show the cache at work, not a converged posterior: each fit says its diagnostics failed.
    short = partial(pytest.warns, us.models.SamplerWarning, match="diagnostics failed")
    first_scope = _scope(worlds, demos, library, seed=0)
    with short():
        first_draws = first_scope.fit(**fit).posterior["g"].values
    (first,) = jax_sampler._COMPILED.values()
    (runner,) = first.chain_runners.values()
    assert runner._cache_size() >= 1
    with short():
        _scope(worlds, demos, library, seed=1).fit(**fit)  # other reference draws: another structure
    assert first not in jax_sampler._COMPILED.values()
    assert len(jax_sampler._COMPILED) == 1
    assert runner._cache_size() == 0
    assert first.chain_runners == {}
    # The released structure compiles again when needed and gives the same draws.
    with short():
        np.testing.assert_array_equal(first_scope.fit(**fit).posterior["g"].values, first_draws)
