"""The Utiliscope, Boltzmann-rational Bayesian IRL and their combination on the same agents and data (issue 8).

Run: ``python benchmarks/irl_comparison.py [agents per type] [--library] [--linear] [--decisions] [options]``
(default 30 agents per type, every part; ``--help`` lists the options).

The library part (``--library``, exact posteriors) prints, per agent type and model, the mean posterior mass on
the true utility U* (with its standard error), U*'s mean rank, the mean cosine of the posterior-mean reward
``Σ_i P(U_i) r_i`` with U* (both centred), the mean mass on the constant and on the negated utility, the number
of agents and of failed fits; and writes ``benchmarks/results/irl_comparison.json`` and ``.md``. Text under the
heading ``## What the table shows`` of an existing ``.md`` is kept.

The linear-prior part (``--linear``, NUTS fits) prints, per agent type and model, the mean cosine of the
posterior-mean reward ``phi @ E[theta]`` with U* (both centred) and its standard error, the fraction of fits with
divergences or a rank-normalised R-hat of theta above 1.01, the mean seconds per fit (demonstrations, model,
compile, sampling and metrics), the number of agents and of failed fits; and writes
``benchmarks/results/irl_comparison_linear.json`` and the section ``## Linear prior: cosine to U*`` of the
``.md`` (text under its heading ``### What the linear-prior table shows`` is kept; the rest of the file too).

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

The linear-prior part, on the same problem: the same agents (U* and type) and demonstrations as the library part
(agent i's seeds do not depend on the number of agents), for the first ``agents per type`` agents of each type;
prior ``LinearUtility`` over the same colour features (Laplace sparsity, λ = 0 unless ``--lams`` says otherwise:
a uniform direction); the Utiliscope with the same world model (the same 300 policies) and likelihood, but g by
``--g-method`` (default ``importance``, see :data:`LINEAR_G_METHOD`); Boltzmann IRL with the same fixed β = e.
CombinedIRL takes library priors only, so it has no linear rows. Each model is one ``recovery_study`` (its own
sampler, ``--boltzmann-sampler`` for Boltzmann IRL; BlackJAX for the Utiliscope), run serially, so each fit's
seconds are measured in-process.

The policy-loss part (``--decisions``, issue 24) asks what each method's posterior is worth when acted on: per
agent, each model is fitted once and a policy chosen from its posterior by ``rule="expected"`` and by
``rule="robust"`` (alpha 0.1; :mod:`utiliscope.decisions`, planning over all 5^6 deterministic policies, exact).
It prints, per prior, agent type and model, the mean policy loss ``1 − Ṽ_U*`` of each rule's policy (0 optimal,
1 no better than uniform) with its standard error, the mean g of that policy under U* (exact, bits) beside the
agents' own g*, the number of agents and of failed fits (linear prior: NUTS fits with divergences, the
Utiliscope's engine); it writes ``benchmarks/results/irl_comparison_decisions.json`` and the section
``## Policy loss of the decided policy`` of the ``.md`` (text under ``### What the policy-loss table shows`` is
kept). The same agents and demonstrations as the other parts (agent i of each). Models:

- library prior (λ = 0): the Utiliscope, Boltzmann IRL (β = e) and CombinedIRL exactly as in the library table's
  λ = 0 rows (the same world model of 300 policies, exact posteriors);
- linear prior (``LinearUtility`` over the colours, λ = 0): the Utiliscope by its default engine (``fit()``: i.i.d.
  draws of (pi, theta) weighted by the evidence, or tempered SMC when those weights cannot be trusted), which needs
  a world model of Dirichlet rows, so its world model is the Dirichlet belief of the demonstrations itself (the
  one the library part's 300 policies are drawn from), exact g; 2 chains × 500 draws. Boltzmann IRL by NUTS
  (BlackJAX, 2 chains × (500 tune + 500 draws)), divergences recorded. Decisions use up to 1,000 posterior draws.
  CombinedIRL takes library priors only, so it has no linear rows;
- MaxEntIRL (``utiliscope.models.maxent``, default ridge l2 = 0.01, over the same colour features): prior-free,
  one point estimate per agent, shown in both tables (the same rows). With one reward both rules plan for it;
- ``uniform``: the uniform policy, loss 1 by definition (a check of the loss) and its g under U*.

This part's setup was fixed before its first (2 agents per type) trial run and is unchanged since.

No model was tuned to the tables. The Utiliscope's evidence is one number, g′: it can only rank utilities by
how intelligent the demonstrated behaviour looks under each.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.decisions import UtilitySample, decide
from utiliscope.models.boltzmann import DEFAULT_BETA_PRIOR
from utiliscope.models.combined import CombinedIRL
from utiliscope.models.fit_settings import SAMPLERS
from utiliscope.models.g_methods import G_METHODS
from utiliscope.studies.study import truth_metrics

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
#: The Utiliscope's g method with the linear prior. Not ``exact`` (the library part's): exact g is piecewise
#: constant in theta, so its gradient is 0 and NUTS's step size collapses at the jumps (measured on agent 0:
#: step 7e-4, every draw at the 1023-step tree-depth limit, 27 ms per logp + gradient: 15 tune + 15 draws took
#: 129 s, a fit of 2 × (100 + 100) did not finish in 15 minutes). The
#: smoothed ``importance`` count is what ``g_method="auto"`` picks when ξ is not enumerated and the likelihood's
#: mass lies above Monte Carlo's accurate range (g* here is 4–12 bits; ``monte_carlo`` with M = 1000 saturates
#: at 10). Chosen before any linear-prior result was seen.
LINEAR_G_METHOD = "importance"
LINEAR_MODELS = ("utiliscope", "boltzmann")
#: The per-fit columns of the linear part that its summary reads.
LINEAR_COLUMNS = ["cosine", "divergences", "max_rhat", "saturated", "seconds"]
#: A fit counts as flagged with any divergence or a rank-normalised R-hat of theta above this.
MAX_RHAT = 1.01
LINEAR_HEADING = "## Linear prior: cosine to U*"
LINEAR_SUMMARY_HEADING = "### What the linear-prior table shows"
#: The policy-loss part: the decision rules, the robust rule's quantile level, the models without a posterior.
DECISION_RULES = ("expected", "robust")
ALPHA = 0.1
#: Each rule's parameters (a rule takes only its own).
RULE_PARAMETERS = {"robust": {"alpha": ALPHA}}
POINT_MODELS = ("maxent", "uniform")
#: The policy-loss part's fits in groups that share their fit arguments (one ``recovery_study`` each); the
#: linear groups run ``--linear-decision-agents`` agents per type.
DECISION_GROUPS = {
    "library": (
        [
            {"model": "utiliscope", "prior": "library", "lam": 0.0},
            {"model": "boltzmann", "prior": "library", "lam": 0.0, "beta": BETA},
            {"model": "combined", "prior": "library", "lam": 0.0, "beta": BETA},
        ],
        {"draws": 1000, "chains": 2},
    ),
    "point": ([{"model": "maxent", "prior": "none"}, {"model": "uniform", "prior": "none"}], {}),
    "linear utiliscope": (
        [{"model": "utiliscope", "prior": "linear", "lam": 0.0, "world_model": "dirichlet"}],
        {"draws": 500, "chains": 2},
    ),
    "linear boltzmann": (
        [{"model": "boltzmann", "prior": "linear", "lam": 0.0, "beta": BETA}],
        {"draws": 500, "tune": 500, "chains": 2, "sampler": "blackjax"},
    ),
}
DECISION_ORDER = {
    "prior": ["library", "linear", "none"],
    "model": ["utiliscope", "boltzmann", "combined", "maxent", "uniform"],
}
DECISION_HEADING = "## Policy loss of the decided policy"
DECISION_SUMMARY_HEADING = "### What the policy-loss table shows"

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


class TaskClock:
    """Seconds since the last :func:`scope_factory` call.

    Both parts run their study with ``client="serial"``: each task builds its scope, fits and measures in turn in
    this process, so the metric reads the whole task's time (demonstrations, model, compile, sampling, metric).
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def start(self) -> None:
        """Restart the clock (at the start of a task)."""
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self.started


