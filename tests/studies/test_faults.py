"""Lost work: a dead worker, a crashing task or an interrupt costs only its own rows, never the study."""

import importlib
import multiprocessing
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import utiliscope as us
from utiliscope.studies import _stall
from utiliscope.studies.parallel import local_cluster, run_tasks
from utiliscope.studies.sbc import sbc
from utiliscope.studies.study import recovery_study

WORLD = us.worlds.gridworld(["Sa", "bc"], slip=0.1)
LIBRARY = us.priors.UtilityLibrary.from_features(WORLD.features, max_terms=1, feature_names=WORLD.feature_names)
FIT = {"draws": 50, "chains": 1}
N_AGENTS = 4
#: The agent whose task crashes.
BAD = 1


def agent_factory(i, rng):
    """A Boltzmann agent whose utility is a random non-constant library entry."""
    entry = int(rng.integers(1, len(LIBRARY)))
    return us.agents.Boltzmann(LIBRARY.rewards[entry], beta=float(rng.uniform(2.0, 6.0))), WORLD


def scope_factory(agent, worlds, setting, rng):
    """The agent's own policy as a point-mass world model: every fit is exact and instant."""
    g_star = agent.true_intelligence(worlds)
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_policies(agent.policy(worlds)),
        LIBRARY,
        us.likelihoods.Normal(observed=g_star + rng.normal(), sigma=1.0),
    )


def study(factory, client, n_agents=N_AGENTS):
    return recovery_study(
        factory, scope_factory, n_agents, seed=7, client=client, fit_kwargs=FIT, progressbar=False
    )


@pytest.fixture(scope="module")
def serial_table():
    return study(agent_factory, "serial")


def _assert_only_the_bad_row_failed(table, serial_table, message):
    assert table["agent"].tolist() == list(range(N_AGENTS))
    bad = table["agent"] == BAD
    assert table.loc[bad, "error"].str.contains(message).all(), table["error"].tolist()
    assert table.loc[~bad, "error"].isna().all(), table["error"].tolist()
    # The other rows are the ones a run without the crash computes.
    good = serial_table[serial_table["agent"] != BAD]
    assert table.loc[~bad, "mass_on_truth"].tolist() == pytest.approx(good["mass_on_truth"].tolist())
    assert not table.attrs["incomplete"]


# ---------------------------------------------------------------------------------------------- a dead worker
def dying_agent_factory(i, rng):
    """Agent BAD kills its worker process outright, as a segfault or the out-of-memory killer would."""
    if i == BAD:
        if multiprocessing.parent_process() is None:  # never the test process itself
            raise RuntimeError("dying_agent_factory must run in a worker process")
        os._exit(1)
    return agent_factory(i, rng)


@pytest.fixture(scope="module")
def process_client():
    """Two one-thread worker processes, as `utiliscope study --workers 2` starts them."""
    with local_cluster(2, processes=True, silence_logs=50) as client:
        yield client


@pytest.mark.slow
def test_a_dead_worker_fails_only_its_own_row(process_client, serial_table):
    with pytest.warns(RuntimeWarning, match=f"1 of {N_AGENTS} fits failed.*WorkerDied"):
        table = study(dying_agent_factory, process_client)
    _assert_only_the_bad_row_failed(table, serial_table, "WorkerDied: the worker process running this fit died")
    # The cluster restarted the worker and goes on: the next study on it is complete.
    again = study(agent_factory, process_client)
    assert again["error"].isna().all()


# ---------------------------------------------------------------------------------------------- a crashing task
@pytest.mark.parametrize("error", [MemoryError("out of memory"), SystemExit(3)], ids=["MemoryError", "SystemExit"])
def test_a_crashing_task_in_process_fails_only_its_own_row(serial_table, error):
    """client=None: the fits run in threads of this process; a task's exception (SystemExit too, which used to
    leave the study waiting for ever) is that row's error."""

    def crashing_agent_factory(i, rng):
        if i == BAD:
            raise error
        return agent_factory(i, rng)

    with pytest.warns(RuntimeWarning, match=f"1 of {N_AGENTS} fits failed"):
        table = study(crashing_agent_factory, None)
    _assert_only_the_bad_row_failed(table, serial_table, type(error).__name__)


# ---------------------------------------------------------------------------------------------- an interrupt
def _assert_interrupted_after(table, serial_table, finished: int):
    assert table.attrs["incomplete"]
    assert len(table) == N_AGENTS
    done = table["agent"] < finished
    assert table.loc[done, "error"].isna().all(), table["error"].tolist()
    expected = serial_table.loc[serial_table["agent"] < finished, "mass_on_truth"].tolist()
    assert table.loc[done, "mass_on_truth"].tolist() == pytest.approx(expected)
    assert table.loc[~done, "error"].str.startswith("Interrupted: this fit did not finish").all()
    assert table.loc[~done, "mass_on_truth"].isna().all()


def test_an_interrupted_serial_study_returns_its_finished_rows(serial_table):
    """Ctrl-C during agent 2's fit (a KeyboardInterrupt in the main thread): agents 0 and 1 are kept."""

    def interrupted_agent_factory(i, rng):
        if i == 2:
            raise KeyboardInterrupt
        return agent_factory(i, rng)

    with pytest.warns(RuntimeWarning, match=f"interrupted.*2 of {N_AGENTS} fits finished"):
        table = study(interrupted_agent_factory, "serial")
    _assert_interrupted_after(table, serial_table, 2)


