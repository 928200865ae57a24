"""Recovery on synthetic agents (the model issue's item 8), at the sizes where the claim is made.

Thresholds are the issue's, fixed before the fit: with λ = 0 the true utility ranks in the top 3 by posterior
mass and the constant and the negated utility each get under 1%. This holds for the Boltzmann agent. For the
quantilizer (q = 2^-9) it does not: its truth ranked 5th of 43 (mass 0.082) in this same setting, so that case is
reported by ``benchmarks/recovery_gridworld.py`` (with the λ = 1 ranks) rather than asserted here.
"""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "recovery_gridworld", Path(__file__).resolve().parents[2] / "benchmarks" / "recovery_gridworld.py"
)
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


@pytest.mark.slow
def test_boltzmann_truth_ranks_top_three_with_no_simplicity_weight():
    worlds, library = bench.problem()
    agent = bench.agents(library, worlds.n_actions)["boltzmann(beta=3)"]
    # nutpie: one numba compile, then about ten times faster sampling than PyMC's NUTS on this model.
    fit_kwargs = {"draws": 500, "tune": 500, "chains": 2, "seed": 2, "progressbar": False, "sampler": "nutpie"}
    result = bench.recover(worlds, library, agent, 0.0, fit_kwargs)
    assert 6 <= result["g_star"] <= 12
    assert result["rank"] <= 3, result
    assert result["mass_on_constant"] < 0.01, result
    assert result["mass_on_negation"] < 0.01, result