CLOCK = TaskClock()


def utility_prior(setting: dict):
    """The library with the setting's λ, or (``setting["prior"] == "linear"``) a LinearUtility over the colours."""
    if setting.get("prior") == "linear":
        return us.priors.LinearUtility(
            WORLDS.features, simplicity_weight=setting["lam"], feature_names=WORLDS.feature_names
        )
    return LIBRARY.with_simplicity_weight(setting["lam"])


class PointModel:
    """A method without a posterior, in the interface that ``recovery_study`` and :func:`decision_metric` use.

    ``maxent``: ``fit`` computes MaxEntIRL's point estimate (default ridge, the worlds' colour features) and
    ``decide`` acts on it as a posterior of one reward with weight 1 (:func:`utiliscope.decisions.decide`);
    ``uniform``: ``decide`` returns the uniform policy. ``fit`` returns an empty InferenceData.
    """

    def __init__(self, kind: str, worlds, demonstrations) -> None:
        self.kind, self.worlds, self.demonstrations = kind, worlds, demonstrations
        self.estimate = None

    def fit(self, **_) -> az.InferenceData:
        if self.kind == "maxent":
            self.estimate = us.models.MaxEntIRL(self.worlds, self.demonstrations).fit()
        return az.InferenceData()

    def decide(self, idata, rule: str, **parameters):
        if self.kind == "uniform":
            shape = (self.worlds.n_states, self.worlds.n_actions)
            return SimpleNamespace(policy=np.full(shape, 1.0 / shape[1]), exact=True)
        sample = UtilitySample(self.estimate.reward[None], np.ones(1), ("maxent",))
        return decide(self.worlds, sample, rule, **parameters)


