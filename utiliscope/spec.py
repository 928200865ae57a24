"""Declarative TOML specs of a fit or a recovery study: reading, validation and building the problem.

A spec names the pieces of the Bayes net (docs/model.md#the-bayes-net), one TOML table each (every key is
documented in ``examples/README.md``)::

    [worlds]        ζ: gridworld layout(s) and slips, or garnet parameters; gamma; weights
    [prior]         P(U): a utility library over the worlds' features, or a linear direction prior
    [agent]         a synthetic agent with a known utility, and [agent.demonstrations] of it ...
    [observations]  ... or counts n[s, a] (or candidate policies) observed elsewhere
    [world_model]   P(pi | WM): Dirichlet rows, a finite sample of them, the agent's policy, or given policies
    [likelihood]    P(g' | g): a shape's name, its parameters and g'_obs (a number, or "agent" for g*)
    [model]         how g is computed: g_method, n_samples, seed, smoothing, ξ
    [sampler]       draws, tune, chains, seed, sampler, target_accept, cores
    [decide]        (``utiliscope fit`` only) a decision rule applied after the fit, and its output file
    [study]         (``utiliscope study`` only) agents, their number, the grid of settings

:func:`fit_problem` and :func:`study_problem` validate a parsed spec completely before anything is fitted and
build the objects a fit or a study needs. Every mistake raises :class:`SpecError` (a ValueError) whose message
names the key (``[agent].beta``) and what is allowed there: unknown sections and keys, wrong types, unknown
names, and the package's own input errors prefixed with their section.
"""

from __future__ import annotations

import inspect
import itertools
import json
import tomllib
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utiliscope import agents as agent_types
from utiliscope._validation import as_float_array, check_count, check_positive, check_seed
from utiliscope.decisions import RULES, check_alpha, check_q
from utiliscope.demonstrations import Demonstrations
from utiliscope.diagnostics.recovery import Truth, library_index_of, linear_direction_of
from utiliscope.likelihoods import registered_likelihoods
from utiliscope.models import Utiliscope
from utiliscope.models.base import DEFAULT_SAMPLER, DEFAULT_TARGET_ACCEPT, SAMPLERS, check_fit_settings
from utiliscope.models.utiliscope import G_METHOD_CHOICES, truth_g_method
from utiliscope.policies import DirichletPolicies, UniformDeterministic
from utiliscope.priors import LinearUtility, UtilityLibrary
from utiliscope.rare_event import check_importance_prior
from utiliscope.world_model import WorldModel
from utiliscope.worlds import TabularMDP, WorldSet, garnet, gridworld

#: The marker of a required key in a schema.
REQUIRED = object()
#: ``observed = "agent"``: g'_obs is the agent's true g*, computed with the model's g method and ξ.
FROM_AGENT = "agent"
AGENTS = {
    cls.name: cls
    for cls in (
        agent_types.Optimal,
        agent_types.Boltzmann,
        agent_types.EpsilonGreedy,
        agent_types.Quantilizer,
        agent_types.Myopic,
        agent_types.Random,
    )
}
#: Agent constructor arguments a spec does not set: the reward comes from utility/reward/theta, and a
#: quantilizer's ξ is the model's.
AGENT_FIXED = ("reward", "policy_prior")
WORLD_MODELS = ("dirichlet", "sampled", "agent_policy", "policies")
POLICY_PRIORS = ("uniform_deterministic", "dirichlet")
#: Keys of [study.grid]: each holds a list of values; the settings are their Cartesian product.
GRID_KEYS = ("simplicity_weight", "likelihood", "observed", "n_trajectories")
SECTIONS = (
    "worlds",
    "prior",
    "agent",
    "observations",
    "world_model",
    "likelihood",
    "model",
    "sampler",
    "decide",
    "study",
)
MODES = ("fit", "study")


