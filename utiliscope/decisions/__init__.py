r"""Acting on a posterior over utilities: decision rules as plug-ins, normalised values, and policy loss.

A posterior is a weighted set of utilities (:class:`UtilitySample`); values of different utilities are compared
after normalising each by its own range, ``Ṽ_U = (V_U − V_U(uniform)) / (V_U(pi*_U) − V_U(uniform))``
(:mod:`utiliscope.decisions.values`). A decision rule turns the posterior into a policy: each rule is one module
of this package with a :class:`Rule` subclass that registers itself under its name (:mod:`.base` shows how to
write one). :func:`rule_names` lists them and :func:`decide` runs one by name or as an object::

    decide(worlds, sample, "<name>", **parameters)      # or decide(worlds, sample, SomeRule(**parameters))

:func:`policy_loss` is ``1 − Ṽ_U*(pi)`` under a true utility: 0 is optimal, 1 no better than acting uniformly at
random.
"""

from utiliscope.decisions.base import (
    DEFAULT_RULE,
    Choice,
    Decision,
    DecisionProblem,
    Rule,
    RuleParameter,
    decide,
    parameter,
    rule_class,
    rule_from,
    rule_names,
    rule_parameters,
)
from utiliscope.decisions.expected import Expected
from utiliscope.decisions.quantilize import Quantilize
from utiliscope.decisions.robust import Robust
from utiliscope.decisions.soft import Soft
from utiliscope.decisions.values import (
    MAX_ENUMERATE,
    PolicyMixture,
    Ranges,
    UtilitySample,
    mixture_reward,
    normalised_value,
    normalised_values,
    policy_loss,
    sample_of_library,
    value_ranges,
    weighted_lower_cvar,
    weighted_lower_quantile,
)

__all__ = [
    "DEFAULT_RULE",
    "MAX_ENUMERATE",
    "Choice",
    "Decision",
    "DecisionProblem",
    "Expected",
    "PolicyMixture",
    "Quantilize",
    "Ranges",
    "Robust",
    "Rule",
    "RuleParameter",
    "Soft",
    "UtilitySample",
    "decide",
    "mixture_reward",
    "normalised_value",
    "normalised_values",
    "parameter",
    "policy_loss",
    "rule_class",
    "rule_from",
    "rule_names",
    "rule_parameters",
    "sample_of_library",
    "value_ranges",
    "weighted_lower_cvar",
    "weighted_lower_quantile",
]
