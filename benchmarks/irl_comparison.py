"""The Utiliscope, Boltzmann-rational Bayesian IRL and their combination on the same agents and data (issue 8).

Run: ``python benchmarks/irl_comparison.py [agents per type]`` (default 30). It prints, per agent type and model,
the mean posterior mass on the true utility U* (with its standard error), U*'s mean rank, the mean cosine of the
posterior-mean reward ``Σ_i P(U_i) r_i`` with U* (both centred), the mean mass on the constant and on the negated
utility, the number of agents and of failed fits; and writes ``benchmarks/results/irl_comparison.json`` and
``.md``. Text under the heading ``## What the table shows`` of an existing ``.md`` is kept.

The problem, fixed before any result was seen:

- worlds: the 2×3 gridworld ``["S.a", "b.c"]`` (6 states, 5 actions, γ = 0.9) with slip 0.1 and slip 0.3, equal
  weights; library: ``UtilityLibrary.from_features`` over the colours a, b, c (43 entries, constant included);
- agents: U* drawn uniformly from the 42 non-constant entries; six types (Optimal; Boltzmann β = 1 and β = 5;
  ε-greedy ε = 0.2; Quantilizer q = 2^-6; Myopic with a 2-step lookahead); 20 trajectories of 10 steps each,
  the same demonstrations for every model (``recovery_study``'s paired data seed);
- Utiliscope: exact g over all 5^6 deterministic policies; world model = 300 policies drawn from the Dirichlet
  belief of the demonstrations (``WorldModel.from_policies``), so the posterior is exact (i.i.d. draws);
  likelihood ``AsymmetricLaplace`` (default slopes: rise ln 2, fall 1 nat per bit) peaked at the agent's own g*;
- Boltzmann IRL: fixed β = e, the median of the package's default prior for a latent β (``DEFAULT_BETA_PRIOR``),
  the same for every agent type; its library posterior is exact. β = 1 and β = 5 (the two Boltzmann agents'
  own temperatures) are reported as a sensitivity check only, at λ = 0;
- CombinedIRL (``utiliscope.models.combined``): the Utiliscope's g′ evidence and Boltzmann IRL's action
  likelihood in one model, both with weight 1 (the default), on the same world model, likelihood and β;
- λ = 0 and λ = 1 (P(U) ∝ 2^(−λK)) for every model.

Neither model was tuned to the table. The Utiliscope's evidence is one number, g′: it can only rank utilities by
how intelligent the demonstrated behaviour looks under each.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import utiliscope as us
from utiliscope.models.boltzmann import DEFAULT_BETA_PRIOR
from utiliscope.models.combined import CombinedIRL

LAYOUT = ["S.a", "b.c"]
N_TRAJECTORIES, HORIZON = 20, 10
N_CANDIDATES = 300
#: Boltzmann IRL's β: the median exp(mu) of the default prior of a latent β, chosen before seeing any result.
BETA = math.exp(DEFAULT_BETA_PRIOR["mu"])
AGENT_TYPES = {
    "optimal": lambda reward: us.agents.Optimal(reward),
    "boltzmann(beta=1)": lambda reward: us.agents.Boltzmann(reward, beta=1.0),
    "boltzmann(beta=5)": lambda reward: us.agents.Boltzmann(reward, beta=5.0),
    "epsilon_greedy(0.2)": lambda reward: us.agents.EpsilonGreedy(reward, epsilon=0.2),
    "quantilizer(q=2^-6)": lambda reward: us.agents.Quantilizer(reward, q=2**-6),
    "myopic(horizon=2)": lambda reward: us.agents.Myopic(reward, horizon=2),
}
SETTINGS = [
    {"model": "utiliscope", "lam": 0.0},
    {"model": "boltzmann", "lam": 0.0, "beta": BETA},
    {"model": "combined", "lam": 0.0, "beta": BETA},
    {"model": "utiliscope", "lam": 1.0},
    {"model": "boltzmann", "lam": 1.0, "beta": BETA},
    {"model": "combined", "lam": 1.0, "beta": BETA},
    {"model": "boltzmann", "lam": 0.0, "beta": 1.0},
    {"model": "boltzmann", "lam": 0.0, "beta": 5.0},
]
COLUMNS = ["mass_on_truth", "rank", "cosine", "mass_on_constant", "mass_on_negation"]
SUMMARY_HEADING = "## What the table shows"
OUT = Path(__file__).parent / "results"

WORLDS = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
LIBRARY = us.priors.UtilityLibrary.from_features(
    WORLDS.features, max_terms=2, max_weight=2, feature_names=WORLDS.feature_names
)
NON_CONSTANT = [i for i in range(len(LIBRARY)) if i != LIBRARY.constant_index()]


def agent_type(i: int) -> str:
    """Agents cycle through the types, so any number of agents per type is balanced."""
    return list(AGENT_TYPES)[i % len(AGENT_TYPES)]


def agent_factory(i: int, rng: np.random.Generator):
    """Agent i: its type's agent acting on a random non-constant library utility."""
    reward = LIBRARY.rewards[NON_CONSTANT[int(rng.integers(len(NON_CONSTANT)))]]
    return AGENT_TYPES[agent_type(i)](reward), WORLDS


