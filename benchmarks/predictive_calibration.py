"""Calibration of ``us.diagnostics.predictive_check`` on well-specified agents drawn from the model's own prior.

Run: ``python benchmarks/predictive_calibration.py [agents]`` (default 100). Writes
``benchmarks/results/predictive_calibration.md``.

An SBC-style run: every agent is drawn from the prior of the model that then fits it, so the model is right and
a flag is a false alarm.

* **Boltzmann IRL**: the corridor gridworld ``b..S..a / b.....a`` (14 states, 5 actions, slip 0.1, γ = 0.9), the
  library of at most two colour terms with weights ±1 (9 utilities, λ = 1), β = 5. Agent i draws U from the
  library prior and demonstrates 60 trajectories of 12 steps as a Boltzmann agent at β (the detection target's
  size); the exact posterior (2 × 250 draws) is checked with seed i.
* **Utiliscope**: the shared two-world 2×3 gridworld ``S.a / b.c`` (slips 0.1 and 0.3), its library (λ = 1),
  exact g, the asymmetric Laplace likelihood with its default shape. Agent i draws pi's rows from
  Dirichlet(1) (the world model's prior), demonstrates 30 trajectories of 8 steps with it, draws U from the
  library prior and g′ from the likelihood at g(pi, U); the world model is ``from_demonstrations`` (concentration
  1), the fit is the default engine's (2 × 250 draws), and the check is given the demonstrations.

The check combines its statistics by min-p (its default); each agent's Bonferroni combination of the same
replications is recorded beside it. Posterior predictive p-values use the data twice, so under a well-specified
model they pile up near 1 rather than being uniform. The calibrated p-value (``calibrated_p_value``, Hjort, Dahl &
Steinbakk 2006) ranks each agent's p-value among those of as many *other* agents from the prior (seeds ``agents ..
2·agents − 1``): it should be uniform, which the Kolmogorov–Smirnov test checks.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.demonstrations import simulate
from utiliscope.diagnostics.predictive import BONFERRONI

OUT = Path(__file__).parent / "results" / "predictive_calibration.md"
LEVEL = 0.05
BETA = 5.0
DRAWS, CHAINS = 250, 2
#: Text under this heading of an existing results file is kept.
SUMMARY_HEADING = "## What the numbers show"


def boltzmann_problem():
    world = us.worlds.gridworld(["b..S..a", "b.....a"], slip=0.1)
    library = us.priors.UtilityLibrary.from_features(
        world.features, max_terms=2, max_weight=1, feature_names=world.feature_names
    )
    return world, library


def boltzmann_agent(problem, seed: int) -> us.diagnostics.PredictiveCheck:
    world, library = problem
    rng = np.random.default_rng(seed)
    reward = library.reward_table(world.n_actions)[rng.choice(len(library), p=library.prior)]
    demos = us.agents.Boltzmann(reward, BETA).demonstrate(world, 60, 12, seed=rng)
    birl = us.models.BoltzmannIRL(world, demos, library, beta=BETA)
    return us.diagnostics.predictive_check(birl, birl.fit(draws=DRAWS, chains=CHAINS, seed=seed), seed=seed)


def utiliscope_problem():
    layout = ["S.a", "b.c"]
    worlds = us.WorldSet([us.worlds.gridworld(layout, slip=0.1), us.worlds.gridworld(layout, slip=0.3)])
    library = us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, feature_names=worlds.feature_names
    )
    return worlds, library


def utiliscope_agent(problem, seed: int) -> us.diagnostics.PredictiveCheck:
    worlds, library = problem
    rng = np.random.default_rng(seed)
    policy = rng.dirichlet(np.ones(worlds.n_actions), size=worlds.n_states)
    demos = simulate(worlds, policy, 30, 8, seed=rng)
    world_model = us.WorldModel.from_demonstrations(demos)
    truth = int(rng.choice(len(library), p=library.prior))
    likelihood = us.likelihoods.AsymmetricLaplace(observed=0.0)
    scope = us.Utiliscope(worlds, world_model, library, likelihood, g_method="exact")
    g = scope.target.hard_g(policy[None])[0, truth]
    # g′ may fall below 0, where the constructor refuses it: set it on the model as us.diagnostics.sbc does.
    scope.target.g_prime.set_observed(float(likelihood.random(np.array([g]), rng)[0]))
    idata = scope.fit(draws=DRAWS, chains=CHAINS, seed=seed, progressbar=False)
    return us.diagnostics.predictive_check(scope, idata, seed=seed, demonstrations=demos)


MODELS = {
    "Boltzmann IRL": (boltzmann_problem, boltzmann_agent),
    "Utiliscope": (utiliscope_problem, utiliscope_agent),
}


def run(model: str, agents: int) -> tuple[pd.DataFrame, float]:
    """One row per agent (seeds 0 .. 2·agents − 1): each statistic's p-value and the combined one."""
    make_problem, check_agent = MODELS[model]
    problem = make_problem()
    rows, start = [], time.perf_counter()
    for seed in range(2 * agents):
        check = check_agent(problem, seed)
        rows.append(
            {
                "seed": seed,
                **check.table["p_value"].to_dict(),
                "combined": check.p_value,
                BONFERRONI: check.combined(BONFERRONI),
            }
        )
    return pd.DataFrame(rows).set_index("seed"), (time.perf_counter() - start) / (2 * agents)


