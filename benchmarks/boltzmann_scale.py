"""Boltzmann IRL on a 12×12 gridworld: seconds per effective sample, beside ValueWalk's published figure.

ValueWalk (Bajgar et al., UAI 2024) samples a Boltzmann-IRL posterior on a 12×12 gridworld at 0.77 s per
effective sample on its own hardware; the problems and machines differ, so the comparison is of orders of
magnitude only. Here: the 12×12 grid of ``benchmarks/scale.py`` (four colours, one world, slip 0.1, γ = 0.9), a
Boltzmann agent (β = 4) on theta = (1, −1, 0.5, 0), 100 demonstrations of 12 steps, ``BoltzmannIRL`` with a
``LinearUtility`` prior at the agent's β, fitted by the default engine (NUTS by BlackJAX; the soft Bellman fixed
point is a differentiable Op). Timed: a first fit (compile included) and a second fit of the same object; the
effective sample size is the least bulk ESS over theta's components (``az.ess``); ``s_per_ess`` is the second
fit's seconds over it. The machine's one-minute load average is recorded beside the numbers.

Run: ``python benchmarks/boltzmann_scale.py [--draws N] [--chains N]``; prints the table and writes
benchmarks/results/boltzmann_scale.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us

RESULTS = Path(__file__).resolve().parent / "results" / "boltzmann_scale.md"
#: The 6×6 tile of benchmarks/scale.py; the 12×12 grid is 2×2 tiles with one start cell.
TILE = ["a....b", "..c...", "....d.", ".b....", "...a..", "c....d"]
THETA = np.array([1.0, -1.0, 0.5, 0.0])
BETA = 4.0


def problem(side: int = 12) -> us.models.BoltzmannIRL:
    rows = [row * (side // 6) for row in TILE] * (side // 6)
    rows[0] = "S" + rows[0][1:]
    world = us.worlds.gridworld(rows, slip=0.1, gamma=0.9)
    prior = us.priors.LinearUtility(world.features, feature_names=world.feature_names)
    agent = us.agents.Boltzmann(world.features @ THETA, beta=BETA)
    demos = agent.demonstrate(world, n_trajectories=100, horizon=12, seed=0)
    return us.models.BoltzmannIRL(world, demos, prior, beta=BETA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()
    birl = problem()
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "progressbar": False}
    rows = []
    for run in ("first (compile included)", "second"):
        load = os.getloadavg()[0]
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = birl.fit(seed=0, **settings)
        seconds = time.perf_counter() - begin
        ess = float(az.ess(idata, var_names=["U"]).to_array().min())
        rows.append(
            {
                "fit": run,
                "engine": idata.attrs.get("engine"),
                "states": birl.worlds.n_states,
                "chains x draws": f"{args.chains} x {args.draws}",
                "seconds": seconds,
                "min_bulk_ess": ess,
                "s_per_ess": seconds / ess,
                "max_rhat": float(az.rhat(idata, var_names=["U"]).to_array().max()),
                "divergences": int(idata.sample_stats["diverging"].sum()),
                "load_1min": load,
            }
        )
    table = pd.DataFrame(rows)
    print(text_table(table))
    header = (
        "# Boltzmann IRL on a 12×12 gridworld: seconds per effective sample\n\n"
        f"`python benchmarks/boltzmann_scale.py`, {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores (load average in the table). ValueWalk's published figure on its own hardware "
        "and problem: 0.77 s per effective sample.\n\n"
    )
    RESULTS.write_text(header + pipe_table(table) + "\n")


if __name__ == "__main__":
    main()
