"""Performance of fits: samplers × g methods on the standard problems, logp cost against S and M, a naive peer.

Run: ``python benchmarks/performance.py`` (everything; about an hour on 2 cores) or choose parts, e.g.
``python benchmarks/performance.py --problems a b --samplers blackjax nutpie --methods monte_carlo --skip-peer``.
Prints each table and writes ``benchmarks/results/performance.json`` and ``performance.md``.

Standard problems (the performance issue's):

(a) 5×5 gridworld with five colours, two worlds (slip 0.1, 0.3), Dirichlet world model from 100 demonstrations
    (horizon 20) of a Boltzmann agent (β = 3) whose reward is a fixed direction over the colours, linear prior
    (Laplace, λ = 1), asymmetric Laplace likelihood peaked at the agent's g* (Monte Carlo, M = 1000);
(b) the same data with a 40-entry library prior (``from_features``, at most two terms, weights ±1, truncated to
    the 40 shortest descriptions);
(c) a 10×10 gridworld with four worlds (slips 0.05–0.3), linear prior.

Per fit: compile seconds (first fit minus a second fit of the same object with another seed: what a study pays
once), sampling seconds (the second fit), total (the first fit), the smallest bulk ESS over every scalar of ``U``
and ``g`` (every theta component, or every library probability), ESS per second of sampling, divergences and
the largest R-hat. All fits: 4 chains, ``TUNE`` tuning steps and ``DRAWS`` draws each, target_accept 0.8.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor

import utiliscope as us

LAYOUT_A = ["S.a.b", ".#.c.", "d...e", ".c.#.", "b..a."]
LAYOUT_C = [
    "S..a....b.",
    ".#...c..#.",
    "..d...e...",
    "a...#....b",
    "....c..d..",
    ".e.......a",
    "...#..b...",
    "c.....#.e.",
    "..a.d.....",
    "b....c...d",
]
THETA = np.array([1.0, -1.0, 0.5, 0.0, 0.0])
CHAINS, TUNE, DRAWS = 4, 500, 250
TARGET_ACCEPT = 0.8
TARGET_ESS = 400
M = 1000
RESULTS = Path(__file__).parent / "results"


def worlds_for(problem: str) -> us.WorldSet:
    """The worlds of a standard problem."""
    if problem == "c":
        return us.WorldSet([us.worlds.gridworld(LAYOUT_C, slip=s) for s in (0.05, 0.1, 0.2, 0.3)])
    return us.WorldSet([us.worlds.gridworld(LAYOUT_A, slip=s) for s in (0.1, 0.3)])


def library_of_40(worlds: us.WorldSet) -> us.priors.UtilityLibrary:
    """The 40 simplest entries of the two-term, unit-weight library over the colours."""
    full = us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, feature_names=worlds.feature_names
    )
    keep = np.argsort(full.description_bits, kind="stable")[:40]
    return us.priors.UtilityLibrary(
        full.rewards[keep],
        np.asarray(full.description_bits)[keep],
        [full.names[i] for i in keep],
        simplicity_weight=0.0,
    )


def problem_scope(problem: str, g_method: str, demo_seed: int = 1) -> us.Utiliscope:
    """The scope of a standard problem with one g method (demonstrations drawn with ``demo_seed``)."""
    worlds = worlds_for(problem)
    reward = worlds.features @ (THETA / np.linalg.norm(THETA))
    agent = us.agents.Boltzmann(np.repeat(reward[:, None], worlds.n_actions, axis=1), beta=3.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=20, seed=demo_seed)
    g_star = agent.true_intelligence(worlds, method="monte_carlo", n_samples=M, seed=0)
    prior = (
        library_of_40(worlds)
        if problem == "b"
        else us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", us.models.GSaturationWarning)
        return us.Utiliscope(
            worlds,
            us.WorldModel.from_demonstrations(demos),
            prior,
            us.likelihoods.AsymmetricLaplace(observed=g_star),
            g_method=g_method,
            n_samples=M,
            seed=0,
        )


def _fit(scope, sampler: str, seed: int, draws: int = DRAWS, tune: int = TUNE, **kwargs):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = scope.fit(
            draws=draws,
            tune=tune,
            chains=CHAINS,
            seed=seed,
            sampler=sampler,
            progressbar=False,
            target_accept=TARGET_ACCEPT,
            **kwargs,
        )
    return idata, time.perf_counter() - start


def _divergences(idata) -> int:
    """NUTS' divergent transitions; 0 where there are none to record (Metropolis, exact i.i.d. draws)."""
    stats = idata.sample_stats if "sample_stats" in idata.groups() else {}
    return int(stats["diverging"].sum()) if "diverging" in stats else 0