class SpecError(ValueError):
    """A spec that cannot be used; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Key:
    """One key of a table: the TOML types it takes, its default (or :data:`REQUIRED`) and allowed values."""

    types: tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple | None = None


NUMBER = (int, float)
TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "a table",
    bool: "true or false",
}


def _words(types: tuple[type, ...]) -> str:
    if types == NUMBER:
        return "a number"
    return " or ".join(TYPE_WORDS[t] for t in types)


def read_table(table, where: str, schema: Mapping[str, Key]) -> dict:
    """Check ``table`` against ``schema`` and return it with the defaults filled in.

    Raises :class:`SpecError` for a table that is not one, an unknown key (listing the allowed ones), a missing
    required key, a value of the wrong TOML type (booleans are never numbers) or one outside ``choices``.
    """
    if not isinstance(table, dict):
        raise SpecError(f"{where} is {table!r}; it must be a table ({where} with keys below it)")
    for key in table:
        if key not in schema:
            raise SpecError(f"unknown key {key!r} in {where}; allowed keys: {', '.join(sorted(schema))}")
    values = {}
    for key, rule in schema.items():
        if key not in table:
            if rule.default is REQUIRED:
                raise SpecError(f"{where} needs the key {key!r} ({_words(rule.types)})")
            values[key] = rule.default
            continue
        value = table[key]
        if (isinstance(value, bool) and bool not in rule.types) or not isinstance(value, rule.types):
            raise SpecError(f"{where}.{key} is {value!r}; it must be {_words(rule.types)}")
        if rule.choices is not None and value not in rule.choices:
            raise SpecError(f"{where}.{key} is {value!r}; choose one of {', '.join(map(repr, rule.choices))}")
        values[key] = value
    return values


def _choice(table, key: str, where: str, choices, default=REQUIRED) -> str:
    """The selector key (``type``, ``name``) of a table whose other keys depend on it."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} is {table!r}; it must be a table")
    return read_table(
        {key: table[key]} if key in table else {}, where, {key: Key((str,), default, tuple(choices))}
    )[key]


@contextmanager
def _building(where: str):
    """Turn the package's own ValueError/TypeError while building ``where`` into a SpecError naming it."""
    try:
        yield
    except SpecError:
        raise
    except (ValueError, TypeError) as err:
        raise SpecError(f"{where}: {err}") from err


def _parameters(cls, leave_out=()) -> dict[str, Key]:
    """Numeric constructor parameters of ``cls`` as keys: required where the signature has no default."""
    keys = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if name in ("self", *leave_out) or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = REQUIRED if parameter.default is parameter.empty else parameter.default
        keys[name] = Key(NUMBER, default)
    return keys


# ---------------------------------------------------------------------------------------------- reading
def read_spec(path) -> dict:
    """Parse the TOML file ``path`` (tomllib); unreadable files and TOML syntax errors raise SpecError."""
    source = Path(path)
    if not source.is_file():
        raise SpecError(f"no spec file at {str(source)!r}; give the path of a .toml spec (see examples/)")
    try:
        with open(source, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{str(source)!r} is not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{str(source)!r} is not UTF-8 text ({err}); save the spec as UTF-8 (TOML requires it)"
        ) from err


def _sections(spec, mode: str) -> dict:
    """Check the top-level tables for a ``fit`` or a ``study`` spec."""
    if not isinstance(spec, dict):
        raise SpecError(f"the spec must be a TOML document of tables; got {type(spec).__name__}")
    for name in spec:
        if name not in SECTIONS:
            raise SpecError(f"unknown section [{name}]; allowed sections: {', '.join(SECTIONS)}")
    for name in ("worlds", "prior", "likelihood"):
        if name not in spec:
            raise SpecError(f"the spec needs a [{name}] section (see examples/README.md)")
    if mode == "fit":
        if "study" in spec:
            raise SpecError("[study] belongs to a study spec: run `utiliscope study SPEC.toml`, or remove it")
        if ("agent" in spec) == ("observations" in spec):
            raise SpecError("give exactly one of [agent] (a synthetic agent) and [observations] (counts)")
    else:
        if "study" not in spec:
            raise SpecError("a study spec needs a [study] section (n_agents, agents, grid)")
        for name in ("agent", "observations", "decide"):
            if name in spec:
                raise SpecError(f"a study spec takes its agents from [[study.agents]]; remove [{name}]")
    return spec


# ---------------------------------------------------------------------------------------------- worlds
WORLD_COMMON = {"type": Key((str,)), "gamma": Key(NUMBER, 0.9), "weights": Key((list,), None)}
WORLD_KEYS = {
    "gridworld": {"layout": Key((list,)), "slip": Key((*NUMBER, list), 0.1)},
    "garnet": {
        "n_states": Key((int,)),
        "n_actions": Key((int,)),
        "branching": Key((int,)),
        "n_features": Key((int,), 4),
        "seed": Key((int, list), 0),
    },
}


