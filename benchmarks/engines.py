"""The default engine (``fit(sampler="auto")``) against NUTS (BlackJAX) on the standard problems, in one run.

Run: ``python benchmarks/engines.py [--problems quickstart a b] [--scale-out] [--smc] [--nutpie-jax] [--targets]``
(about five minutes on 2 cores, plus a few each with ``--scale-out``, ``--smc`` and ``--nutpie-jax`` and about
fifteen with ``--targets``). Prints the tables and writes them to ``benchmarks/results/`` (``engines``,
``scale_out``, ``smc``, ``nutpie_jax`` and ``targets``, as JSON and Markdown).

Problems: ``quickstart`` (the quickstart's 43-entry library over a 2×3 gridworld in two worlds, exact g), (a) and
(b) of ``performance.py`` (a 5×5 gridworld in two worlds with a linear prior and a 40-entry library; g by
``g_method="auto"``). Per problem and engine: seconds of the fit (a second fit of the same object, so BlackJAX's
compile is not counted; ``first_s`` is the first fit, compile included), the engine that ran, its
diagnostics (Pareto k̂ and importance ESS for ``iid``; least bulk ESS and largest R-hat over U for NUTS), and the
agreement of its estimate with the other engine's: for a library the largest difference in P(U) and the same in
units of the two fits' combined MCSE (NUTS: ``az.mcse`` of the mean of U); for a linear prior the centred cosine
between the posterior-mean rewards. NUTS runs 4 chains × (500 tuning steps + 1000 draws), target accept 0.8.

``--scale-out``: problem (c)'s 10×10 gridworld in four worlds with the 40-entry library (``monte_carlo`` g,
M = 1000) and exactly 100,000 world-model draws, in one process and split over a two-worker Dask cluster:
seconds of each and whether their answers are identical (they should be: each batch has its own seed).

``--smc``: this package's tempered SMC (``fit(sampler="smc")``) against PyMC's ``pm.sample_smc`` on the same
``scope.model`` (its exact g is a hard step, as the engine's), 2 chains × 1000 particles, on the quickstart, on
the quickstart with a sharp Normal likelihood (sd 0.25 bits, more tempering stages) and on the quickstart's data
with a linear prior: seconds (PyMC's first run includes its compile), stages, and the largest difference in P(U)
(or the posterior-mean theta) from the default ``iid`` fit.

``--nutpie-jax``: nutpie with PyTensor's JAX backend and JAX gradients (``compile_pymc_model(backend="jax",
gradient_backend="jax")``) against this package's BlackJAX engine on (a) and (b), 4 chains × (500 + 1000):
compile seconds (nutpie: its compile; BlackJAX: first fit minus second), sampling seconds, least bulk ESS over U,
and ``to_400_s`` = compile + sampling scaled to 400 ESS.

``--targets``: the many-fit targets with the default engine: the quickstart problem for demonstration seeds
0–99 (how many pass ``diagnostics.check``, seconds per fit), a ``recovery_study`` of 100 agents of problem (b)
and an SBC of 1,000 simulations of the quickstart problem, each on a two-worker Dask cluster (total seconds; SBC:
the least Kolmogorov–Smirnov p-value over the variables' PITs and whether all pass at level 0.01, Bonferroni).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
from performance import RESULTS, THETA, library_of_40, problem_scope, worlds_for
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.quickstart import LAYOUT, TRUE_UTILITY

NUTS = {"sampler": "blackjax", "draws": 1000, "tune": 500, "chains": 4, "progressbar": False}


def quickstart_scope(seed: int = 0) -> us.Utiliscope:
    """The quickstart's problem with demonstrations drawn with ``seed``."""
    worlds = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
    library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    agent = us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index(TRUE_UTILITY)], beta=4.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=12, seed=seed)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=round(agent.true_intelligence(worlds), 1))
    return us.Utiliscope(worlds, us.WorldModel.from_demonstrations(demos), library, likelihood)


