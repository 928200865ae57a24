"""Speed of valuing every deterministic policy of a small gridworld, against plain batched numpy.

The problem: a 3×3 gridworld with one wall (8 free cells, 5 actions), two worlds (slip 0.1 and 0.3), so
5^8 = 390,625 deterministic policies, each solved in both worlds. The package's ``evaluate_policies`` is timed
against a reference that builds the stacked systems ``(I − γ P_e^pi)ᵀ d = mu0_e`` and hands them to
``np.linalg.solve`` in blocks. Each timing is the median of 3 runs. The target for the package is < 2 s.

Run: ``python benchmarks/evaluation_speed.py`` (prints a table, writes benchmarks/results/evaluation_speed.json).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import utiliscope as us

LAYOUT = ["S.a", ".#b", "a.b"]
SLIPS = (0.1, 0.3)
REPEATS = 3
#: Policies per np.linalg.solve call in the reference: bounds its memory (E · block · S² floats).
REFERENCE_BLOCK = 65_536
TARGET_SECONDS = 2.0
RESULTS = Path(__file__).parent / "results" / "evaluation_speed.json"


def build_problem() -> tuple[us.WorldSet, np.ndarray, np.ndarray]:
    """The two-world gridworld, every deterministic policy as action indices a[m, s], and a colour reward."""
    worlds = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=slip, gamma=0.9) for slip in SLIPS])
    actions = np.indices((worlds.n_actions,) * worlds.n_states).reshape(worlds.n_states, -1).T
    reward = worlds.features @ np.array([1.0, -0.5])
    return worlds, np.ascontiguousarray(actions), reward


def numpy_reference(worlds: us.WorldSet, actions: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """V[m] = Σ_e w_e d_e(pi_m) · r with d_e from np.linalg.solve on the stacked (I − γ P_e^pi)ᵀ systems."""
    S = worlds.n_states
    states = np.arange(S)
    values = np.zeros(actions.shape[0])
    for start in range(0, actions.shape[0], REFERENCE_BLOCK):
        block = actions[start : start + REFERENCE_BLOCK]
        for w, P, mu0 in zip(worlds.weights, worlds.transitions, worlds.starts, strict=True):
            P_pi = P[states, block]  # P_pi[m, s, s'] = P[s, a_m(s), s']
            systems = np.eye(S) - worlds.gamma * P_pi.transpose(0, 2, 1)
            d = np.linalg.solve(systems, np.broadcast_to(mu0, (block.shape[0], S))[..., None])[..., 0]
            values[start : start + REFERENCE_BLOCK] += w * d @ reward
    return values


def median_seconds(function: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Median wall time of ``REPEATS`` calls, and the last result."""
    times = []
    for _ in range(REPEATS):
        begin = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times), result


def main() -> None:
    worlds, actions, reward = build_problem()
    n_policies = actions.shape[0]
    runs = {
        "utiliscope.evaluate_policies": lambda: us.evaluate_policies(worlds, actions, reward),
        "numpy linalg.solve (batched)": lambda: numpy_reference(worlds, actions, reward),
    }
    rows, results = [], {}
    for name, function in runs.items():
        seconds, results[name] = median_seconds(function)
        rows.append(
            {"method": name, "policies": n_policies, "seconds": seconds, "policies_per_s": n_policies / seconds}
        )
    package, reference = results.values()
    max_abs_diff = float(np.abs(package - reference).max())

    print(f"{'method':<32} {'policies':>9} {'seconds':>9} {'policies/s':>12}")
    for row in rows:
        print(f"{row['method']:<32} {row['policies']:>9,} {row['seconds']:>9.3f} {row['policies_per_s']:>12,.0f}")
    print(
        f"max |V_package - V_numpy| = {max_abs_diff:.2e}; target < {TARGET_SECONDS} s for the package: "
        f"{'met' if rows[0]['seconds'] < TARGET_SECONDS else 'MISSED'}"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "problem": {
            "layout": LAYOUT,
            "slips": SLIPS,
            "gamma": worlds.gamma,
            "states": worlds.n_states,
            "actions": worlds.n_actions,
            "worlds": worlds.n_worlds,
        },
        "repeats": REPEATS,
        "rows": rows,
        "max_abs_diff": max_abs_diff,
        "target_seconds": TARGET_SECONDS,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor(),
        },
    }
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
