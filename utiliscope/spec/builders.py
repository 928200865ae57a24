"""Building the objects a spec declares (worlds, prior, agent, world model, likelihood, model and sampler
settings), each table validated by its schema (:mod:`utiliscope.spec.schema`) and the package's own input errors
prefixed with their section.
"""

from __future__ import annotations

import numpy as np

from utiliscope._validation import as_float_array, check_count, check_positive, check_seed
from utiliscope.decisions import rule_class, rule_from, rule_parameters
from utiliscope.demonstrations import Demonstrations
from utiliscope.diagnostics.recovery import utility_in_prior
from utiliscope.intelligence import truth_g_method
from utiliscope.likelihoods import registered_likelihoods
from utiliscope.models import Utiliscope
from utiliscope.models.engines import ENGINES, auto_candidates, check_engine_options, get_engine
from utiliscope.models.fit_settings import DEFAULT_SAMPLER, check_fit_settings
from utiliscope.policies import DirichletPolicies, UniformDeterministic
from utiliscope.priors import LinearUtility, UtilityLibrary
from utiliscope.rare_event import check_importance_prior
from utiliscope.spec.schema import (
    AGENTS,
    FIT_KEYS,
    FROM_AGENT,
    MODEL_KEYS,
    PRIOR_KEYS,
    SAMPLER_KEYS,
    UTILITY_KEYS,
    WORLD_KEYS,
    WORLD_MODEL_KEYS,
    SpecError,
    agent_schema,
    building,
    choice,
    decide_schema,
    likelihood_schema,
    prior_schema,
    read_table,
    world_schema,
)
from utiliscope.world_model import WorldModel
from utiliscope.worlds import TabularMDP, WorldSet, garnet, gridworld


def build_worlds(table) -> WorldSet:
    """ζ from ``[worlds]``: one world per layout × slip (gridworld) or per seed (garnet)."""
    kind = choice(table, "type", "[worlds]", WORLD_KEYS)
    values = read_table(table, "[worlds]", world_schema(kind))
    with building("[worlds]"):
        worlds = _gridworlds(values) if kind == "gridworld" else _garnets(values)
        return WorldSet(worlds, values["weights"])


def _broadcast(named: dict[str, list]) -> int:
    """The number of worlds E: lists of length 1 broadcast, the others must agree."""
    lengths = {key: len(items) for key, items in named.items()}
    n = max(lengths.values())
    for key, length in lengths.items():
        if length not in (1, n):
            raise SpecError(f"[worlds].{key} has {length} entries but another list has {n}; give 1 or {n}")
    return n


def _gridworlds(values: dict) -> list[TabularMDP]:
    layout = values["layout"]
    layouts = layout if layout and all(isinstance(row, list) for row in layout) else [layout]
    for i, rows in enumerate(layouts):
        if not rows or not all(isinstance(row, str) for row in rows):
            raise SpecError(
                f"[worlds].layout[{i}] is {rows!r}; give one layout as an array of row strings "
                "(['S.a', 'b.c']) or several as an array of such arrays"
            )
    slips = values["slip"] if isinstance(values["slip"], list) else [values["slip"]]
    n = _broadcast({"layout": layouts, "slip": slips})
    return [gridworld(layouts[i % len(layouts)], slips[i % len(slips)], values["gamma"]) for i in range(n)]


def _garnets(values: dict) -> list[TabularMDP]:
    """One garnet per seed; every world takes the first world's features (a utility means the same in each)."""
    seeds = values["seed"] if isinstance(values["seed"], list) else [values["seed"]]
    sizes = [values[key] for key in ("n_states", "n_actions", "branching")]
    worlds = [garnet(*sizes, gamma=values["gamma"], n_features=values["n_features"], seed=s) for s in seeds]
    features = worlds[0].features
    return [TabularMDP(w.transitions, w.start, w.gamma, features=features) for w in worlds]


def build_prior(table, worlds: WorldSet) -> UtilityLibrary | LinearUtility:
    """P(U) from ``[prior]`` over the worlds' features (gridworld colours, garnet features)."""
    kind = choice(table, "type", "[prior]", PRIOR_KEYS)
    values = read_table(table, "[prior]", prior_schema(kind))
    if worlds.features is None:
        raise SpecError("[prior] needs features, but the worlds have none: give the gridworld coloured cells")
    settings = {k: v for k, v in values.items() if k != "type"}
    with building("[prior]"):
        if kind == "library":
            return UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names, **settings)
        return LinearUtility(worlds.features, feature_names=worlds.feature_names, **settings)