def timed_fit(scope, seed: int = 1, **kwargs) -> tuple[az.InferenceData, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = scope.fit(seed=seed, **kwargs)
    return idata, time.perf_counter() - start


def estimate(scope, idata) -> tuple[np.ndarray, np.ndarray]:
    """The posterior of U (library: P(U); linear: the mean direction) and its MCSE."""
    if "utility_estimate" in idata.groups():
        group = idata.utility_estimate
        return group["probability" if scope.is_library else "mean"].values, group["mcse"].values
    return idata.posterior["U"].mean(("chain", "draw")).values, az.mcse(idata, var_names=["U"])["U"].values


def centred_cosine(scope, first: np.ndarray, second: np.ndarray) -> float:
    rewards = [(scope.features @ theta).ravel() for theta in (first, second)]
    a, b = (r - r.mean() for r in rewards)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rows_for(problem: str) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scope = quickstart_scope() if problem == "quickstart" else problem_scope(problem, "auto")
    fits = {}
    for label, kwargs in (("auto", {}), ("nuts", NUTS)):
        _, first = timed_fit(scope, **kwargs)
        idata, seconds = timed_fit(scope, **kwargs)
        fits[label] = (idata, first, seconds)
    (auto, *_), (nuts, *_) = fits["auto"], fits["nuts"]
    (p_auto, se_auto), (p_nuts, se_nuts) = estimate(scope, auto), estimate(scope, nuts)
    rows = []
    for idata, first, seconds in fits.values():
        row = {"problem": problem, "g_method": scope.g_method, "engine": idata.attrs["engine"]}
        row |= {"first_s": first, "fit_s": seconds}
        if "utility_estimate" in idata.groups() and "pareto_k" in idata.utility_estimate.attrs:
            row |= {
                "pareto_k": idata.utility_estimate.attrs["pareto_k"],
                "ess": idata.utility_estimate.attrs["ess"],
            }
        else:
            summary = az.summary(idata, var_names=["U"], round_to="none")
            row |= {"ess": float(summary["ess_bulk"].min()), "max_rhat": float(summary["r_hat"].max())}
        if scope.is_library:
            difference = np.abs(p_auto - p_nuts)
            row |= {
                "max_dP": float(difference.max()),
                "max_dP_in_se": float((difference / np.hypot(se_auto, se_nuts)).max()),
            }
        else:
            row["cosine_to_other"] = centred_cosine(scope, p_auto, p_nuts)
        rows.append(row)
    rows[0]["speedup_vs_nuts"] = fits["nuts"][2] / fits["auto"][2]
    return rows


def scale_out_rows() -> list[dict]:
    from distributed import Client, LocalCluster

    worlds = worlds_for("c")
    library = library_of_40(worlds)
    reward = worlds.features @ (THETA / np.linalg.norm(THETA))
    agent = us.agents.Boltzmann(np.repeat(reward[:, None], worlds.n_actions, axis=1), beta=3.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=30, seed=1)
    g_star = agent.true_intelligence(worlds, method="monte_carlo", n_samples=1000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scope = us.Utiliscope(
            worlds,
            us.WorldModel.from_demonstrations(demos),
            library,
            us.likelihoods.AsymmetricLaplace(observed=min(g_star, 6.0)),
            g_method="monte_carlo",
        )
    budget = {"sampler": "iid", "min_draws": 100_000, "max_draws": 100_000}
    alone, alone_s = timed_fit(scope, **budget)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        spread, spread_s = timed_fit(scope, client=client, **budget)
    same = bool(np.array_equal(alone.utility_estimate["probability"], spread.utility_estimate["probability"]))
    return [
        {"run": "one process", "draws": alone.utility_estimate.attrs["n_draws"], "seconds": alone_s},
        {
            "run": "2 Dask workers",
            "draws": spread.utility_estimate.attrs["n_draws"],
            "seconds": spread_s,
            "identical": same,
        },
    ]


def smc_rows() -> list[dict]:
    import pymc as pm

    quickstart = quickstart_scope(0)
    g_star = quickstart.likelihood.observed
    linear = us.priors.LinearUtility(quickstart.worlds.features, feature_names=quickstart.worlds.feature_names)
    cases = [
        (quickstart.utility_prior, quickstart.likelihood),
        (quickstart.utility_prior, us.likelihoods.Normal(observed=g_star, sigma=0.25)),
        (linear, quickstart.likelihood),
    ]
    rows = []
    for prior, likelihood in cases:
        scope = us.Utiliscope(quickstart.worlds, quickstart.world_model, prior, likelihood)
        reference, _ = estimate(scope, scope.fit(seed=0, target_mcse=0.005 if not scope.is_library else 0.002))
        for run in range(2):
            own, seconds = timed_fit(scope, seed=run, sampler="smc", chains=2, draws=1000)
            common = {"prior": prior.kind, "likelihood": repr(likelihood), "run": run}
            rows.append(
                common
                | {
                    "engine": "utiliscope smc",
                    "seconds": seconds,
                    "stages": own.utility_estimate.attrs["stages"],
                    "max_diff_vs_iid": float(np.abs(estimate(scope, own)[0] - reference).max()),
                }
            )
            start = time.perf_counter()
            with scope.model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = pm.sample_smc(
                    draws=1000,
                    chains=2,
                    cores=1,
                    random_seed=run,
                    progressbar=False,
                    compute_convergence_checks=False,
                )
            rows.append(
                common
                | {
                    "engine": "pm.sample_smc",
                    "seconds": time.perf_counter() - start,
                    "stages": str(idata.sample_stats.sizes["draw"]),
                    "max_diff_vs_iid": float(np.abs(estimate(scope, idata)[0] - reference).max()),
                }
            )
    return rows


def nutpie_jax_rows() -> list[dict]:
    import nutpie

    import utiliscope.models.jax_ops  # noqa: F401  (registers the JAX versions of the package's Ops)

    rows = []
    for problem in ("a", "b"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scope = problem_scope(problem, "auto")
        _, first = timed_fit(scope, **NUTS)
        idata, seconds = timed_fit(scope, **NUTS)
        ess = float(az.ess(idata, var_names=["U"])["U"].min())
        compile_s = max(first - seconds, 0.0)
        rows.append(
            {
                "problem": problem,
                "sampler": "blackjax",
                "compile_s": compile_s,
                "sampling_s": seconds,
                "min_bulk_ess": ess,
                "to_400_s": compile_s + seconds * 400 / ess,
            }
        )
        start = time.perf_counter()
        compiled = nutpie.compile_pymc_model(
            scope.model, backend="jax", gradient_backend="jax", freeze_model=False
        )
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        trace = nutpie.sample(
            compiled, draws=NUTS["draws"], tune=NUTS["tune"], chains=NUTS["chains"], seed=1, progress_bar=False
        )
        seconds = time.perf_counter() - start
        ess = float(az.ess(trace, var_names=["U"])["U"].min())
        rows.append(
            {
                "problem": problem,
                "sampler": "nutpie (jax)",
                "compile_s": compile_s,
                "sampling_s": seconds,
                "min_bulk_ess": ess,
                "to_400_s": compile_s + seconds * 400 / ess,
            }
        )
    return rows


def target_rows() -> list[dict]:
    from distributed import Client, LocalCluster

    rows = []
    seconds, passed = [], 0
    for seed in range(100):
        start = time.perf_counter()
        idata, _ = timed_fit(quickstart_scope(seed))
        seconds.append(time.perf_counter() - start)
        passed += us.diagnostics.check(idata, var_names=["pi", "g"]).ok
    rows.append(
        {
            "target": "quickstart, seeds 0-99",
            "ok": f"{passed}/100",
            "seconds": float(np.sum(seconds)),
            "detail": f"median {np.median(seconds):.2f} s, max {np.max(seconds):.2f} s a fit (with its scope)",
        }
    )

    def agent_factory(i, rng):
        scope = problem_scope("b", "auto", demo_seed=rng)
        return scope, scope.worlds

    def scope_factory(scope, worlds, setting, rng):
        return scope

    def metric(idata, scope, agent, worlds):
        return {"engine": idata.attrs["engine"], "ok": us.diagnostics.check(idata, var_names=["g"]).ok}

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        study = us.diagnostics.recovery_study(
            agent_factory, scope_factory, 100, client=client, metric=metric, progressbar=False
        )
        rows.append(
            {
                "target": "recovery_study, 100 fits of (b)",
                "seconds": time.perf_counter() - start,
                "ok": f"{int(study['ok'].fillna(False).sum())}/100",
                "detail": f"{int(study['error'].notna().sum())} failed; engines {sorted(set(study['engine']))}",
            }
        )
        start = time.perf_counter()
        result = us.diagnostics.sbc(quickstart_scope(0), 1000, seed=0, client=client, progressbar=False)
        rows.append(
            {
                "target": "sbc, 1000 simulations of the quickstart",
                "seconds": time.perf_counter() - start,
                "ok": str(result.ok),
                "detail": f"least KS p-value {result.tests['p_value'].min():.3g} over {len(result.tests)} "
                f"variables; {result.n_failed} failed",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="*", default=["quickstart", "b", "a"])
    parser.add_argument("--scale-out", action="store_true", help="the 100,000-draw fit on two Dask workers")
    parser.add_argument("--smc", action="store_true", help="this package's SMC against pm.sample_smc")
    parser.add_argument("--nutpie-jax", action="store_true", help="nutpie's JAX backend against BlackJAX")
    parser.add_argument("--targets", action="store_true", help="quickstart seeds 0-99, a 100-fit study, an SBC")
    args = parser.parse_args()
    tables = {}
    if args.problems:
        tables["engines"] = pd.DataFrame([row for problem in args.problems for row in rows_for(problem)])
    if args.scale_out:
        tables["scale_out"] = pd.DataFrame(scale_out_rows())
    if args.smc:
        tables["smc"] = pd.DataFrame(smc_rows())
    if args.nutpie_jax:
        tables["nutpie_jax"] = pd.DataFrame(nutpie_jax_rows())
    if args.targets:
        tables["targets"] = pd.DataFrame(target_rows())
    RESULTS.mkdir(exist_ok=True)
    for name, table in tables.items():
        print(text_table(table))
        (RESULTS / f"{name}.json").write_text(json.dumps(table.to_dict(orient="records"), indent=1, default=float))
        (RESULTS / f"{name}.md").write_text(pipe_table(table) + "\n")


if __name__ == "__main__":
    main()
