"""Worlds: finite MDPs, weighted world sets ζ, and builders of standard ones."""

from utiliscope.worlds.builders import GRID_ACTIONS, garnet, gridworld
from utiliscope.worlds.mdp import TabularMDP, WorldSet, as_world_set

__all__ = ["GRID_ACTIONS", "TabularMDP", "WorldSet", "as_world_set", "garnet", "gridworld"]
