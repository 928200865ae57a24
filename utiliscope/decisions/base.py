r"""The decision-rule interface, its registry, and :func:`decide`, which runs any registered rule.

A rule turns a posterior over utilities (:class:`~utiliscope.decisions.values.UtilitySample`) into a policy. Each
rule is one module with one subclass of :class:`Rule`: a frozen dataclass whose fields are the rule's parameters
(each checked in ``__post_init__`` with a message naming it), a ``name`` under which it registers itself, a
one-line ``description``, and :meth:`Rule.decide`. Everything that offers a choice of rule (``decide``,
``PosteriorModel.decide``, ``decide_fit``, ``recovery``, the study tables, the ``[decide]`` spec section and
``utiliscope decide``) reads the rules and their parameters from this registry, so a new rule is one module::

    @dataclass(frozen=True)
    class Uniform(Rule):
        name = "uniform"
        description = "act uniformly at random, whatever the posterior"

        def decide(self, problem):
            S, A = problem.worlds.n_states, problem.worlds.n_actions
            return Choice(np.full((S, A), 1.0 / A), None, "no search", True)

A parameter is a field with a default made by :func:`parameter`, which also holds the help text that
``utiliscope decide --help`` shows; its type is ``float``, ``int`` or ``str`` (what specs and options can carry).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from utiliscope._validation import check_choice, check_count
from utiliscope.decisions.values import (
    MAX_ENUMERATE,
    PolicyMixture,
    Ranges,
    UtilitySample,
    normalised_values,
    value_ranges,
    weighted_lower_cvar,
    weighted_lower_quantile,
)
from utiliscope.evaluation import evaluate_policies
from utiliscope.policies import PolicyPrior
from utiliscope.worlds.mdp import WorldSet, as_world_set

#: The rule used when none is named.
DEFAULT_RULE = "expected"
#: Types a rule's parameter may have: each can be typed on the command line and written in a TOML spec.
PARAMETER_TYPES = (float, int, str)
#: Names a rule's parameter may not take: the keywords that ``decide``, ``decide_fit``, the ``[decide]`` section
#: and ``utiliscope decide`` take themselves.
RESERVED = frozenset(
    {"worlds", "sample", "rule", "policy_prior", "seed", "max_enumerate", "posterior", "ranges", "idata", "scope"}
    | {"max_utilities", "run", "out", "overwrite"}
)

_REGISTRY: dict[str, type[Rule]] = {}


def parameter(default: Any, help: str) -> Any:
    """A rule's parameter: a dataclass field with its default and the help text the command line shows."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DecisionProblem:
    """What a rule decides from: the worlds, the posterior, the utilities' ranges, ξ, the search limit, a seed.

    Attributes
    ----------
    worlds : WorldSet
    sample : UtilitySample
        The posterior's utilities ``r_n`` and weights ``P_n``.
    ranges : Ranges
        ``V_U(uniform)`` and ``V_U(pi*_U)`` of each utility, for the normalised values ``Ṽ``.
    policy_prior : PolicyPrior or None
        The model's ξ (None: uniform over deterministic policies).
    max_enumerate : int
        Deterministic policies are searched exhaustively up to this many.
    seed : int
        Seed of any random draws the rule makes.
    """

    worlds: WorldSet
    sample: UtilitySample
    ranges: Ranges
    policy_prior: PolicyPrior | None
    max_enumerate: int
    seed: int


