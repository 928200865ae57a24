r"""Exact policy evaluation: occupancy measures, expected utilities V_U(pi) and feature expectations mu(pi).

For a world set ζ with weights w[e], a policy pi and a reward r[s, a] (docs/model.md#worlds-policies-and-values)

.. math::

    V_U(\pi) = \sum_e w_e\, d_e(\pi)\, r_\pi, \qquad
    d_e(\pi) = \mu_{0,e}^\top (I - \gamma P_e^\pi)^{-1}.

Everything here goes through the discounted state–action occupancy averaged over worlds,
``rho[s, a] = Σ_e w[e] d_e[s] pi[s, a]`` (it sums to 1/(1 − γ)), so that ``V = Σ rho · r`` for any reward and
``mu(pi) = Σ rho · phi`` for linear utilities. Stacks of policies are solved together: dense worlds (and sparse
ones where it is faster, :func:`~utiliscope.worlds.sparse.direct_solve_is_faster`) in one batched direct solve,
larger sparse worlds by the batched iteration ``d ← μ0 + γ d P^pi`` on a sparse matrix (:func:`iterate_occupancy`,
relative error at most :data:`~utiliscope.worlds.sparse.ITERATION_TOL`).
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np

from utiliscope._validation import as_float_array, check_array_size, check_probability_rows
from utiliscope.worlds.mdp import WorldSet, as_world_set
from utiliscope.worlds.sparse import SparseTransitions, direct_solve_is_faster, iteration_count

#: Policies solved together in one block of the batched elimination (keeps the working set in cache).
CHUNK = 8192
#: The most bytes one block's linear systems take (S × S × worlds × policies floats): large worlds get smaller
#: blocks rather than an allocation past memory (a 3,000-state garnet asked for 13.4 GiB at once).
BLOCK_BYTES = 2**30
#: Largest number of states solved by the hand-written elimination; larger systems go to LAPACK's batched solve,
#: which is as fast at 8 states and 2-9x faster from 16 to 96 (benchmarks/results/linear_solve.md).
HAND_SOLVE_MAX_STATES = 12
#: Bytes of the per-iteration flow array ``d[s] pi[s, a]`` of one block of policies in the sparse iteration.
ITERATION_BLOCK_BYTES = 2**27


def block_size(worlds: WorldSet) -> int:
    """Policies per block: :data:`CHUNK`, fewer where their systems would pass :data:`BLOCK_BYTES`; a
    ValueError before allocation where even one policy's systems pass the package's array limit."""
    per_policy = worlds.n_states**2 * worlds.n_worlds * np.dtype(float).itemsize
    check_array_size(
        (worlds.n_states, worlds.n_states, worlds.n_worlds),
        float,
        f"valuing a policy on {worlds.n_states:,} states in {worlds.n_worlds} world(s)",
        "use worlds with fewer states",
    )
    return int(max(1, min(CHUNK, BLOCK_BYTES // per_policy)))


def check_policy(policy, n_states: int, n_actions: int, name: str = "policy") -> np.ndarray:
    """Validate a tabular policy ``pi[s, a]`` (or a stack ``pi[m, s, a]``): shape, finiteness, rows sum to 1."""
    table = as_float_array(policy, name, ndim=(2, 3))
    if table.shape[-2:] != (n_states, n_actions):
        raise ValueError(
            f"{name} has shape {table.shape}; it must end in ({n_states}, {n_actions}), states by actions"
        )
    check_probability_rows(table, name)
    return table


def check_reward(reward, n_states: int, n_actions: int, name: str = "reward") -> np.ndarray:
    """Validate a reward ``r[s]`` or ``r[s, a]`` (or a stack of them) and return it as ``r[..., s, a]``.

    A state reward is broadcast over actions. A stack is ``r[n, s]`` or ``r[n, s, a]``; a 2-d array of shape
    (S, A) is read as one state–action reward.
    """
    r = as_float_array(reward, name, ndim=(1, 2, 3))
    if r.ndim == 1 or (r.ndim == 2 and r.shape != (n_states, n_actions)):
        if r.shape[-1] != n_states:
            raise ValueError(f"{name} has shape {r.shape}; it must be ({n_states},) or ({n_states}, {n_actions})")
        return np.repeat(r[..., None], n_actions, axis=-1)
    if r.shape[-2:] != (n_states, n_actions):
        raise ValueError(f"{name} has shape {r.shape}; it must be ({n_states},) or ({n_states}, {n_actions})")
    return r


def _stacked_policies(policies, n_states: int, n_actions: int) -> tuple[np.ndarray, bool]:
    """Return ``(policies, deterministic)``: integer action indices ``[m, s]`` or tables ``[m, s, a]``."""
    array = np.asarray(policies)
    if np.issubdtype(array.dtype, np.integer):
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != n_states:
            raise ValueError(
                f"policies has shape {array.shape}; integer policies are action indices [m, s] "
                f"with s = {n_states} states"
            )
        outside = (array < 0) | (array >= n_actions)
        if outside.any():
            index = tuple(int(i) for i in np.argwhere(outside)[0])
            raise ValueError(
                f"policies{list(index)} is {array[index]}, an action index outside 0..{n_actions - 1}; "
                "give action indices of these worlds' actions (or tables pi[m, s, a])"
            )
        return array, True
    table = check_policy(array, n_states, n_actions, name="policies")
    return (table[None] if table.ndim == 2 else table), False


def _solve_columns(B: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``B[:, :, m] x[:, m] = b[:, m]`` for every m by Gaussian elimination without pivoting.

    Written by hand because ``numpy.linalg.solve`` pays LAPACK's per-matrix overhead on each of thousands of
    tiny systems (``benchmarks/results/linear_solve.md``). No pivoting is needed: ``B = (I − γ
    P^pi)^T`` is column diagonally dominant, for which elimination without pivoting is backward stable.
    ``B`` and ``b`` are overwritten.
    """
    n = B.shape[0]
    for k in range(n - 1):
        factor = B[k + 1 :, k] / B[k, k]
        B[k + 1 :, k + 1 :] -= factor[:, None, :] * B[k, k + 1 :][None]
        b[k + 1 :] -= factor * b[k]
    x = np.empty_like(b)
    for k in range(n - 1, -1, -1):
        x[k] = (b[k] - np.einsum("jm,jm->m", B[k, k + 1 :], x[k + 1 :])) / B[k, k]
    return x