def build_agent(table, where: str, reward, model, with_utility: bool = True):
    """An agent from its table; ``reward`` is the reward table when the utility comes from elsewhere."""
    kind = choice(table, "type", where, AGENTS)
    values = read_table(table, where, agent_schema(kind, with_utility))
    parameters = {k: v for k, v in values.items() if k not in ("type", *UTILITY_KEYS, "demonstrations")}
    if kind == "quantilizer":
        parameters["policy_prior"] = model["policy_prior"]
    with building(where):
        return AGENTS[kind](reward, **parameters)


def agent_reward(table: dict, worlds: WorldSet, prior) -> np.ndarray | None:
    """The reward ``r[s, a]`` of ``[agent]``: a library entry's name, a reward table or feature weights."""
    given = [key for key in UTILITY_KEYS if table.get(key) is not None]
    if len(given) > 1:
        raise SpecError(f"[agent] gives {' and '.join(given)}; give only one of {', '.join(UTILITY_KEYS)}")
    if not given:
        if table["type"] != "random":
            raise SpecError(f"[agent] needs its utility: one of {', '.join(UTILITY_KEYS)}")
        return None
    key = given[0]
    if key == "utility":
        if prior.kind != "library":
            raise SpecError("[agent].utility names a library entry, but [prior] is linear; give theta or reward")
        with building("[agent].utility"):
            return prior.reward_table(worlds.n_actions)[prior.index(table["utility"])]
    with building("[agent]"):
        values = as_float_array(table[key], key)
    if key == "reward":
        S, A = worlds.n_states, worlds.n_actions
        if values.shape not in ((S,), (S, A)):
            raise SpecError(f"[agent].reward has shape {values.shape}; the worlds need ({S},) or ({S}, {A})")
        return values
    with building("[agent].theta"):
        return np.asarray(worlds.features, dtype=float) @ values


def true_utility(prior, reward) -> str | np.ndarray | None:
    """U* as :class:`~utiliscope.diagnostics.Truth` wants it, or None when the prior cannot express it."""
    try:
        return utility_in_prior(prior, reward)
    except ValueError:
        return None


def world_model_settings(table, has_agent: bool, observations: dict | None) -> dict:
    """``[world_model]`` with its kind defaulted (given policies, else Dirichlet rows) and checked."""
    values = read_table(table if table is not None else {}, "[world_model]", WORLD_MODEL_KEYS)
    with building("[world_model]"):
        check_positive(values["concentration"], "concentration")
        check_count(values["n_policies"], "n_policies")
        check_seed(values["seed"])
    kind = values["kind"] or ("policies" if observations and observations["policies"] is not None else "dirichlet")
    needs = {
        "agent_policy": (has_agent, "an [agent]"),
        "policies": (observations is not None and observations["policies"] is not None, "[observations].policies"),
    }
    if kind in needs and not needs[kind][0]:
        raise SpecError(f"[world_model].kind = {kind!r} needs {needs[kind][1]}")
    if kind in ("dirichlet", "sampled") and observations is not None and observations["counts"] is None:
        raise SpecError(f"[world_model].kind = {kind!r} needs [observations].counts")
    return {**values, "kind": kind}


def build_world_model(settings: dict, rng, counts=None, policies=None, weights=None) -> WorldModel:
    """P(pi | WM) of the chosen kind from counts, the agent's policy, or given policies.

    ``sampled`` draws ``n_policies`` policies with rows ``pi[s, :] ~ Dirichlet(concentration + n[s, :])`` and
    weighs them equally: a finite Monte Carlo stand-in for the Dirichlet world model whose fit is exact
    (no MCMC); its posterior over U converges to the Dirichlet model's as ``n_policies`` grows.
    """
    kind = settings["kind"]
    with building("[world_model]"):
        if kind in ("agent_policy", "policies"):
            return WorldModel.from_policies(policies, weights)
        dirichlet = WorldModel.from_demonstrations(Demonstrations.from_counts(counts), settings["concentration"])
        if kind == "dirichlet":
            return dirichlet
        draws = rng.gamma(np.broadcast_to(dirichlet.alpha, (settings["n_policies"], *dirichlet.alpha.shape)))
        return WorldModel.from_policies(draws / draws.sum(axis=2, keepdims=True))


def likelihood_settings(table) -> dict:
    """``[likelihood]``: ``name``, ``observed`` (bits or "agent") and the shape's own parameters."""
    name = choice(table, "name", "[likelihood]", sorted(registered_likelihoods()))
    values = read_table(table, "[likelihood]", likelihood_schema(name))
    observed = values.get("observed")
    if isinstance(observed, str) and observed != FROM_AGENT:
        raise SpecError(f"[likelihood].observed is {observed!r}; give g'_obs in bits or {FROM_AGENT!r}")
    return values


