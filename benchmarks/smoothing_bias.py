"""Bias of the smoothed count behind in-graph ``importance`` g, by smoothing width and g, on enumerable worlds.

The model cannot use the hard count ``[V_m ≥ thr]`` (its gradient is zero), so ``monte_carlo`` and ``importance``
g replace the step by a logistic of temperature ``τ = smoothing · sd_m(V_m)`` (:func:`utiliscope.models.graph.
monte_carlo_bits`). The smoothed count is the hard count of the reference values blurred by a logistic of scale
τ, so it mixes in reference policies just below the threshold; where their weight grows fast below it (the top of
a discrete value distribution) g comes out low.

Problems (each enumerable): the 2×3 gridworld (6 states, 5^6 = 15,625 policies) and the 3×3 gridworld with one
wall (8 free cells, 5^8 = 390,625), each in two worlds (slip 0.1 and 0.3, γ = 0.9), under eight non-constant
utilities of the library ``from_features(max_terms=2, max_weight=2)``. Thresholds follow a rule fixed in advance:
for each g level, the midpoint between the two adjacent distinct values of ξ's enumerated support around the
top fraction 2^-g (a latent stochastic policy's value lies between ξ's atoms, not on one). Estimators: the
model's weighted count on an ``ImportanceReference.pooled`` sample (1000 policies per utility and level, all
utilities pooled, tilted to 4 bits past the highest level), seeds 0–3, evaluated with the in-graph function itself.

For each world, smoothing width and g level the table gives the mean and the root mean square over utilities
and seeds of the smoothed g minus the hard g of the same sample (the smoothing's bias: negative means g is
understated); the row ``hard`` gives the hard g minus the exact g (the importance sample's own error). The row
``calibrated`` is the model's default (:func:`utiliscope.models.smoothing.calibrated_smoothing`, one width per
utility and sample, calibrated over 1 bit below the lowest level to the highest), minus hard; ``cal-exact`` is
the same estimate minus the exact g.

Run: ``python benchmarks/smoothing_bias.py`` (about a minute; prints the table, writes
benchmarks/results/smoothing_bias.json).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt

import utiliscope as us
from utiliscope.models import graph
from utiliscope.models.reference import ImportanceReference
from utiliscope.models.smoothing import CANDIDATE_WIDTHS, calibrated_smoothing

WORLDS = {"2x3 (6 states)": ["S.a", "b.c"], "3x3 wall (8 states)": ["S.a", ".#b", "a.b"]}
LEVELS = {"2x3 (6 states)": (4, 6, 8, 9.5, 11), "3x3 wall (8 states)": (4, 6, 8, 10, 12, 14, 16)}
WIDTHS = (0.0025, 0.005, 0.01, 0.02, 0.05)
N_UTILITIES, SEEDS, N_SAMPLES = 8, (0, 1, 2, 3), 1000
RESULTS = Path(__file__).parent / "results" / "smoothing_bias.json"


def thresholds(values: np.ndarray, levels) -> tuple[np.ndarray, np.ndarray]:
    """Per level: the midpoint between adjacent distinct values around the top fraction 2^-g, and its exact g."""
    distinct = np.unique(values)[::-1]
    top_count = np.searchsorted(np.sort(values), distinct, side="left")
    above = len(values) - top_count  # policies with value >= distinct[i]
    chosen, exact = [], []
    for level in levels:
        i = int(np.argmin(np.abs(np.log2(len(values) / above) - level)))
        i = min(max(i, 0), len(distinct) - 2)
        chosen.append(0.5 * (distinct[i] + distinct[i + 1]))
        exact.append(float(np.log2(len(values) / above[i])))
    return np.array(chosen), np.array(exact)


def bits_functions():
    """The in-graph weighted count, hard, at every width of the table and at every candidate of the calibration,
    as one compiled function of (thr, values, weights)."""
    v_pi, reference, weights = pt.vector("v_pi"), pt.matrix("reference"), pt.matrix("weights")
    widths = (0.0, *WIDTHS, *CANDIDATE_WIDTHS)
    outputs = [graph.monte_carlo_bits(v_pi, reference, width, 0.0, weights) for width in widths]
    return pytensor.function([v_pi, reference, weights], outputs)


def measure() -> list[dict]:
    bits = bits_functions()
    rows = []
    for name, layout in WORLDS.items():
        worlds = us.WorldSet([us.worlds.gridworld(layout, slip=slip, gamma=0.9) for slip in (0.1, 0.3)])
        library = us.priors.UtilityLibrary.from_features(worlds.features, max_terms=2, max_weight=2)
        rewards = library.reward_table(worlds.n_actions)
        every = np.array(list(itertools.product(range(worlds.n_actions), repeat=worlds.n_states)))
        values = us.evaluate_policies(worlds, every, rewards)
        varying = [n for n in range(len(rewards)) if np.ptp(values[:, n]) > 1e-9]
        chosen = varying[:: max(1, len(varying) // N_UTILITIES)][:N_UTILITIES]
        levels = LEVELS[name]
        cuts = [thresholds(values[:, n], levels) for n in chosen]
        for seed in SEEDS:
            reference = ImportanceReference.pooled(worlds, rewards[chosen], max(levels) + 4, N_SAMPLES, seed)
            sample = reference.values(worlds, rewards[chosen])
            calibrated, _ = calibrated_smoothing(sample, reference.weights, (min(levels) - 1.0, max(levels)))
            for j, (cut, exact) in enumerate(cuts):
                # The fallback width (no spread, or the sample never reaches the levels) is not a candidate.
                match = np.flatnonzero(CANDIDATE_WIDTHS == calibrated[j])
                candidate = int(match[0]) if len(match) else None
                for level, threshold, g_exact in zip(levels, cut, exact, strict=True):
                    hard, *smoothed = (
                        float(out[0]) for out in bits(np.array([threshold]), sample[:, [j]], reference.weights)
                    )
                    rows.append({"world": name, "level": level, "width": "hard", "error": hard - g_exact})
                    for width, g in zip(WIDTHS, smoothed, strict=False):
                        rows.append({"world": name, "level": level, "width": width, "error": g - hard})
                    g = smoothed[len(WIDTHS) + candidate] if candidate is not None else hard
                    rows.append({"world": name, "level": level, "width": "calibrated", "error": g - hard})
                    rows.append({"world": name, "level": level, "width": "cal-exact", "error": g - g_exact})
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    for name in WORLDS:
        levels = LEVELS[name]
        lines.append(f"{name}: mean (rms) bits; hard: hard - exact; a width: smoothed - hard, same sample")
        lines.append(f"{'width':>8} " + "".join(f"{f'g={level}':>15}" for level in levels))
        for width in ("hard", *WIDTHS, "calibrated", "cal-exact"):
            cells = []
            for level in levels:
                cell = [r for r in rows if r["world"] == name and r["level"] == level]
                errors = np.array([r["error"] for r in cell if r["width"] == width])
                cells.append(f"{errors.mean():+7.2f} ({np.sqrt(np.mean(errors**2)):.2f})")
            lines.append(f"{width!s:>8} " + "".join(f"{cell:>15}" for cell in cells))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    rows = measure()
    print(table(rows))
    RESULTS.parent.mkdir(exist_ok=True)
    settings = {"widths": WIDTHS, "seeds": SEEDS, "n_samples": N_SAMPLES, "levels": LEVELS}
    RESULTS.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