def quality(idata) -> dict:
    """Smallest bulk ESS over the scalars of U and g, divergences, largest R-hat."""
    summary = az.summary(idata, var_names=["U", "g"], kind="diagnostics")
    return {
        "min_bulk_ess": float(summary["ess_bulk"].min()),
        "divergences": _divergences(idata),
        "max_rhat": float(summary["r_hat"].max()),
    }


def fit_row(problem: str, sampler: str, g_method: str) -> dict:
    """Two fits of one object: the first pays the compile, the second only samples."""
    scope = problem_scope(problem, g_method)
    if sampler == "nutpie":
        start = time.perf_counter()
        scope._nutpie_compiled  # noqa: B018 - nutpie compiles explicitly; time it on its own
        compile_seconds = time.perf_counter() - start
        idata, sample_seconds = _fit(scope, sampler, seed=1)
        total = compile_seconds + sample_seconds
    else:
        _, total = _fit(scope, sampler, seed=0)
        idata, sample_seconds = _fit(scope, sampler, seed=1)
        compile_seconds = max(total - sample_seconds, 0.0)
    row = {"problem": problem, "sampler": sampler, "g_method": g_method, **quality(idata)}
    row.update(
        compile_s=compile_seconds,
        sampling_s=sample_seconds,
        total_s=total,
        ess_per_s=row["min_bulk_ess"] / sample_seconds,
        seconds_to_400_ess=compile_seconds + sample_seconds * TARGET_ESS / max(row["min_bulk_ess"], 1.0),
    )
    return row


def metropolis_row(g_method: str, draws: int) -> dict:
    """Problem (a) with PyMC's random-walk Metropolis (the approach of classic Bayesian-IRL code).

    PyMC's Metropolis accepts or rejects each element of a vector variable on its own, so one iteration costs
    about one logp evaluation per free scalar (~100 here, ~0.07 s per iteration in all): ``draws`` is kept small
    and the comparison is made per second, in ESS per second of sampling. Chains run one after the other on one
    core, as BlackJAX's do.
    """
    scope = problem_scope("a", g_method)
    start = time.perf_counter()
    with scope.model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=draws,
            tune=draws,
            chains=CHAINS,
            cores=1,
            step=pm.Metropolis(),
            random_seed=1,
            progressbar=False,
            compute_convergence_checks=False,
        )
    seconds = time.perf_counter() - start
    row = {"problem": "a", "sampler": "pymc Metropolis", "g_method": g_method, **quality(idata)}
    row.update(sampling_s=seconds, total_s=seconds, ess_per_s=row["min_bulk_ess"] / seconds)
    return row


def logp_cost(repeats: int = 200) -> pd.DataFrame:
    """Milliseconds per logp + gradient (PyTensor's C backend and JAX) against S (states) and M (references)."""
    from utiliscope.models.jax_sampler import compile_density

    rows = []
    for side, m in [(4, 1000), (6, 1000), (8, 1000), (10, 1000), (6, 250), (6, 4000)]:
        layout = ["S" + "." * (side - 2) + "a"] + ["." * side] * (side - 2) + ["b" + "." * (side - 2) + "c"]
        worlds = us.WorldSet([us.worlds.gridworld(layout, slip=s) for s in (0.1, 0.3)])
        demos = us.Demonstrations.from_counts(np.ones((worlds.n_states, worlds.n_actions)))
        scope = us.Utiliscope(
            worlds,
            us.WorldModel.from_demonstrations(demos),
            us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names),
            us.likelihoods.AsymmetricLaplace(observed=4.0),
            g_method="monte_carlo",
            n_samples=m,
        )
        model = scope.model
        point = model.initial_point()
        fn = model.logp_dlogp_function(ravel_inputs=True)
        fn.set_extra_values({})
        x = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
        fn(x)
        start = time.perf_counter()
        for _ in range(repeats):
            fn(x)
        c_ms = (time.perf_counter() - start) / repeats * 1e3
        jax_ms = _jax_logp_ms(compile_density(model)[0], model, point, repeats)
        rows.append({"S": worlds.n_states, "M": m, "pytensor_c_ms": c_ms, "jax_ms": jax_ms})
    table = pd.DataFrame(rows)
    base = table[(table.S == table.S.min()) & (table.M == 1000)].iloc[0]
    table["c_vs_smallest_S"] = table["pytensor_c_ms"] / base["pytensor_c_ms"]
    table["jax_vs_smallest_S"] = table["jax_ms"] / base["jax_ms"]
    return table