def scope_factory(agent, worlds, setting, rng: np.random.Generator):
    """The setting's model on the agent's demonstrations (drawn first, so every setting sees the same ones).

    The Utiliscope's g method is ``setting["g_method"]``, ``exact`` when absent (the library part); its world
    model is :data:`N_CANDIDATES` policies drawn from the demonstrations' Dirichlet belief, or that belief itself
    when ``setting["world_model"] == "dirichlet"``. Models :data:`POINT_MODELS` give a :class:`PointModel`.
    """
    CLOCK.start()
    demos = agent.demonstrate(worlds, n_trajectories=N_TRAJECTORIES, horizon=HORIZON, seed=rng)
    if setting["model"] in POINT_MODELS:
        return PointModel(setting["model"], worlds, demos)
    prior = utility_prior(setting)
    if setting["model"] == "boltzmann":
        return us.models.BoltzmannIRL(worlds, demos, prior, beta=setting["beta"])
    belief = us.WorldModel.from_demonstrations(demos)
    if setting.get("world_model") == "dirichlet":
        world_model = belief
    else:
        world_model = us.WorldModel.from_policies(belief.sample(N_CANDIDATES, seed=rng))
    likelihood = us.likelihoods.AsymmetricLaplace(observed=agent.true_intelligence(worlds, method="exact"))
    if setting["model"] == "combined":
        return CombinedIRL(worlds, world_model, demos, prior, likelihood, beta=setting["beta"], g_method="exact")
    return us.Utiliscope(worlds, world_model, prior, likelihood, g_method=setting.get("g_method", "exact"))


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
    return (
        "# Utiliscope vs Boltzmann-rational Bayesian IRL (and both combined)\n\n"
        f"`python benchmarks/irl_comparison.py {n_per_type} --library`: {n_per_type} agents per type, "
        f"{len(LIBRARY)}-entry library, the same demonstrations for every model, {seconds:.0f} s. "
        f"Boltzmann IRL's β = {BETA:.3g} (fixed) unless the `beta` column says otherwise (sensitivity rows). "
        "`mean_g_true` is the agents' g* in bits (rows of models with g only). "
        "Setup: the docstring of the script.\n\n"
        f"{pipe_table(summary)}\n\n{SUMMARY_HEADING}{kept}"
    )


def write_record(name: str, summary: pd.DataFrame, table: pd.DataFrame, **settings) -> None:
    """Print ``summary`` and write ``settings``, the summary and every fit to ``results/<name>`` (JSON)."""
    print(text_table(summary))
    OUT.mkdir(exist_ok=True)
    record = {
        **settings,
        "summary": summary.to_dict(orient="records"),
        "fits": json.loads(table.to_json(orient="records")),
    }
    (OUT / name).write_text(json.dumps(record, indent=2, default=str))


