"""The Dask worker plugin that carries a run's shared problem to every worker (see :mod:`.parallel`).

Its own module because it subclasses ``distributed``'s ``WorkerPlugin``: :mod:`.parallel` imports ``distributed``
only when a run uses Dask, and imports this module then.
"""

from __future__ import annotations

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin


class SharedProblem(WorkerPlugin):
    """Holds a run's ``Shared`` problem on every worker of the cluster.

    The scheduler keeps a registered plugin and gives it to every worker that joins, so a worker restarted after
    its process died has the problem too, and tasks need no data from another worker: the scheduler may send a
    task to any worker, the idle ones first (a task that depended on a future holding the problem would be sent
    only to the workers holding it, beside each other, and scattered data cannot be recomputed once lost).
    """

    def __init__(self, shared) -> None:
        self.shared = shared
        self.name = f"utiliscope-problem-{shared.token}"


def shared_problem(name: str):
    """The ``Shared`` problem the plugin ``name`` carries to the worker running the calling task."""
    return get_worker().plugins[name].shared
