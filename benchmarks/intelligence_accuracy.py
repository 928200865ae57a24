"""Accuracy of the sampled intelligence estimators against exact enumeration, by band of exact g.

On random garnets (S = 6–7 states, A = 3–4 actions, one world, γ = 0.9, 4 standard normal features) with
linear utilities r = phi @ theta (theta standard normal), the policies scored are random deterministic ones,
softmax policies of the optimal Q at a few inverse temperatures, and the optimal policy. For each (policy,
utility) pair, g is computed exactly by enumerating all A^S deterministic policies, and by ``monte_carlo`` and
``gaussian`` with M = 1000 reference policies (seeded per garnet). The table gives, per band of exact g
(0–2, 2–4, 4–8, 8+ bits) and method, the number of pairs, the mean and maximum absolute error in bits, and
the mean signed error (positive: the estimator overstates g) and the share of pairs off by more than 1 bit.

Run: ``python benchmarks/intelligence_accuracy.py`` (prints a table, writes
benchmarks/results/intelligence_accuracy.json).
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np

import utiliscope as us

SIZES = [(6, 3), (7, 3), (6, 4), (7, 4)]
SEEDS_PER_SIZE = 25
THETAS_PER_GARNET = 2
RANDOM_POLICIES = 12
BETAS = (1.0, 3.0, 10.0, 30.0, 100.0)  # softmax inverse temperatures, relative to the largest |Q|
N_SAMPLES = 1000
BANDS = [(0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, np.inf)]
METHODS = ("monte_carlo", "gaussian")
RESULTS = Path(__file__).parent / "results" / "intelligence_accuracy.json"


def optimal_q(world: us.TabularMDP, reward: np.ndarray, sweeps: int = 1000) -> np.ndarray:
    """Q* by value iteration (0.9^1000 is far below float precision)."""
    V = np.zeros(world.n_states)
    for _ in range(sweeps):
        Q = reward[:, None] + world.gamma * world.transitions @ V
        V = Q.max(axis=1)
    return Q


def scored_policies(world: us.TabularMDP, reward: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random deterministic policies, softmax policies of Q* at ``BETAS`` and the optimal policy, as tables."""
    S, A = world.n_states, world.n_actions
    Q = optimal_q(world, reward)
    logits = (Q - Q.max(axis=1, keepdims=True)) / np.abs(Q).max()
    softmax = [np.exp(beta * logits) / np.exp(beta * logits).sum(axis=1, keepdims=True) for beta in BETAS]
    return np.concatenate(
        [np.eye(A)[rng.integers(0, A, (RANDOM_POLICIES, S))], softmax, np.eye(A)[Q.argmax(axis=1)][None]]
    )


def one_garnet(n_states: int, n_actions: int, seed: int) -> list[dict]:
    """Exact, monte_carlo and gaussian g of every scored policy under ``THETAS_PER_GARNET`` linear utilities."""
    world = us.worlds.garnet(n_states, n_actions, 3, gamma=0.9, n_features=4, seed=seed)
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(THETAS_PER_GARNET):
        reward = world.features @ rng.standard_normal(4)
        policies = scored_policies(world, reward, rng)
        estimates = {
            method: us.intelligence_table(
                world, policies, reward[None], method=method, n_samples=N_SAMPLES, seed=seed
            )
            for method in ("exact", *METHODS)
        }
        for j in range(policies.shape[0]):
            record = {"S": n_states, "A": n_actions, "seed": seed, "policy": j}
            record |= {method: float(g[j, 0]) for method, (g, _) in estimates.items()}
            record |= {f"{method}_se": float(estimates[method][1][j, 0]) for method in METHODS}
            records.append(record)
    return records


def band_table(records: list[dict]) -> list[dict]:
    """Per band of exact g and method: count, mean and max absolute error, mean signed error (bits)."""
    exact = np.array([r["exact"] for r in records])
    rows = []
    for (low, high), method in itertools.product(BANDS, METHODS):
        inside = (exact >= low) & (exact < high)
        error = np.array([r[method] for r in records])[inside] - exact[inside]
        rows.append(
            {
                "band": f"{low:g}-{high:g}" if np.isfinite(high) else f"{low:g}+",
                "method": method,
                "n": int(inside.sum()),
                "mean_abs_error": float(np.abs(error).mean()) if error.size else None,
                "max_abs_error": float(np.abs(error).max()) if error.size else None,
                "mean_signed_error": float(error.mean()) if error.size else None,
                "share_over_1_bit": float((np.abs(error) > 1.0).mean()) if error.size else None,
            }
        )
    return rows


def main() -> None:
    begin = time.perf_counter()
    records = [
        record
        for n_states, n_actions in SIZES
        for seed in range(SEEDS_PER_SIZE)
        for record in one_garnet(n_states, n_actions, seed)
    ]
    rows = band_table(records)
    seconds = time.perf_counter() - begin

    print(f"{len(records)} (policy, utility) pairs on {len(SIZES) * SEEDS_PER_SIZE} garnets, M = {N_SAMPLES}")
    header = ["mean |err|", "max |err|", "mean err", "|err| > 1"]
    print(f"{'band (bits)':<12} {'method':<12} {'n':>5} " + " ".join(f"{h:>10}" for h in header))
    for row in rows:
        keys = ("mean_abs_error", "max_abs_error", "mean_signed_error", "share_over_1_bit")
        numbers = [row[key] for key in keys]
        text = " ".join(f"{x:>10.3f}" if x is not None else f"{'-':>10}" for x in numbers)
        print(f"{row['band']:<12} {row['method']:<12} {row['n']:>5} {text}")
    print(f"{seconds:.1f} s")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "sizes": SIZES,
        "seeds_per_size": SEEDS_PER_SIZE,
        "thetas_per_garnet": THETAS_PER_GARNET,
        "random_policies": RANDOM_POLICIES,
        "betas": BETAS,
        "n_samples": N_SAMPLES,
    }
    RESULTS.write_text(
        json.dumps({"settings": settings, "bands": rows, "records": records, "seconds": seconds}, indent=1)
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
