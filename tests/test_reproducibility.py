"""The same seed gives bit-identical results: demonstrations, sampled g, fits (PyMC and nutpie) and studies.

Two runs are compared with ``xarray.Dataset.identical`` group by group, after dropping what measures the clock
rather than the draws (:data:`TIMING_VARIABLES` in ``sample_stats`` and :data:`TIMING_ATTRS` on every group and on
the InferenceData itself); everything else (values, coordinates, dtypes, other attributes) must match exactly.
A run on 2 cores must match a run on 1 core: each chain has its own seed, whichever process runs it.
"""

from __future__ import annotations

import importlib.util
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import utiliscope as us

#: sample_stats variables that time the sampler (PyMC's and nutpie's names); they differ run to run.
TIMING_VARIABLES = ("perf_counter_diff", "perf_counter_start", "process_time_diff")
#: Attributes stamped with the wall clock or the elapsed time.
TIMING_ATTRS = ("created_at", "sampling_time")
#: The 6-state gridworld of tests/models/test_utiliscope.py.
WORLD = us.worlds.gridworld(["S.a", "b.c"], slip=0.1)
LIBRARY = us.priors.UtilityLibrary.from_features(WORLD.features, max_terms=1, feature_names=WORLD.feature_names)
AGENT = us.agents.Boltzmann(LIBRARY.rewards[LIBRARY.index("+a")], beta=4.0)


def _without_timing(dataset):
    dataset = dataset.drop_vars([v for v in TIMING_VARIABLES if v in dataset.variables])
    dataset.attrs = {k: v for k, v in dataset.attrs.items() if k not in TIMING_ATTRS}
    return dataset


def assert_identical(first: az.InferenceData, second: az.InferenceData) -> None:
    """Every group identical (values, coords, dtypes, attrs) once the timing fields are dropped."""
    assert first.groups() == second.groups()
    for group in first.groups():
        a, b = _without_timing(first[group]), _without_timing(second[group])
        assert a.identical(b), f"group {group} differs"
    strip = {k: v for k, v in first.attrs.items() if k not in TIMING_ATTRS}
    assert strip == {k: v for k, v in second.attrs.items() if k not in TIMING_ATTRS}


def test_timing_fields_are_the_only_exclusions():
    """The comparison itself can fail: a changed draw is caught, a changed timing field is not."""
    posterior = {"x": np.arange(6.0).reshape(2, 3)}
    stats = {"perf_counter_diff": np.ones((2, 3)), "diverging": np.zeros((2, 3), dtype=bool)}
    first = az.from_dict(posterior=posterior, sample_stats=stats)
    second = first.copy()
    second.sample_stats["perf_counter_diff"] = second.sample_stats["perf_counter_diff"] + 1.0
    second.posterior.attrs["created_at"] = "another time"
    assert_identical(first, second)
    second.posterior["x"][0, 0] = np.nextafter(0.0, 1.0)
    with pytest.raises(AssertionError, match="group posterior differs"):
        assert_identical(first, second)


def test_demonstrations():
    first, second = (AGENT.demonstrate(WORLD, n_trajectories=20, horizon=8, seed=11) for _ in range(2))
    assert np.array_equal(first.counts, second.counts)
    assert len(first.trajectories) == len(second.trajectories) == 20
    for a, b in zip(first.trajectories, second.trajectories, strict=True):
        assert a.world == b.world and np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    other = AGENT.demonstrate(WORLD, n_trajectories=20, horizon=8, seed=12)
    assert not np.array_equal(other.counts, first.counts)


@pytest.mark.parametrize(
    ("method", "options"),
    [("monte_carlo", {"n_samples": 200}), ("gaussian", {"n_samples": 200}), ("importance", {"budget": 6000})],
)
def test_sampled_g(method, options):
    """Bit-identical g and se for the same seed; another seed changes them (the seed is used)."""
    world = us.worlds.garnet(10, 3, 3, seed=2)  # 3^10 = 59,049 policies: importance samples, not enumerates
    agent = us.agents.Boltzmann(np.random.default_rng(3).standard_normal(10), beta=0.5)
    policy, reward = agent.policy(world), agent.reward_table(world)

    def g(seed):
        return us.intelligence(world, policy, reward, method=method, seed=seed, return_se=True, **options)

    first = g(5)
    assert first == g(5)
    assert np.all(np.isfinite(first))
    assert first != g(6)


