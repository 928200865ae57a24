"""The schema of a TOML spec: its sections, every table's keys with their types and defaults, and reading a
file.

Every mistake raises :class:`SpecError` (a ValueError) whose message names the key (``[agent].beta``) and what
is allowed there.
"""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utiliscope import agents as agent_types
from utiliscope.decisions import DEFAULT_RULE, rule_names, rule_parameters
from utiliscope.likelihoods import registered_likelihoods
from utiliscope.models.engines import ENGINES
from utiliscope.models.fit_settings import DEFAULT_SAMPLER, DEFAULT_TARGET_ACCEPT, SAMPLERS
from utiliscope.models.g_methods import G_METHOD_CHOICES

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


def choice(table, key: str, where: str, choices, default=REQUIRED) -> str:
    """The selector key (``type``, ``name``) of a table whose other keys depend on it."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} is {table!r}; it must be a table")
    return read_table(
        {key: table[key]} if key in table else {}, where, {key: Key((str,), default, tuple(choices))}
    )[key]


@contextmanager
def building(where: str):
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


def check_sections(spec, mode: str) -> dict:
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


WORLD_MODEL_KEYS = {
    "kind": Key((str,), None, WORLD_MODELS),
    "concentration": Key(NUMBER, 1.0),
    "n_policies": Key((int,), 200),
    "seed": Key((int,), 0),
}


OBSERVATION_KEYS = {"counts": Key((list,), None), "policies": Key((list,), None), "weights": Key((list,), None)}


def takes_observed(name) -> bool:
    """Whether the shape called ``name`` has a g'_obs (the 2^g potential has none)."""
    shape = registered_likelihoods().get(name)
    return shape is not None and "observed" in inspect.signature(shape).parameters


def likelihood_schema(name: str) -> dict[str, Key]:
    """Keys of ``[likelihood]`` for the shape called ``name``: its parameters, and ``observed`` if it has one."""
    schema = {"name": Key((str,)), **_parameters(registered_likelihoods()[name], ("observed",))}
    if takes_observed(name):
        schema["observed"] = Key((*NUMBER, str))
    return schema


MODEL_KEYS = {
    "g_method": Key((str,), "exact", G_METHOD_CHOICES),
    "n_samples": Key((int,), 1000),
    "seed": Key((int,), 0),
    "smoothing": Key(NUMBER, None),  # None: the model's default for its g method
    "policy_prior": Key((str,), "uniform_deterministic", POLICY_PRIORS),
    "policy_concentration": Key(NUMBER, 1.0),
}


#: ``fit``'s own settings in ``[sampler]``.
FIT_KEYS = {
    "draws": Key((int,), 1000),
    "tune": Key((int,), 1000),
    "chains": Key((int,), 4),
    "seed": Key((int,), 0),
    "sampler": Key((str,), DEFAULT_SAMPLER, SAMPLERS),
    "target_accept": Key(NUMBER, DEFAULT_TARGET_ACCEPT),
}
SAMPLER_KEYS = {
    **FIT_KEYS,
    # The engines' own options (their Options dataclasses); each is checked against the chosen engine.
    **{name: Key(NUMBER, None) for engine in ENGINES.values() for name in engine.spec_option_names()},
}


#: TOML types of a decision rule's parameter of each Python type (an integer is a number too).
PARAMETER_TOML = {float: NUMBER, int: (int,), str: (str,)}


def decide_schema() -> dict[str, Key]:
    """Keys of ``[decide]``: ``rule``, every registered rule's parameters (None when not given: the rule's own
    default), and ``out``."""
    parameters = {name: Key(PARAMETER_TOML[info.type], None) for name, info in rule_parameters().items()}
    return {"rule": Key((str,), DEFAULT_RULE, rule_names()), **parameters, "out": Key((str,), None)}


STUDY_KEYS = {
    "n_agents": Key((int,)),
    "seed": Key((int,), 0),
    "agents": Key((list,)),
    "utilities": Key((list,), None),
    "demonstrations": Key((dict,), None),
    "grid": Key((dict,), None),
}


__all__ = [
    "AGENTS",
    "AGENT_FIXED",
    "DEMONSTRATION_KEYS",
    "FIT_KEYS",
    "FROM_AGENT",
    "GRID_KEYS",
    "MODEL_KEYS",
    "MODES",
    "NUMBER",
    "OBSERVATION_KEYS",
    "POLICY_PRIORS",
    "PRIOR_KEYS",
    "REQUIRED",
    "SAMPLER_KEYS",
    "SECTIONS",
    "STUDY_KEYS",
    "TYPE_WORDS",
    "UTILITY_KEYS",
    "WORLD_COMMON",
    "WORLD_KEYS",
    "WORLD_MODELS",
    "WORLD_MODEL_KEYS",
    "Key",
    "SpecError",
    "agent_schema",
    "building",
    "check_sections",
    "choice",
    "decide_schema",
    "likelihood_schema",
    "prior_schema",
    "read_spec",
    "read_table",
    "takes_observed",
    "world_schema",
]