def run_library(n_per_type: int) -> None:
    """The library part: every setting of :data:`SETTINGS`, exact posteriors; prints and writes its results."""
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
    write_record("irl_comparison.json", summary, table, n_per_type=n_per_type, seconds=seconds, settings=SETTINGS)
    print(f"{len(table)} fits in {seconds:.0f} s")
    (OUT / "irl_comparison.md").write_text(markdown(summary, n_per_type, seconds))


def linear_metric(idata, scope, agent, worlds) -> dict:
    """``truth_metrics`` (its ``cosine``) plus the fit's diagnostics and seconds.

    ``max_rhat``: the largest rank-normalised split R-hat over theta's components; ``min_ess_bulk``: the least
    bulk ESS; ``saturated`` (Utiliscope only): whether the likelihood's peak lies above the g method's accurate
    range (``scope.saturation_bits``, where :class:`~utiliscope.models.GSaturationWarning` fires).
    """
    theta = idata.posterior[["U"]]
    row = {
        **truth_metrics(idata, scope, agent, worlds),
        "max_rhat": float(az.rhat(theta, method="rank")["U"].max()),
        "min_ess_bulk": float(az.ess(theta, method="bulk")["U"].min()),
    }
    if isinstance(scope, us.Utiliscope):
        row["saturated"] = bool(scope.likelihood.peak() > scope.saturation_bits)
    return {**row, "seconds": CLOCK.elapsed()}


def linear_settings(model: str, lams, g_method: str) -> list[dict]:
    """One setting per λ for ``model`` with the linear prior."""
    extra = {"beta": BETA} if model == "boltzmann" else {"g_method": g_method}
    return [{"model": model, "prior": "linear", "lam": float(lam), **extra} for lam in lams]


def summarise_linear(table: pd.DataFrame) -> pd.DataFrame:
    """Per agent type, model and λ: the mean cosine and its standard error, the fraction of flagged fits
    (divergences or R-hat > :data:`MAX_RHAT`, among the fits that ran), the mean seconds per fit, the counts."""
    # Columns a metric adds are absent when every fit of the part failed.
    table = table.reindex(columns=list(dict.fromkeys([*table.columns, *LINEAR_COLUMNS])))
    ran = table["error"].isna()
    flagged = (table["divergences"].fillna(0) > 0) | (table["max_rhat"] > MAX_RHAT)
    table = table.assign(
        agent_type=[agent_type(i) for i in table["agent"]],
        flagged=flagged.where(ran).astype(float),
        saturated=table["saturated"].astype(float),
        failed=~ran,
    )
    grouped = table.groupby(["agent_type", "model", "lam", "sampler"], sort=False)
    summary = grouped["cosine"].mean().to_frame()
    summary["cosine_sem"] = grouped["cosine"].sem()
    summary["flagged"] = grouped["flagged"].mean()
    summary["divergent_fits"] = grouped["divergences"].apply(lambda d: int((d > 0).sum()))
    summary["max_rhat"] = grouped["max_rhat"].max()
    summary["saturated"] = grouped["saturated"].mean()
    summary["seconds_per_fit"] = grouped["seconds"].mean()
    return summary.assign(agents=grouped.size(), failures=grouped["failed"].sum()).reset_index()