@pytest.fixture(scope="module")
def dirichlet_scope():
    demos = AGENT.demonstrate(WORLD, n_trajectories=10, horizon=6, seed=0)
    return us.Utiliscope(
        WORLD, us.WorldModel.from_demonstrations(demos), LIBRARY, us.likelihoods.AsymmetricLaplace(observed=3.0)
    )


def _fit(scope, sampler: str = "pymc", **kwargs) -> az.InferenceData:
    with warnings.catch_warnings():
        # Tiny runs: R-hat and ESS warnings say nothing about reproducibility.
        warnings.simplefilter("ignore", UserWarning)
        return scope.fit(draws=20, tune=20, chains=2, seed=17, sampler=sampler, progressbar=False, **kwargs)


def test_exact_draws():
    """Finite world model: i.i.d. draws from the exact posterior, no MCMC."""
    policies = np.stack([AGENT.policy(WORLD), np.full((WORLD.n_states, WORLD.n_actions), 0.2)])
    scope = us.Utiliscope(
        WORLD, us.WorldModel.from_policies(policies), LIBRARY, us.likelihoods.Normal(observed=3.0)
    )
    assert_identical(_fit(scope), _fit(scope))


@pytest.mark.slow
def test_pymc_fit_on_one_and_two_cores(dirichlet_scope):
    # With JAX running (the nuts extra), chain processes must not be forked from this threaded process.
    if importlib.util.find_spec("jax") is not None:
        importlib.import_module("jax").numpy.zeros(1).block_until_ready()
    first = _fit(dirichlet_scope, cores=1)
    assert "sample_stats" in first.groups()
    assert_identical(first, _fit(dirichlet_scope, cores=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_identical(first, _fit(dirichlet_scope, cores=2))
    assert not [w for w in caught if "fork" in str(w.message)]


@pytest.mark.slow
def test_blackjax_fit(dirichlet_scope):
    first = _fit(dirichlet_scope, sampler="blackjax")
    assert "sample_stats" in first.groups()
    assert_identical(first, _fit(dirichlet_scope, sampler="blackjax"))


@pytest.mark.slow
def test_nutpie_fit(dirichlet_scope):
    pytest.importorskip("nutpie")
    first = _fit(dirichlet_scope, sampler="nutpie")
    assert_identical(first, _fit(dirichlet_scope, sampler="nutpie"))


def _agent_factory(i, rng):
    entry = int(rng.integers(1, len(LIBRARY)))
    return us.agents.Boltzmann(LIBRARY.rewards[entry], beta=float(rng.uniform(2.0, 6.0))), WORLD


def _scope_factory(agent, worlds, setting, rng):
    """Demonstrations drawn with the study's rng, fitted exactly against a finite world model (instant)."""
    demos = agent.demonstrate(worlds, n_trajectories=5, horizon=5, seed=rng)
    candidates = np.stack([agent.policy(worlds), us.WorldModel.from_demonstrations(demos).mean()])
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_policies(candidates),
        LIBRARY.with_simplicity_weight(setting["lam"]),
        us.likelihoods.Normal(observed=agent.true_intelligence(worlds) + rng.normal(), sigma=2.0),
    )


@pytest.mark.slow
def test_study():
    def run():
        return us.diagnostics.recovery_study(
            _agent_factory,
            _scope_factory,
            3,
            [{"lam": 0.0}, {"lam": 1.0}],
            seed=4,
            client="serial",
            fit_kwargs={"draws": 50, "chains": 1},
            progressbar=False,
        )

    first = run()
    assert first["error"].isna().all() and len(first) == 6
    pd.testing.assert_frame_equal(first, run(), check_exact=True)
