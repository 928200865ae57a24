"""Builders of standard worlds: gridworlds drawn as text, and random Garnet MDPs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from utiliscope._validation import check_array_size, check_count, check_gamma, check_positive, rng_from
from utiliscope.worlds.mdp import TabularMDP
from utiliscope.worlds.sparse import SparseTransitions, direct_solve_is_faster

#: Gridworld actions, in order, as (row, column) steps.
GRID_ACTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "right": (0, 1),
    "down": (1, 0),
    "left": (0, -1),
    "stay": (0, 0),
}
WALL, START, EMPTY = "#", "S", "."


def transitions_from_tables(next_states, probabilities, gamma: float, sparse: bool | None = None):
    """The transitions listed by ``(next_states, probabilities)`` tables, sparse or dense.

    ``sparse=None`` makes the world dense where evaluating its policies by a direct solve is faster
    (:func:`~utiliscope.worlds.sparse.direct_solve_is_faster`: about 70 states for a gridworld at γ = 0.9) and
    keeps it sparse above; ``True`` or ``False`` forces one.
    """
    table = SparseTransitions(next_states, probabilities)
    keep = not direct_solve_is_faster(table, check_gamma(gamma)) if sparse is None else bool(sparse)
    return table if keep else table.to_dense()


def gridworld(
    layout: Sequence[str], slip: float = 0.1, gamma: float = 0.9, sparse: bool | None = None
) -> TabularMDP:
    """A gridworld drawn as text.

    Each string is a row. ``#`` is a wall, ``S`` the start cell, ``.`` an empty cell, and any other letter a
    cell of that feature colour. The states are the non-wall cells in reading order, named ``"r{row}c{col}"``;
    the actions are up, right, down, left, stay. With probability ``1 - slip`` the chosen action is carried out;
    with probability ``slip`` an action drawn uniformly from all five is carried out instead (so the intended
    move happens with probability ``1 - slip + slip/5``). A move into a wall or off the grid stays put. The
    start distribution is a point mass on ``S`` if present, else uniform over free cells. Features are one-hot
    state features, one per colour letter, in alphabetical order (``S`` and ``.`` cells have none).

    Parameters
    ----------
    layout : sequence of str
        Rows of equal length.
    slip : float
        Probability in [0, 1] of a uniformly random action.
    gamma : float
        Discount in [0, 1).
    sparse : bool, optional
        Hold the transitions sparse (each (s, a) reaches at most 5 cells). Default: sparse where evaluation is
        faster so (:func:`transitions_from_tables`), from about 70 cells at γ = 0.9.

    Returns
    -------
    TabularMDP
        With ``features[s, k]`` one-hot colours and ``feature_names`` the colour letters.

    Examples
    --------
    >>> import utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", ".#b"], slip=0.1)
    >>> world.n_states, world.n_actions, world.feature_names
    (5, 5, ('a', 'b'))
    """
    if isinstance(layout, str) or not layout:
        raise ValueError("layout must be a non-empty list of strings, one per row, e.g. ['S.a', '.#b']")
    rows = [str(row) for row in layout]
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width or width == 0:
            raise ValueError(
                f"layout[{i}] has {len(row)} cells but layout[0] has {width}; rows must be equally long"
            )
        for j, char in enumerate(row):
            if not (char in (WALL, EMPTY) or char.isalpha()):
                raise ValueError(
                    f"layout[{i}][{j}] is {char!r}; use '#' for walls, '.' for empty, 'S' for the start "
                    "and letters for feature colours"
                )
    slip = check_positive(slip, "slip", allow_zero=True)
    if slip > 1:
        raise ValueError(f"slip is {slip}; it is a probability and must lie in [0, 1]")
    cells = [(i, j) for i, row in enumerate(rows) for j, char in enumerate(row) if char != WALL]
    if not cells:
        raise ValueError("layout has no free cells; at least one cell must not be '#'")
    index = {cell: s for s, cell in enumerate(cells)}
    starts = [index[(i, j)] for i, row in enumerate(rows) for j, c in enumerate(row) if c == START]
    if len(starts) > 1:
        raise ValueError(f"layout has {len(starts)} start cells 'S'; give at most one")
    colours = sorted({c for row in rows for c in row if c.isalpha() and c != START})

    n_states, n_actions = len(cells), len(GRID_ACTIONS)
    moves = np.zeros((n_states, n_actions), dtype=int)
    for s, (i, j) in enumerate(cells):
        for a, (di, dj) in enumerate(GRID_ACTIONS.values()):
            moves[s, a] = index.get((i + di, j + dj), s)
    # Successors of (s, a): the intended move with 1 − slip, then every action's move with slip / A.
    next_states = np.concatenate([moves[:, :, None], np.repeat(moves[:, None, :], n_actions, axis=1)], axis=2)
    probabilities = np.full(next_states.shape, slip / n_actions)
    probabilities[:, :, 0] = 1.0 - slip
    start = np.zeros(n_states)
    if starts:
        start[starts[0]] = 1.0
    else:
        start[:] = 1.0 / n_states
    features = np.zeros((n_states, len(colours)))
    for s, (i, j) in enumerate(cells):
        if rows[i][j] in colours:
            features[s, colours.index(rows[i][j])] = 1.0
    return TabularMDP(
        transitions_from_tables(next_states, probabilities, gamma, sparse),
        start,
        gamma,
        features=features if colours else None,
        state_names=[f"r{i}c{j}" for i, j in cells],
        action_names=list(GRID_ACTIONS),
        feature_names=colours,
    )


def from_arrays(
    next_states,
    probabilities,
    features,
    start,
    gamma: float,
    state_names: Sequence[str] | None = None,
    action_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    sparse: bool | None = None,
) -> TabularMDP:
    """A world from transition tables: ``P(next_states[s, a, b] | s, a) = probabilities[s, a, b]``.

    The form of table-converted environments: each (s, a) lists B possible next states and their
    probabilities (pad shorter lists with probability 0; a next state listed twice has its probabilities added).

    Parameters
    ----------
    next_states : array_like of int, shape (S, A, B)
        Next-state indices in 0..S−1.
    probabilities : array_like, shape (S, A, B)
        Non-negative; each ``probabilities[s, a]`` sums to 1.
    features : array_like, shape (S, K) or (S, A, K), or None
    start : array_like, shape (S,)
        Start distribution.
    gamma : float
        Discount in [0, 1).
    state_names, action_names, feature_names : sequence of str, optional
    sparse : bool, optional
        Keep the tables as they are (no S×A×S array); default sparse where evaluation is faster so
        (:func:`transitions_from_tables`).

    Examples
    --------
    >>> import utiliscope as us
    >>> world = us.worlds.from_arrays([[[1], [0]], [[1], [1]]], [[[1.0], [1.0]], [[1.0], [1.0]]], None,
    ...                               start=[1, 0], gamma=0.9)
    >>> world.n_states, world.n_actions
    (2, 2)
    """
    transitions = transitions_from_tables(next_states, probabilities, gamma, sparse)
    return TabularMDP(transitions, start, gamma, features, state_names, action_names, feature_names)


def garnet(
    n_states: int,
    n_actions: int,
    branching: int,
    gamma: float = 0.9,
    n_features: int = 4,
    seed: int = 0,
    sparse: bool | None = None,
) -> TabularMDP:
    """A random Garnet MDP (Archibald et al. 1995) with random state features.

    Each (s, a) leads to ``branching`` distinct next states drawn uniformly, with probabilities from a flat
    Dirichlet. The start distribution is uniform. Features are standard normal, ``features[s, k]``.

    Parameters
    ----------
    n_states, n_actions : int
        S ≥ 1 and A ≥ 1.
    branching : int
        Next states per (s, a), 1 ≤ branching ≤ S.
    gamma : float
        Discount in [0, 1).
    n_features : int
        K ≥ 1 features.
    seed : int
        Seed of the generator; the same seed gives the same MDP.
    sparse : bool, optional
        Hold the transitions sparse; default sparse where evaluation is faster so
        (:func:`transitions_from_tables`). The same MDP either way.
    """
    n_states = check_count(n_states, "n_states")
    n_actions = check_count(n_actions, "n_actions")
    branching = check_count(branching, "branching")
    n_features = check_count(n_features, "n_features")
    check_gamma(gamma)
    if branching > n_states:
        raise ValueError(f"branching is {branching}; it must be at most n_states ({n_states})")
    rng = rng_from(seed)
    if sparse is False:
        what, fix = f"a dense garnet of {n_states:,} states", "lower n_states or n_actions, or leave sparse=None"
        check_array_size((n_states, n_actions, n_states), float, what, fix)
    next_states = np.zeros((n_states, n_actions, branching), dtype=np.intp)
    probabilities = np.zeros((n_states, n_actions, branching))
    for s in range(n_states):
        for a in range(n_actions):
            next_states[s, a] = rng.choice(n_states, size=branching, replace=False)
            probabilities[s, a] = rng.dirichlet(np.ones(branching))
    features = rng.standard_normal((n_states, n_features))
    transitions = transitions_from_tables(next_states, probabilities, gamma, sparse)
    return TabularMDP(transitions, np.full(n_states, 1.0 / n_states), gamma, features=features)


__all__ = ["GRID_ACTIONS", "from_arrays", "garnet", "gridworld", "transitions_from_tables"]
