"""Shared test setup: a headless matplotlib, a session-wide seeded generator, small worlds, Dask clusters."""

import os

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
