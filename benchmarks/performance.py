"""Performance of fits: samplers × g methods on the standard problems, logp cost against S and M, a naive peer.

Run: ``python benchmarks/performance.py`` (everything; two to three hours on 2 cores, most of it PyMC's and
nutpie's rows) or choose parts, e.g. ``python benchmarks/performance.py --problems a b --samplers blackjax
--methods monte_carlo --skip-peer``. Prints each table and writes ``benchmarks/results/performance.json`` and
``performance.md``.

Standard problems (the performance issue's):

(a) 5×5 gridworld with five colours, two worlds (slip 0.1, 0.3), Dirichlet world model from 100 demonstrations
    (horizon 20) of a Boltzmann agent (β = 3) whose reward is a fixed direction over the colours, linear prior
    (Laplace, λ = 1), asymmetric Laplace likelihood peaked at the agent's g* (Monte Carlo, M = 1000);
(b) the same data with a 40-entry library prior (``from_features``, at most two terms, weights ±1, truncated to
    the 40 shortest descriptions);
(c) a 10×10 gridworld with four worlds (slips 0.05–0.3), linear prior.

Sections:

``fits``
    Per problem, sampler and g method: compile seconds, sampling seconds, total (their sum), the smallest bulk ESS
    over every scalar of ``U`` and ``g`` (every theta component, or every library probability), ESS per second of
    sampling, divergences, the largest R-hat, mean leapfrog steps per draw, and ``seconds_to_400_ess``: compile
    plus the sampling time scaled to 400 bulk ESS. BlackJAX: compile is the first fit minus a second fit of the
    same object with another seed (what a study pays once); nutpie: its explicit compile; PyMC: building the
    logp-and-gradient function (C compile; PyTensor's on-disk cache makes the fit's own build quick). 4 chains,
    ``TUNE`` tuning steps and ``DRAWS[sampler]`` draws each (fewer for PyMC and nutpie, which are slower), target
    accept 0.8. Problem (c) (``LARGE_PROBLEMS``): one fit of 250 draws per chain per row, every g method with
    BlackJAX and ``monte_carlo`` only with PyMC and nutpie (see :func:`fit_row`).
``cold``
    The target of the performance issue: ``--cold-runs`` runs (default 3) per problem and method, each a pair of
    fresh Python processes with the default sampler and ``g_method="auto"`` (and with ``monte_carlo``), 4 chains ×
    (``TUNE`` + ``DRAWS["blackjax"]``): the first with an empty JAX compilation cache (a new directory, so every
    compile is paid), the second with the cache the first left (what rerunning a script costs). Per process:
    seconds of the scope's construction (``scope_s``: demonstrations, the agent's g*, the Utiliscope with its
    reference policies and importance proposals), of the ``fit`` call, their sum, ESS, R-hat, divergences; and
    medians per cache state.
``peer``
    PyMC's random-walk Metropolis on (a) and its ESS per second against the default sampler's (same g method).
``logp_cost``
    One logp + gradient against S and M, PyTensor's C backend and JAX.
``exact_posterior``, ``study``, ``boltzmann_irl``
    ``exact_posterior`` on (b) with 1000 policies; a study refitting (a) to new demonstrations and g′ through one
    compile (``--study-fits``, ``--study-draws``): first and later fit seconds, and the worst ESS and R-hat of its
    fits; classic Boltzmann IRL (:class:`~utiliscope.models.BoltzmannIRL`, β = 3 fixed, the same linear prior) on
    (a)'s demonstrations with the default sampler.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.models.engines import get_engine, nuts_engine_names

#: The NUTS engine `sampler="auto"` runs when only NUTS fits: the first NUTS engine by priority.
DEFAULT_SAMPLER = nuts_engine_names()[0]

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
CHAINS, TUNE = 4, 500
#: Draws per chain by sampler: 1000 gives R-hat ≤ 1.01 on (a) reliably (250 gave 1.01–1.03 over four seeds at
#: ESS 430–640, noise of R-hat itself on short chains); PyMC's and nutpie's fits are slower and keep 250.
DRAWS = {"blackjax": 1000, "nutpie": 250, "pymc": 250}
#: Problems fitted once per row with LARGE_DRAWS draws per chain, and with monte_carlo g only by PyMC and nutpie:
#: on (c) one BlackJAX fit with gaussian g took over 20 minutes (its trees near the depth limit).
LARGE_PROBLEMS, LARGE_DRAWS = ("c",), 250
TARGET_ACCEPT = 0.8
TARGET_ESS = 400
M = 1000
RESULTS = Path(__file__).parent / "results"
#: The demonstrations of the last scope built per problem (Boltzmann IRL fits the same data).
DEMONSTRATIONS: dict = {}


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


def problem_scope(problem: str, g_method: str, demo_seed=1) -> us.Utiliscope:
    """The scope of a standard problem with one g method (demonstrations drawn with ``demo_seed``, a seed or a
    generator)."""
    worlds = worlds_for(problem)
    reward = worlds.features @ (THETA / np.linalg.norm(THETA))
    agent = us.agents.Boltzmann(np.repeat(reward[:, None], worlds.n_actions, axis=1), beta=3.0)
    demos = agent.demonstrate(worlds, n_trajectories=100, horizon=20, seed=demo_seed)
    DEMONSTRATIONS[problem] = demos
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


def _fit(scope, sampler: str, seed: int, draws: int | None = None, tune: int = TUNE, **kwargs):
    draws = DRAWS[sampler] if draws is None else draws
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


def quality(idata, names=("U", "g")) -> dict:
    """Smallest bulk ESS over the scalars of ``names``, divergences, largest R-hat, mean leapfrog steps a draw.

    From :func:`utiliscope.diagnostics.check`, unrounded (``az.summary`` rounds R-hat to two decimals, so 1.014
    would read 1.01), and skipping the elements that never change (g under the constant utility).
    """
    report = us.diagnostics.check(idata, var_names=list(names)).as_dict()
    stats = idata.sample_stats if "sample_stats" in idata.groups() else {}
    return {
        "min_bulk_ess": report["min_ess_bulk"],
        "divergences": _divergences(idata),
        "max_rhat": report["max_r_hat"],
        "steps_per_draw": float(stats["n_steps"].mean()) if "n_steps" in stats else float("nan"),
    }


def _compile_seconds(scope, sampler: str) -> float | None:
    """Seconds of the compile nutpie and PyMC do before sampling (None for BlackJAX, measured by a second fit)."""
    start = time.perf_counter()
    if sampler == "nutpie":
        get_engine(sampler).compiled(scope)  # nutpie compiles explicitly; time it on its own
    elif sampler == "pymc":
        scope.model.logp_dlogp_function(ravel_inputs=True)
    else:
        return None
    return time.perf_counter() - start


def fit_row(problem: str, sampler: str, g_method: str) -> dict:
    """One problem, sampler and g method: compile seconds and one fit (BlackJAX: two fits, the first compiles).

    Problem (c) gets one fit of :data:`LARGE_DRAWS` draws with every sampler (its fits take minutes to an hour):
    BlackJAX's compile is then not separated from sampling (``compile_s`` NaN, ``sampling_s`` the whole fit), so
    its ESS per second and time to 400 ESS are lower bounds on what a study would see.
    """
    scope = problem_scope(problem, g_method)
    draws = LARGE_DRAWS if problem in LARGE_PROBLEMS else DRAWS[sampler]
    compile_seconds = _compile_seconds(scope, sampler)
    options = {"cores": 2} if sampler == "pymc" else {}
    if compile_seconds is not None or problem in LARGE_PROBLEMS:
        idata, sample_seconds = _fit(scope, sampler, seed=1, draws=draws, **options)
    else:
        _, total = _fit(scope, sampler, seed=0, draws=draws)
        idata, sample_seconds = _fit(scope, sampler, seed=1, draws=draws)
        compile_seconds = max(total - sample_seconds, 0.0)
    row = {"problem": problem, "sampler": sampler, "g_method": scope.g_method, "draws": draws}
    row.update(quality(idata))
    row.update(
        compile_s=compile_seconds,
        sampling_s=sample_seconds,
        total_s=(compile_seconds or 0.0) + sample_seconds,
        ess_per_s=row["min_bulk_ess"] / sample_seconds,
        seconds_to_400_ess=(compile_seconds or 0.0) + sample_seconds * TARGET_ESS / max(row["min_bulk_ess"], 1.0),
    )
    if compile_seconds is None:
        row["compile_s"] = float("nan")
    return row


def cold_fit(problem: str, g_method: str) -> dict:
    """One scope and one fit with the default sampler in this (fresh) process: wall seconds, compiles included."""
    start = time.perf_counter()
    scope = problem_scope(problem, g_method)
    scope_seconds = time.perf_counter() - start
    idata, seconds = _fit(scope, DEFAULT_SAMPLER, seed=0)
    return {
        "problem": problem,
        "g_method": scope.g_method,
        "scope_s": scope_seconds,
        "fit_s": seconds,
        "total_s": scope_seconds + seconds,
        **quality(idata),
    }


def cold_rows(problems, methods, runs: int) -> pd.DataFrame:
    """:func:`cold_fit` ``runs`` times per problem and method, each in a new interpreter with a new (empty) JAX
    compilation cache, then once more in another interpreter with the cache the first one left."""
    rows = []
    for problem in problems:
        for method in methods:
            for run in range(runs):
                with tempfile.TemporaryDirectory() as cache:
                    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
                    for state in ("empty", "warm"):
                        command = [sys.executable, __file__, "--cold-fit", problem, method]
                        result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
                        measured = json.loads(result.stdout.strip().splitlines()[-1])
                        rows.append({"requested": method, "jax_cache": state, "run": run, **measured})
                        print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def cold_summary(cold: pd.DataFrame) -> pd.DataFrame:
    """Median seconds and the worst ESS, R-hat and divergences per problem, requested g method and cache state."""
    grouped = cold.groupby(["problem", "requested", "g_method", "jax_cache"], sort=False)
    return grouped.agg(
        runs=("fit_s", "size"),
        median_scope_s=("scope_s", "median"),
        median_fit_s=("fit_s", "median"),
        median_total_s=("total_s", "median"),
        max_total_s=("total_s", "max"),
        min_bulk_ess=("min_bulk_ess", "min"),
        max_rhat=("max_rhat", "max"),
        divergences=("divergences", "sum"),
    ).reset_index()


def metropolis_row(g_method: str, draws: int) -> dict:
    """Problem (a) with PyMC's random-walk Metropolis (the approach of classic Bayesian-IRL code).

    PyMC's Metropolis accepts or rejects each element of a vector variable on its own, so one iteration costs
    about one logp evaluation per free scalar (~100 here, ~0.07 s per iteration in all): ``draws`` is kept small
    and the comparison is made per second, in ESS per second of sampling. Chains run two at a time on the two
    cores, as BlackJAX's do.
    """
    scope = problem_scope("a", g_method)
    start = time.perf_counter()
    with scope.model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=draws,
            tune=draws,
            chains=CHAINS,
            cores=2,
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


def study_times(n_fits: int, g_method: str, draws: int) -> dict:
    """A ``recovery_study`` of ``n_fits`` agents on problem (a), in this process (a fit's chains use every core).

    Agent i is problem (a)'s Boltzmann agent with its own demonstrations (the study's seeds) and g′ its own g*;
    every scope is a new object of the same structure, so only the first fit compiles. Returns the first and the
    median later fit's seconds (time between fits finishing), the total, and the worst bulk ESS and R-hat of
    theta over the fits.
    """
    worlds = worlds_for("a")
    reward = worlds.features @ (THETA / np.linalg.norm(THETA))
    finished = [time.perf_counter()]  # the study pickles this closure: its copy times the fits in the study

    def agent_factory(i, rng):
        return us.agents.Boltzmann(np.repeat(reward[:, None], worlds.n_actions, axis=1), beta=3.0), worlds

    def scope_factory(agent, worlds, setting, rng):
        # problem_scope builds this same agent and draws its demonstrations with the study's generator.
        return problem_scope("a", g_method, demo_seed=rng)

    def metric(idata, scope, agent, worlds):
        finished.append(time.perf_counter())
        return {"seconds": finished[-1] - finished[-2], **quality(idata, names=("U",))}

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = us.diagnostics.recovery_study(
            agent_factory,
            scope_factory,
            n_fits,
            client="serial",
            fit_kwargs={
                "sampler": DEFAULT_SAMPLER,
                "chains": CHAINS,
                "tune": TUNE,
                "draws": draws,
                "target_accept": TARGET_ACCEPT,
            },
            metric=metric,
            progressbar=False,
        )
    total = time.perf_counter() - start
    seconds = table["seconds"].to_numpy()
    return {
        "n_fits": n_fits,
        "g_method": g_method,
        "draws": draws,
        "failed": int(table["error"].notna().sum()),
        "first_fit_s": seconds[0],
        "median_later_fit_s": float(np.median(seconds[1:])) if n_fits > 1 else float("nan"),
        "total_s": total,
        "min_bulk_ess": float(table["min_bulk_ess"].min()),
        "max_rhat": float(table["max_rhat"].max()),
        "divergent_fits": int((table["divergences"] > 0).sum()),
    }


def boltzmann_row() -> dict:
    """Classic Boltzmann IRL (β = 3, fixed) on problem (a)'s demonstrations and linear prior: two fits."""
    scope = problem_scope("a", "monte_carlo")
    model = us.models.BoltzmannIRL(scope.worlds, DEMONSTRATIONS["a"], scope.utility_prior, beta=3.0)
    _, total = _fit(model, DEFAULT_SAMPLER, seed=0)
    idata, sample_seconds = _fit(model, DEFAULT_SAMPLER, seed=1)
    row = {"problem": "a", "model": "BoltzmannIRL", "sampler": DEFAULT_SAMPLER, **quality(idata, names=("U",))}
    row.update(first_fit_s=total, second_fit_s=sample_seconds)
    return row


