"""What ``utiliscope fit`` and ``utiliscope study`` run: a spec validated completely, then its problem built
(:func:`fit_problem`, :func:`study_problem`), and the truth a fit recorded read back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utiliscope._validation import as_float_array, check_count, check_positive, check_seed
from utiliscope.diagnostics.recovery import Truth
from utiliscope.models import Utiliscope
from utiliscope.spec.builders import (
    agent_reward,
    build_agent,
    build_likelihood,
    build_prior,
    build_scope,
    build_world_model,
    build_worlds,
    decide_settings,
    g_star_of,
    likelihood_settings,
    model_settings,
    sampler_settings,
    true_utility,
    world_model_settings,
)
from utiliscope.spec.schema import (
    AGENTS,
    DEMONSTRATION_KEYS,
    GRID_KEYS,
    NUMBER,
    OBSERVATION_KEYS,
    STUDY_KEYS,
    Key,
    SpecError,
    agent_schema,
    building,
    check_sections,
    choice,
    read_table,
    takes_observed,
)
from utiliscope.worlds import WorldSet


@dataclass
class FitProblem:
    """What ``utiliscope fit`` runs: the scope, the sampler's arguments and the agent's truth (if any).

    Attributes
    ----------
    scope : Utiliscope
    fit_kwargs : dict
        Arguments of ``scope.fit`` from ``[sampler]``.
    agent : Agent or None
    truth : Truth or None
        U* and g* of the agent when its utility is expressible in the prior.
    attrs : dict
        Strings for ``idata.attrs``: the spec (``spec``), the agent (``agent``) and the truth (``truth``).
    decide : dict or None
        ``[decide]``: the rule and settings to act on the fit with, and ``out`` if given.
    """

    scope: Utiliscope
    fit_kwargs: dict
    agent: Any = None
    truth: Truth | None = None
    attrs: dict = field(default_factory=dict)
    decide: dict | None = None


def fit_problem(spec: Mapping) -> FitProblem:
    """Validate a parsed fit spec and build its problem; every mistake raises :class:`SpecError`."""
    spec = check_sections(spec, "fit")
    worlds = build_worlds(spec["worlds"])
    prior = build_prior(spec["prior"], worlds)
    model = model_settings(spec.get("model"))
    fit_kwargs = sampler_settings(spec.get("sampler"))
    decide = decide_settings(spec.get("decide"))
    likelihood = likelihood_settings(spec["likelihood"])
    observations = _observations(spec.get("observations"), worlds)
    wm_settings = world_model_settings(spec.get("world_model"), "agent" in spec, observations)
    rng = np.random.default_rng(wm_settings["seed"])
    agent = g_star = None
    if "agent" in spec:
        agent, counts = _fit_agent(spec["agent"], worlds, prior, model, wm_settings)
        g_star = g_star_of(agent, worlds, model)
        world_model = build_world_model(wm_settings, rng, counts, agent.policy(worlds))
    else:
        world_model = build_world_model(wm_settings, rng, **observations)
    scope = build_scope(worlds, world_model, prior, build_likelihood(likelihood, g_star), model)
    with building("[sampler]"):
        scope.resolve_engine(fit_kwargs["sampler"], fit_kwargs["draws"])
    truth = None
    if agent is not None and g_star is not None:
        utility = true_utility(prior, agent.reward_table(worlds))
        truth = None if utility is None else Truth(utility, float(g_star), repr(agent))
    return FitProblem(scope, fit_kwargs, agent, truth, _attrs(spec, agent, truth), decide)


def _fit_agent(table, worlds, prior, model, wm_settings) -> tuple[Any, np.ndarray | None]:
    """The fit's agent and its demonstration counts (None when the world model is the agent's policy)."""
    kind = choice(table, "type", "[agent]", AGENTS)
    values = read_table(table, "[agent]", agent_schema(kind, True))
    agent = build_agent(table, "[agent]", agent_reward(values, worlds, prior), model)
    if values["demonstrations"] is None:
        if wm_settings["kind"] != "agent_policy":
            raise SpecError(
                "[agent.demonstrations] (n_trajectories, horizon, seed) is needed unless "
                "[world_model].kind = 'agent_policy'"
            )
        return agent, None
    demos = read_table(values["demonstrations"], "[agent.demonstrations]", DEMONSTRATION_KEYS)
    with building("[agent.demonstrations]"):
        return agent, agent.demonstrate(worlds, demos["n_trajectories"], demos["horizon"], demos["seed"]).counts


def _observations(table, worlds: WorldSet) -> dict | None:
    """``[observations]``: exactly one of ``counts`` (S, A) and ``policies`` (M, S, A) with ``weights``."""
    if table is None:
        return None
    values = read_table(table, "[observations]", OBSERVATION_KEYS)
    if (values["counts"] is None) == (values["policies"] is None):
        raise SpecError("[observations] needs exactly one of counts (n[s][a]) and policies (pi[m][s][a])")
    if values["weights"] is not None and values["policies"] is None:
        raise SpecError("[observations].weights weighs [observations].policies; give policies too")
    shape = (worlds.n_states, worlds.n_actions)
    for key, ndim in (("counts", 2), ("policies", 3)):
        if values[key] is not None:
            with building("[observations]"):
                array = as_float_array(values[key], key)
            if array.ndim != ndim or array.shape[-2:] != shape:
                raise SpecError(
                    f"[observations].{key} has shape {array.shape}; the worlds need "
                    f"{'(S, A)' if ndim == 2 else '(M, S, A)'} with S = {shape[0]}, A = {shape[1]}"
                )
            values[key] = array
    return values


def _attrs(spec: Mapping, agent, truth: Truth | None) -> dict:
    """Provenance for ``idata.attrs``, as JSON strings (netCDF attributes hold strings and numbers)."""
    attrs = {"spec": json.dumps(spec, default=str)}
    if agent is not None:
        attrs["agent"] = json.dumps(agent.to_dict(), default=_plain)
    if truth is not None:
        utility = truth.utility if isinstance(truth.utility, str) else truth.utility.tolist()
        attrs["truth"] = json.dumps({"utility": utility, "g": truth.g, "name": truth.name})
    return attrs


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else repr(value)


def truth_from_attrs(attrs: Mapping) -> Truth | None:
    """The agent's :class:`Truth` that ``utiliscope fit`` stored in ``idata.attrs["truth"]``, or None."""
    if "truth" not in attrs:
        return None
    data = json.loads(attrs["truth"])
    utility = data["utility"] if isinstance(data["utility"], str) else np.asarray(data["utility"], dtype=float)
    return Truth(utility, float(data["g"]), data.get("name"))