def world_schema(kind: str) -> dict[str, Key]:
    """Keys of ``[worlds]`` for worlds of type ``kind``."""
    return {**WORLD_COMMON, **WORLD_KEYS[kind]}


def build_worlds(table) -> WorldSet:
    """ζ from ``[worlds]``: one world per layout × slip (gridworld) or per seed (garnet)."""
    kind = _choice(table, "type", "[worlds]", WORLD_KEYS)
    values = read_table(table, "[worlds]", world_schema(kind))
    with _building("[worlds]"):
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


# ---------------------------------------------------------------------------------------------- prior
PRIOR_KEYS = {
    "library": {"max_terms": Key((int,), 2), "max_weight": Key((int,), 2), "max_size": Key((int,), 100_000)},
    "linear": {
        "sparsity": Key((str,), "laplace", ("laplace", "spike_and_slab")),
        "scale": Key(NUMBER, None),
        "slab_scale": Key(NUMBER, 1.0),
        "slab_probability": Key(NUMBER, 0.5),
    },
}


def prior_schema(kind: str) -> dict[str, Key]:
    """Keys of ``[prior]`` for a prior of type ``kind``."""
    return {"type": Key((str,)), "simplicity_weight": Key(NUMBER, 1.0), **PRIOR_KEYS[kind]}


def build_prior(table, worlds: WorldSet) -> UtilityLibrary | LinearUtility:
    """P(U) from ``[prior]`` over the worlds' features (gridworld colours, garnet features)."""
    kind = _choice(table, "type", "[prior]", PRIOR_KEYS)
    values = read_table(table, "[prior]", prior_schema(kind))
    if worlds.features is None:
        raise SpecError("[prior] needs features, but the worlds have none: give the gridworld coloured cells")
    settings = {k: v for k, v in values.items() if k != "type"}
    with _building("[prior]"):
        if kind == "library":
            return UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names, **settings)
        return LinearUtility(worlds.features, feature_names=worlds.feature_names, **settings)


# ---------------------------------------------------------------------------------------------- agent
UTILITY_KEYS = ("utility", "reward", "theta")
DEMONSTRATION_KEYS = {"n_trajectories": Key((int,)), "horizon": Key((int,)), "seed": Key((int,), 0)}


def agent_schema(kind: str, with_utility: bool) -> dict[str, Key]:
    """Keys of an agent table: ``type``, the class's numeric parameters, and how its utility is given."""
    schema = {"type": Key((str,)), **_parameters(AGENTS[kind], AGENT_FIXED)}
    if with_utility:
        schema |= {
            "utility": Key((str,), None),
            "reward": Key((list,), None),
            "theta": Key((list,), None),
            "demonstrations": Key((dict,), None),
        }
    return schema


def build_agent(table, where: str, reward, model, with_utility: bool = True):
    """An agent from its table; ``reward`` is the reward table when the utility comes from elsewhere."""
    kind = _choice(table, "type", where, AGENTS)
    values = read_table(table, where, agent_schema(kind, with_utility))
    parameters = {k: v for k, v in values.items() if k not in ("type", *UTILITY_KEYS, "demonstrations")}
    if kind == "quantilizer":
        parameters["policy_prior"] = model["policy_prior"]
    with _building(where):
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
        with _building("[agent].utility"):
            return prior.reward_table(worlds.n_actions)[prior.index(table["utility"])]
    with _building("[agent]"):
        values = as_float_array(table[key], key)
    if key == "reward":
        S, A = worlds.n_states, worlds.n_actions
        if values.shape not in ((S,), (S, A)):
            raise SpecError(f"[agent].reward has shape {values.shape}; the worlds need ({S},) or ({S}, {A})")
        return values
    with _building("[agent].theta"):
        return np.asarray(worlds.features, dtype=float) @ values


def true_utility(prior, reward) -> str | np.ndarray | None:
    """U* as :class:`~utiliscope.diagnostics.Truth` wants it, or None when the prior cannot express it."""
    try:
        if prior.kind == "library":
            return prior.names[library_index_of(prior, reward)]
        return linear_direction_of(prior, reward)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- world model