@dataclass(frozen=True)
class Choice:
    """A rule's answer: a stationary policy (S, A) or a mixture of policies (or both), and how it was found.

    ``policy`` may be None only for a mixture that no stationary policy equals (several worlds); ``exact`` says
    whether the search is exhaustive over the rule's candidates. ``report`` holds what the rule chose from the
    posterior beyond the policy (plain numbers or text by name, e.g. the ``soft`` rule's q); the decision's
    ``settings`` carry it beside the rule's parameters, whose names it may not take.
    """

    policy: np.ndarray | None
    mixture: PolicyMixture | None
    search: str
    exact: bool
    report: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """Base class of the decision rules; a subclass is a frozen dataclass of its parameters (see the module).

    Attributes
    ----------
    name : str
        Registry key, the ``rule`` that ``decide``, specs and the command line take.
    description : str
        One line: what the rule maximises or draws.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls)

    def decide(self, problem: DecisionProblem) -> Choice:
        """The rule's policy for ``problem``."""
        raise NotImplementedError

    def objective(self, values: np.ndarray, probabilities: np.ndarray) -> float:
        """The rule's objective of a decision whose normalised values are ``values[n]``; by default the posterior
        expected normalised value ``Σ_n P_n Ṽ_n``."""
        return float(probabilities @ values)

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The names of the rule's parameters (its fields)."""
        return tuple(item.name for item in fields(cls))

    @property
    def settings(self) -> dict:
        """The rule's parameters by name."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def _register(cls: type[Rule]) -> None:
    """Add ``cls`` under its name; redefining the same class (a re-run notebook cell) replaces it."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and _qualified(existing) != _qualified(cls):
        raise ValueError(
            f"decision rule name {cls.name!r} is already taken by {_qualified(existing)}; give {_qualified(cls)} "
            "another name"
        )
    _REGISTRY[cls.name] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def rule_names() -> tuple[str, ...]:
    """The registered rules' names, in the order they were registered."""
    return tuple(_REGISTRY)


def rule_class(name: str) -> type[Rule]:
    """The registered rule called ``name`` (a ValueError listing the names otherwise), its parameters checked."""
    cls = _REGISTRY[check_choice(name, rule_names(), "rule")]
    _parameters_of(cls)
    return cls


def rule_from(rule: str | Rule, **parameters) -> Rule:
    """A rule object: ``rule`` itself, or the rule registered as ``rule`` with ``parameters`` (checked).

    Raises
    ------
    ValueError
        For an unknown rule, a parameter another rule takes (naming that rule), or a bad value.
    """
    if isinstance(rule, Rule):
        if parameters:
            raise TypeError(
                f"rule is the object {rule!r}, which carries its parameters; drop {', '.join(sorted(parameters))} "
                "or pass the rule's name instead"
            )
        return rule
    cls = rule_class(rule)
    own = cls.parameter_names()
    for key in parameters:
        if key not in own:
            owners = rule_parameters().get(key)
            which = (
                f"a parameter of rule {' or '.join(map(repr, owners.defaults))}, not of"
                if owners
                else "not one of"
            )
            raise ValueError(
                f"{key} is {which} rule {rule!r} (its parameters: {', '.join(own) or 'none'}); remove it"
            )
    return cls(**parameters)


@dataclass(frozen=True)
class RuleParameter:
    """One parameter name across the registered rules: its type, help, and each owning rule's default."""

    name: str
    type: type
    defaults: dict[str, object]
    helps: dict[str, str]


def rule_parameters() -> dict[str, RuleParameter]:
    """Every registered rule's parameters by name (rules that share a name share its type)."""
    found: dict[str, RuleParameter] = {}
    for rule_name, cls in _REGISTRY.items():
        for item, kind in _parameters_of(cls):
            entry = found.setdefault(item.name, RuleParameter(item.name, kind, {}, {}))
            if entry.type is not kind:
                raise TypeError(
                    f"rule {rule_name!r} gives parameter {item.name!r} the type {kind.__name__}, but rule "
                    f"{next(iter(entry.defaults))!r} gives it {entry.type.__name__}; use one type or another name"
                )
            entry.defaults[rule_name] = item.default
            entry.helps[rule_name] = item.metadata.get("help", "")
    return found