def signalling_agent_factory(i, rng):
    """Agent 2 sends SIGINT to the main thread (Ctrl-C) while it runs in a worker thread, then finishes."""
    if i == 2:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.5)
    return agent_factory(i, rng)


def test_an_interrupted_dask_study_returns_its_finished_rows(clients, serial_table):
    """One worker thread: agents 0 and 1 have finished when agent 2's task sends the Ctrl-C."""
    with pytest.warns(RuntimeWarning, match=f"interrupted.*2 of {N_AGENTS} fits finished"):
        table = study(signalling_agent_factory, clients[0])
    _assert_interrupted_after(table, serial_table, 2)
    # The client still works afterwards.
    assert study(agent_factory, clients[0])["error"].isna().all()


def test_run_tasks_marks_the_tasks_an_interrupt_left(clients):
    def task(problem, payload):
        if payload == 1:
            raise KeyboardInterrupt
        return {"value": payload}

    with pytest.warns(RuntimeWarning, match="1 of 3 things finished"):
        results = run_tasks(task, None, [0, 1, 2], "serial", label="thing")
    assert [r.row for r in results] == [{"value": 0}, None, None]
    assert [r.interrupted for r in results] == [False, True, True]


def test_an_interrupted_sbc_keeps_its_finished_simulations(worlds, library, monkeypatch):
    sbc_module = importlib.import_module("utiliscope.studies.sbc")  # the package exports sbc, the function
    policies = np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(4, worlds.n_states))
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.Normal(observed=3.0)
    )
    complete = sbc(scope, 5, seed=1, client="serial", progressbar=False).table
    simulate = sbc_module._Problem.simulate
    calls = []

    def interrupted_simulate(self, rng):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return simulate(self, rng)

    monkeypatch.setattr(sbc_module._Problem, "simulate", interrupted_simulate)
    with pytest.warns(RuntimeWarning, match="3 of 5 simulations finished"):
        result = sbc(scope, 5, seed=1, client="serial", progressbar=False)
    table = result.table
    assert table.attrs["incomplete"] and result.n_failed == 2 and not result.ok
    assert table["error"].iloc[3:].str.startswith("Interrupted:").all()
    assert table["pit_U"].iloc[:3].tolist() == complete["pit_U"].iloc[:3].tolist()
    assert result.pit("U").size == 3


# ---------------------------------------------------------------------------------------------- a lost task
def test_a_task_the_cluster_lost_fails_its_row_instead_of_hanging(clients, monkeypatch):
    """A future nobody computes (its worker died holding it and the scheduler forgot it) is given up after the
    stall time: its row carries WorkerDied and the run finishes with the other rows."""
    from distributed import Future

    client = clients[1]
    submit = client.submit

    def forgetful_submit(func, task, plugin_name, payload, **kwargs):
        if payload == BAD:
            return Future(f"forgotten-{kwargs['key']}", client)  # a key the scheduler never runs
        return submit(func, task, plugin_name, payload, **kwargs)

    monkeypatch.setattr(client, "submit", forgetful_submit)
    monkeypatch.setattr(_stall, "STALL_SECONDS", 0.5)
    monkeypatch.setattr(_stall, "CHECK_SECONDS", 0.2)
    with pytest.warns(RuntimeWarning, match="1 of 4 things failed.*WorkerDied: the cluster lost this thing"):
        results = run_tasks(lambda problem, payload: {"value": payload}, None, range(4), client, label="thing")
    assert [r.row for r in results] == [{"value": 0}, None, {"value": 2}, {"value": 3}]
    assert "within 0.5 s" in results[BAD].error


def _study_in_thread(factory, client, n_agents, limit_s):
    """Run the study in a thread and return its table, or None if it has not finished after ``limit_s``."""
    tables = []
    thread = threading.Thread(target=lambda: tables.append(study(factory, client, n_agents)), daemon=True)
    thread.start()
    thread.join(limit_s)
    return tables[0] if tables else None


@pytest.mark.slow
def test_a_dead_worker_on_a_user_cluster_ends_the_study(serial_table):
    """A cluster the user started retries the killing task (allowed-failures 3): every retry kills a worker and
    may lose results finished there. The study still ends (well before the generous bound), the killing agent's
    row carries WorkerDied and the other rows are complete or WorkerDied, never missing."""
    from distributed import Client, LocalCluster

    n_agents = 8
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        table = _study_in_thread(dying_agent_factory, client, n_agents, limit_s=600)
    assert table is not None, "the study did not finish"
    assert table["agent"].tolist() == list(range(n_agents))
    assert table.loc[table["agent"] == BAD, "error"].str.startswith("WorkerDied:").all()
    others = table[table["agent"] != BAD]
    assert (others["error"].isna() | others["error"].str.startswith("WorkerDied:")).all(), others["error"].tolist()
    assert others["error"].isna().sum() >= n_agents // 2
    assert not table.attrs["incomplete"]