def _dense_occupancy(
    transitions: np.ndarray, incoming: np.ndarray, starts: np.ndarray, gamma: float, block, deterministic: bool
) -> np.ndarray:
    """``d[s, e, m] = μ0_eᵀ (I − γ P_e^{pi_m})^{-1}`` for dense ``P[e, s, a, s']``, all worlds solved together."""
    S, E, m = transitions.shape[1], transitions.shape[0], block.shape[0]
    # B[i, j, (e, m)] = δ_ij − γ P_e^{pi_m}[j, i]: the transposed systems of every world side by side.
    B = np.empty((S, S, E * m))
    for e, P in enumerate(transitions):
        if deterministic:
            B[:, :, e * m : (e + 1) * m] = incoming[e][:, np.arange(S)[:, None], block.T]
        else:
            B[:, :, e * m : (e + 1) * m] = np.einsum("msa,sat->tsm", block, P)
    B *= -gamma
    B[np.arange(S), np.arange(S)] += 1.0
    b = np.repeat(starts.T, m, axis=1)
    if S <= HAND_SOLVE_MAX_STATES:
        d = _solve_columns(B, b)
    else:
        d = np.linalg.solve(np.moveaxis(B, -1, 0), b.T[:, :, None])[:, :, 0].T
    return d.reshape(S, E, m)


