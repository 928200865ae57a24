"""Recovery of a synthetic agent's utility on a 5×5 gridworld with two worlds (the model issue's item 8).

Run: ``python benchmarks/recovery_gridworld.py``. For a Boltzmann agent (β = 3) and a quantilizer (q = 2^-9) whose
true utility is ``+a-b`` in a 43-entry library built ``from_features`` over three colours, it fits the Utiliscope
(smoothed Monte Carlo g, M = 2000, asymmetric Laplace peaked at the agent's g*) with λ = 0 and λ = 1, and prints
where the truth ranks, its posterior mass and Bayes factor, and the mass on the constant and negated utilities.
The evidence is one number: simpler utilities correlated with the truth can legitimately win (MODEL.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

import utiliscope as us

LAYOUT = ["S.a.b", ".#.c.", "a...b", ".c.#.", "b..a."]
TRUTH = "+a-b"
M = 2000


def problem():
    """The worlds and the library shared by every fit."""
    worlds = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    return worlds, library


def agents(library, n_actions):
    """The two agents of the issue, acting on the true utility."""
    reward = library.reward_table(n_actions)[library.index(TRUTH)]
    return {
        "boltzmann(beta=3)": us.agents.Boltzmann(reward, beta=3.0),
        "quantilizer(q=2^-9)": us.agents.Quantilizer(reward, q=2**-9, n_candidates=20000, seed=0),
    }


def recover(worlds, library, agent, simplicity_weight, fit_kwargs) -> dict:
    """Fit one agent with one λ and return where the truth lands."""
    g_star = agent.true_intelligence(worlds, method="monte_carlo", n_samples=M, seed=0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=20, seed=1)
    scope = us.Utiliscope(
        worlds,
        us.WorldModel.from_demonstrations(demos),
        library.with_simplicity_weight(simplicity_weight),
        us.likelihoods.AsymmetricLaplace(observed=g_star),
        g_method="monte_carlo",
        n_samples=M,
        seed=0,
    )
    start = time.perf_counter()
    idata = scope.fit(**fit_kwargs)
    posterior = scope.utility_posterior(idata).to_series()
    truth = library.index(TRUTH)
    ranks = posterior.rank(ascending=False, method="min")
    return {
        "g_star": g_star,
        "lambda": simplicity_weight,
        "rank": int(ranks[TRUTH]),
        "mass_on_truth": float(posterior[TRUTH]),
        "bayes_factor": float(posterior[TRUTH] / library.with_simplicity_weight(simplicity_weight).prior[truth]),
        "mass_on_constant": float(posterior.iloc[library.constant_index()]),
        "mass_on_negation": float(posterior.iloc[library.negation_index(truth)]),
        "top": posterior.idxmax(),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    worlds, library = problem()
    fit_kwargs = {"draws": 500, "tune": 500, "chains": 2, "seed": 2, "progressbar": False}
    rows = [
        {"agent": name, **recover(worlds, library, agent, lam, fit_kwargs)}
        for name, agent in agents(library, worlds.n_actions).items()
        for lam in (0.0, 1.0)
    ]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "recovery_gridworld.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