def linear_section(
    summary: pd.DataFrame, command: str, fit_kwargs: dict, g_method: str, seconds: dict, kept: str
) -> str:
    """The ``.md`` section of the linear-prior part, ending with its kept summary text."""
    times = ", ".join(f"{model} {value:.0f} s" for model, value in seconds.items())
    return (
        f"{LINEAR_HEADING}\n\n"
        f"`{command}`: agent i and its demonstrations are those of the library table's agent i; prior "
        f"`LinearUtility` over the colours (Laplace; `lam` is λ); the Utiliscope's g method `{g_method}`; "
        f"Boltzmann IRL's β = {BETA:.3g}; {fit_kwargs['chains']} chains × "
        f"({fit_kwargs['tune']} tune + {fit_kwargs['draws']} draws) per fit. `cosine`: centred cosine of the "
        "posterior-mean reward `phi @ E[theta]` with U*; `flagged`: fraction of fits with divergences or R-hat of "
        f"theta > {MAX_RHAT} (`divergent_fits` counts the first, `max_rhat` is the worst fit); `saturated`: "
        "fraction of Utiliscope fits whose likelihood peaks above the g method's accurate range; "
        f"`seconds_per_fit` includes compiles. Wall time: {times}. Setup: the docstring of the script.\n\n"
        f"{pipe_table(summary)}\n\n{LINEAR_SUMMARY_HEADING}{kept}"
    )


def write_section(heading: str, section: str) -> None:
    """Put ``section`` in place of the section under ``heading`` of ``irl_comparison.md`` (appended if absent)."""
    path = OUT / "irl_comparison.md"
    text = path.read_text() if path.exists() else ""
    if heading not in text:
        path.write_text(text.rstrip("\n") + ("\n\n" if text else "") + section)
        return
    before, rest = text.split(heading, 1)
    after = rest.split("\n## ", 1)[1] if "\n## " in rest else None
    path.write_text(before + section + ("" if after is None else "\n## " + after))


def kept_summary(heading: str) -> str:
    """The text under ``heading`` up to the next ``## `` heading (a newline if none yet)."""
    path = OUT / "irl_comparison.md"
    text = path.read_text() if path.exists() else ""
    if heading not in text:
        return "\n"
    return text.split(heading, 1)[1].split("\n## ", 1)[0].rstrip("\n") + "\n"


def run_linear(n_per_type: int, args: argparse.Namespace, command: str) -> None:
    """The linear-prior part: one study per model (each with its sampler); prints and writes its results."""
    fit_kwargs = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "progressbar": False}
    samplers = {"utiliscope": "blackjax", "boltzmann": args.boltzmann_sampler}
    tables, seconds = [], {}
    for model in LINEAR_MODELS:
        start = time.perf_counter()
        table = us.diagnostics.recovery_study(
            agent_factory,
            scope_factory,
            n_per_type * len(AGENT_TYPES),
            linear_settings(model, args.lams, args.g_method),
            seed=0,
            client="serial",
            fit_kwargs={**fit_kwargs, "sampler": samplers[model]},
            metric=linear_metric,
            progressbar=False,
        )
        seconds[model] = time.perf_counter() - start
        tables.append(table.assign(sampler=samplers[model]))
    table = pd.concat(tables, ignore_index=True)
    summary = summarise_linear(table)
    write_record(
        "irl_comparison_linear.json",
        summary,
        table,
        command=command,
        n_per_type=n_per_type,
        seconds=seconds,
        fit_kwargs=fit_kwargs,
        samplers=samplers,
        g_method=args.g_method,
    )
    print(f"{len(table)} fits; seconds per model: {seconds}")
    kept = kept_summary(LINEAR_SUMMARY_HEADING)
    write_section(LINEAR_HEADING, linear_section(summary, command, fit_kwargs, args.g_method, seconds, kept))


def decision_metric(idata, scope, agent, worlds) -> dict:
    """Per rule of :data:`DECISION_RULES`: the policy loss of the decided policy under U* (``<rule>_loss``), its
    g under U* (``<rule>_g``, exact, bits), whether the search was exact and the policy's actions; the agent's g*
    (``g_star``, exact); the engine that ran (if it says), MaxEnt's convergence, and the task's seconds."""
    true_reward = agent.reward_table(worlds)
    row = {"g_star": agent.true_intelligence(worlds, method="exact")}
    for rule in DECISION_RULES:
        policy = scope.decide(idata, rule=rule, **RULE_PARAMETERS.get(rule, {}))
        row[f"{rule}_loss"] = us.diagnostics.policy_loss(worlds, policy.policy, true_reward)
        row[f"{rule}_g"] = us.intelligence(worlds, policy.policy, true_reward, method="exact")
        row[f"{rule}_exact"] = bool(policy.exact)
        deterministic = bool(np.all(policy.policy.max(axis=1) == 1.0))
        row[f"{rule}_actions"] = np.argmax(policy.policy, axis=1).tolist() if deterministic else None
    if "engine" in idata.attrs:
        row["engine"] = idata.attrs["engine"]
    if isinstance(scope, PointModel) and scope.estimate is not None:
        row["converged"] = scope.estimate.converged
    return {**row, "seconds": CLOCK.elapsed()}


