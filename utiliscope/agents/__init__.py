"""Synthetic test agents with a known utility U*: their policies, demonstrations and true intelligence g*.

Recovering U* and g* from their demonstrations is how the package shows that it works
(docs/model.md#synthetic-test-agents). Every agent has ``.policy(worlds)``, ``.demonstrate(worlds,
n_trajectories, horizon, seed)``, ``.true_intelligence(worlds, ...)`` and ``.to_dict()``; see each class for what
it optimises when ζ holds several worlds.
"""

from utiliscope.agents.base import Agent
from utiliscope.agents.quantilizer import Quantilizer
from utiliscope.agents.rational import Boltzmann, EpsilonGreedy, Myopic, Optimal, Random

__all__ = ["Agent", "Boltzmann", "EpsilonGreedy", "Myopic", "Optimal", "Quantilizer", "Random"]
