"""JAX settings the BlackJAX path needs, applied on import, before JAX's first computation.

* 64-bit floats (``jax_enable_x64``): g of 30+ bits and the occupancy solves need double precision.
* One XLA CPU device per usable core (at most :data:`MAX_HOST_DEVICES`), so that chains run in parallel, one per
  device, each in its own thread (:func:`utiliscope.models.jax_sampler.sample_jax`). XLA gives the CPU a single
  device unless JAX's ``jax_num_cpu_devices`` option is set before its backend starts. It is set here unless the
  user has set it or JAX has started already (then the devices it has are used, and with one device the
  chains run one after the other). ``XLA_FLAGS=--xla_force_host_platform_device_count`` cannot serve: XLA reads
  it when jaxlib loads, and importing ``pymc.sampling.jax`` overwrites it with 100.
* JAX's persistent compilation cache, in ``<PyTensor's compiledir>/jax`` (:func:`use_persistent_cache`), unless
  the user has chosen a directory (``jax_compilation_cache_dir`` or ``JAX_COMPILATION_CACHE_DIR``), so that a new
  Python process fitting a structure fitted before skips XLA's compile. JAX keeps only compiles of a second or
  more and evicts the least recently used entries beyond :data:`CACHE_MAX_BYTES`;
  ``jax.config.update("jax_enable_compilation_cache", False)`` turns it off.

What the devices and the cache save is in ``benchmarks/results/nuts_performance.md``.
"""

from __future__ import annotations

import os

import jax
import pytensor
from jax._src import xla_bridge

#: The most CPU devices requested (one chain runs on each at a time; more than the usual 4 chains gains nothing).
MAX_HOST_DEVICES = 8
#: Disk space the persistent compilation cache may take when utiliscope chose its directory (an entry per chain
#: runner and device, 1-15 MB each: benchmarks/results/nuts_performance.md).
CACHE_MAX_BYTES = 512 * 2**20


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells it, else ``os.cpu_count``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def request_host_devices(n_devices: int | None = None) -> bool:
    """Ask JAX for ``n_devices`` CPU devices (default: one per usable core, at most :data:`MAX_HOST_DEVICES`).

    Returns whether the request was made: not when ``jax_num_cpu_devices`` is set already (the user's choice
    stands) or JAX's backends have started (too late to change).
    """
    if jax.config.jax_num_cpu_devices >= 0 or xla_bridge.backends_are_initialized():
        return False
    count = min(usable_cores(), MAX_HOST_DEVICES) if n_devices is None else int(n_devices)
    jax.config.update("jax_num_cpu_devices", max(count, 1))
    return True


def use_persistent_cache(directory: str | os.PathLike | None = None) -> bool:
    """Keep XLA's compiled executables in ``directory`` (default ``<pytensor.config.compiledir>/jax``).

    Returns whether the directory was set: not when the user has chosen one already (their choice stands). The
    cache is then capped at :data:`CACHE_MAX_BYTES` unless the user has set ``jax_compilation_cache_max_size``.
    """
    if jax.config.jax_compilation_cache_dir:
        return False
    path = os.path.join(pytensor.config.compiledir, "jax") if directory is None else os.fspath(directory)
    jax.config.update("jax_compilation_cache_dir", path)
    if jax.config.jax_compilation_cache_max_size < 0:
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return True


jax.config.update("jax_enable_x64", True)
request_host_devices()
use_persistent_cache()

__all__ = ["CACHE_MAX_BYTES", "MAX_HOST_DEVICES", "request_host_devices", "usable_cores", "use_persistent_cache"]
