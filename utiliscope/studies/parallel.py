"""The Dask plumbing shared by :func:`~utiliscope.studies.sbc.sbc` and
:func:`~utiliscope.studies.study.recovery_study`: one task per fit, a seed per task, failures kept.

``client`` selects where the tasks run:

``None``
    A ``dask.distributed.LocalCluster`` started for the call and closed after it: threads in this process
    (``processes=False``, no pickling, quick to start) with one worker per core, up to 4.
a ``distributed.Client``
    Any cluster, local or remote; the caller owns it and it is left open.
a string other than ``"serial"``
    A scheduler address (``"tcp://host:8786"``); a client is opened for the call and closed after it.
``"serial"``
    Run the tasks one after the other in this process without Dask (debugging, tests, tracebacks).

Reproducibility: each task gets its own ``numpy.random.SeedSequence`` child (:class:`TaskSeed`), spawned in
the client in task order, so a task's draws do not depend on which worker runs it or how many workers there are.

Isolation: every worker thread works on its own copy of the shared problem (unpickled once from a
``cloudpickle`` blob and cached in thread-local storage), because a fit changes its model's ``pm.Data`` with
``pm.set_data``; threads sharing one model would overwrite each other's data. The copy is made once per worker
thread, so its model is built once and its compiled pieces are reused by every later task there. The blob
reaches the workers in a worker plugin (``_worker_plugin.SharedProblem``), which the scheduler also gives to
workers that join or restart during the run; not ``scatter``: scattered data lost with a dead worker cannot be
recomputed, and the scheduler then cancelled every task still to run.

Failures: an exception inside a task (any exception, ``SystemExit`` too) becomes that task's ``error`` string
(``"ValueError: ..."``); the other tasks' results are kept, and :func:`run_tasks` issues one warning that lists
the failed tasks. A worker process that dies (a segfault, the out-of-memory killer, ``os._exit``) fails the
task it was running with ``"WorkerDied: ..."``, and only that task: at most one task per worker thread is sent
at a time, the next when one finishes, so a dead worker holds no queued task of another row. The clusters
started here (``client=None``, the command line's ``--workers``) let the scheduler retry no task whose worker
died (``allowed_failures=0``: a task that kills its worker would kill the next one too); another cluster's
scheduler retries such a task by its own ``distributed.scheduler.allowed-failures`` (3 by default) before the
row carries the error. Each retry kills another worker and may lose results finished there; a run never waits
on a task the cluster no longer runs: when none of its waiting tasks has run or been held on a worker for
``_stall.STALL_SECONDS`` while a thread was free, those tasks' rows carry a ``"WorkerDied: ..."`` error too.
(A cluster that sizes itself to its queue sees at most its own thread count queued:
scale it before the call.) A worker *thread* cannot die alone: ``os._exit`` in a task run in this process ends
the process.

Interrupts: a KeyboardInterrupt (Ctrl-C) while the tasks run stops the run: tasks not started are cancelled,
the results finished before it are kept, and every other task gets ``interrupted=True`` and an ``"Interrupted:
..."`` error; :func:`run_tasks` warns and returns normally, and its callers mark their table incomplete. Tasks
already running in the threads of an in-process cluster cannot be stopped: they finish in the background and
their results are dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np

from utiliscope._validation import check_open_client
from utiliscope.studies import _stall

#: Worker threads of the default LocalCluster: one per core, at most this many.
MAX_LOCAL_WORKERS = 4

#: How often a Dask run looks for finished tasks, in seconds.
POLL_SECONDS = 0.05

_LOCAL = threading.local()


@dataclass(frozen=True)
class Shared:
    """A problem shared by all tasks, as a pickled blob with a token naming it in the worker caches."""

    token: str
    blob: bytes

    @classmethod
    def of(cls, problem: Any) -> Shared:
        """Pickle ``problem`` (with ``cloudpickle``, so lambdas and local factories travel too)."""
        return cls(uuid.uuid4().hex, cloudpickle.dumps(problem))

    def local_copy(self) -> Any:
        """This thread's copy of the problem, unpickled on first use and reused by later tasks."""
        cache = getattr(_LOCAL, "problems", None)
        if cache is None or self.token not in cache:
            # Keep only the current problem: a finished study's copy (and its compiled model) is freed.
            cache = _LOCAL.problems = {self.token: cloudpickle.loads(self.blob)}
        return cache[self.token]


