"""Build + fit + decide on gridworlds of the size users work with, this tree beside an older commit.

The problem (issue 33): an n×n gridworld (n = 6 and 12) in two worlds (slip 0.1 and 0.3), four colours, the
default library of ``UtilityLibrary.from_features``, a Boltzmann agent (β = 4) on one library utility, 100
demonstrations of 12 steps, g′ observed at the agent's g* (measured with ``method="importance"``, outside the
timed part). Timed: the Utiliscope's construction (``build_s``: its g reference), ``fit`` with its defaults
(``fit_s``) and the expected-value decision (``decide_s``). Each run is a fresh subprocess with the chosen tree
first on ``PYTHONPATH``, killed after ``--timeout`` seconds; both trees run in the same invocation, side by side.

Run: ``python benchmarks/scale.py --old PATH`` with PATH a checkout of the older commit (``git worktree add PATH
d85bfee``); prints a table and writes benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
from tables import pipe_table, text_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.md"
SIDES = (6, 12)
#: A 6×6 tile with four colours; the 12×12 grid is 2×2 tiles with one start cell.
TILE = ["a....b", "..c...", "....d.", ".b....", "...a..", "c....d"]

CHILD = r"""
import json, sys, time
import numpy as np
import utiliscope as us

side = int(sys.argv[1])
tile = json.loads(sys.argv[2])
rows = [row * (side // 6) for row in tile] * (side // 6)
rows[0] = "S" + rows[0][1:]
worlds = us.WorldSet([us.worlds.gridworld(rows, slip=slip, gamma=0.9) for slip in (0.1, 0.3)])
library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
truth = library.names.index("+a-b")
reward = library.reward_table(worlds.n_actions)[truth]
agent = us.agents.Boltzmann(reward, beta=4.0)
begin = time.perf_counter()
g_star = agent.true_intelligence(worlds, method="importance", n_samples=500, seed=0)
out = {"states": worlds.n_states, "library": len(library), "g_star": g_star}
out["g_star_s"] = time.perf_counter() - begin
demos = agent.demonstrate(worlds, n_trajectories=100, horizon=12, seed=0)
begin = time.perf_counter()
scope = us.Utiliscope(worlds, us.WorldModel.from_demonstrations(demos), library,
                      us.likelihoods.AsymmetricLaplace(observed=round(g_star, 1)))
out["build_s"] = time.perf_counter() - begin
print(json.dumps(out), flush=True)
begin = time.perf_counter()
idata = scope.fit(seed=0, progressbar=False, target_mcse=0.002)  # the iid default, given: both trees take it
out["fit_s"] = time.perf_counter() - begin
begin = time.perf_counter()
decision = scope.decide(idata, rule="expected")
out["decide_s"] = time.perf_counter() - begin
out["check_ok"] = bool(us.diagnostics.check(idata).ok)
out["policy_loss"] = float(us.diagnostics.policy_loss(worlds, decision.policy, reward))
out["p_truth"] = float(scope.utility_posterior(idata).values[truth])
print(json.dumps(out), flush=True)
"""


def run(tree: Path, side: int, timeout: float) -> dict:
    """One problem in a fresh interpreter with ``tree`` first on the path; the last JSON line it printed."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", CHILD, str(side), json.dumps(TILE)]
    try:
        # cwd=tree: ``python -c`` puts the working directory ahead of PYTHONPATH, so run inside the tree it times.
        result = subprocess.run(
            command, env=env, cwd=tree, capture_output=True, text=True, timeout=timeout, check=False
        )
        stdout, status = result.stdout, "ok" if result.returncode == 0 else f"failed ({result.returncode})"
        if result.returncode:
            print(result.stderr[-2000:], file=sys.stderr)
    except subprocess.TimeoutExpired as err:
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        status = f"timed out at {timeout:g} s"
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return {"side": side, "status": status, **(json.loads(lines[-1]) if lines else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the older commit")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run before it is killed")
    parser.add_argument("--sides", type=int, nargs="*", default=list(SIDES), choices=SIDES, help="grid sides")
    args = parser.parse_args()
    rows = []
    for side in args.sides:
        for label, tree in (("old", args.old), ("new", ROOT)):
            row = {"tree": label, **run(tree, side, args.timeout)}
            print(row, flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    timed = [c for c in ("build_s", "fit_s", "decide_s") if c in table]
    table["total_s"] = table[timed].sum(axis=1, min_count=len(timed)) if timed else float("nan")
    columns = ["side", "tree", "states", "status", "g_star", "build_s", "fit_s", "decide_s", "total_s"]
    columns += ["check_ok", "policy_loss", "p_truth"]
    table = table.reindex(columns=columns).astype(object).fillna("—")
    print(text_table(table))
    old = subprocess.run(
        ["git", "-C", str(args.old), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    new = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    RESULTS.write_text(
        "# Build + fit + decide at the sizes users work with\n\n"
        f"`python benchmarks/scale.py --old <checkout of {old.stdout.strip()}>` against {new.stdout.strip()} "
        f"(+ uncommitted changes, if any), {platform.machine()}, Python {platform.python_version()}, on a shared "
        f"2-core machine; both trees in the same invocation, each run a fresh process killed after "
        f"{args.timeout:g} s. Seconds; `—` where a run did not get that far.\n\n" + pipe_table(table) + "\n"
    )


if __name__ == "__main__":
    main()