WORLD_MODEL_KEYS = {
    "kind": Key((str,), None, WORLD_MODELS),
    "concentration": Key(NUMBER, 1.0),
    "n_policies": Key((int,), 200),
    "seed": Key((int,), 0),
}
OBSERVATION_KEYS = {"counts": Key((list,), None), "policies": Key((list,), None), "weights": Key((list,), None)}


def world_model_settings(table, has_agent: bool, observations: dict | None) -> dict:
    """``[world_model]`` with its kind defaulted (given policies, else Dirichlet rows) and checked."""
    values = read_table(table if table is not None else {}, "[world_model]", WORLD_MODEL_KEYS)
    with _building("[world_model]"):
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
    with _building("[world_model]"):
        if kind in ("agent_policy", "policies"):
            return WorldModel.from_policies(policies, weights)
        dirichlet = WorldModel.from_demonstrations(Demonstrations.from_counts(counts), settings["concentration"])
        if kind == "dirichlet":
            return dirichlet
        draws = rng.gamma(np.broadcast_to(dirichlet.alpha, (settings["n_policies"], *dirichlet.alpha.shape)))
        return WorldModel.from_policies(draws / draws.sum(axis=2, keepdims=True))


# ---------------------------------------------------------------------------------------------- likelihood
def _takes_observed(name) -> bool:
    """Whether the shape called ``name`` has a g'_obs (the 2^g potential has none)."""
    shape = registered_likelihoods().get(name)
    return shape is not None and "observed" in inspect.signature(shape).parameters


def likelihood_schema(name: str) -> dict[str, Key]:
    """Keys of ``[likelihood]`` for the shape called ``name``: its parameters, and ``observed`` if it has one."""
    schema = {"name": Key((str,)), **_parameters(registered_likelihoods()[name], ("observed",))}
    if _takes_observed(name):
        schema["observed"] = Key((*NUMBER, str))
    return schema


def likelihood_settings(table) -> dict:
    """``[likelihood]``: ``name``, ``observed`` (bits or "agent") and the shape's own parameters."""
    name = _choice(table, "name", "[likelihood]", sorted(registered_likelihoods()))
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
    with _building("[likelihood]"):
        return registered_likelihoods()[settings["name"]](**values)


# ---------------------------------------------------------------------------------------------- model, sampler
MODEL_KEYS = {
    "g_method": Key((str,), "exact", G_METHOD_CHOICES),
    "n_samples": Key((int,), 1000),
    "seed": Key((int,), 0),
    "smoothing": Key(NUMBER, None),  # None: the model's default for its g method
    "policy_prior": Key((str,), "uniform_deterministic", POLICY_PRIORS),
    "policy_concentration": Key(NUMBER, 1.0),
}
SAMPLER_KEYS = {
    "draws": Key((int,), 1000),
    "tune": Key((int,), 1000),
    "chains": Key((int,), 4),
    "seed": Key((int,), 0),
    "sampler": Key((str,), DEFAULT_SAMPLER, SAMPLERS),
    "target_accept": Key(NUMBER, DEFAULT_TARGET_ACCEPT),
    "cores": Key((int,), None),
}


def model_settings(table) -> dict:
    """``[model]``, with ξ built (``policy_prior``)."""
    values = read_table(table if table is not None else {}, "[model]", MODEL_KEYS)
    with _building("[model]"):
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
    """``[sampler]`` as keyword arguments of ``Utiliscope.fit`` (``cores`` only when given, and only for PyMC's
    sampler, the one that takes it)."""
    values = read_table(table if table is not None else {}, "[sampler]", SAMPLER_KEYS)
    with _building("[sampler]"):
        values = check_fit_settings(values)
        if values["cores"] is not None:
            check_count(values["cores"], "cores")
    if values["cores"] is not None and values["sampler"] != "pymc":
        raise SpecError(
            f"[sampler].cores is set but [sampler].sampler is {values['sampler']!r}; cores is an option of "
            'PyMC\'s sampler only: add sampler = "pymc" or remove cores'
        )
    return {k: v for k, v in values.items() if v is not None}


DECIDE_KEYS = {
    "rule": Key((str,), "expected", RULES),
    "alpha": Key(NUMBER, None),
    "q": Key(NUMBER, None),
    "out": Key((str,), None),
}
#: The setting each rule takes beyond ``rule`` and ``out``.
RULE_SETTINGS = {"expected": (), "robust": ("alpha",), "quantilize": ("q",)}