def summarise_decisions(table: pd.DataFrame) -> pd.DataFrame:
    """Per agent type (and ``all``), prior and model: each rule's mean loss, its standard error and mean g under
    U*, the agents' mean g*, the fits with divergences, the engines that ran, the counts."""
    columns = [f"{rule}_{name}" for rule in DECISION_RULES for name in ("loss", "g")]
    table = table.reindex(columns=list(dict.fromkeys([*table.columns, *columns, "g_star", "engine"])))
    table = table.assign(agent_type=[agent_type(i) for i in table["agent"]], failed=table["error"].notna())
    table = pd.concat([table, table.assign(agent_type="all")], ignore_index=True)
    keys = ["agent_type", "prior", "model"]
    grouped = table.groupby(keys, sort=False)
    summary = pd.DataFrame(index=grouped.size().index)
    for rule in DECISION_RULES:
        summary[f"{rule}_loss"] = grouped[f"{rule}_loss"].mean()
        summary[f"{rule}_loss_se"] = grouped[f"{rule}_loss"].sem()
    for rule in DECISION_RULES:
        summary[f"{rule}_g"] = grouped[f"{rule}_g"].mean()
    summary["g_star"] = grouped["g_star"].mean()
    if "divergences" in table:
        summary["divergent_fits"] = grouped["divergences"].apply(lambda d: int((d > 0).sum()))
    summary["engines"] = grouped["engine"].apply(
        lambda e: ", ".join(f"{name} {count}" for name, count in e.value_counts().items())
    )
    summary = summary.assign(agents=grouped.size(), failures=grouped["failed"].sum()).reset_index()
    order = {"agent_type": [*AGENT_TYPES, "all"], **DECISION_ORDER}
    for key, values in order.items():
        summary[key] = pd.Categorical(summary[key], categories=values, ordered=True)
    summary = summary.sort_values(keys, kind="stable")
    return summary.assign(**{key: summary[key].astype(str) for key in keys}).reset_index(drop=True)


def decision_section(summary: pd.DataFrame, command: str, counts: dict, seconds: dict, kept: str) -> str:
    """The ``.md`` section of the policy-loss part: one table per prior (MaxEnt's and the uniform policy's rows,
    prior ``none``, in both), ending with its kept summary text."""
    times = ", ".join(f"{group} {value:.0f} s" for group, value in seconds.items())
    tables = []
    for prior, title in (("library", "Library prior"), ("linear", "Linear prior")):
        rows = summary[summary["prior"].isin([prior, "none"])]
        if prior == "library":
            rows = rows.drop(columns=["divergent_fits", "engines"], errors="ignore")
        tables.append(f"### {title}\n\n{pipe_table(rows)}")
    return (
        f"{DECISION_HEADING}\n\n"
        f"`{command}`: {counts['library']} agents per type for the library prior, MaxEnt and the uniform policy, "
        f"{counts['linear']} for the linear prior's fits; agent i and its demonstrations are those of the tables "
        'above. Each model is fitted once per agent and a policy chosen from its posterior by `rule="expected"` '
        f'and `rule="robust"` (alpha = {ALPHA}), searching all 5^6 deterministic policies (exact). '
        "`<rule>_loss`: mean policy loss 1 − Ṽ_U*(pi) of that policy under the agent's U* (0 optimal, 1 no "
        "better than uniform), `<rule>_loss_se` its standard error over agents; `<rule>_g`: mean g of that "
        "policy under U* (exact, bits); `g_star`: the agents' own g*. Prior `none`: `maxent` is MaxEntIRL's point "
        "estimate (ridge l2 = 0.01, colour features; both rules plan for its one reward), `uniform` the uniform "
        "policy (loss 1 by definition); the same rows in both tables. Agent type `all`: every agent. Library: "
        f"λ = 0, Boltzmann IRL's and CombinedIRL's β = {BETA:.3g}, exact posteriors (the library table's models). "
        "Linear: `LinearUtility` over the colours (λ = 0); the Utiliscope by its default engine, whose world "
        "model is the demonstrations' Dirichlet belief (`engines` counts the engines that ran), Boltzmann IRL by "
        "BlackJAX NUTS, 2 chains × (500 tune + 500 draws) (`divergent_fits`: fits with any divergence); the "
        "decisions use up to 1,000 posterior draws. CombinedIRL takes library priors only, so it has no linear "
        f"rows. Wall time: {times}. Setup: the docstring of the script.\n\n"
        + "\n\n".join(tables)
        + f"\n\n{DECISION_SUMMARY_HEADING}{kept}"
    )