def _parameters_of(cls: type[Rule]) -> list[tuple[Field, type]]:
    """``(field, type)`` of each parameter of a rule class, checked to be a frozen dataclass field with a default
    of a type the command line and specs can carry."""
    own = cls.__dict__.get("__dataclass_params__")  # set by @dataclass on the class itself, not inherited
    if own is None or not own.frozen:
        raise TypeError(f"decision rule {_qualified(cls)} must be a @dataclass(frozen=True) of its parameters")
    hints = typing.get_type_hints(cls)
    result = []
    for item in fields(cls):
        kind = hints[item.name]
        if item.name in RESERVED:
            raise TypeError(
                f"parameter {item.name!r} of rule {cls.name!r} has a name that deciding takes itself; rename it "
                f"(taken: {', '.join(sorted(RESERVED))})"
            )
        if kind not in PARAMETER_TYPES or item.default is MISSING:
            raise TypeError(
                f"parameter {item.name!r} of rule {cls.name!r} must have a default and one of the types "
                f"{', '.join(t.__name__ for t in PARAMETER_TYPES)}; it is {kind!r}"
            )
        result.append((item, kind))
    return result


@dataclass(frozen=True)
class Decision:
    """A policy chosen from a posterior over utilities, with the rule and the posterior it used.

    Attributes
    ----------
    rule : str
        The rule's registered name.
    settings : dict
        ``max_enumerate``, the rule's parameters and what the rule reports choosing (:attr:`Choice.report`).
    policy : ndarray (S, A) or None
        The stationary policy, or None for a mixture that no stationary policy equals (several worlds).
    mixture : PolicyMixture or None
        The mixture of policies a rule draws from (``.occupancy``, ``.sample_policy``), else None.
    search : str
        How the policy was found; ``exact`` says whether it is the optimum over the rule's candidates.
    labels, probabilities : the posterior utilities and their weights.
    normalised_values : ndarray (N,)
        ``Ṽ_U`` of the decision under each posterior utility.
    objective : float
        The rule's own objective at this decision.
    """

    rule: str
    settings: dict
    policy: np.ndarray | None
    mixture: PolicyMixture | None
    search: str
    exact: bool
    labels: tuple[str, ...]
    probabilities: np.ndarray
    normalised_values: np.ndarray
    objective: float
    posterior: dict = field(default_factory=dict)

    @property
    def expected(self) -> float:
        """``Σ_U P(U | data) Ṽ_U``: the posterior expected normalised value of this decision."""
        return float(self.probabilities @ self.normalised_values)

    def quantile(self, alpha: float) -> float:
        """The lower ``alpha``-quantile of ``Ṽ_U`` under the posterior."""
        return float(weighted_lower_quantile(self.normalised_values[None], self.probabilities, alpha)[0])

    def cvar(self, alpha: float) -> float:
        """CVaR: the posterior mean of ``Ṽ_U`` over the lowest ``alpha`` of mass."""
        return float(weighted_lower_cvar(self.normalised_values[None], self.probabilities, alpha)[0])

    def value(self, worlds, reward) -> float:
        """``V_U`` of the decision under a reward (the mixture's, when it is one)."""
        if self.mixture is not None:
            return self.mixture.value(worlds, reward)
        return float(evaluate_policies(worlds, self.policy[None], reward)[0])

    def acting_policy(self, worlds) -> np.ndarray:
        """``policy``, or the mixture's stationary equivalent when there is no stationary decision."""
        return self.policy if self.policy is not None else self.mixture.stationary(worlds)

    def to_dict(self) -> dict:
        """Plain values for JSON: the rule, its settings and objective, the policy (or mixture), the posterior."""
        data = {
            "rule": self.rule,
            "settings": self.settings,
            "search": self.search,
            "exact": self.exact,
            "objective": self.objective,
            "expected_normalised_value": self.expected,
            "policy": None if self.policy is None else self.policy.tolist(),
            "posterior": self.posterior,
        }
        if self.mixture is not None:
            mixture = self.mixture
            data["mixture"] = {"policies": mixture.policies.tolist(), "weights": mixture.weights.tolist()}
        return data

    def __str__(self) -> str:
        settings = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in self.settings.items()
            if key != "max_enumerate"
        )
        order = np.argsort(-self.probabilities, kind="stable")[:5]
        lines = [
            f"Decision by rule {self.rule!r}{f' ({settings})' if settings else ''}: "
            f"objective {self.objective:.4g}",
            f"  search: {self.search}",
            f"  expected normalised value {self.expected:.4g}; under the most probable utilities:",
            *(
                f"    {self.labels[i]:<24} P {self.probabilities[i]:.3g}  Ṽ {self.normalised_values[i]:.4g}"
                for i in order
            ),
        ]
        return "\n".join(lines)


