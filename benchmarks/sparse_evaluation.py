"""Where sparse policy evaluation overtakes the dense direct solve, the crossover in ``direct_solve_is_faster``.

For open n×n gridworlds (slip 0.1) and discounts 0.9 and 0.99, it times the discounted state occupancy of a block
of random deterministic policies two ways: the batched dense direct solve (what dense worlds use) and the batched
sparse iteration to relative error 1e-13 (``iterate_occupancy``). Times are per policy, medians of 3 runs; the
dense solve is skipped where it would take minutes. The last column is the path ``direct_solve_is_faster``
picks; it should be the faster one except near the crossover.

Run: ``python benchmarks/sparse_evaluation.py`` (prints a table, writes benchmarks/results/sparse_evaluation.md).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.evaluation import iterate_occupancy, state_occupancy
from utiliscope.worlds.sparse import direct_solve_is_faster

SIDES = (4, 6, 7, 8, 10, 12, 16, 24, 40, 100)
GAMMAS = (0.9, 0.99)
POLICIES = 64
#: The dense solve is skipped above this many states (its S³ cost per policy would take minutes here).
DENSE_LIMIT = 600
REPEATS = 3
RESULTS = Path(__file__).parent / "results" / "sparse_evaluation.md"


def median_seconds(function: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(REPEATS):
        begin = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times), result


def row(side: int, gamma: float) -> dict:
    world = us.worlds.gridworld(["." * side] * side, slip=0.1, gamma=gamma, sparse=True)
    P, S = world.transitions, world.n_states
    block = np.random.default_rng(side).integers(0, world.n_actions, size=(POLICIES, S))
    sparse_s, d_sparse = median_seconds(lambda: iterate_occupancy(P, world.start, gamma, block, True))
    result = {"states": S, "gamma": gamma, "sparse_ms": 1e3 * sparse_s / POLICIES}
    if S <= DENSE_LIMIT:
        dense = us.TabularMDP(P.to_dense(), world.start, gamma)
        dense_s, d_dense = median_seconds(lambda: state_occupancy(dense, block))
        result["dense_ms"] = 1e3 * dense_s / POLICIES
        result["max_abs_difference"] = float(np.abs(d_sparse - d_dense).max())
        result["faster"] = "dense" if dense_s < sparse_s else "sparse"
    result["picked"] = "dense" if direct_solve_is_faster(P, gamma) else "sparse"
    return result


def main() -> None:
    table = pd.DataFrame([row(side, gamma) for gamma in GAMMAS for side in SIDES])
    columns = ["states", "gamma", "dense_ms", "sparse_ms", "faster", "picked", "max_abs_difference"]
    table = table[columns].astype(object).fillna("—")
    print(text_table(table))
    machine = f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}"
    RESULTS.write_text(
        "# Sparse policy evaluation against the dense direct solve\n\n"
        f"`python benchmarks/sparse_evaluation.py` ({machine}; a shared 2-core machine). Milliseconds per "
        f"policy for a block of {POLICIES} random deterministic policies in an open n×n gridworld (slip 0.1); "
        "sparse = the batched iteration to relative error 1e-13, dense = the batched direct solve (skipped above "
        f"{DENSE_LIMIT} states). `picked` is `direct_solve_is_faster`'s choice.\n\n" + pipe_table(table) + "\n"
    )


if __name__ == "__main__":
    main()
