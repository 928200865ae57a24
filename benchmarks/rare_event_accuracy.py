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

Run: ``python benchmarks/rare_event_accuracy.py`` (prints a table, writes
benchmarks/results/rare_event_accuracy.json).
"""

from __future__ import annotations

import itertools
import json
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
    main()
