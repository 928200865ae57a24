"""Synthetic test agents with a known utility U*: their policies, demonstrations and true intelligence g*.

Recovering U* and g* from their demonstrations is how the package shows that it works
(docs/model.md#synthetic-test-agents). Every agent has ``.policy(worlds)``, ``.demonstrate(worlds,
n_trajectories, horizon, seed)``, ``.true_intelligence(worlds, ...)`` and ``.to_dict()``; see each class for what
it optimises when ζ holds several worlds.

The zoo (:mod:`~utiliscope.agents.zoo`, :mod:`~utiliscope.agents.stepwise`) holds demonstrators that are not
maximisers of one utility, for checking a model's agent model: :class:`ShardAgent`, :class:`WrongModel`,
:class:`StateBoltzmann`, :class:`HyperbolicDiscounter` and :class:`Habitual`. Each reports the g of its behaviour
under a designer's utility (``designer_intelligence``); the last two are non-stationary and have no ``policy``.
"""

from utiliscope.agents.base import Agent
from utiliscope.agents.quantilizer import Quantilizer
from utiliscope.agents.rational import Boltzmann, EpsilonGreedy, Myopic, Optimal, Random
from utiliscope.agents.stepwise import Habitual, HyperbolicDiscounter, StepwiseAgent
from utiliscope.agents.zoo import ShardAgent, StateBoltzmann, WrongModel, ZooAgent

__all__ = [
    "Agent",
    "Boltzmann",
    "EpsilonGreedy",
    "Habitual",
    "HyperbolicDiscounter",
    "Myopic",
    "Optimal",
    "Quantilizer",
    "Random",
    "ShardAgent",
    "StateBoltzmann",
    "StepwiseAgent",
    "WrongModel",
    "ZooAgent",
]
