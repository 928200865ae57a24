"""Telling when a Dask cluster will never finish a run's remaining tasks (see :mod:`.parallel`).

A cluster the caller started retries a task whose worker died (``allowed-failures``); each retry of a task that
kills its worker kills another one, and a finished result held by a killed worker is lost. The scheduler should
run such a task again, but a run must not rely on it: waiting on a future nobody computes waits for ever. A run
is *stalled* when none of its waiting tasks is running on a worker or held in a worker's memory although some
worker has a free thread: the scheduler would have sent a task it still knows to that thread. A run stalled for
:data:`STALL_SECONDS` in a row gives its waiting tasks up (:func:`~.parallel.run_tasks` marks their rows).
"""

from __future__ import annotations

import time
from collections.abc import Collection

#: How long a run may stay stalled (its tasks neither running nor held while a thread is free) before its
#: waiting tasks are given up as lost with a worker. Restarting a dead worker takes a few seconds.
STALL_SECONDS = 30.0
#: How often the cluster is asked (each check is two requests to the scheduler).
CHECK_SECONDS = 2.0


def is_stalled(client, futures: Collection) -> bool:
    """Whether none of ``futures`` runs or is held on a worker while some worker has a free thread."""
    keys = {future.key for future in futures}
    processing = client.processing()
    if any(key in keys for running in processing.values() for key in running):
        return False
    if any(client.who_has(list(futures)).get(key) for key in keys):
        return False  # finished, its result about to be delivered
    return any(len(processing.get(worker, ())) < n for worker, n in client.nthreads().items())


class StallClock:
    """Measures how long a run has been stalled; :meth:`expired` says when to give its waiting tasks up."""

    def __init__(self, client) -> None:
        self.client = client
        self.since: float | None = None
        self.checked = time.monotonic()

    def progressed(self) -> None:
        """A task finished: the run is not stalled."""
        self.since = None

    def expired(self, futures: Collection) -> bool:
        """Whether ``futures`` have been stalled for :data:`STALL_SECONDS` (asks the cluster every
        :data:`CHECK_SECONDS`)."""
        now = time.monotonic()
        if not futures or now - self.checked < CHECK_SECONDS:
            return False
        self.checked = now
        if not is_stalled(self.client, futures):
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= STALL_SECONDS
