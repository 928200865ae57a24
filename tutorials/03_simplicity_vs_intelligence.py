# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Simplicity against intelligence: calibrating λ and the likelihood's peak on test agents
#
# The prior P(U) ∝ 2^(−λ K(U)) favours short utilities; the likelihood favours utilities under which the
# operator looks as intelligent as believed (g′). The proposal expects the right λ to "be found empirically
# based on what works best for identifying the utility functions of simpler test agents". That is what
# `us.diagnostics.recovery_study` is for: a population of synthetic agents with known utilities, one fit per
# agent and setting, one table.
#
# The population: Boltzmann agents (β drawn from [1, 4]) whose true utility is a random non-constant entry of
# the 43-utility library. The settings: λ ∈ {0, 1, 2} and the likelihood's peak g′ ∈ {5, 8} bits, the
# *same* for every agent, since in practice the operator's g is not known. Every setting sees the same agent
# and demonstrations (a paired comparison). Finite world models (100 draws of each agent's Dirichlet belief)
# keep each fit exact and instant; `client="serial"` runs without a Dask cluster (pass `client=None` for a
# local cluster, or a `distributed.Client` to scale out).

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import utiliscope as us

OUTPUT = Path("output") / "03_simplicity_vs_intelligence"
OUTPUT.mkdir(parents=True, exist_ok=True)

LAYOUT = ["S.a", "b.c"]
WORLDS = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
LIBRARY = us.priors.UtilityLibrary.from_features(WORLDS.features, feature_names=WORLDS.feature_names)
REWARDS = LIBRARY.reward_table(WORLDS.n_actions)
CANDIDATES = [i for i in range(len(LIBRARY)) if i != LIBRARY.constant_index()]


def agent_factory(i: int, rng: np.random.Generator):
    """Agent i: a Boltzmann agent with a random non-constant library utility and β in [1, 4]."""
    truth = CANDIDATES[rng.integers(len(CANDIDATES))]
    return us.agents.Boltzmann(REWARDS[truth], beta=float(rng.uniform(1.0, 4.0))), WORLDS


def scope_factory(agent, worlds, setting: dict, rng: np.random.Generator) -> us.Utiliscope:
    """100 demonstrations, 100 draws of their Dirichlet belief, the setting's λ and peak."""
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=12, seed=rng)
    belief = us.WorldModel.from_demonstrations(demos)
    return us.Utiliscope(
        worlds,
        us.WorldModel.from_policies(belief.sample(100, seed=rng)),
        LIBRARY.with_simplicity_weight(setting["lambda"]),
        us.likelihoods.AsymmetricLaplace(observed=setting["peak"]),
    )


SETTINGS = [{"lambda": lam, "peak": peak} for peak in (5.0, 8.0) for lam in (0.0, 1.0, 2.0)]
table = us.diagnostics.recovery_study(
    agent_factory,
    scope_factory,
    n_agents=10,
    settings=SETTINGS,
    seed=0,
    client="serial",
    fit_kwargs={"draws": 200, "chains": 2},
    progressbar=False,
)
assert table["error"].isna().all()
print(table.groupby("agent")[["U_true", "g_true"]].first().to_string(float_format=lambda x: f"{x:.2f}"))

# %% [markdown]
# ## Recovery by setting
#
# The mean posterior mass on the true utility and its mean rank, with standard errors over the 10 agents.

# %%
table["log2_mass"] = np.log2(table["mass_on_truth"])
summary = table.groupby(["peak", "lambda"])[["mass_on_truth", "rank", "log2_mass"]].agg(["mean", "sem"])
print(summary.to_string(float_format=lambda x: f"{x:.3g}"))
figure = us.diagnostics.plot_recovery_vs_lambda(table, ["mass_on_truth", "rank"], by="peak")
figure.savefig(OUTPUT / "recovery_vs_lambda.png", dpi=100)
plt.show()
best = summary[("mass_on_truth", "mean")].idxmax()
print(f"best setting by mean mass on the truth: peak = {best[0]} bits, λ = {best[1]}")

# %% [markdown]
# ## Paired differences
#
# The settings share agents and data, so compare them agent by agent: the difference in mass on the truth
# between neighbouring λ, and between the two peaks, with standard errors over agents.

# %%
wide = table.pivot_table(index="agent", columns=["peak", "lambda"], values="mass_on_truth")
paired = (
    {f"peak {peak}: λ=0 − λ=1": wide[(peak, 0.0)] - wide[(peak, 1.0)] for peak in (5.0, 8.0)}
    | {f"peak {peak}: λ=1 − λ=2": wide[(peak, 1.0)] - wide[(peak, 2.0)] for peak in (5.0, 8.0)}
    | {f"λ={lam}: peak 8 − peak 5": wide[(8.0, lam)] - wide[(5.0, lam)] for lam in (0.0, 1.0, 2.0)}
)
for label, difference in paired.items():
    print(f"{label}: {difference.mean():+.3f} ± {difference.sem():.3f}")

# %% [markdown]
# What the numbers show, for this population of 10 agents:
#
# * **The peak matters most.** g′ = 8 bits beats g′ = 5 bits at every λ, in mean mass on the truth (at λ = 2
#   by only 1.6 standard errors) and in mean rank:
#   most agents here have g* between 5 and 10 bits, and a peak too low rewards utilities under which the
#   agent looks mediocre (the constant among them).
# * **Too much simplicity hurts.** λ = 2 loses mass on the truth against λ = 1 for both peaks, by 2.5–3.5
#   standard errors: the prior then overrules the evidence of intelligence.
# * **λ = 0 against λ = 1 is not resolved** by 10 agents: the paired difference is within about two standard
#   errors of zero. A larger population (or a Dask cluster: `client=None`) would be needed to calibrate λ
#   more finely than "at most 1" on this problem.
#
# `output/03_simplicity_vs_intelligence/recovery_vs_lambda.png` shows both metrics against λ, one line per peak.

# %%
assert table["rank"].notna().all()
for lam in (0.0, 1.0, 2.0):
    assert paired[f"λ={lam}: peak 8 − peak 5"].mean() > 0
    assert summary.loc[(8.0, lam), ("rank", "mean")] < summary.loc[(5.0, lam), ("rank", "mean")]
for peak in (5.0, 8.0):
    difference = paired[f"peak {peak}: λ=1 − λ=2"]
    assert difference.mean() > 2 * difference.sem()
    difference = paired[f"peak {peak}: λ=0 − λ=1"]
    assert abs(difference.mean()) < 2.5 * difference.sem()
print("all claims hold")
