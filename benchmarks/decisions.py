"""How close the decision rules' local searches come to the enumerated optimum, and what a decision costs.

Run: ``python benchmarks/decisions.py [problems]`` (default 40). Writes ``benchmarks/results/decisions.md``.

Part 1, small problems where every deterministic policy can be enumerated: garnets with 2 worlds (weights 0.4,
0.6), S = 6, A = 3 (729 policies), γ = 0.9, and a posterior of 8 random rewards (standard normal r[s, a]) with
Dirichlet(1) weights; problem i uses seed i, fixed before any result was seen. Each rule is decided twice: by
enumeration (``max_enumerate`` = 10^6, exact) and by the local search the rules use beyond ``max_enumerate``
(``max_enumerate`` = 1): value iteration and single-state coordinate ascent (screened by each world's advantages)
for ``expected``, coordinate ascent on the α-quantile (α = 0.1) from 9 starts for ``robust`` (the worlds' dynamics
differ, so the occupancy programs of ``robust_lp.py`` do not apply). Both decisions are scored under the
enumerated ranges (the local search's own ranges come from locally optimal policies too). The table gives, per
rule, the fraction of problems whose local search reaches the enumerated objective (within 1e-9) and the mean and
largest shortfall.

Part 2, seconds per decision on the quickstart's problem (two 2×3 gridworlds, 5^6 policies, 43 utilities) and on
the same posterior over a 4×4 gridworld with two worlds (5^16 policies: local search only).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.decisions import UtilitySample, decide, normalised_values, rule_from, value_ranges

OUT = Path(__file__).parent / "results" / "decisions.md"
ALPHA = 0.1
#: Each rule's parameters (a rule takes only its own).
RULE_PARAMETERS = {"robust": {"alpha": ALPHA}}
#: Text under this heading of an existing results file is kept.
SUMMARY_HEADING = "## What the tables show"


def small_problem(seed: int) -> tuple[us.WorldSet, UtilitySample]:
    rng = np.random.default_rng(seed)
    worlds = us.WorldSet(
        [
            us.TabularMDP(g.transitions, g.start, g.gamma)
            for g in (us.worlds.garnet(6, 3, 2, gamma=0.9, seed=seed * 2 + k) for k in (0, 1))
        ],
        weights=[0.4, 0.6],
    )
    rewards = rng.standard_normal((8, 6, 3))
    return worlds, UtilitySample(rewards, rng.dirichlet(np.ones(8)), tuple(f"u{i}" for i in range(8)))


def local_search_table(n_problems: int) -> pd.DataFrame:
    shortfalls = {"expected": [], "robust": []}
    for seed in range(n_problems):
        worlds, sample = small_problem(seed)
        ranges = value_ranges(worlds, sample.rewards, max_enumerate=10**6)
        for rule in shortfalls:
            parameters = RULE_PARAMETERS.get(rule, {})
            exact = decide(worlds, sample, rule, max_enumerate=10**6, **parameters)
            local = decide(worlds, sample, rule, max_enumerate=1, **parameters)
            # Scored under the enumerated ranges: the local search's own ranges are local optima too.
            rescored = normalised_values(worlds, local.policy[None], sample, ranges)[0]
            objective = rule_from(rule, **parameters).objective(rescored, sample.weights)
            shortfalls[rule].append(exact.objective - objective)
    rows = []
    for rule, gaps in shortfalls.items():
        gaps = np.asarray(gaps)
        rows.append(
            {
                "rule": rule,
                "problems": len(gaps),
                "reached_optimum": float(np.mean(gaps <= 1e-9)),
                "mean_shortfall": float(gaps.mean()),
                "max_shortfall": float(gaps.max()),
            }
        )
    return pd.DataFrame(rows)


def timing_table() -> pd.DataFrame:
    small = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    large = us.WorldSet([us.worlds.gridworld(["S..a", "....", "b...", "...c"], slip=s) for s in (0.1, 0.3)])
    rows = []
    for name, worlds in (("2x3 gridworld, 5^6 policies", small), ("4x4 gridworld, 5^16 policies", large)):
        library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
        weights = np.random.default_rng(0).dirichlet(np.ones(len(library)))
        sample = UtilitySample(library.reward_table(worlds.n_actions), weights, library.names)
        for rule in ("expected", "robust", "quantilize"):
            start = time.perf_counter()
            decision = decide(worlds, sample, rule, **RULE_PARAMETERS.get(rule, {}))
            rows.append(
                {
                    "problem": name,
                    "rule": rule,
                    "seconds": time.perf_counter() - start,
                    "exact": decision.exact,
                }
            )
    return pd.DataFrame(rows)


def main(n_problems: int) -> None:
    search = local_search_table(n_problems)
    timing = timing_table()
    print(text_table(search))
    print()
    print(text_table(timing))
    OUT.parent.mkdir(exist_ok=True)
    kept = OUT.read_text(encoding="utf-8").partition(SUMMARY_HEADING)[2] if OUT.exists() else ""
    OUT.write_text(
        "# Decision rules: local search against enumeration, and cost\n\n"
        f"`python benchmarks/decisions.py {n_problems}` (setup: the script's docstring).\n\n"
        "## Local search against the enumerated optimum (2 garnets, S = 6, A = 3)\n\n"
        f"{pipe_table(search)}\n\n## Seconds per decision (43 utilities)\n\n{pipe_table(timing)}\n\n"
        f"{SUMMARY_HEADING}{kept or chr(10)}",
        encoding="utf-8",
    )
    print(f"\nWrote {OUT}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