def decide(
    worlds,
    sample: UtilitySample,
    rule: str | Rule = DEFAULT_RULE,
    *,
    policy_prior: PolicyPrior | None = None,
    seed: int = 0,
    max_enumerate: int = MAX_ENUMERATE,
    posterior: Mapping | None = None,
    ranges: Ranges | None = None,
    **parameters,
) -> Decision:
    """Choose a policy from a posterior over utilities by ``rule``.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    sample : UtilitySample
        The posterior's utilities and weights.
    rule : str or Rule
        A registered rule's name (:func:`rule_names`) or a rule object carrying its parameters.
    policy_prior : PolicyPrior, optional
        ξ, for rules that draw from it (default uniform over deterministic policies).
    seed : int
        Seed of a rule's random draws.
    max_enumerate : int
        Deterministic policies searched exhaustively up to this many, for the utilities' ranges and the rules'
        searches; beyond, the local searches that the decision's ``search`` names.
    posterior : dict, optional
        A summary of the posterior recorded with the decision.
    ranges : Ranges, optional
        :func:`~utiliscope.decisions.values.value_ranges` of the sample's rewards, when the caller decides with
        several rules on one sample (the ranges cost one optimum per utility).
    **parameters
        The named rule's parameters (each rule's fields; a parameter of another rule is an error).

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> bandit = us.TabularMDP(np.ones((1, 2, 1)), [1.0], 0.5)
    >>> sample = us.decisions.UtilitySample(np.array([[[1.0, 0.0]]]), np.array([1.0]), ("U",))
    >>> us.decisions.decide(bandit, sample).policy
    array([[1., 0.]])
    """
    worlds = as_world_set(worlds)
    chosen = rule_from(rule, **parameters)
    max_enumerate = check_count(max_enumerate, "max_enumerate")
    if ranges is None:
        ranges = value_ranges(worlds, sample.rewards, max_enumerate)
    choice = chosen.decide(DecisionProblem(worlds, sample, ranges, policy_prior, max_enumerate, seed))
    settings = {"max_enumerate": max_enumerate, **chosen.settings}
    clash = sorted(settings.keys() & choice.report.keys())
    if clash:
        raise TypeError(
            f"rule {chosen.name!r} reports {', '.join(clash)}, which its settings already name; give the "
            "reported values other names"
        )
    mixture = choice.mixture
    tables = mixture.policies if mixture is not None else choice.policy[None]
    per_policy = normalised_values(worlds, tables, sample, ranges)
    values = mixture.weights @ per_policy if mixture is not None else per_policy[0]
    search = choice.search
    return Decision(
        rule=chosen.name,
        settings={**settings, **choice.report},
        policy=choice.policy,
        mixture=mixture,
        search=search if ranges.search == search else f"{search}; the utilities' optima by {ranges.search}",
        exact=choice.exact and ranges.exact,
        labels=sample.labels,
        probabilities=sample.weights,
        normalised_values=values,
        objective=chosen.objective(values, sample.weights),
        posterior=dict(posterior or {}),
    )


__all__ = [
    "DEFAULT_RULE",
    "Choice",
    "Decision",
    "DecisionProblem",
    "Rule",
    "RuleParameter",
    "decide",
    "parameter",
    "rule_class",
    "rule_from",
    "rule_names",
    "rule_parameters",
]
