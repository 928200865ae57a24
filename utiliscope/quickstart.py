"""The quickstart: fit a synthetic Boltzmann agent in a two-world gridworld and print what a user checks first.

Run it as ``utiliscope quickstart`` (or ``python -m utiliscope.quickstart``). It builds two 2×3 gridworlds that
differ in their slip, a library of 43 utilities over three colours with description lengths from a prefix-free
code, a Boltzmann-rational agent whose true utility is one library entry, and its demonstrations; then fits the
Utiliscope with the exact g and an asymmetric-Laplace likelihood peaked at the agent's true g*, and prints the
engine that ran, its diagnostics, the utilities with the most posterior mass beside their Bayes factors, and the
policy loss of acting on the posterior by each registered decision rule.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from utiliscope.agents import Boltzmann
from utiliscope.decisions import policy_loss, rule_names
from utiliscope.diagnostics import check
from utiliscope.diagnostics.recovery import G_ABOVE_INTERVAL, g_note
from utiliscope.likelihoods import AsymmetricLaplace
from utiliscope.models import Utiliscope
from utiliscope.models.fit_settings import DEFAULT_SAMPLER
from utiliscope.priors import UtilityLibrary
from utiliscope.world_model import WorldModel
from utiliscope.worlds import WorldSet, gridworld

LAYOUT = ["S.a", "b.c"]
TRUE_UTILITY = "+a-b"
#: Seed of the agent's demonstrations: the one the README's first fit, examples/quickstart_fit.toml and tutorial
#: 01 use, so that all of them print the same posterior.
DEMONSTRATION_SEED = 1


def utility_table(scope: Utiliscope, idata: az.InferenceData) -> pd.DataFrame:
    """Posterior mass, prior mass and Bayes factor (posterior over prior) of every library utility."""
    posterior = scope.utility_posterior(idata).to_series()
    prior = pd.Series(scope.utility_prior.prior, index=posterior.index)
    table = pd.DataFrame({"posterior": posterior, "prior": prior, "bayes_factor": posterior / prior})
    table["bits"] = np.asarray(scope.utility_prior.description_bits)
    table["rank"] = table["posterior"].rank(ascending=False, method="min").astype(int)
    return table.sort_values("posterior", ascending=False)


def run(
    seed: int = 0,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = DEFAULT_SAMPLER,
    progressbar=True,
) -> tuple[Utiliscope, az.InferenceData, pd.DataFrame]:
    """Fit the quickstart problem, print its report and return ``(scope, idata, utility_table)``.

    The defaults are :meth:`~utiliscope.models.base.PosteriorModel.fit`'s: the engine the structure calls for (a
    library prior over Dirichlet rows: i.i.d. draws from the world model weighted by the evidence, until every
    P(U) has an MCSE ≤ 0.002), with ``chains × draws`` resampled posterior draws of pi and g. ``tune`` is used
    by the NUTS engines only (:func:`~utiliscope.models.engines.nuts_engine_names`). ``seed`` seeds the
    sampler; the demonstrations are always those of ``DEMONSTRATION_SEED``.
    """
    worlds = WorldSet([gridworld(LAYOUT, slip=0.1), gridworld(LAYOUT, slip=0.3)])
    library = UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    truth = library.index(TRUE_UTILITY)
    agent = Boltzmann(library.reward_table(worlds.n_actions)[truth], beta=4.0)
    g_star = agent.true_intelligence(worlds)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=12, seed=DEMONSTRATION_SEED)
    print(f"Worlds: {worlds}")
    print(f"Agent: Boltzmann(beta=4) with true utility {TRUE_UTILITY!r}; its true g* = {g_star:.2f} bits")
    print(f"Demonstrations: {demos.counts.sum():.0f} state-action pairs; prior: {len(library)} utilities")

    scope = Utiliscope(worlds, WorldModel.from_demonstrations(demos), library, AsymmetricLaplace(observed=g_star))
    idata = scope.fit(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, progressbar=progressbar)

    print(f"\nEngine: {idata.attrs['engine']} ({idata.attrs.get('engine_reason', 'requested')})")
    # g under the constant utility is 0 in every draw: check() skips it (its R-hat is undefined) and says so.
    report = check(idata, var_names=["pi", "g"])
    print("\nDiagnostics of the fit (utiliscope.diagnostics.check):")
    print(report)

    table = utility_table(scope, idata)
    print("\nUtilities with the most posterior mass (Bayes factor = posterior / prior):")
    print(table.head(8).to_string(float_format=lambda x: f"{x:.3g}"))
    print(f"\nTrue utility {TRUE_UTILITY!r}: rank {table.loc[TRUE_UTILITY, 'rank']} of {len(table)}")
    print(
        f"  posterior {table.loc[TRUE_UTILITY, 'posterior']:.3f}, Bayes factor "
        f"{table.loc[TRUE_UTILITY, 'bayes_factor']:.2f}"
    )
    constant = library.names[library.constant_index()]
    negation = library.names[library.negation_index(truth)]
    print(
        f"  mass on the constant utility: {table.loc[constant, 'posterior']:.4f}; "
        f"on the negated utility {negation!r}: {table.loc[negation, 'posterior']:.4f}"
    )
    g_post = idata.posterior["g"].sel(utility=TRUE_UTILITY).values.ravel()
    lo, hi = np.quantile(g_post, [0.05, 0.95])
    print(f"  g under the true utility: 90% interval [{lo:.2f}, {hi:.2f}] bits (g* = {g_star:.2f})")
    if g_star > hi:
        print(g_note(G_ABOVE_INTERVAL))
    reward = agent.reward_table(worlds)
    print("\nActing on the posterior (policy loss under the true utility: 0 optimal, 1 no better than random):")
    for rule in rule_names():
        decision = scope.decide(idata, rule=rule)
        print(f"  {rule:<10} policy loss {policy_loss(worlds, decision, reward):.4f} ({decision.search})")
    return scope, idata, table


if __name__ == "__main__":
    run()
