"""The Dask plumbing shared by :func:`~utiliscope.diagnostics.sbc.sbc` and
:func:`~utiliscope.diagnostics.study.recovery_study`: one task per fit, a seed per task, failures kept.

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
thread, so its model is built once and its compiled pieces are reused by every later task there.

Failures: an exception inside a task becomes that task's ``error`` string (``"ValueError: ..."``); the other
tasks' results are kept, and :func:`run_tasks` issues one warning that lists the failed tasks.
"""

from __future__ import annotations

import os
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np

#: Worker threads of the default LocalCluster: one per core, at most this many.
MAX_LOCAL_WORKERS = 4

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
    """What one task returned (``row``), or why it failed (``error``, with ``row`` None)."""

    row: dict | None
    error: str | None


def _run_one(task: Callable, shared: Shared, payload: Any) -> TaskResult:
    """Run ``task(problem, payload)`` on this thread's copy of the problem, turning an exception into text."""
    try:
        return TaskResult(task(shared.local_copy(), payload), None)
    except Exception as err:  # a study keeps its other results and reports this one; see run_tasks
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        return TaskResult(None, detail)


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
        Show ``distributed``'s progress bar (Dask) or a count of finished tasks (serial).
    label : str
        What a task is called in the failure warning ("simulation", "fit").

    Returns
    -------
    list of TaskResult
        In payload order. Failed tasks have ``error`` set; a warning lists them.
    """
    shared = Shared.of(problem)
    if isinstance(client, str) and client == "serial":
        results = [_run_one(task, shared, payload) for payload in payloads]
    else:
        with _client(client) as dask_client:
            results = _run_dask(dask_client, task, shared, payloads, progressbar)
    _warn_failures(results, label)
    return results


def _run_dask(client, task: Callable, shared: Shared, payloads: Sequence[Any], progressbar: bool) -> list:
    from distributed import progress

    [shared_future] = client.scatter([shared], broadcast=True)
    futures = client.map(_run_one, [task] * len(payloads), [shared_future] * len(payloads), payloads, pure=False)
    if progressbar:
        progress(futures)
    return [_result(future) for future in futures]


def _result(future) -> TaskResult:
    """The task's result, or its failure when the worker itself was lost (an exception outside the task)."""
    try:
        return future.result()
    except Exception as err:  # e.g. a killed worker: report it in the table like a failed task
        return TaskResult(None, f"{type(err).__name__}: {err}")


@contextmanager
def _client(client):
    """Yield a ``distributed.Client`` for ``client`` (see the module docstring), closing what it opened."""
    from distributed import Client, LocalCluster

    if isinstance(client, Client):
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
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as opened,
    ):
        yield opened


def _warn_failures(results: Sequence[TaskResult], label: str) -> None:
    failed = [(i, r.error) for i, r in enumerate(results) if r.error is not None]
    if failed:
        shown = "; ".join(f"{label} {i}: {error}" for i, error in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        warnings.warn(
            f"{len(failed)} of {len(results)} {label}s failed; their rows carry the message in the 'error' "
            f"column and the other results are kept. {shown}{more}",
            RuntimeWarning,
            stacklevel=4,
        )


__all__ = ["MAX_LOCAL_WORKERS", "Shared", "TaskResult", "TaskSeed", "run_tasks"]