def build_likelihood(settings: dict, g_star: float | None):
    """The shape, with ``observed = "agent"`` replaced by the agent's g*."""
    values = {k: v for k, v in settings.items() if k != "name" and v is not None}
    if values.get("observed") == FROM_AGENT:
        if g_star is None:
            raise SpecError('[likelihood].observed = "agent" needs an agent with a utility; give g\'_obs in bits')
        if not np.isfinite(g_star):
            raise SpecError("[likelihood].observed = \"agent\" but the agent's g* is +inf; give g'_obs in bits")
        values["observed"] = float(g_star)
    with building("[likelihood]"):
        return registered_likelihoods()[settings["name"]](**values)


def model_settings(table) -> dict:
    """``[model]``, with ξ built (``policy_prior``)."""
    values = read_table(table if table is not None else {}, "[model]", MODEL_KEYS)
    with building("[model]"):
        concentration = check_positive(values.pop("policy_concentration"), "policy_concentration")
        values["policy_prior"] = (
            UniformDeterministic()
            if values["policy_prior"] == "uniform_deterministic"
            else DirichletPolicies(concentration)
        )
        check_count(values["n_samples"], "n_samples")
        check_seed(values["seed"])
        if values["smoothing"] is not None:
            check_positive(values["smoothing"], "smoothing", allow_zero=True)
        if values["g_method"] == "importance":
            check_importance_prior(values["policy_prior"])
    return values


def sampler_settings(table) -> dict:
    """``[sampler]`` as keyword arguments of ``Utiliscope.fit``: its own settings, and the options of the chosen
    engine that are given (``sampler = "auto"``: of an engine it may run), checked by the engine's dataclass."""
    values = read_table(table if table is not None else {}, "[sampler]", SAMPLER_KEYS)
    with building("[sampler]"):
        values = check_fit_settings(values)
    given = {key: value for key, value in values.items() if key not in FIT_KEYS and value is not None}
    sampler = values["sampler"]
    engines = auto_candidates() if sampler == DEFAULT_SAMPLER else (get_engine(sampler),)
    allowed = {name for engine in engines for name in engine.spec_option_names()}
    for key in given:
        if key not in allowed:
            owners = [engine.name for engine in ENGINES.values() if key in engine.spec_option_names()]
            raise SpecError(
                f"[sampler].{key} is set but [sampler].sampler is {sampler!r}; {key} is an option of the "
                f'engine {" or ".join(map(repr, owners))}: add sampler = "{owners[0]}" or remove {key}'
            )
    with building("[sampler]"):
        check_engine_options(sampler, given)
    return {key: value for key, value in values.items() if value is not None}


def decide_settings(table) -> dict | None:
    """``[decide]`` as keyword arguments of ``decide`` (the rule and its parameters, checked) plus ``out`` (None
    without the section); a parameter of another rule (one the chosen rule does not take) is an error."""
    if table is None:
        return None
    values = read_table(table, "[decide]", decide_schema())
    rule, out = values.pop("rule"), values.pop("out")
    given = {key: value for key, value in values.items() if value is not None}
    owned = rule_class(rule).parameter_names()
    for key in given:
        if key not in owned:
            owners = " or ".join(map(repr, rule_parameters()[key].defaults))
            raise SpecError(f"[decide].{key} is a setting of rule = {owners}, not of {rule!r}; remove it")
    with building("[decide]"):
        rule_from(rule, **given)
    return {"rule": rule, **given, **({"out": out} if out is not None else {})}


def g_star_of(agent, worlds: WorldSet, model: dict) -> float | None:
    """The agent's g*, measured like the model's g (its g method, ξ, sample size and seed); None without U*.

    With ``g_method = "auto"`` (resolved only once the likelihood, which may need g*, exists) g* is measured
    with :func:`~utiliscope.intelligence.truth_g_method`, the most accurate method available.
    """
    if agent.reward is None:
        return None
    method = truth_g_method(worlds, model["policy_prior"]) if model["g_method"] == "auto" else model["g_method"]
    return agent.true_intelligence(worlds, model["policy_prior"], method, model["n_samples"], model["seed"])


def build_scope(worlds, world_model, prior, likelihood, model: dict) -> Utiliscope:
    """The Utiliscope of a spec."""
    with building("[model]"):
        return Utiliscope(
            worlds,
            world_model,
            prior,
            likelihood,
            model["policy_prior"],
            model["g_method"],
            model["seed"],
            n_samples=model["n_samples"],
            smoothing=model["smoothing"],
        )


__all__ = [
    "agent_reward",
    "build_agent",
    "build_likelihood",
    "build_prior",
    "build_scope",
    "build_world_model",
    "build_worlds",
    "decide_settings",
    "g_star_of",
    "likelihood_settings",
    "model_settings",
    "sampler_settings",
    "true_utility",
    "world_model_settings",
]
