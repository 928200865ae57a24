"""Do the models notice a demonstrator that is not a maximiser, and what is their posterior worth when acted on?

Run: ``python benchmarks/misspecification.py [--agents N]`` (default 30 agents per type, the issue's size).
Writes ``benchmarks/results/misspecification.json`` and ``.md``; text under the heading ``## What the numbers
show`` of an existing ``.md`` is kept.

The problem, fixed before any result was seen:

- worlds: the 2×3 gridworld ``["S.a", "b.c"]`` (6 states, 5 actions, γ = 0.9) with slip 0.1 and slip 0.3, equal
  weights; library: ``UtilityLibrary.from_features`` over the colours a, b, c, at most two terms of weight ±1
  (λ = 1);
- agents: the designer's utility U* drawn from the non-constant library entries; 60 demonstrations of 12 steps (the
  issue's detection size). Well-specified types: ``boltzmann`` (β = 5, the models' β) and ``optimal`` (for the
  Utiliscope; for the fixed-β action models its determinism is a wrong temperature, which the table shows). Zoo
  types (:mod:`utiliscope.agents.zoo`, :mod:`utiliscope.agents.stepwise`): ``shard`` (top row steered by U*, bottom
  row by another non-constant library utility, never U* itself, each shard Boltzmann at β = 5), ``hyperbolic``
  (naive, k = 2), ``wrong_model`` (Boltzmann at β = 5 planning in both worlds at slip 0.6), ``habitual`` (repeats
  its last action with probability 0.5, else Boltzmann at β = 5), ``state_beta`` (Boltzmann with β[s] = 0.5 in the
  top row and 20 in the bottom row);
- models: Boltzmann IRL at fixed β = 5 (exact library posterior); the Utiliscope with the Dirichlet belief of the
  demonstrations as world model, exact g, the asymmetric Laplace likelihood peaked at g′ = the g of the agent's
  behaviour under U* (``designer_intelligence``, or ``true_intelligence`` for the well-specified agents), its
  default engine; CombinedIRL with the same world model, likelihood and β. Each fit has 2 chains × 250 draws;
- the check: ``us.diagnostics.predictive_check(model, idata, seed=i)`` (the Utiliscope's also given the
  demonstrations), flagged when its p (the min-p combination) < 0.05; Bonferroni's combination of the same
  replications is recorded beside it;
- decisions: each registered rule (``us.decisions.rule_names()``) with its default parameters on each model's
  posterior; the policy loss ``1 − Ṽ_U*`` under the designer's utility (0 optimal, 1 no better than uniform).

It prints and writes, per agent type and model, the share of agents flagged (detection for zoo types, false
alarms for well-specified ones), the median p-value, each statistic's share below 0.05, the mean posterior mass on
U* and on the constant utility, the mean policy loss of each rule and the mean bits ``log2(1/q)`` the soft rule
chose; and, per model, the false-alarm rate over the well-specified agents and the detection rate over the zoo.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tables import pipe_table, text_table

import utiliscope as us
from utiliscope.diagnostics.predictive import BONFERRONI

OUT = Path(__file__).parent / "results" / "misspecification.md"
RECORD = OUT.with_suffix(".json")
SUMMARY_HEADING = "## What the numbers show"
LEVEL = 0.05
BETA = 5.0
N_TRAJECTORIES, HORIZON = 60, 12
DRAWS, CHAINS = 250, 2

LAYOUT = ["S.a", "b.c"]
WORLDS = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])
LIBRARY = us.priors.UtilityLibrary.from_features(
    WORLDS.features, max_terms=2, max_weight=1, feature_names=WORLDS.feature_names
)
REWARDS = LIBRARY.reward_table(WORLDS.n_actions)
NON_CONSTANT = [i for i in range(len(LIBRARY)) if i != LIBRARY.constant_index()]
#: Which row of the 2×3 grid each state is in (0 top, 1 bottom): the shard agent's context, the β of state_beta.
ROW = np.array([int(name.split("c")[0].lstrip("r")) for name in WORLDS.state_names])
BELIEVED_WORLDS = us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.6)] * 2)


def shard(reward, rng):
    """U* steers the top row, another non-constant library utility (not U*) the bottom row."""
    others = [k for k in NON_CONSTANT if not np.array_equal(REWARDS[k], reward)]
    other = REWARDS[others[int(rng.integers(len(others)))]]
    return us.agents.ShardAgent(np.stack([reward, other]), ROW, reward=reward, beta=BETA)


#: Agent types: name → (well-specified, factory of the agent from U*'s reward table and a generator).
AGENT_TYPES = {
    "boltzmann": (True, lambda reward, rng: us.agents.Boltzmann(reward, BETA)),
    "optimal": (True, lambda reward, rng: us.agents.Optimal(reward)),
    "shard": (False, shard),
    "hyperbolic": (False, lambda reward, rng: us.agents.HyperbolicDiscounter(reward, k=2.0)),
    "wrong_model": (
        False,
        lambda reward, rng: us.agents.WrongModel(us.agents.Boltzmann(reward, BETA), BELIEVED_WORLDS),
    ),
    "habitual": (False, lambda reward, rng: us.agents.Habitual(us.agents.Boltzmann(reward, BETA), habit=0.5)),
    "state_beta": (False, lambda reward, rng: us.agents.StateBoltzmann(reward, np.where(ROW == 0, 0.5, 20.0))),
}
MODELS = ("boltzmann_irl", "utiliscope", "combined")


def designer_g(agent, reward) -> float:
    """The g in bits of the agent's behaviour under the designer's utility (what its demonstrations show)."""
    if isinstance(agent, us.agents.ZooAgent):
        return agent.designer_intelligence(WORLDS, reward, horizon=HORIZON)
    return agent.true_intelligence(WORLDS, method="exact")


def build(model: str, demos, likelihood):
    """One of :data:`MODELS` on the demonstrations, and the keyword arguments its check needs."""
    if model == "boltzmann_irl":
        return us.models.BoltzmannIRL(WORLDS, demos, LIBRARY, beta=BETA), {}
    world_model = us.WorldModel.from_demonstrations(demos)
    if model == "combined":
        combined = us.models.CombinedIRL(
            WORLDS, world_model, demos, LIBRARY, likelihood, beta=BETA, g_method="exact"
        )
        return combined, {}
    return us.Utiliscope(WORLDS, world_model, LIBRARY, likelihood, g_method="exact"), {"demonstrations": demos}


def run_agent(kind: str, i: int) -> list[dict]:
    """Agent i of a type: one row per model with the check's p-values and each rule's policy loss."""
    rng = np.random.default_rng([list(AGENT_TYPES).index(kind), i])
    truth = NON_CONSTANT[int(rng.integers(len(NON_CONSTANT)))]
    reward = REWARDS[truth]
    agent = AGENT_TYPES[kind][1](reward, rng)
    demos = agent.demonstrate(WORLDS, n_trajectories=N_TRAJECTORIES, horizon=HORIZON, seed=rng)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=designer_g(agent, reward))
    rows = []
    for model in MODELS:
        start = time.perf_counter()
        scope, check_options = build(model, demos, likelihood)
        idata = scope.fit(draws=DRAWS, chains=CHAINS, seed=i, progressbar=False)
        check = us.diagnostics.predictive_check(scope, idata, seed=i, **check_options)
        row = {"type": kind, "agent": i, "model": model, "p_value": check.p_value}
        row["p_bonferroni"] = check.combined(BONFERRONI)
        row |= {f"p[{name}]": float(p) for name, p in check.table["p_value"].items()}
        posterior = scope.utility_posterior(idata).values
        row |= {"mass_truth": float(posterior[truth]), "mass_constant": float(posterior[LIBRARY.constant_index()])}
        for rule in us.decisions.rule_names():
            decision = scope.decide(idata, rule=rule, seed=i)
            row[f"loss_{rule}"] = us.diagnostics.policy_loss(WORLDS, decision, reward)
            if rule == us.decisions.Soft.name:
                row["soft_bits"] = decision.settings["bits"]
        rows.append(row | {"seconds": time.perf_counter() - start})
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per type and model: agents, share flagged, median p, each statistic's share below the level, the mean
    posterior mass on U* and on the constant utility, each rule's mean policy loss, the soft rule's mean bits."""
    rows = []
    for (kind, model), group in table.groupby(["type", "model"], sort=False):
        statistics = [c for c in group.columns if c.startswith("p[") and group[c].notna().any()]
        row = {
            "type": kind,
            "well-specified": "yes" if AGENT_TYPES[kind][0] else "no",
            "model": model,
            "agents": len(group),
            "flagged (p < 0.05)": float(np.mean(group["p_value"] < LEVEL)),
            "flagged by Bonferroni": float(np.mean(group["p_bonferroni"] < LEVEL)),
            "median p": float(group["p_value"].median()),
            "each statistic's share < 0.05": "; ".join(
                f"{c[2:-1]} {np.mean(group[c] < LEVEL):.2f}" for c in statistics
            ),
        }
        row |= {"P(U*)": float(group["mass_truth"].mean()), "P(const)": float(group["mass_constant"].mean())}
        row |= {f"loss {rule}": float(group[f"loss_{rule}"].mean()) for rule in us.decisions.rule_names()}
        row["soft bits"] = float(group["soft_bits"].mean())
        rows.append(row | {"s per fit": float(group["seconds"].mean())})
    return pd.DataFrame(rows)


def rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: the false-alarm rate over well-specified agents and the detection rate over zoo agents."""
    specified = table["type"].map(lambda kind: AGENT_TYPES[kind][0])
    rows = []
    for model, group in table.groupby("model", sort=False):
        flagged, bonferroni = group["p_value"] < LEVEL, group["p_bonferroni"] < LEVEL
        well = specified[group.index]
        rows.append(
            {
                "model": model,
                "false alarms (well-specified)": float(flagged[well].mean()),
                "detection (zoo)": float(flagged[~well].mean()),
                "Bonferroni: false alarms": float(bonferroni[well].mean()),
                "Bonferroni: detection": float(bonferroni[~well].mean()),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", type=int, default=30, help="agents per type (default 30, the issue's size)")
    parser.add_argument(
        "--types",
        nargs="+",
        choices=list(AGENT_TYPES),
        default=list(AGENT_TYPES),
        help="agent types (default all)",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/misspecification.py " + " ".join(argv)
    start, rows = time.perf_counter(), []
    for i in range(args.agents):
        rows += [row for kind in args.types for row in run_agent(kind, i)]
        write(pd.DataFrame(rows), command.strip(), i + 1, args.agents, (time.perf_counter() - start) / 60)
    print(f"wrote {OUT}")


def write(table: pd.DataFrame, command: str, done: int, agents: int, minutes: float) -> None:
    """Print and write the tables of the agents done so far (after every round of one agent per type, so an
    interrupted run leaves the table of the rounds it finished)."""
    summary, overall = summarise(table), rates(table)
    print(f"{done} of {agents} agents per type, {minutes:.1f} minutes")
    print(text_table(summary))
    print(text_table(overall))
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    RECORD.write_text(json.dumps({"command": command, "minutes": minutes, "rows": records}, indent=1), "utf-8")
    kept = OUT.read_text(encoding="utf-8").partition(SUMMARY_HEADING)[2] if OUT.exists() else ""
    progress = f"{done} agents per type" + (
        "" if done == agents else f" (of {agents} asked; the run was cut short)"
    )
    OUT.write_text(
        "# Misspecification: detection and policy loss on the agent zoo\n\n"
        f"`{command}`: {progress}, {minutes:.0f} minutes (the script's docstring has the setup; {CHAINS} × "
        f"{DRAWS} posterior draws, level {LEVEL}).\n\n"
        f"{pipe_table(summary)}\n\n{pipe_table(overall)}\n\n{SUMMARY_HEADING}{kept or chr(10)}",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
