"""Error and cost of every g method against exact enumeration, by band of exact g, up to 18 bits.

Problems (each enumerable, A^S ≥ 10^5): the 3×3 gridworld with one wall in two worlds (slip 0.1 and 0.3; 5^8 =
390,625 policies) and two 11-state, 3-action garnets as two worlds (3^11 = 177,147 policies), each under three
utilities (gridworld: colour weights; garnet: standard normal linear weights). The policies scored follow a rule
fixed in advance: the optimal policy, Boltzmann policies at inverse temperatures ``BETAS`` (relative to the
largest discounted return) and deterministic policies at the quantiles 1 − 2^-k of ξ's values, k in
``QUANTILE_BITS``. Every method estimates the same pairs: ``monte_carlo`` and ``gaussian`` with M = 1000
reference policies, ``importance`` with its default 20,000 evaluations (1000 per cross-entropy level).

Per band of exact g (0–4, 4–8, 8–12, 12–16, 16+ bits) and method the table gives the number of pairs, the mean
and maximum absolute error in bits, the mean signed error (positive: overstates g), the share of pairs whose
error is within 3 reported standard errors, and the cost: policy evaluations and seconds per estimate.

Beyond enumeration (``--beyond``: only this table) there is no exact g, so the check is agreement: on a 5×5
gridworld (23 free cells, 5^23 ≈ 10^16 policies) and an 8×8 one (58 free cells, 5^58 ≈ 10^40), both in two worlds
(slip 0.1 and 0.3) under colour weights (1, −0.5), Boltzmann policies at inverse temperatures ``BEYOND_BETAS``
(g ≈ 20–35 bits) are estimated by ``RUNS`` independent runs, at the default budget (20,000 evaluations, 1000 per
level) and at the budget recommended for large worlds (``LARGE_BUDGET``, ``LARGE_LEVEL_SIZE`` per level). The
table gives each run's g and se, the largest difference between runs and that difference in units of the
standard error of a difference, ``|g_i − g_j| / sqrt(se_i² + se_j²)``.

Run: ``python benchmarks/rare_event_accuracy.py [--beyond]`` (prints the tables, writes
benchmarks/results/rare_event_accuracy.json and benchmarks/results/rare_event_beyond.json).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

import utiliscope as us

GRID = ["S.a", ".#b", "a.b"]
GRID_THETAS = ([1.0, -0.5], [-1.0, 2.0], [0.3, 1.0])
GARNET_SEEDS = (0, 1, 2)
BETAS = (1.0, 3.0, 10.0, 30.0, 100.0)
QUANTILE_BITS = (2, 4, 6, 8, 10, 12, 14, 16)
N_SAMPLES = 1000
METHODS = ("exact", "monte_carlo", "gaussian", "importance")
BANDS = [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, 16.0), (16.0, np.inf)]
RESULTS = Path(__file__).parent / "results" / "rare_event_accuracy.json"
GRID_5 = ["S...a", ".#.b.", "..#..", "b...a", "..a.b"]
GRID_8 = ["S....a..", ".#..b...", "..a...#.", "b...#..a", "..#..b..", ".a...#..", "...b...a", "#....a.b"]
BEYOND_BETAS = {"grid5x5": (7.0, 10.0), "grid8x8": (7.5, 10.0)}
RUNS = (1, 2, 3)
LARGE_BUDGET, LARGE_LEVEL_SIZE = 40_000, 2000
BEYOND_RESULTS = Path(__file__).parent / "results" / "rare_event_beyond.json"


def problems() -> list[tuple[str, us.WorldSet, np.ndarray]]:
    """(name, worlds, reward r[s]) for every problem of the module docstring."""
    grid = us.WorldSet([us.worlds.gridworld(GRID, slip=slip, gamma=0.9) for slip in (0.1, 0.3)])
    out = [(f"grid3x3 theta={theta}", grid, grid.features @ np.array(theta)) for theta in GRID_THETAS]
    for seed in GARNET_SEEDS:
        garnets = [us.worlds.garnet(11, 3, 3, gamma=0.9, n_features=4, seed=10 * seed + e) for e in (0, 1)]
        worlds = us.WorldSet([us.TabularMDP(g.transitions, g.start, g.gamma) for g in garnets])
        reward = garnets[0].features @ np.random.default_rng(seed).standard_normal(4)
        out.append((f"garnet11x3 seed={seed}", worlds, reward))
    return out


def scored_policies(worlds: us.WorldSet, reward: np.ndarray) -> np.ndarray:
    """Optimal, Boltzmann at ``BETAS`` (in units of 1 / largest return) and quantile policies, as tables."""
    S, A = worlds.n_states, worlds.n_actions
    actions = np.indices((A,) * S).reshape(S, -1).T
    values = us.evaluate_policies(worlds, actions, reward)
    order = np.argsort(values, kind="stable")
    scale = np.abs(reward).max() / (1.0 - worlds.gamma)
    policies = [us.agents.Optimal(reward).policy(worlds)]
    policies += [us.agents.Boltzmann(reward, beta / scale).policy(worlds) for beta in BETAS]
    policies += [np.eye(A)[actions[order[int((1 - 2.0**-k) * (values.size - 1))]]] for k in QUANTILE_BITS]
    return np.stack(policies)


def evaluations(method: str, worlds: us.WorldSet) -> int:
    """Policy evaluations one estimate costs (reference policies, or the importance budget)."""
    support = worlds.n_actions**worlds.n_states
    return {"exact": support, "monte_carlo": N_SAMPLES, "gaussian": N_SAMPLES}.get(method, 20_000)


def one_problem(name: str, worlds: us.WorldSet, reward: np.ndarray) -> list[dict]:
    """Every method's g and se for every scored policy of one problem, with its cost per estimate."""
    policies = scored_policies(worlds, reward)
    records = [{"problem": name, "policy": j} for j in range(policies.shape[0])]
    for method in METHODS:
        begin = time.perf_counter()
        g, se = us.intelligence_table(worlds, policies, reward[None], method=method, n_samples=N_SAMPLES, seed=1)
        seconds = (time.perf_counter() - begin) / policies.shape[0]
        for j, record in enumerate(records):
            record |= {method: float(g[j, 0]), f"{method}_se": float(se[j, 0]), f"{method}_seconds": seconds}
            record[f"{method}_evaluations"] = evaluations(method, worlds)
    return records


