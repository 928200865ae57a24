"""Ctrl-C during a BlackJAX fit: no new chain starts, the running ones are waited for, no thread outlives it."""

import pytest

# The nuts extra (its BlackJAX is imported by utiliscope.models.jax_sampler, after JAX's CPU devices are set).
pytest.importorskip("jax")

import signal
import threading
import time
import warnings

import jax
import numpy as np

from utiliscope.models import jax_sampler


def test_an_interrupt_starts_no_new_chain_and_waits_for_the_running_ones():
    devices = jax.devices("cpu")
    started, finished = [], []

    def run(key, start, data):
        started.append(float(start))
        if len(started) == 1:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C while the chains run
        time.sleep(0.5)
        finished.append(float(start))
        return start

    chains = [(jax.random.PRNGKey(i), np.array(float(i))) for i in range(3 * len(devices))]
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("always")
        jax_sampler.run_chains(run, chains, None, devices)
    # Raised only once the running chains were done: none is left running, none started after the interrupt.
    assert sorted(finished) == sorted(started)
    assert 1 <= len(started) <= len(devices)
    deadline = time.monotonic() + 1.0  # a thread's return after its last chain
    while [t for t in threading.enumerate() if t.name.startswith("utiliscope-chain-")]:
        assert time.monotonic() < deadline, "a chain thread outlived run_chains"
        time.sleep(0.01)
    assert any("waiting for the" in str(w.message) and "cannot be stopped" in str(w.message) for w in caught)