def decide_settings(table) -> dict | None:
    """``[decide]`` as keyword arguments of ``decide`` plus ``out`` (None without the section); a setting of
    another rule (``alpha`` with ``rule = "quantilize"``) is an error."""
    if table is None:
        return None
    values = read_table(table, "[decide]", DECIDE_KEYS)
    rule = values["rule"]
    for name in ("alpha", "q"):
        if values[name] is not None and name not in RULE_SETTINGS[rule]:
            owner = next(r for r, names in RULE_SETTINGS.items() if name in names)
            raise SpecError(f"[decide].{name} is a setting of rule = {owner!r}, not of {rule!r}; remove it")
    with _building("[decide]"):
        if values["alpha"] is not None:
            check_alpha(values["alpha"])
        if values["q"] is not None:
            check_q(values["q"])
    return {key: value for key, value in values.items() if value is not None}


def g_star_of(agent, worlds: WorldSet, model: dict) -> float | None:
    """The agent's g*, measured like the model's g (its g method, ξ, sample size and seed); None without U*.

    With ``g_method = "auto"`` (resolved only once the likelihood, which may need g*, exists) g* is measured
    with :func:`~utiliscope.models.utiliscope.truth_g_method`, the most accurate method available.
    """
    if agent.reward is None:
        return None
    method = truth_g_method(worlds, model["policy_prior"]) if model["g_method"] == "auto" else model["g_method"]
    return agent.true_intelligence(worlds, model["policy_prior"], method, model["n_samples"], model["seed"])


def build_scope(worlds, world_model, prior, likelihood, model: dict) -> Utiliscope:
    """The Utiliscope of a spec."""
    with _building("[model]"):
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


# ---------------------------------------------------------------------------------------------- fit
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
    spec = _sections(spec, "fit")
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
    with _building("[sampler]"):
        scope.resolve_engine(fit_kwargs["sampler"], fit_kwargs["draws"])
    truth = None
    if agent is not None and g_star is not None:
        utility = true_utility(prior, agent.reward_table(worlds))
        truth = None if utility is None else Truth(utility, float(g_star), repr(agent))
    return FitProblem(scope, fit_kwargs, agent, truth, _attrs(spec, agent, truth), decide)


def _fit_agent(table, worlds, prior, model, wm_settings) -> tuple[Any, np.ndarray | None]:
    """The fit's agent and its demonstration counts (None when the world model is the agent's policy)."""
    kind = _choice(table, "type", "[agent]", AGENTS)
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
    with _building("[agent.demonstrations]"):
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
            with _building("[observations]"):
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


# ---------------------------------------------------------------------------------------------- study
STUDY_KEYS = {
    "n_agents": Key((int,)),
    "seed": Key((int,), 0),
    "agents": Key((list,)),
    "utilities": Key((list,), None),
    "demonstrations": Key((dict,), None),
    "grid": Key((dict,), None),
}


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
    spec = _sections(spec, "study")
    worlds = build_worlds(spec["worlds"])
    prior = build_prior(spec["prior"], worlds)
    model = model_settings(spec.get("model"))
    fit_kwargs = sampler_settings(spec.get("sampler"))
    fit_kwargs.pop("seed")
    likelihood = likelihood_settings(spec["likelihood"])
    study = read_table(spec["study"], "[study]", STUDY_KEYS)
    with _building("[study]"):
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
    with _building("[study.demonstrations]"):
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
        with _building(where):
            check_positive(setting["simplicity_weight"], "simplicity_weight", allow_zero=True)
    if "n_trajectories" in setting:
        read_table({"n_trajectories": setting["n_trajectories"]}, where, {"n_trajectories": Key((int,))})
        with _building(where):
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
            **({"observed": shape["observed"]} if _takes_observed(name) and "observed" in shape else {}),
        }
    if "observed" in setting and _takes_observed(shape.get("name")):
        shape["observed"] = setting["observed"]
    return shape


__all__ = [
    "FROM_AGENT",
    "FitProblem",
    "SpecError",
    "StudyProblem",
    "fit_problem",
    "read_spec",
    "study_problem",
    "truth_from_attrs",
]