@dataclass
class StudyProblem:
    """What ``utiliscope study`` runs: the arguments of :func:`~utiliscope.diagnostics.recovery_study`."""

    agent_factory: Callable
    scope_factory: Callable
    n_agents: int
    settings: list[dict]
    seed: int
    fit_kwargs: dict


@dataclass
class AgentFactory:
    """Agent i: the type ``agents[i mod len(agents)]`` with a true utility drawn uniformly from the candidates."""

    worlds: WorldSet
    agent_tables: list[dict]
    rewards: np.ndarray
    model: dict

    def __call__(self, i: int, rng: np.random.Generator):
        table = self.agent_tables[i % len(self.agent_tables)]
        reward = self.rewards[rng.integers(len(self.rewards))]
        return build_agent(
            table, f"[[study.agents]][{i % len(self.agent_tables)}]", reward, self.model, with_utility=False
        ), self.worlds


@dataclass
class ScopeFactory:
    """One agent under one setting of the grid: its demonstrations, world model, prior and likelihood."""

    prior: Any
    likelihood: dict
    world_model: dict
    demonstrations: dict
    model: dict

    def __call__(self, agent, worlds, setting: Mapping, rng: np.random.Generator) -> Utiliscope:
        prior = self.prior
        if "simplicity_weight" in setting:
            prior = prior.with_simplicity_weight(setting["simplicity_weight"])
        counts = None
        if self.world_model["kind"] != "agent_policy":
            n = setting.get("n_trajectories", self.demonstrations["n_trajectories"])
            counts = agent.demonstrate(worlds, n, self.demonstrations["horizon"], rng).counts
        world_model = build_world_model(self.world_model, rng, counts, agent.policy(worlds))
        shape = likelihood_settings(setting_likelihood(self.likelihood, setting))
        likelihood = build_likelihood(shape, g_star_of(agent, worlds, self.model))
        return build_scope(worlds, world_model, prior, likelihood, self.model)


def study_problem(spec: Mapping) -> StudyProblem:
    """Validate a parsed study spec and build the arguments of ``recovery_study``."""
    spec = check_sections(spec, "study")
    worlds = build_worlds(spec["worlds"])
    prior = build_prior(spec["prior"], worlds)
    model = model_settings(spec.get("model"))
    fit_kwargs = sampler_settings(spec.get("sampler"))
    fit_kwargs.pop("seed")
    likelihood = likelihood_settings(spec["likelihood"])
    study = read_table(spec["study"], "[study]", STUDY_KEYS)
    with building("[study]"):
        check_count(study["n_agents"], "n_agents")
        check_seed(study["seed"])
    wm_settings = world_model_settings(spec.get("world_model"), True, None)
    if wm_settings["kind"] == "policies":
        raise SpecError("[world_model].kind = 'policies' needs [observations], which a study has not")
    demonstrations = _study_demonstrations(study["demonstrations"], wm_settings)
    agents = _study_agents(study["agents"], worlds, model)
    settings = _grid(study["grid"] or {}, likelihood, demonstrations)
    rewards = _study_rewards(study["utilities"], prior, worlds)
    return StudyProblem(
        AgentFactory(worlds, agents, rewards, model),
        ScopeFactory(prior, likelihood, wm_settings, demonstrations, model),
        study["n_agents"],
        settings,
        study["seed"],
        fit_kwargs,
    )


