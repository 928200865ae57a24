"""Recovery on synthetic agents (the model issue's item 8), at the sizes where the claim is made.

The issue's thresholds, fixed before any fit: with λ = 0 the true utility ranks in the top 3 by posterior mass,
and the constant and the negated utility each get under 1%. The second holds with a wide margin (at most 0.0004
each over ten replicates of either agent, ``benchmarks/results/recovery_gridworld.md``) and is asserted. The rank
is not a stable property of this problem: about eight utilities correlated with the truth hold 0.09–0.12 of the
mass each, so their order is demonstration and Monte Carlo noise (with importance g the truth is in the top 3 in
8 of 10 replicates for the Boltzmann agent and 5 of 10 for the quantilizer). Asserting it would assert a seed's
luck; the benchmark reports the ranks at λ = 0 and λ = 1 instead.
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
def test_constant_and_negated_utilities_lose_for_a_boltzmann_agent():
    worlds, library = bench.problem()
    agent = bench.agents(library, worlds.n_actions)["boltzmann(beta=3)"]
    fit_kwargs = {
        "draws": 500,
        "tune": 500,
        "chains": 2,
        "seed": 2,
        "progressbar": False,
    }  # the default engine (iid)
    result = bench.recover(worlds, library, agent, 0.0, fit_kwargs)
    assert 6 <= result["g_star"] <= 12
    assert result["mass_on_constant"] < 0.01, result
    assert result["mass_on_negation"] < 0.01, result
    # The truth is among the leaders: more mass than its prior (1/43 at λ = 0).
    assert result["bayes_factor"] > 1, result
