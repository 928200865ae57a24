"""Power of ``us.diagnostics.predictive_check`` against two misspecifications built by hand.

Run: ``python benchmarks/predictive_detection.py [agents]`` (default 30). Writes
``benchmarks/results/predictive_detection.md``.

* **Context-steered demonstrator, Boltzmann IRL**: the corridor of ``predictive_calibration.py``; the left half
  (columns 0–3) acts as a Boltzmann agent under +a (rightwards), the right half under +b (leftwards), β = 5; 60
  demonstrations of 12 steps (the issue's detection size), seed i. Also, as the null beside it, agents acting
  under +a alone.
* **Impossible g′, Utiliscope**: agents drawn as in ``predictive_calibration.py`` (pi's rows from Dirichlet(1), U
  from the library prior, 30 demonstrations of 8 steps), but g′ set 8 bits above the largest g that 1000 draws of
  the world model reach under any library utility.

The table gives the share flagged at level 0.05 (the check's min-p combination, and Bonferroni's of the same
replications), the median combined p-value and each statistic's share below 0.05.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from predictive_calibration import BETA, CHAINS, DRAWS, boltzmann_problem, utiliscope_problem
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.demonstrations import simulate
from utiliscope.diagnostics.predictive import BONFERRONI

OUT = Path(__file__).parent / "results" / "predictive_detection.md"
LEVEL = 0.05
#: Bits above the reachable g of the impossible claim.
EXCESS_BITS = 8.0
SUMMARY_HEADING = "## What the numbers show"


def corridor_agent(problem, seed: int, shard: bool) -> us.diagnostics.PredictiveCheck:
    world, library = problem
    rewards = library.reward_table(world.n_actions)
    left, right = (us.agents.Boltzmann(rewards[library.index(name)], BETA).policy(world) for name in ("+a", "+b"))
    column = np.array([int(name.split("c")[1]) for name in world.state_names])
    policy = np.where((column <= 3)[:, None], left, right) if shard else left
    demos = simulate(world, policy, 60, 12, seed=seed)
    birl = us.models.BoltzmannIRL(world, demos, library, beta=BETA)
    return us.diagnostics.predictive_check(birl, birl.fit(draws=DRAWS, chains=CHAINS, seed=seed), seed=seed)


def impossible_agent(problem, seed: int) -> us.diagnostics.PredictiveCheck:
    worlds, library = problem
    rng = np.random.default_rng(seed)
    policy = rng.dirichlet(np.ones(worlds.n_actions), size=worlds.n_states)
    demos = simulate(worlds, policy, 30, 8, seed=rng)
    world_model = us.WorldModel.from_demonstrations(demos)
    probe = us.Utiliscope(
        worlds, world_model, library, us.likelihoods.AsymmetricLaplace(observed=0.0), g_method="exact"
    )
    reachable = float(probe.target.hard_g(world_model.sample(1000, seed=rng)).max())
    scope = us.Utiliscope(
        worlds,
        world_model,
        library,
        us.likelihoods.AsymmetricLaplace(observed=reachable + EXCESS_BITS),
        g_method="exact",
    )
    idata = scope.fit(draws=DRAWS, chains=CHAINS, seed=seed, progressbar=False)
    return us.diagnostics.predictive_check(scope, idata, seed=seed, demonstrations=demos)


CASES = {
    "Boltzmann IRL, context-steered (+a left, +b right)": (
        boltzmann_problem,
        lambda problem, seed: corridor_agent(problem, seed, shard=True),
    ),
    "Boltzmann IRL, well-specified (+a)": (
        boltzmann_problem,
        lambda problem, seed: corridor_agent(problem, seed, shard=False),
    ),
    f"Utiliscope, g′ {EXCESS_BITS:g} bits above reach": (utiliscope_problem, impossible_agent),
}


def main(agents: int) -> None:
    rows = []
    for case, (make_problem, check_agent) in CASES.items():
        problem, start = make_problem(), time.perf_counter()
        checks = [check_agent(problem, seed) for seed in range(agents)]
        p = np.array([check.p_value for check in checks])
        bonferroni = np.array([check.combined(BONFERRONI) for check in checks])
        per_statistic = pd.DataFrame([check.table["p_value"] for check in checks])
        shares = "; ".join(f"{name} {np.mean(per_statistic[name] < LEVEL):.2f}" for name in per_statistic)
        rows.append(
            {
                "case": case,
                "agents": agents,
                "flagged (p < 0.05)": float(np.mean(p < LEVEL)),
                "flagged by Bonferroni": float(np.mean(bonferroni < LEVEL)),
                "median p": float(np.median(p)),
                "each statistic's share < 0.05": shares,
                "s per agent": (time.perf_counter() - start) / agents,
            }
        )
    table = pd.DataFrame(rows)
    print(text_table(table))
    kept = OUT.read_text(encoding="utf-8").partition(SUMMARY_HEADING)[2] if OUT.exists() else ""
    OUT.write_text(
        "# Predictive check detection\n\n"
        f"`python benchmarks/predictive_detection.py {agents}` (the script's docstring has the setup; "
        f"{CHAINS} × {DRAWS} posterior draws, level 0.05).\n\n"
        f"{pipe_table(table)}\n\n{SUMMARY_HEADING}{kept or chr(10)}",
        encoding="utf-8",
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
