"""The linear problem of issue 30: does the posterior depend on how g is estimated?

Run: ``python benchmarks/g_accuracy.py [--reference-policies 65536] [--reference-draws 200000]`` (about ten
minutes on 2 cores). Prints the table and writes ``benchmarks/results/g_accuracy.md``.

Problem: a 5×5 gridworld with five colours in two worlds (slip 0.1 and 0.3), a Dirichlet world model from 100
demonstrations (horizon 20) of a Boltzmann agent (β = 3), a linear prior over the colours (Laplace, λ = 1) and a
Normal likelihood at g′ = 12 bits with σ = 1.

Reference: written here, sharing no estimator with the package. ``--reference-policies`` uniform deterministic
policies are drawn once and their feature expectations taken (``utiliscope.evaluation`` gives only values);
``--reference-draws`` i.i.d. pairs (pi from the world model, theta from the prior) are weighted by the likelihood
of their plain Monte Carlo g, ``−log2((k + 1) / (M + 1))``, and the posterior-mean theta is their weighted mean.
Each fit (the default, then every ``g_method``) is scored by the centred cosine of its posterior-mean reward
with the reference's, and timed (construction and fit).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.evaluation import feature_expectations

LAYOUT = ["S.a.b", ".#.c.", "d...e", ".c.#.", "b..a."]
THETA = np.array([1.0, -1.0, 0.5, 0.0, 0.0])
RESULTS = Path(__file__).parent / "results"
BLOCK = 2_000_000


def problem():
    """Worlds, world model, prior and likelihood of the issue's linear problem."""
    worlds = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=s) for s in (0.1, 0.3)])
    reward = worlds.features @ (THETA / np.linalg.norm(THETA))
    agent = us.agents.Boltzmann(np.repeat(reward[:, None], worlds.n_actions, axis=1), beta=3.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=20, seed=1)
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    likelihood = us.likelihoods.Normal(observed=12.0, sigma=1.0)
    return worlds, us.WorldModel.from_demonstrations(demos), prior, likelihood


def plain_monte_carlo_bits(mu_reference: np.ndarray, v: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``−log2((k + 1) / (M + 1))``, k the reference policies at least as good (ties against the draw)."""
    M = len(mu_reference)
    out = np.empty(len(v))
    step = max(1, BLOCK // M)
    for start in range(0, len(v), step):
        values = mu_reference @ theta[start : start + step].T
        block = v[start : start + step]
        threshold = block - 1e-9 * np.maximum(np.abs(block), np.abs(values).max(axis=0))
        out[start : start + step] = -np.log2(((values >= threshold).sum(axis=0) + 1.0) / (M + 1.0))
    return out


def reference_mean(worlds, world_model, prior, likelihood, n_policies: int, n_draws: int, seed: int = 0):
    """The posterior-mean theta by likelihood-weighted i.i.d. draws from the priors; its importance ESS."""
    rng = np.random.default_rng(seed)
    policies = us.UniformDeterministic().sample(worlds.n_states, worlds.n_actions, n_policies, rng)
    mu_reference = feature_expectations(worlds, policies, worlds.features)
    pi = world_model.sample(n_draws, rng)
    theta = prior.sample_prior(n_draws, seed=rng)
    v = np.einsum("nk,nk->n", feature_expectations(worlds, pi, worlds.features), theta)
    log_w = likelihood.logp(plain_monte_carlo_bits(mu_reference, v, theta))
    w = np.exp(log_w - log_w.max())
    return w @ theta / w.sum(), w.sum() ** 2 / (w**2).sum()


def centred_cosine(features: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    a, b = (features @ t - (features @ t).mean() for t in (first, second))
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-policies", type=int, default=2**16)
    parser.add_argument("--reference-draws", type=int, default=200_000)
    parser.add_argument("--methods", nargs="*", default=["auto", "importance", "monte_carlo", "gaussian"])
    args = parser.parse_args()
    worlds, world_model, prior, likelihood = problem()
    start = time.perf_counter()
    reference, ess = reference_mean(
        worlds, world_model, prior, likelihood, args.reference_policies, args.reference_draws
    )
    print(f"reference: {time.perf_counter() - start:.0f} s, importance ESS {ess:.0f}", flush=True)
    rows = []
    for method in args.methods:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scope = us.Utiliscope(worlds, world_model, prior, likelihood, g_method=method)
            idata = scope.fit(seed=0)
        mean = idata.utility_estimate["mean"].values
        rows.append(
            {
                "g_method": method if method != "auto" else f"auto ({scope.g_method})",
                "engine": idata.attrs["engine"],
                "cosine_to_reference": centred_cosine(worlds.features, mean, reference),
                "seconds": time.perf_counter() - start,
            }
        )
        print(text_table(pd.DataFrame([rows[-1]])), flush=True)
    settings = (
        f"Reference: {args.reference_policies:,} uniform deterministic policies, {args.reference_draws:,} "
        f"likelihood-weighted prior draws (importance ESS {ess:.0f})."
    )
    print(text_table(pd.DataFrame(rows)))
    RESULTS.mkdir(exist_ok=True)
    table = pipe_table(pd.DataFrame(rows))
    (RESULTS / "g_accuracy.md").write_text(f"# g accuracy on issue 30's linear problem\n\n{settings}\n\n{table}\n")


if __name__ == "__main__":
    main()
