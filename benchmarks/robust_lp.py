"""Decisions at scale: the robust rule's occupancy programs on a 60×60 gridworld, and Taxi's decisions.

Run: ``python benchmarks/robust_lp.py [utilities]`` (default 30). Writes ``benchmarks/results/robust_lp.md``.

Part 1 (BROIL's set-up in size: Brown, Niekum and Petrik, NeurIPS 2020, report about 2 minutes for their
risk-averse LP on a 60×60 grid): one 60×60 gridworld (3,600 states, 5 actions, slip 0.1, γ = 0.95), cells coloured
at random (seed 0) with 4 colours or left empty, start in a corner; a posterior of ``utilities`` linear rewards
``θ_n = θ_0 + 0.5 ε_n`` over the colours (ε standard normal, seed 1) with equal weights. Timed separately: the
utilities' ranges (batched value iteration), the ``expected`` rule (value iteration on the mixture reward), and the
``robust`` rule at α = 0.1 with ``tail = "cvar"`` (a linear program) and with the default quantile (a
mixed-integer program, one binary per utility; on the first 15 utilities only, as its cost grows fast with them:
see the results' summary).

Part 2: gymnasium's Taxi-v4 (500 states and the added terminal one, 6 actions, γ = 0.95) with the same kind of
posterior over its three reward kinds (θ_0 = (−10, −1, 20), spread 4, Dirichlet(1) weights, seed 2): seconds for
the ranges, ``expected`` and ``robust`` with either tail. Each decision reports its objective, its expected
normalised value, its lower α-quantile and CVaR, and whether its search is exact.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.decisions import UtilitySample, decide, value_ranges
from utiliscope.decisions.robust import CVAR, QUANTILE

OUT = Path(__file__).parent / "results" / "robust_lp.md"
ALPHA = 0.1
#: Utilities the quantile's mixed-integer program gets on the 60×60 grid.
QUANTILE_UTILITIES = 15
#: Text under this heading of an existing results file is kept.
SUMMARY_HEADING = "## What the tables show"


def grid_problem(n_utilities: int) -> tuple[us.TabularMDP, UtilitySample]:
    rng = np.random.default_rng(0)
    rows = ["".join(rng.choice(list("....abcd"), 60)) for _ in range(60)]
    rows[0] = "S" + rows[0][1:]
    world = us.worlds.gridworld(rows, slip=0.1, gamma=0.95)
    theta = np.array([1.0, -1.0, 0.5, -0.2]) + 0.5 * np.random.default_rng(1).standard_normal((n_utilities, 4))
    rewards = np.repeat((world.features @ theta.T).T[:, :, None], world.n_actions, axis=2)
    weights = np.full(n_utilities, 1.0 / n_utilities)
    return world, UtilitySample(rewards, weights, tuple(f"u{i}" for i in range(n_utilities)))


def taxi_problem(n_utilities: int) -> tuple[us.TabularMDP, UtilitySample]:
    import gymnasium

    world = us.worlds.from_gymnasium(gymnasium.make("Taxi-v4"), gamma=0.95)
    rng = np.random.default_rng(2)
    theta = np.array([-10.0, -1.0, 20.0]) + 4.0 * rng.standard_normal((n_utilities, 3))
    rewards = np.einsum("sak,nk->nsa", world.features, theta)
    weights = rng.dirichlet(np.ones(n_utilities))
    return world, UtilitySample(rewards, weights, tuple(f"u{i}" for i in range(n_utilities)))


def timed_decisions(problem: str, world, sample: UtilitySample, runs) -> list[dict]:
    """Seconds for the ranges, then for each ``(label, sample, rule, parameters)`` decision."""
    start = time.perf_counter()
    ranges = value_ranges(world, sample.rewards)
    rows = [
        {
            "problem": problem,
            "decision": f"ranges of {len(sample.weights)} utilities",
            "utilities": len(sample.weights),
        }
        | {"seconds": time.perf_counter() - start, "exact": ranges.exact}
    ]
    for label, part, rule, parameters in runs:
        part_ranges = ranges if part is sample else value_ranges(world, part.rewards)
        start = time.perf_counter()
        decision = decide(world, part, rule, ranges=part_ranges, **parameters)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "problem": problem,
                "decision": label,
                "utilities": len(part.weights),
                "seconds": seconds,
                "exact": decision.exact,
                "objective": decision.objective,
                "expected_value": decision.expected,
                "quantile": decision.quantile(ALPHA),
                "cvar": decision.cvar(ALPHA),
                "search": decision.search,
            }
        )
        print(f"{problem}: {label} {seconds:.3g} s", flush=True)
    return rows


def first(sample: UtilitySample, n: int) -> UtilitySample:
    weights = sample.weights[:n] / sample.weights[:n].sum()
    return UtilitySample(sample.rewards[:n], weights, sample.labels[:n])


def main(n_utilities: int) -> None:
    world, sample = grid_problem(n_utilities)
    few = first(sample, QUANTILE_UTILITIES)
    rows = timed_decisions(
        f"60x60 gridworld ({world.n_states} states)",
        world,
        sample,
        [
            ("expected", sample, "expected", {}),
            (f"robust, {CVAR} (LP)", sample, "robust", {"alpha": ALPHA, "tail": CVAR}),
            (f"robust, {QUANTILE} (MILP)", few, "robust", {"alpha": ALPHA, "tail": QUANTILE}),
            (f"robust, {CVAR} (LP)", few, "robust", {"alpha": ALPHA, "tail": CVAR}),
        ],
    )
    taxi, taxi_sample = taxi_problem(n_utilities)
    rows += timed_decisions(
        f"Taxi-v4 ({taxi.n_states} states)",
        taxi,
        taxi_sample,
        [
            ("expected", taxi_sample, "expected", {}),
            (f"robust, {CVAR} (LP)", taxi_sample, "robust", {"alpha": ALPHA, "tail": CVAR}),
            (f"robust, {QUANTILE} (MILP)", taxi_sample, "robust", {"alpha": ALPHA, "tail": QUANTILE}),
        ],
    )
    table = pd.DataFrame(rows)
    shown = table.drop(columns="search")
    print(text_table(shown))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    searches = "\n".join(f"- {row.problem}, {row.decision}: {row.search}" for row in table.dropna().itertuples())
    kept = OUT.read_text(encoding="utf-8").partition(SUMMARY_HEADING)[2] if OUT.exists() else ""
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        "# Decisions at scale: occupancy programs (HiGHS) and value iteration\n\n"
        f"`python benchmarks/robust_lp.py {n_utilities}` at commit {commit} (setup: the script's docstring), "
        f"alpha = {ALPHA}.\n\n## Seconds per step\n\n{pipe_table(shown)}\n\n## The searches that ran\n\n"
        f"{searches}\n\n{SUMMARY_HEADING}{kept or chr(10)}",
        encoding="utf-8",
    )
    print(f"\nWrote {OUT}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