def _jax_logp_ms(compiled, model, point, repeats: int) -> float:
    import jax

    data = [model[name].get_value() for name in compiled.data_names]
    values = [np.asarray(point[name]) for name in compiled.free_names]
    grad = jax.jit(jax.value_and_grad(lambda v, d: compiled.logp(*v, *d)[0]))
    jax.block_until_ready(grad(values, data))
    start = time.perf_counter()
    for _ in range(repeats):
        out = grad(values, data)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats * 1e3


def exact_posterior_seconds(n_policies: int = 1000, repeats: int = 3) -> float:
    """Median seconds of ``exact_posterior`` on (b) with a finite world model of ``n_policies`` policies."""
    scope = problem_scope("b", "monte_carlo")
    policies = scope.world_model.sample(n_policies, seed=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        finite = us.Utiliscope(
            scope.worlds,
            us.WorldModel.from_policies(policies),
            scope.utility_prior,
            scope.likelihood,
            g_method="monte_carlo",
            n_samples=M,
        )
        finite.exact_posterior()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def study_times(n_fits: int, g_method: str) -> dict:
    """Problem (a) refitted to ``n_fits`` data sets (new demonstrations and g′ each) through one compile."""
    scope = problem_scope("a", g_method)
    times = []
    for i in range(n_fits):
        other = problem_scope("a", g_method, demo_seed=100 + i)
        pm.set_data(
            {"alpha": other.world_model.alpha, "g_prime_observed": other.observed_g_prime}, model=scope.model
        )
        _, seconds = _fit(scope, "blackjax", seed=i)
        times.append(seconds)
    return {
        "n_fits": n_fits,
        "first_fit_s": times[0],
        "median_later_fit_s": statistics.median(times[1:]) if n_fits > 1 else float("nan"),
        "total_s": sum(times),
    }


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table (written here: pandas' ``to_markdown`` needs ``tabulate``, which is not a dependency)."""

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="*", default=["a", "b", "c"])
    parser.add_argument("--samplers", nargs="+", default=["blackjax", "nutpie", "pymc"])
    parser.add_argument("--methods", nargs="+", default=["monte_carlo", "gaussian"])
    parser.add_argument("--study-fits", type=int, default=20)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--peer-draws", type=int, default=500, help="Metropolis tuning steps and draws per chain")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--out", default="performance", help="name of the result files in benchmarks/results")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores"
    sections: dict[str, pd.DataFrame] = {}
    rows = []
    for problem in args.problems:
        for sampler in args.samplers:
            for method in args.methods:
                rows.append(fit_row(problem, sampler, method))
                print(json.dumps(rows[-1]), flush=True)
    if rows:
        sections["fits"] = pd.DataFrame(rows)
        print(sections["fits"].to_string(index=False, float_format=lambda x: f"{x:.3g}"), flush=True)
    if not args.skip_peer:
        peer = metropolis_row("monte_carlo", draws=args.peer_draws)
        fits = sections.get("fits", pd.DataFrame(columns=["problem", "g_method", "ess_per_s"]))
        on_a = fits[(fits.problem == "a") & (fits.g_method == "monte_carlo")]
        if len(on_a):
            peer["ess_per_s_ratio_best_nuts_over_peer"] = on_a["ess_per_s"].max() / peer["ess_per_s"]
        sections["peer"] = pd.DataFrame([peer])
        print(sections["peer"].to_string(index=False, float_format=lambda x: f"{x:.3g}"), flush=True)
    if not args.skip_cost:
        sections["logp_cost"] = logp_cost()
        print(sections["logp_cost"].to_string(index=False, float_format=lambda x: f"{x:.3g}"), flush=True)
    sections["exact_posterior"] = pd.DataFrame(
        [{"problem": "b", "policies": 1000, "seconds": exact_posterior_seconds()}]
    )
    print(sections["exact_posterior"].to_string(index=False), flush=True)
    if args.study_fits:
        sections["study"] = pd.DataFrame([study_times(args.study_fits, args.methods[0])])
        print(sections["study"].to_string(index=False, float_format=lambda x: f"{x:.3g}"), flush=True)
    header = (
        f"Machine: {machine}; pytensor {pytensor.__version__}, pymc {pm.__version__}; {CHAINS} chains × "
        f"({TUNE} tune + {DRAWS} draws). Absolute times vary with the machine and its load.\n"
    )
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"machine": machine, **{k: v.to_dict("records") for k, v in sections.items()}}, indent=2)
    )
    (RESULTS / f"{args.out}.md").write_text(
        header + "\n".join(f"\n### {name}\n\n{_markdown(table)}\n" for name, table in sections.items())
    )


if __name__ == "__main__":
    main()