@dataclass(frozen=True)
class TaskSeed:
    """A task's seed: a ``SeedSequence`` child named by its root entropy and spawn key.

    ``SeedSequence.spawn`` is stateful (a second call gives new children), so a task that shares its seed with
    another (one agent under several settings) or that Dask re-runs would draw differently; :meth:`spawn`
    here rebuilds the sequence first and always returns the same children.
    """

    entropy: int
    spawn_key: tuple[int, ...]

    @classmethod
    def children(cls, seed: int, n: int) -> list[TaskSeed]:
        """The seeds of ``n`` tasks: the children of ``SeedSequence(seed)``."""
        return [cls(child.entropy, child.spawn_key) for child in np.random.SeedSequence(seed).spawn(n)]

    def spawn(self, n: int) -> list[np.random.SeedSequence]:
        """The same ``n`` children every call."""
        return np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key).spawn(n)


@dataclass(frozen=True)
class TaskResult:
    """What one task returned (``row``), or why it failed (``error``, with ``row`` None).

    ``interrupted`` is True for a task that did not finish because the run was interrupted (KeyboardInterrupt).
    """

    row: dict | None
    error: str | None
    interrupted: bool = False


def _run_one(task: Callable, shared: Shared, payload: Any) -> TaskResult:
    """Run ``task(problem, payload)`` on this thread's copy of the problem, turning an exception into text."""
    try:
        return TaskResult(task(shared.local_copy(), payload), None)
    except BaseException as err:  # a study keeps its other results and reports this one; see run_tasks
        # BaseException: a SystemExit raised in a Dask worker thread would leave its future unresolved and the
        # study waiting for ever. The user's Ctrl-C in a serial run is not the task's failure: it stops the run.
        if isinstance(err, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            raise
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        return TaskResult(None, detail)


def _run_on_worker(task: Callable, plugin_name: str, payload: Any) -> TaskResult:
    """:func:`_run_one` on a Dask worker, with the problem its plugin ``plugin_name`` carries."""
    from utiliscope.studies._worker_plugin import shared_problem

    return _run_one(task, shared_problem(plugin_name), payload)


def run_tasks(
    task: Callable[[Any, Any], dict],
    problem: Any,
    payloads: Sequence[Any],
    client=None,
    *,
    progressbar: bool = True,
    label: str = "task",
) -> list[TaskResult]:
    """Run ``task(problem, payload)`` for every payload, on Dask or serially, and return results in order.

    Parameters
    ----------
    task : callable
        A module-level function ``task(problem, payload) -> dict`` (one table row).
    problem : object
        Shared by every task; pickled once and copied once per worker thread (see the module docstring).
    payloads : sequence
        One per task, e.g. ``(index, SeedSequence)``.
    client : None, "serial", str or distributed.Client
        Where to run (see the module docstring).
    progressbar : bool
        Show a progress bar of finished tasks (Dask; ``tqdm``).
    label : str
        What a task is called in the failure warning ("simulation", "fit").

    Returns
    -------
    list of TaskResult
        In payload order. Failed tasks have ``error`` set; a warning lists them. After a KeyboardInterrupt the
        tasks that did not finish have ``interrupted`` set (and a warning says so): the call returns what
        finished rather than raising.
    """
    shared = Shared.of(problem)
    if isinstance(client, str) and client == "serial":
        results = _run_serial(task, shared, payloads)
    else:
        with _client(client) as dask_client:
            results = _run_dask(dask_client, task, shared, payloads, progressbar, label)
    _warn_failures(results, label)
    return _marked_interrupted(results, label)


def _run_serial(task: Callable, shared: Shared, payloads: Sequence[Any]) -> list:
    results: list = [None] * len(payloads)
    try:
        for index, payload in enumerate(payloads):
            results[index] = _run_one(task, shared, payload)
    except KeyboardInterrupt:
        pass  # the finished results are kept; _marked_interrupted fills in the rest
    return results


def _run_dask(
    client, task: Callable, shared: Shared, payloads: Sequence[Any], progressbar: bool, label: str
) -> list:
    """Each task submitted when a worker thread is free for it (see the module docstring), results in order."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    from utiliscope.studies._worker_plugin import SharedProblem

    # The problem reaches every worker, one that joins later too, as a worker plugin (see SharedProblem).
    plugin = SharedProblem(shared)
    results: list = [None] * len(payloads)
    running: dict = {}
    queued = iter(range(len(payloads)))
    finished = as_completed(loop=client.loop)

    def submit_more() -> None:
        free = max(1, sum(client.nthreads().values())) - len(running)
        for index in itertools.islice(queued, max(free, 0)):
            key = f"{label}-{index}-{shared.token}"
            future = client.submit(_run_on_worker, task, plugin.name, payloads[index], key=key, pure=False)
            running[future] = index
            finished.add(future)

    stall = _stall.StallClock(client)
    try:
        client.register_plugin(plugin, name=plugin.name)
        with tqdm(total=len(payloads), disable=not progressbar, unit=label) as bar:
            submit_more()
            while running:
                done = finished.next_batch(block=False) if finished.has_ready() else []
                if not done and stall.expired(running):
                    done = list(running)
                    client.cancel(done)
                for future in done:
                    results[running.pop(future)] = _result(future, label)
                    bar.update()
                    stall.progressed()
                submit_more()
                if not done:
                    time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        for future, index in running.items():
            if future.status in ("finished", "error"):  # finished before the interrupt was handled
                results[index] = _result(future, label)
        client.cancel(list(running))
    finally:
        with contextlib.suppress(Exception):  # a client that lost its scheduler has nothing left to release
            client.unregister_worker_plugin(plugin.name)
    return results


def _result(future, label: str) -> TaskResult:
    """The task's result, or its failure when the worker itself was lost (an exception outside the task)."""
    from distributed import KilledWorker

    if future.status not in ("finished", "error"):  # given up by the stall clock
        return TaskResult(
            None,
            f"WorkerDied: the cluster lost this {label} (a worker died running it or holding its result) and did "
            f"not run it again within {_stall.STALL_SECONDS:g} s while it had a free thread",
        )
    try:
        return future.result()
    except KilledWorker as err:
        where = getattr(getattr(err, "last_worker", None), "address", "unknown")
        return TaskResult(
            None,
            f"WorkerDied: the worker process running this {label} died before it finished (killed, crashed or "
            f"out of memory; {err.allowed_failures + 1} attempt(s), the last on {where})",
        )
    except Exception as err:  # e.g. a lost scheduler: report it in the table like a failed task
        return TaskResult(None, f"{type(err).__name__}: {err}")


def _marked_interrupted(results: list, label: str) -> list[TaskResult]:
    """``results`` with every task that has none (the run was interrupted) marked so, and a warning."""
    missing = [i for i, result in enumerate(results) if result is None]
    if not missing:
        return results
    message = (
        f"Interrupted: this {label} did not finish; the run was interrupted (KeyboardInterrupt) after "
        f"{len(results) - len(missing)} of {len(results)} {label}s had finished"
    )
    warnings.warn(
        f"the run was interrupted (KeyboardInterrupt): {len(results) - len(missing)} of {len(results)} {label}s "
        f"finished and are kept; the other {len(missing)} rows carry an 'Interrupted: ...' error, and the table "
        "is marked incomplete",
        RuntimeWarning,
        stacklevel=4,
    )
    return [TaskResult(None, message, True) if result is None else result for result in results]


@contextmanager
def _client(client):
    """Yield a ``distributed.Client`` for ``client`` (see the module docstring), closing what it opened."""
    from distributed import Client

    if isinstance(client, Client):
        check_open_client(client)
        yield client
        return
    if isinstance(client, str):
        with Client(client, set_as_default=False) as opened:
            yield opened
        return
    if client is not None:
        raise TypeError(
            f"client must be None (a LocalCluster), 'serial', a scheduler address or a distributed.Client; "
            f"got {type(client).__name__}"
        )
    n_workers = max(1, min(os.cpu_count() or 1, MAX_LOCAL_WORKERS))
    with local_cluster(n_workers, processes=False) as opened:
        yield opened


@contextmanager
def local_cluster(n_workers: int, processes: bool, **cluster_kwargs):
    """A ``Client`` of a new ``LocalCluster`` of ``n_workers`` one-thread workers, closed on exit.

    Its scheduler retries no task whose worker died (``allowed_failures=0``, see the module docstring).
    ``processes=False``: threads in this process; True: worker processes (a fit's PyTensor loop holds the GIL).
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",
            scheduler_kwargs={"allowed_failures": 0},
            **cluster_kwargs,
        ) as cluster,
        Client(cluster, set_as_default=False) as opened,
    ):
        yield opened


def _warn_failures(results: Sequence[TaskResult | None], label: str) -> None:
    failed = [(i, r.error) for i, r in enumerate(results) if r is not None and r.error is not None]
    if failed:
        shown = "; ".join(f"{label} {i}: {error}" for i, error in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        warnings.warn(
            f"{len(failed)} of {len(results)} {label}s failed; their rows carry the message in the 'error' "
            f"column and the other results are kept. {shown}{more}",
            RuntimeWarning,
            stacklevel=4,
        )


__all__ = ["MAX_LOCAL_WORKERS", "Shared", "TaskResult", "TaskSeed", "local_cluster", "run_tasks"]