def run_decisions(n_per_type: int, n_linear: int, command: str) -> None:
    """The policy-loss part: one study per group of :data:`DECISION_GROUPS`; prints and writes its results."""
    counts = {"library": n_per_type, "linear": n_linear}
    tables, seconds = [], {}
    for group, (settings, fit_kwargs) in DECISION_GROUPS.items():
        n = n_linear if group.startswith("linear") else n_per_type
        start = time.perf_counter()
        table = us.diagnostics.recovery_study(
            agent_factory,
            scope_factory,
            n * len(AGENT_TYPES),
            settings,
            seed=0,
            client="serial",
            fit_kwargs={**fit_kwargs, "progressbar": False},
            metric=decision_metric,
            progressbar=False,
        )
        seconds[group] = time.perf_counter() - start
        print(f"{group}: {len(table)} fits in {seconds[group]:.0f} s", flush=True)
        tables.append(table.assign(group=group))
    table = pd.concat(tables, ignore_index=True)
    summary = summarise_decisions(table)
    write_record(
        "irl_comparison_decisions.json",
        summary,
        table,
        command=command,
        agents_per_type=counts,
        seconds=seconds,
        alpha=ALPHA,
        groups={
            group: {"settings": settings, "fit_kwargs": kw} for group, (settings, kw) in DECISION_GROUPS.items()
        },
    )
    kept = kept_summary(DECISION_SUMMARY_HEADING)
    write_section(DECISION_HEADING, decision_section(summary, command, counts, seconds, kept))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("agents", nargs="?", type=int, default=30, help="agents per type (default 30)")
    parser.add_argument("--library", action="store_true", help="run the library part (default: every part)")
    parser.add_argument("--linear", action="store_true", help="run the linear-prior part (default: every part)")
    parser.add_argument("--decisions", action="store_true", help="run the policy-loss part (default: every part)")
    parser.add_argument(
        "--linear-decision-agents",
        type=int,
        help="agents per type of the policy-loss part's linear-prior fits (default: agents per type)",
    )
    parser.add_argument(
        "--boltzmann-sampler",
        choices=SAMPLERS,
        default="blackjax",
        help="Boltzmann IRL's sampler in the linear part (default blackjax)",
    )
    parser.add_argument(
        "--g-method",
        choices=G_METHODS,
        default=LINEAR_G_METHOD,
        help=f"the Utiliscope's g method in the linear part (default {LINEAR_G_METHOD})",
    )
    parser.add_argument("--lams", type=float, nargs="+", default=[0.0], help="λ of the linear part (default 0)")
    parser.add_argument("--draws", type=int, default=500, help="draws per chain, linear part (default 500)")
    parser.add_argument("--tune", type=int, default=500, help="tuning steps per chain, linear part (default 500)")
    parser.add_argument("--chains", type=int, default=2, help="chains per fit, linear part (default 2)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    every = not (args.library or args.linear or args.decisions)
    command = " ".join(["python benchmarks/irl_comparison.py", *sys.argv[1:]])
    if args.library or every:
        run_library(args.agents)
    if args.linear or every:
        run_linear(args.agents, args, command)
    if args.decisions or every:
        n_linear = args.agents if args.linear_decision_agents is None else args.linear_decision_agents
        run_decisions(args.agents, n_linear, command)


if __name__ == "__main__":
    main()