def _report(name: str, sections: dict, table: pd.DataFrame, out: str) -> None:
    """Print a section and write every section so far (a long run that stops keeps what it measured)."""
    sections[name] = table
    print(f"\n{name}\n" + text_table(table), flush=True)
    machine = f"{platform.processor() or platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores"
    header = (
        f"Machine: {machine}; pytensor {pytensor.__version__}, pymc {pm.__version__}, jax {jax.__version__}; "
        f"{CHAINS} chains × ({TUNE} tune + draws) with draws per sampler {DRAWS}. Absolute times vary with the "
        "machine and its load.\n"
    )
    (RESULTS / f"{out}.json").write_text(
        json.dumps({"machine": machine, **{k: v.to_dict("records") for k, v in sections.items()}}, indent=2)
    )
    (RESULTS / f"{out}.md").write_text(
        header + "\n".join(f"\n### {key}\n\n{pipe_table(value)}\n" for key, value in sections.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="*", default=["a", "b", "c"])
    parser.add_argument("--samplers", nargs="*", default=["blackjax", "nutpie", "pymc"])
    parser.add_argument("--methods", nargs="+", default=["monte_carlo", "gaussian", "importance"])
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh-process fits per problem and method")
    parser.add_argument("--cold-methods", nargs="+", default=["auto", "monte_carlo"])
    parser.add_argument("--cold-fit", nargs=2, metavar=("PROBLEM", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--study-fits", type=int, default=100)
    parser.add_argument("--study-draws", type=int, default=250, help="draws per chain of each study fit")
    parser.add_argument("--study-method", default="monte_carlo")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--peer-draws", type=int, default=500, help="Metropolis tuning steps and draws per chain")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-boltzmann", action="store_true")
    parser.add_argument("--out", default="performance", help="name of the result files in benchmarks/results")
    args = parser.parse_args()
    if args.cold_fit:
        print(json.dumps(cold_fit(*args.cold_fit)))
        return
    RESULTS.mkdir(exist_ok=True)
    sections: dict[str, pd.DataFrame] = {}
    rows: list[dict] = []

    def fit_rows(samplers, large: bool) -> None:
        for sampler in samplers:
            for problem in [p for p in args.problems if (p in LARGE_PROBLEMS) == large]:
                methods = args.methods
                if large and sampler != DEFAULT_SAMPLER:
                    methods = [m for m in args.methods if m == "monte_carlo"]
                for method in methods:
                    rows.append(fit_row(problem, sampler, method))
                    _report("fits", sections, pd.DataFrame(rows), args.out)

    # The default sampler on (a) and (b) and the targets' sections first; the slow rows last.
    default = [s for s in args.samplers if s == DEFAULT_SAMPLER]
    others = [s for s in args.samplers if s != DEFAULT_SAMPLER]
    fit_rows(default, large=False)
    if args.cold_runs:
        cold = cold_rows([p for p in ("a", "b") if p in args.problems], args.cold_methods, args.cold_runs)
        _report("cold", sections, cold_summary(cold), args.out)
    if not args.skip_peer:
        peer = metropolis_row("monte_carlo", draws=args.peer_draws)
        fits = sections.get("fits", pd.DataFrame(columns=["problem", "sampler", "g_method", "ess_per_s"]))
        on_a = (fits.problem == "a") & (fits.g_method == "monte_carlo")
        default_row = fits[on_a & (fits.sampler == DEFAULT_SAMPLER)]
        if len(default_row):
            peer["default_ess_per_s"] = float(default_row["ess_per_s"].iloc[0])
            peer["ratio_default_over_peer"] = peer["default_ess_per_s"] / peer["ess_per_s"]
        _report("peer", sections, pd.DataFrame([peer]), args.out)
    if not args.skip_cost:
        _report("logp_cost", sections, logp_cost(), args.out)
    exact = pd.DataFrame([{"problem": "b", "policies": 1000, "seconds": exact_posterior_seconds()}])
    _report("exact_posterior", sections, exact, args.out)
    if args.study_fits:
        study = study_times(args.study_fits, args.study_method, args.study_draws)
        _report("study", sections, pd.DataFrame([study]), args.out)
    if not args.skip_boltzmann:
        _report("boltzmann_irl", sections, pd.DataFrame([boltzmann_row()]), args.out)
    fit_rows(default, large=True)
    fit_rows(others, large=False)
    fit_rows(others, large=True)


if __name__ == "__main__":
    main()