def band_table(records: list[dict]) -> list[dict]:
    """Per band of exact g and method: error statistics, coverage of the reported se and cost."""
    exact = np.array([r["exact"] for r in records])
    rows = []
    for (low, high), method in itertools.product(BANDS, METHODS):
        inside = [r for r, g in zip(records, exact, strict=True) if low <= g < high]
        error = np.array([r[method] - r["exact"] for r in inside])
        se = np.array([r[f"{method}_se"] for r in inside])
        rows.append(
            {
                "band": f"{low:g}-{high:g}" if np.isfinite(high) else f"{low:g}+",
                "method": method,
                "n": len(inside),
                "mean_abs_error": float(np.abs(error).mean()) if inside else None,
                "max_abs_error": float(np.abs(error).max()) if inside else None,
                "mean_signed_error": float(error.mean()) if inside else None,
                "within_3_se": float(np.mean(np.abs(error) <= 3 * se)) if inside else None,
                "evaluations": float(np.mean([r[f"{method}_evaluations"] for r in inside])) if inside else None,
                "seconds": float(np.mean([r[f"{method}_seconds"] for r in inside])) if inside else None,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    keys = ("mean_abs_error", "max_abs_error", "mean_signed_error", "within_3_se", "evaluations", "seconds")
    header = ("mean |err|", "max |err|", "mean err", "≤ 3 se", "evals", "s/estimate")
    print(f"{'band (bits)':<12} {'method':<12} {'n':>4} " + " ".join(f"{h:>10}" for h in header))
    for row in rows:
        text = " ".join(f"{row[k]:>10.3f}" if row[k] is not None else f"{'-':>10}" for k in keys[:4])
        cost = f"{row['evaluations']:>10.0f} {row['seconds']:>10.3f}" if row["n"] else f"{'-':>10} {'-':>10}"
        print(f"{row['band']:<12} {row['method']:<12} {row['n']:>4} {text} {cost}")


def beyond_enumeration() -> list[dict]:
    """Independent runs per (grid, beta, budget) of the module docstring, with their largest difference."""
    rows = []
    for name, layout in (("grid5x5", GRID_5), ("grid8x8", GRID_8)):
        worlds = us.WorldSet([us.worlds.gridworld(layout, slip=slip, gamma=0.9) for slip in (0.1, 0.3)])
        reward = worlds.features @ np.array([1.0, -0.5])
        for beta, (budget, level_size) in itertools.product(
            BEYOND_BETAS[name], [(20_000, N_SAMPLES), (LARGE_BUDGET, LARGE_LEVEL_SIZE)]
        ):
            pi = us.agents.Boltzmann(reward, beta).policy(worlds)
            begin = time.perf_counter()
            runs = [
                us.intelligence(
                    worlds,
                    pi,
                    reward,
                    method="importance",
                    n_samples=level_size,
                    budget=budget,
                    seed=seed,
                    return_se=True,
                )
                for seed in RUNS
            ]
            g, se = np.array(runs).T
            i, j = np.unravel_index(np.argmax(np.abs(g[:, None] - g[None])), (g.size, g.size))
            rows.append(
                {
                    "grid": name,
                    "beta": beta,
                    "budget": budget,
                    "level_size": level_size,
                    "g": g.tolist(),
                    "se": se.tolist(),
                    "max_difference": float(abs(g[i] - g[j])),
                    "difference_in_se": float(abs(g[i] - g[j]) / np.hypot(se[i], se[j])),
                    "seconds": (time.perf_counter() - begin) / len(RUNS),
                }
            )
    return rows


def print_beyond(rows: list[dict]) -> None:
    head = f"{'grid':<8} {'beta':>5} {'budget':>7} {'level':>6} {'runs: g ± se':<44}"
    print(f"{head} {'max diff':>8} {'/ se':>6} {'s':>6}")
    for row in rows:
        runs = "  ".join(f"{g:5.2f} ± {se:4.2f}" for g, se in zip(row["g"], row["se"], strict=True))
        print(
            f"{row['grid']:<8} {row['beta']:>5g} {row['budget']:>7} {row['level_size']:>6} {runs:<44} "
            f"{row['max_difference']:>8.2f} {row['difference_in_se']:>6.1f} {row['seconds']:>6.1f}"
        )


def main_beyond() -> None:
    begin = time.perf_counter()
    rows = beyond_enumeration()
    print_beyond(rows)
    seconds = time.perf_counter() - begin
    print(f"{seconds:.1f} s")
    BEYOND_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    settings = {"grids": {"grid5x5": GRID_5, "grid8x8": GRID_8}, "betas": BEYOND_BETAS, "runs": RUNS}
    BEYOND_RESULTS.write_text(json.dumps({"settings": settings, "rows": rows, "seconds": seconds}, indent=1))
    print(f"wrote {BEYOND_RESULTS}")


def main() -> None:
    begin = time.perf_counter()
    records = [record for problem in problems() for record in one_problem(*problem)]
    rows = band_table(records)
    seconds = time.perf_counter() - begin
    print(f"{len(records)} (policy, utility) pairs on {len(problems())} problems")
    print_table(rows)
    print(f"{seconds:.1f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "grid": GRID,
        "grid_thetas": GRID_THETAS,
        "garnet_seeds": GARNET_SEEDS,
        "betas": BETAS,
        "quantile_bits": QUANTILE_BITS,
        "n_samples": N_SAMPLES,
    }
    RESULTS.write_text(
        json.dumps({"settings": settings, "bands": rows, "records": records, "seconds": seconds}, indent=1)
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if "--beyond" not in sys.argv:
        main()
    main_beyond()