def _study_demonstrations(table, wm_settings: dict) -> dict:
    if table is None:
        if wm_settings["kind"] != "agent_policy":
            raise SpecError(
                "[study.demonstrations] (n_trajectories, horizon) is needed unless "
                "[world_model].kind = 'agent_policy'"
            )
        return {}
    schema = {k: v for k, v in DEMONSTRATION_KEYS.items() if k != "seed"}
    values = read_table(table, "[study.demonstrations]", schema)
    with building("[study.demonstrations]"):
        for key in schema:
            check_count(values[key], key)
    return values


def _study_agents(tables: list, worlds: WorldSet, model: dict) -> list[dict]:
    """Check each ``[[study.agents]]`` table by building it once with a zero reward."""
    if not tables:
        raise SpecError(
            f"[study].agents is empty; give at least one [[study.agents]] with type = one of {', '.join(AGENTS)}"
        )
    zero = np.zeros((worlds.n_states, worlds.n_actions))
    for i, table in enumerate(tables):
        build_agent(table, f"[[study.agents]][{i}]", zero, model, with_utility=False)
    return tables


def _study_rewards(names, prior, worlds: WorldSet) -> np.ndarray:
    """Candidate true utilities: the named library entries, or every non-constant entry."""
    if prior.kind != "library":
        raise SpecError("[study] draws true utilities from the library: [prior].type must be 'library'")
    rewards = prior.reward_table(worlds.n_actions)
    if names is None:
        constant = prior.constant_index()
        return rewards[[i for i in range(len(prior)) if i != constant]]
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in prior.names:
            raise SpecError(
                f"[study].utilities[{i}] is {name!r}; give names of library entries, e.g. "
                f"{', '.join(map(repr, prior.names[1:5]))}"
            )
    return rewards[[prior.index(name) for name in names]]


def _grid(table: dict, likelihood: dict, demonstrations: dict) -> list[dict]:
    """The settings: the Cartesian product of ``[study.grid]``'s lists, each checked where it is used."""
    for key, values in table.items():
        if key not in GRID_KEYS:
            raise SpecError(f"unknown key {key!r} in [study.grid]; allowed keys: {', '.join(GRID_KEYS)}")
        if not isinstance(values, list) or not values:
            raise SpecError(f"[study.grid].{key} is {values!r}; it must be a non-empty array of values")
    if "n_trajectories" in table and not demonstrations:
        raise SpecError("[study.grid].n_trajectories needs demonstrations; the world model is the agent's policy")
    settings = [dict(zip(table, combination, strict=True)) for combination in itertools.product(*table.values())]
    for i, setting in enumerate(settings):
        _check_setting(setting, i, likelihood)
    return settings


def _check_setting(setting: dict, i: int, likelihood: dict) -> None:
    where = f"[study.grid] setting {i} ({setting})"
    if "simplicity_weight" in setting:
        read_table({"simplicity_weight": setting["simplicity_weight"]}, where, {"simplicity_weight": Key(NUMBER)})
        with building(where):
            check_positive(setting["simplicity_weight"], "simplicity_weight", allow_zero=True)
    if "n_trajectories" in setting:
        read_table({"n_trajectories": setting["n_trajectories"]}, where, {"n_trajectories": Key((int,))})
        with building(where):
            check_count(setting["n_trajectories"], "n_trajectories")
    try:
        # Built to check its parameters; a g* of 0 stands in for the agents' own (observed = "agent").
        build_likelihood(likelihood_settings(setting_likelihood(likelihood, setting)), g_star=0.0)
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from err


def setting_likelihood(likelihood: dict, setting: Mapping) -> dict:
    """The ``[likelihood]`` table of one grid setting.

    A setting's ``likelihood`` swaps the shape (with its default parameters, keeping ``observed``); its
    ``observed`` replaces g'_obs, and is ignored by the 2^g potential, which has none.
    """
    shape = {k: v for k, v in likelihood.items() if v is not None}
    if "likelihood" in setting:
        name = setting["likelihood"]
        shape = {
            "name": name,
            **({"observed": shape["observed"]} if takes_observed(name) and "observed" in shape else {}),
        }
    if "observed" in setting and takes_observed(shape.get("name")):
        shape["observed"] = setting["observed"]
    return shape


__all__ = [
    "AgentFactory",
    "FitProblem",
    "ScopeFactory",
    "StudyProblem",
    "fit_problem",
    "setting_likelihood",
    "study_problem",
    "truth_from_attrs",
]