def iterate_occupancy(
    transitions: SparseTransitions, start: np.ndarray, gamma: float, block, deterministic: bool
) -> np.ndarray:
    r"""``d[m, s]``, the discounted state occupancy of each policy in one world, by batched iteration.

    Starting from ``d = μ0``, :func:`iteration_count` sweeps of ``d ← μ0 + γ Σ_a (d ⊙ pi_a) P_a`` give
    ``Σ_{t ≤ n} μ0ᵀ (γ P^pi)^t``. The mass left out is exactly ``γ^(n+1)/(1 − γ)`` (P^pi is stochastic), so
    the relative error of every value ``d · r_pi`` is at most :data:`~utiliscope.worlds.sparse.ITERATION_TOL`.
    Each sweep multiplies a ``(S, S·A)`` sparse matrix into the flows of a block of policies; nothing S×S is
    formed.
    """
    S, A, _ = transitions.shape
    incoming = transitions.incoming
    n_sweeps = iteration_count(gamma)
    size = max(1, ITERATION_BLOCK_BYTES // (8 * S * A))
    out = np.empty((block.shape[0], S))
    for i in range(0, block.shape[0], size):
        part = block[i : i + size]
        m = part.shape[0]
        if deterministic:
            pi = np.zeros((S, A, m))
            pi[np.arange(S)[:, None], part.T, np.arange(m)] = 1.0
        else:
            pi = np.ascontiguousarray(np.transpose(part, (1, 2, 0)))
        d = np.repeat(start[:, None], m, axis=1)
        for _ in range(n_sweeps):
            d = start[:, None] + gamma * (incoming @ (d[:, None, :] * pi).reshape(S * A, m))
        out[i : i + size] = d.T
    return out


@singledispatch
def _world_occupancy(transitions, start: np.ndarray, gamma: float, block, deterministic: bool) -> np.ndarray:
    """``d[m, s]`` of one dense world, by the direct solve."""
    P = np.asarray(transitions)[None]
    incoming = np.ascontiguousarray(np.transpose(P, (0, 3, 1, 2))) if deterministic else None
    return _dense_occupancy(P, incoming, start[None], gamma, block, deterministic)[:, 0].T


@_world_occupancy.register
def _(transitions: SparseTransitions, start: np.ndarray, gamma: float, block, deterministic: bool) -> np.ndarray:
    """``d[m, s]`` of one sparse world: densified and solved directly when small, else iterated."""
    if direct_solve_is_faster(transitions, gamma):
        return _world_occupancy(transitions.to_dense(), start, gamma, block, deterministic)
    return iterate_occupancy(transitions, start, gamma, block, deterministic)


def _state_occupancy_block(worlds: WorldSet, block: np.ndarray, deterministic: bool) -> np.ndarray:
    """``D[m, s] = Σ_e w[e] d_e(pi_m)[s]`` for one block of policies."""
    if isinstance(worlds.transitions, np.ndarray):  # every world dense: all solved in one batch
        incoming = worlds.incoming if deterministic else None
        d = _dense_occupancy(worlds.transitions, incoming, worlds.starts, worlds.gamma, block, deterministic)
        return np.einsum("sem,e->ms", d, worlds.weights)
    parts = (
        w * _world_occupancy(world.transitions, world.start, worlds.gamma, block, deterministic)
        for w, world in zip(worlds.weights, worlds.worlds, strict=True)
    )
    return sum(parts)


def state_occupancy(worlds, policies) -> np.ndarray:
    r"""World-averaged discounted state occupancy ``D[m, s] = Σ_e w[e] μ0_eᵀ (I − γ P_e^{pi_m})^{-1}``.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like
        Tables ``pi[m, s, a]`` (or one ``pi[s, a]``), or integer action indices ``a[m, s]`` for deterministic
        policies.

    Returns
    -------
    ndarray, shape (M, S)
        Each row sums to 1/(1 − γ).
    """
    worlds = as_world_set(worlds)
    stack, deterministic = _stacked_policies(policies, worlds.n_states, worlds.n_actions)
    chunk = block_size(worlds)
    blocks = [
        _state_occupancy_block(worlds, stack[i : i + chunk], deterministic)
        for i in range(0, stack.shape[0], chunk)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, worlds.n_states))


def occupancy(worlds, policies) -> np.ndarray:
    """World-averaged state–action occupancy ``rho[m, s, a] = D[m, s] · pi_m[s, a]`` (sums to 1/(1 − γ)).

    See :func:`state_occupancy` for the arguments.
    """
    worlds = as_world_set(worlds)
    stack, deterministic = _stacked_policies(policies, worlds.n_states, worlds.n_actions)
    D = state_occupancy(worlds, stack)
    if deterministic:
        rho = np.zeros((*stack.shape, worlds.n_actions))
        np.put_along_axis(rho, stack[..., None], D[..., None], axis=-1)
        return rho
    return D[..., None] * stack


def stationary_equivalent(worlds, policies, weights) -> np.ndarray:
    r"""The stationary policy with the world-averaged occupancy of a mixture of policies.

    A mixture draws policy ``pi_j`` with probability ``v_j`` once per episode. The returned policy is

    .. math::

        \pi[s, a] = \frac{\sum_j v_j\, \rho_j[s, a]}{\sum_j v_j\, D_j[s]},

    with uniform rows where no policy of the mixture visits ``s``. For one world it has exactly the mixture's
    occupancy and value (a stationary policy reproduces any occupancy measure); with several worlds it matches
    only the ζ-averaged occupancy, so its value can differ.
    """
    worlds = as_world_set(worlds)
    stack, deterministic = _stacked_policies(policies, worlds.n_states, worlds.n_actions)
    tables = np.eye(worlds.n_actions)[stack] if deterministic else stack
    D = np.asarray(weights, dtype=float)[:, None] * state_occupancy(worlds, stack)
    visits = D.sum(axis=0)
    rho = np.einsum("ms,msa->sa", D, tables)
    visited = visits > 0
    pi = np.full(rho.shape, 1.0 / rho.shape[1])
    pi[visited] = rho[visited] / visits[visited, None]
    return pi


