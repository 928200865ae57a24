"""Worlds: finite MDPs, weighted world sets ζ, builders of standard ones, worlds from tables and gymnasium."""

from utiliscope.worlds.builders import GRID_ACTIONS, from_arrays, garnet, gridworld
from utiliscope.worlds.mdp import TabularMDP, WorldSet, as_world_set
from utiliscope.worlds.toy_text import from_gymnasium, gymnasium_reward

__all__ = [
    "GRID_ACTIONS",
    "TabularMDP",
    "WorldSet",
    "as_world_set",
    "from_arrays",
    "from_gymnasium",
    "garnet",
    "gridworld",
    "gymnasium_reward",
]