def scope_factory(agent, worlds, setting, rng: np.random.Generator):
    """The setting's model on the agent's demonstrations (drawn first, so every setting sees the same ones)."""
    demos = agent.demonstrate(worlds, n_trajectories=N_TRAJECTORIES, horizon=HORIZON, seed=rng)
    library = LIBRARY.with_simplicity_weight(setting["lam"])
    if setting["model"] == "boltzmann":
        return us.models.BoltzmannIRL(worlds, demos, library, beta=setting["beta"])
    world_model = us.WorldModel.from_policies(
        us.WorldModel.from_demonstrations(demos).sample(N_CANDIDATES, seed=rng)
    )
    likelihood = us.likelihoods.AsymmetricLaplace(observed=agent.true_intelligence(worlds, method="exact"))
    if setting["model"] == "combined":
        return CombinedIRL(worlds, world_model, demos, library, likelihood, beta=setting["beta"], g_method="exact")
    return us.Utiliscope(worlds, world_model, library, likelihood, g_method="exact")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per agent type and setting: the means of :data:`COLUMNS`, the standard error of the mass, the counts."""
    table = table.assign(
        agent_type=[agent_type(i) for i in table["agent"]],
        beta=table["beta"].map(lambda b: "" if pd.isna(b) else f"{b:.3g}"),
        failed=table["error"].notna(),
    )
    keys = ["agent_type", "model", "lam", "beta"]
    grouped = table.groupby(keys, sort=False)
    summary = grouped[COLUMNS].mean()
    summary.insert(1, "mass_sem", grouped["mass_on_truth"].sem())
    summary["mean_g_true"] = grouped["g_true"].mean()
    return summary.assign(agents=grouped.size(), failures=grouped["failed"].sum()).reset_index()


def markdown(summary: pd.DataFrame, n_per_type: int, seconds: float) -> str:
    """The table as Markdown with the setup, and any summary text kept from an earlier run."""
    path = OUT / "irl_comparison.md"
    kept = ""
    if path.exists() and SUMMARY_HEADING in path.read_text():
        kept = path.read_text().split(SUMMARY_HEADING, 1)[1]
    header = "| " + " | ".join(summary.columns) + " |\n|" + "---|" * len(summary.columns) + "\n"
    body = "".join(
        "| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |\n"
        for row in summary.itertuples(index=False)
    )
    return (
        "# Utiliscope vs Boltzmann-rational Bayesian IRL (and both combined)\n\n"
        f"`python benchmarks/irl_comparison.py {n_per_type}`: {n_per_type} agents per type, "
        f"{len(LIBRARY)}-entry library, the same demonstrations for every model, {seconds:.0f} s. "
        f"Boltzmann IRL's β = {BETA:.3g} (fixed) unless the `beta` column says otherwise (sensitivity rows). "
        "`mean_g_true` is the agents' g* in bits (rows of models with g only). "
        "Setup: the docstring of the script.\n\n"
        f"{header}{body}\n{SUMMARY_HEADING}{kept}"
    )


def main() -> None:
    n_per_type = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    start = time.perf_counter()
    table = us.diagnostics.recovery_study(
        agent_factory,
        scope_factory,
        n_per_type * len(AGENT_TYPES),
        SETTINGS,
        seed=0,
        client="serial",
        fit_kwargs={"draws": 1000, "chains": 2},
        progressbar=False,
    )
    seconds = time.perf_counter() - start
    summary = summarise(table)
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"{len(table)} fits in {seconds:.0f} s")
    OUT.mkdir(exist_ok=True)
    record = {
        "n_per_type": n_per_type,
        "seconds": seconds,
        "settings": SETTINGS,
        "summary": summary.to_dict(orient="records"),
        "fits": json.loads(table.to_json(orient="records")),
    }
    (OUT / "irl_comparison.json").write_text(json.dumps(record, indent=2, default=str))
    (OUT / "irl_comparison.md").write_text(markdown(summary, n_per_type, seconds))


if __name__ == "__main__":
    main()