def evaluate_policies(worlds, policies, reward) -> np.ndarray:
    """Expected utilities ``V_U(pi_m)`` of a stack of policies, for one reward or a stack of rewards.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like
        Tables ``pi[m, s, a]`` or integer action indices ``a[m, s]`` (see :func:`state_occupancy`).
    reward : array_like
        ``r[s]``, ``r[s, a]``, or a stack ``r[n, s]`` / ``r[n, s, a]``.

    Returns
    -------
    ndarray
        Shape (M,) for one reward, (M, N) for a stack.
    """
    worlds = as_world_set(worlds)
    S, A = worlds.n_states, worlds.n_actions
    r = check_reward(reward, S, A)
    stack, deterministic = _stacked_policies(policies, S, A)
    flat = r.reshape(-1, S * A)
    values = np.empty((stack.shape[0], flat.shape[0]))
    chunk = block_size(worlds)
    for i in range(0, stack.shape[0], chunk):
        block = stack[i : i + chunk]
        D = _state_occupancy_block(worlds, block, deterministic)
        if deterministic:
            # V[m, n] = Σ_s D[m, s] r_n[s, a_m(s)]: no dense occupancy needed.
            values[i : i + chunk] = np.einsum("ms,nms->mn", D, flat[:, np.arange(S) * A + block])
        else:
            rho = D[..., None] * block
            values[i : i + chunk] = rho.reshape(rho.shape[0], S * A) @ flat.T
    return values[:, 0] if r.ndim == 2 else values


def evaluate(worlds, policy, reward) -> float:
    """``V_U(pi) = Σ_e w[e] d_e(pi) · r_pi``, the expected discounted utility of one policy.

    See docs/model.md#worlds-policies-and-values.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policy : array_like, shape (S, A)
        Rows sum to 1.
    reward : array_like, shape (S,) or (S, A)

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.garnet(4, 2, 2, seed=1)
    >>> round(us.evaluate(world, np.full((4, 2), 0.5), np.ones(4)), 6)  # 1 / (1 - gamma)
    10.0
    """
    worlds = as_world_set(worlds)
    table = check_policy(policy, worlds.n_states, worlds.n_actions)
    if table.ndim != 2:
        raise ValueError(f"policy has shape {table.shape}; pass one table pi[s, a] (use evaluate_policies)")
    table_reward = check_reward(reward, worlds.n_states, worlds.n_actions)
    if table_reward.ndim != 2:
        raise ValueError(f"reward has shape {np.shape(reward)}; pass one reward (use evaluate_policies)")
    return float(evaluate_policies(worlds, table[None], table_reward)[0])


def feature_expectations(worlds, policies, features=None) -> np.ndarray:
    """Discounted feature expectations ``mu[m, k] = Σ_{s,a} rho[m, s, a] phi[s, a, k]``.

    ``V_U(pi) = mu(pi) · theta`` for a linear utility ``r = phi @ theta``, and ``mu`` does not depend on theta:
    compute it once for any fixed set of policies.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    policies : array_like
        As for :func:`state_occupancy`.
    features : array_like, shape (S, K) or (S, A, K), optional
        Defaults to the worlds' features.
    """
    worlds = as_world_set(worlds)
    return evaluate_policies(worlds, policies, np.moveaxis(feature_table(worlds, features), -1, 0))


def feature_table(worlds, features=None) -> np.ndarray:
    """Features as ``phi[s, a, k]``: the given ones (or the worlds' own), checked and broadcast over actions.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
    features : array_like, shape (S, K) or (S, A, K), optional
        Defaults to the worlds' features; state features ``phi[s, k]`` are repeated for every action.

    Raises
    ------
    ValueError
        If neither ``features`` nor the worlds give features, or their shape does not fit the worlds' S and A.
    """
    worlds = as_world_set(worlds)
    phi = worlds.features if features is None else as_float_array(features, "features", ndim=(2, 3))
    if phi is None:
        raise ValueError("features is None and the worlds have no features; pass features=phi[s, (a,) k]")
    S, A = worlds.n_states, worlds.n_actions
    if phi.shape[0] != S or (phi.ndim == 3 and phi.shape[1] != A):
        raise ValueError(f"features has shape {phi.shape}; it must be ({S}, K) or ({S}, {A}, K)")
    if phi.ndim == 2:
        phi = np.repeat(phi[:, None, :], A, axis=1)
    return phi


__all__ = [
    "check_policy",
    "check_reward",
    "evaluate",
    "evaluate_policies",
    "feature_expectations",
    "feature_table",
    "iterate_occupancy",
    "occupancy",
    "state_occupancy",
    "stationary_equivalent",
]
