"""Shared test setup: a headless matplotlib, a session-wide seeded generator, small worlds, brute-force
references and Dask clusters."""

import importlib
import itertools
import os
from types import SimpleNamespace

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

import utiliscope as us

#: The one seed every random draw in the tests derives from.
SEED = 20240611


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    """A session-wide generator; tests that need reproducible draws of their own seed one from ``SEED``."""
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def two_garnets() -> us.WorldSet:
    """Two 4-state, 3-action garnets with unequal weights (A^S = 81 deterministic policies)."""
    worlds = [us.worlds.garnet(4, 3, 2, gamma=0.8, n_features=3, seed=seed) for seed in (1, 2)]
    # Both garnets draw their own features; a WorldSet needs them shared, so give both the first one's.
    shared = [us.TabularMDP(w.transitions, w.start, w.gamma, features=worlds[0].features) for w in worlds]
    return us.WorldSet(shared, weights=[0.3, 0.7])


#: The 6-cell gridworld (colours a, b, c) of most model and diagnostics tests.
LAYOUT = ["S.a", "b.c"]


@pytest.fixture(scope="session")
def worlds() -> us.WorldSet:
    """``LAYOUT`` in two worlds, slips 0.1 and 0.3 (5^6 = 15,625 deterministic policies)."""
    return us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])


@pytest.fixture(scope="session")
def library(worlds) -> us.priors.UtilityLibrary:
    """The library of at most two colour terms with weights ±1 over ``worlds``."""
    return us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, feature_names=worlds.feature_names
    )


@pytest.fixture(scope="module")
def clients():
    """A 1-worker and a 2-worker LocalCluster (threads), started once per module that uses them."""
    from distributed import Client, LocalCluster

    opened = []
    for n in (1, 2):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=False, dashboard_address=":0")
        opened.append((cluster, Client(cluster, set_as_default=False)))
    yield [client for _, client in opened]
    for cluster, client in opened:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def small_grid() -> us.TabularMDP:
    """A 2×3 gridworld with a wall, a start cell and two colours (5 free cells, 5 actions)."""
    return us.worlds.gridworld(["S.a", ".#b"], slip=0.2, gamma=0.9)


# Brute-force references, written independently of utiliscope's solvers: values from one numpy.linalg.solve per
# world and policy, deterministic policies from itertools.product, optimal Q tables from plain value iteration.
def plain_world(n_states, n_actions, seed, gamma=0.9):
    """A garnet without features, so that garnets of different seeds can share a WorldSet."""
    world = us.worlds.garnet(n_states, n_actions, 2, gamma=gamma, seed=seed)
    return us.TabularMDP(world.transitions, world.start, world.gamma)


def world_value(world, pi, r):
    """μ0ᵀ (I − γ P^pi)^{-1} r_pi for one TabularMDP; a state reward r[s] is broadcast over actions."""
    r = np.asarray(r, dtype=float)
    r = r[:, None] if r.ndim == 1 else r
    P_pi = np.einsum("sa,sat->st", pi, world.transitions)
    r_pi = (pi * r).sum(axis=1)
    v = np.linalg.solve(np.eye(world.n_states) - world.gamma * P_pi, r_pi)
    return world.start @ v


def value(worlds, pi, r):
    """V_U(pi) = Σ_e w[e] V_e(pi)."""
    worlds = us.worlds.as_world_set(worlds)
    return sum(w * world_value(world, pi, r) for w, world in zip(worlds.weights, worlds.worlds, strict=True))


def world_occupancy(world, pi):
    """d(pi)[s] = μ0ᵀ (I − γ P^pi)^{-1} for one TabularMDP."""
    P_pi = np.einsum("sa,sat->st", pi, world.transitions)
    return np.linalg.solve((np.eye(world.n_states) - world.gamma * P_pi).T, world.start)


def deterministic_tables(n_states, n_actions):
    """All A^S deterministic policies as one-hot tables, in itertools.product order (state 0 slowest)."""
    eye = np.eye(n_actions)
    return [eye[list(actions)] for actions in itertools.product(range(n_actions), repeat=n_states)]


def optimal_q(world_or_mean, r, n_iterations=3000):
    """Plain value iteration Q ← r + γ P max Q on a TabularMDP (or the averaged transitions of a WorldSet)."""
    worlds = us.worlds.as_world_set(world_or_mean)
    P = np.einsum("e,esat->sat", worlds.weights, worlds.transitions)
    q = np.zeros_like(r)
    for _ in range(n_iterations):
        q = r + worlds.gamma * np.einsum("sat,t->sa", P, q.max(axis=1))
    return q


@pytest.fixture
def brute():
    return SimpleNamespace(
        plain_world=plain_world,
        value=value,
        world_occupancy=world_occupancy,
        deterministic_tables=deterministic_tables,
        optimal_q=optimal_q,
    )


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (always on when CI=true)")


def pytest_collection_modifyitems(config, items):
    """Skip slow tests unless --slow is given or CI=true (the CI script sets it)."""
    if config.getoption("--slow") or os.environ.get("CI", "").lower() == "true":
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (CI runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


#: The packages of the ``nuts`` extra.
NUTS_EXTRA = ("jax", "blackjax", "nutpie")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Without the nuts extra, a test that fails only because it asked for a NUTS backend is skipped."""
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, ImportError) and _names_nuts(error) and _nuts_missing():
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"needs the nuts extra: {error}")
    return report


def _names_nuts(error: ImportError) -> bool:
    missing = (getattr(error, "name", None) or "").split(".")[0]
    return missing in NUTS_EXTRA or "utiliscope[nuts]" in str(error)


def _nuts_missing() -> bool:
    try:
        for name in NUTS_EXTRA:
            importlib.import_module(name)
    except ImportError:
        return True
    return False
