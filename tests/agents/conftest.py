"""Brute-force references for the agent tests, written independently of utiliscope's solvers.

Values come from one ``numpy.linalg.solve`` per world and policy, deterministic policies from
``itertools.product``, and optimal Q tables from plain value iteration.
"""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

import utiliscope as us


def plain_world(n_states, n_actions, seed, gamma=0.9):
    """A garnet without features, so that garnets of different seeds can share a WorldSet."""
    world = us.worlds.garnet(n_states, n_actions, 2, gamma=gamma, seed=seed)
    return us.TabularMDP(world.transitions, world.start, world.gamma)


def world_value(world, pi, r):
    """μ0ᵀ (I − γ P^pi)^{-1} r_pi for one TabularMDP; a state reward r[s] is broadcast over actions."""
    r = np.asarray(r, dtype=float)
    r = r[:, None] if r.ndim == 1 else r
    P_pi = np.einsum("sa,sat->st", pi, world.transitions)
    r_pi = (pi * r).sum(axis=1)
    v = np.linalg.solve(np.eye(world.n_states) - world.gamma * P_pi, r_pi)
    return world.start @ v


def value(worlds, pi, r):
    """V_U(pi) = Σ_e w[e] V_e(pi)."""
    worlds = us.worlds.as_world_set(worlds)
    return sum(w * world_value(world, pi, r) for w, world in zip(worlds.weights, worlds.worlds, strict=True))


def world_occupancy(world, pi):
    """d(pi)[s] = μ0ᵀ (I − γ P^pi)^{-1} for one TabularMDP."""
    P_pi = np.einsum("sa,sat->st", pi, world.transitions)
    return np.linalg.solve((np.eye(world.n_states) - world.gamma * P_pi).T, world.start)


def deterministic_tables(n_states, n_actions):
    """All A^S deterministic policies as one-hot tables, in itertools.product order (state 0 slowest)."""
    eye = np.eye(n_actions)
    return [eye[list(actions)] for actions in itertools.product(range(n_actions), repeat=n_states)]


def optimal_q(world_or_mean, r, n_iterations=3000):
    """Plain value iteration Q ← r + γ P max Q on a TabularMDP (or the averaged transitions of a WorldSet)."""
    worlds = us.worlds.as_world_set(world_or_mean)
    P = np.einsum("e,esat->sat", worlds.weights, worlds.transitions)
    q = np.zeros_like(r)
    for _ in range(n_iterations):
        q = r + worlds.gamma * np.einsum("sat,t->sa", P, q.max(axis=1))
    return q


@pytest.fixture
def brute():
    return SimpleNamespace(
        plain_world=plain_world,
        value=value,
        world_occupancy=world_occupancy,
        deterministic_tables=deterministic_tables,
        optimal_q=optimal_q,
    )
