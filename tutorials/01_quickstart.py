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
# # 1. Quickstart: from a synthetic agent to a checked posterior over its utility
#
# The whole loop on the smallest interesting problem: a 2×3 gridworld in two versions (slip 0.1 and 0.3),
# a Boltzmann-rational agent whose true utility U* is known, its demonstrations, the Utiliscope's fit, the
# convergence check and the recovery of U* and g*.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import utiliscope as us

OUTPUT = Path("output") / "01_quickstart"
OUTPUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Worlds, utilities and an agent
#
# `S` is the start cell, letters are colours (one-hot features). The library holds the constant utility and
# every sum of one or two colours with weights ±1, ±2 (43 utilities after removing affine duplicates), each
# with a description length K in bits from a prefix-free code; the prior is P(U) ∝ 2^(−K).

# %%
LAYOUT = ["S.a", "b.c"]
worlds = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
agent = us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index("+a-b")], beta=4.0)
g_star = agent.true_intelligence(worlds)
demos = agent.demonstrate(worlds, n_trajectories=100, horizon=12, seed=1)
print(worlds)
print(f"{len(library)} utilities; U* = '+a-b' has K = {library.description_bits[library.index('+a-b')]:.2f} bits")
print(f"g* = {g_star:.2f} bits; {demos.counts.sum():.0f} state-action pairs demonstrated")

# %% [markdown]
# ## The world model and the fit
#
# The demonstrations give Dirichlet rows, `pi[s, :] ~ Dirichlet(1 + n[s, :])`. The likelihood is the asymmetric
# Laplace peaked at the believed intelligence g′ = g*: "intelligent, but not perfect".
#
# `fit` picks its engine from the model's structure. Here the prior is a library and the world model can be
# sampled exactly, so it draws policies i.i.d. from the world model, weighs each by its evidence
# `Σ_i P(U_i) P(g′ | g(pi, U_i))` (U summed out exactly), and adds draws until every P(U) has a Monte Carlo
# standard error of at most 0.002. `idata.attrs["engine"]` says which engine ran and why.

# %%
world_model = us.WorldModel.from_demonstrations(demos)
scope = us.Utiliscope(worlds, world_model, library, us.likelihoods.AsymmetricLaplace(observed=g_star))
idata = scope.fit(draws=500, chains=4, seed=0)
print(idata.attrs["engine"], "-", idata.attrs["engine_reason"])
posterior = scope.utility_posterior(idata).to_series().sort_values(ascending=False)
print(posterior.head(6).to_string(float_format=lambda x: f"{x:.3f}"))

# %% [markdown]
# ## Diagnostics: can the draws be trusted?

# %%
convergence = us.diagnostics.check(idata)
print(convergence)

# %% [markdown]
# ## Recovery: where did U* and g* land?
#
# `Truth.from_agent` finds the library entry equal to the agent's reward and computes g* the way the model
# computes g.

# %%
truth = us.diagnostics.Truth.from_agent(agent, scope)
recovered = us.diagnostics.recovery(idata, truth, scope)
print(recovered)
# The same sum in closed form over a fixed set of 20,000 draws from the world model (a finite world model):
# the engine's estimate agrees within its stated error.
finite = us.Utiliscope(
    worlds,
    us.WorldModel.from_policies(world_model.sample(20_000, seed=1)),
    library,
    us.likelihoods.AsymmetricLaplace(observed=g_star),
)
exact = finite.exact_posterior().to_series()
gap = float(np.abs(exact - scope.utility_posterior(idata).to_series()).max())
print(f"largest gap to the closed form over 20,000 fixed draws: {gap:.2g}")
print(f"largest MCSE the fit states: {float(idata.utility_estimate['mcse'].max()):.2g}")

# %% [markdown]
# What it shows: the check passes (the importance weights' Pareto k̂, effective sample size and MCSE). U*
# holds about a tenth of the posterior mass, a Bayes factor of about 30 over its prior, and ranks in the top
# three; the most mass goes to `+a`, a simpler utility (2 bits shorter) that agrees with U* on where to go. The
# evidence is one number, g′, so this is expected: read the Bayes factor beside the mass. The constant utility
# and −U* keep little mass (tutorial 5 explains why).
#
# g* lies *above* the 90% interval of g under U*: the world model's policies are noisier than the agent's.
# Each Dirichlet row is shrunk towards uniform by its prior pseudo-count, and rarely visited states keep
# nearly uniform rows, so g of a policy drawn from the belief is lower than g of the agent's own policy. The
# interval is about what the demonstrations show, not about the agent; more demonstrations narrow the gap.
# (NUTS targets the same posterior, `scope.fit(sampler="blackjax")`; it needs a smoothed g for its gradient and
# a compile first: `benchmarks/results/engines.md` times both engines on this problem.)
#
# ## Plots and a saved run

# %%
ax = us.diagnostics.plot_utility_posterior(idata, truth, scope)
ax.figure.savefig(OUTPUT / "utility_posterior.png", dpi=100, bbox_inches="tight")
plt.show()
ax = us.diagnostics.plot_g_posterior(idata, truth)
ax.figure.savefig(OUTPUT / "g_posterior.png", dpi=100, bbox_inches="tight")
plt.show()
us.save(idata, OUTPUT / "run.nc", overwrite=True)
reloaded = us.load(OUTPUT / "run.nc")
print(us.diagnostics.recovery(reloaded, truth).mass_on_truth == recovered.mass_on_truth)

# %% [markdown]
# ## Checks of the claims above

# %%
assert convergence.ok
assert recovered.rank <= 3 and recovered.bayes_factor > 10
assert recovered.top == "+a"
assert recovered.mass_on_constant < 0.1 and recovered.mass_on_negation < 0.01
assert not recovered.g_covered and recovered.g_upper < g_star  # the belief is noisier
assert idata.attrs["engine"] == "iid"
assert gap < 0.02
assert us.diagnostics.recovery(reloaded, truth).mass_on_truth == recovered.mass_on_truth
assert (OUTPUT / "utility_posterior.png").exists() and (OUTPUT / "g_posterior.png").exists()
print("all claims hold")