def summary(model: str, table: pd.DataFrame, agents: int, seconds: float) -> dict:
    tested, reference = table.iloc[:agents], table.iloc[agents:]
    calibrated = [
        us.diagnostics.calibrated_p_value(p, reference["combined"], seed=seed)
        for seed, p in enumerate(tested["combined"])
    ]
    return {
        "model": model,
        "agents": agents,
        "false alarms (p < 0.05)": float(np.mean(tested["combined"] < LEVEL)),
        "Bonferroni: false alarms": float(np.mean(tested[BONFERRONI] < LEVEL)),
        "median p": float(tested["combined"].median()),
        "KS p of p (uniform?)": float(stats.kstest(tested["combined"], "uniform").pvalue),
        "calibrated: false alarms": float(np.mean(np.asarray(calibrated) < LEVEL)),
        "calibrated: KS p": float(stats.kstest(calibrated, "uniform").pvalue),
        "s per agent (fit + check)": seconds,
    }


def histogram(model: str, table: pd.DataFrame, agents: int) -> pd.DataFrame:
    """Counts of the first ``agents`` agents' p-values (each statistic, and combined) per tenth of [0, 1]."""
    edges = np.linspace(0.0, 1.0, 11)
    tested = table.iloc[:agents]
    counts = {
        column: np.histogram(tested[column].clip(upper=1.0), bins=edges)[0].astype(int)
        for column in tested.columns
    }
    bins = [f"{lo:.1f}–{hi:.1f}" for lo, hi in itertools.pairwise(edges)]
    rates = {column: [float(np.mean(tested[column] < LEVEL))] for column in tested.columns}
    return pd.concat(
        [pd.DataFrame({"p-value": bins, **counts}), pd.DataFrame({"p-value": ["share < 0.05"], **rates})],
        ignore_index=True,
    )


def main(agents: int) -> None:
    summaries, histograms = [], []
    for model in MODELS:
        table, seconds = run(model, agents)
        table.to_json(OUT.with_name(f"predictive_calibration_{model.split()[0].lower()}.json"))
        summaries.append(summary(model, table, agents, seconds))
        histograms.append((model, histogram(model, table, agents)))
    overview = pd.DataFrame(summaries)
    print(text_table(overview))
    for model, counts in histograms:
        print(f"\n{model}: p-values per tenth\n{text_table(counts)}")
    kept = OUT.read_text(encoding="utf-8").partition(SUMMARY_HEADING)[2] if OUT.exists() else ""
    sections = "".join(
        f"## {model}: how many of the {agents} agents' p-values fall in each tenth\n\n{pipe_table(counts)}\n\n"
        for model, counts in histograms
    )
    OUT.write_text(
        "# Predictive check calibration\n\n"
        f"`python benchmarks/predictive_calibration.py {agents}`: {agents} well-specified agents per model drawn "
        "from the model's own prior (the script's docstring has the setup), checked at level 0.05 with "
        f"{CHAINS} × {DRAWS} posterior draws; the calibrated p-values rank each agent's p among {agents} other "
        "agents' from the prior. Target: false alarms ≤ 8%; calibrated p uniform (KS p > 0.01).\n\n"
        f"{pipe_table(overview)}\n\n{sections}{SUMMARY_HEADING}{kept or chr(10)}",
        encoding="utf-8",
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
