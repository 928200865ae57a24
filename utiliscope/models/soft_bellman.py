r"""The soft Bellman fixed point, solved in numpy and differentiated by the implicit function theorem.

On the ζ-averaged dynamics ``P̄ = Σ_e w[e] P_e`` (exact for one world; with several it redraws the world at every
step, as :mod:`utiliscope.agents.planning` does), a reward ``r[s, a]`` and an inverse temperature β define

.. math::

    Q(s, a) = r(s, a) + γ \sum_{s'} P̄(s' | s, a) V(s'), \qquad
    V(s) = \frac{1}{β} \log \sum_a e^{β Q(s, a)},

and the Boltzmann policy ``log pi(a | s) = β (Q(s, a) − V(s))``.

:func:`soft_q_values` solves it by Newton's method, which for this equation is soft policy iteration: with
``pi = softmax(β Q)``, ``V ← (I − γ P_pi)^{-1} (r_pi + H_pi / β)`` (the entropy-regularised value of pi, with
``P_pi[s, s'] = Σ_a pi(a|s) P̄(s'|s, a)``, ``r_pi[s] = Σ_a pi(a|s) r(s, a)`` and the entropy
``H_pi[s] = −Σ_a pi(a|s) log pi(a|s)``), then ``Q ← r + γ P̄ V``. Each step raises V (soft policy improvement)
and converges quadratically near the fixed point (a few S × S solves, where the γ-contraction of
:func:`utiliscope.agents.planning.q_iteration` needs ``log(1e-12) / log γ`` backups): a sampler solves it at every
logp evaluation. :class:`SoftBellman` wraps the solver as a PyTensor ``Op`` whose gradient comes from the implicit
function theorem at the fixed point (:class:`SoftBellmanGrad`) rather than from unrolled iterations.

Both kernels are compiled with numba (a dependency of PyTensor), as numpy's per-call overhead dominated the
iteration (``benchmarks/results/nuts_performance.md``). The Ops also register numba implementations, so nutpie
calls the kernels directly instead of falling back to Python object mode, and :mod:`utiliscope.models.jax_ops`
registers JAX ones for the BlackJAX sampler.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import numba_funcify

from utiliscope.agents.planning import TOL
from utiliscope.worlds.mdp import as_world_set

#: Newton steps before giving up; soft policy iteration converges in a handful (at most ~20 at β·|r| ~ 1e3).
MAX_NEWTON_STEPS = 200


def log_policy(q: np.ndarray, beta: float) -> np.ndarray:
    """``log pi(a | s) = β Q(s, a) − log Σ_a' exp(β Q(s, a'))`` over the last axis (numpy)."""
    # Written out: scipy.special.logsumexp's dispatch costs far more than the arithmetic on these small tables.
    z = beta * q
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def log_policy_tensor(q, beta):
    """:func:`log_policy` on PyTensor tensors."""
    z = beta * q
    return z - pt.logsumexp(z, axis=-1, keepdims=True)


@numba.njit(cache=True)
def _policy_system(q, reward, transitions, gamma, beta):
    """``pi``, ``log pi``, ``I − γ P_pi`` and ``r_pi + H_pi / β`` of the softmax policy of a table ``q[S, A]``."""
    # Scalar loops: numba compiles them to tight code, where row slices would allocate a temporary each.
    S, A = q.shape
    log_pi = np.empty((S, A))
    pi = np.empty((S, A))
    system = np.eye(S)
    rhs = np.zeros(S)
    for s in range(S):
        top = beta * q[s, 0]
        for a in range(1, A):
            top = max(top, beta * q[s, a])
        total = 0.0
        for a in range(A):
            total += np.exp(beta * q[s, a] - top)
        log_total = np.log(total)
        for a in range(A):
            log_pi[s, a] = beta * q[s, a] - top - log_total
            pi[s, a] = np.exp(log_pi[s, a])
            rhs[s] += pi[s, a] * (reward[s, a] - log_pi[s, a] / beta)
            for t in range(S):
                system[s, t] -= gamma * pi[s, a] * transitions[s, a, t]
    return pi, log_pi, system, rhs


@numba.njit(cache=True)
def _soft_q_kernel(transitions, gamma, rewards, beta, tol, max_steps):
    """Soft policy iteration on each table of ``rewards[N, S, A]``; raises if a table does not converge."""
    N, S, A = rewards.shape
    flat = np.ascontiguousarray(transitions).reshape((S * A, S))
    out = np.empty((N, S, A))
    for n in range(N):
        reward = rewards[n]
        q = reward.copy()
        scale = np.abs(reward).max()
        for step in range(max_steps + 1):
            if step == max_steps:
                raise RuntimeError("soft policy iteration did not converge in MAX_NEWTON_STEPS Newton steps")
            _, _, system, rhs = _policy_system(q, reward, transitions, gamma, beta)
            new = reward + gamma * (flat @ np.linalg.solve(system, rhs)).reshape((S, A))
            change = np.abs(new - q).max()
            q = new
            if change <= tol * max(np.abs(q).max(), scale):
                break
        out[n] = q
    return out


@numba.njit(cache=True)
def _soft_q_vjp_kernel(transitions, gamma, q, beta, q_bar):
    """``(r̄, β̄)`` of :meth:`SoftBellman.L_op` for tables ``q[N, S, A]`` and output gradients ``q_bar[N, S, A]``."""
    N, S, A = q.shape
    flat = np.ascontiguousarray(transitions).reshape((S * A, S))
    r_bar = np.empty((N, S, A))
    beta_bar = 0.0
    for n in range(N):
        # The reward only enters the right-hand side, which the gradient does not use.
        pi, log_pi, system, _ = _policy_system(q[n], q[n], transitions, gamma, beta)
        u = gamma * (np.ascontiguousarray(q_bar[n]).reshape(S * A) @ flat)
        w = np.linalg.solve(np.ascontiguousarray(system.T), u)
        entropy = -(pi * log_pi).sum(axis=1)
        for s in range(S):
            r_bar[n, s] = q_bar[n, s] + w[s] * pi[s]
        beta_bar -= np.sum(w * entropy) / beta**2
    return r_bar, beta_bar


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


def _as_batch(array: np.ndarray) -> np.ndarray:
    """``array[..., S, A]`` as a contiguous float (N, S, A) stack."""
    return np.ascontiguousarray(array, dtype=float).reshape((-1, *array.shape[-2:]))


def soft_q_values(mean_transitions: np.ndarray, gamma: float, rewards: np.ndarray, beta: float) -> np.ndarray:
    r"""The soft Bellman fixed point ``Q[..., s, a]`` of each reward table, by soft policy iteration.

    Parameters
    ----------
    mean_transitions : ndarray, shape (S, A, S)
        P̄.
    gamma : float
        Discount in [0, 1).
    rewards : ndarray, shape (..., S, A)
        Reward tables; leading axes are solved one table at a time.
    beta : float
        Inverse temperature, > 0.

    Returns
    -------
    ndarray, shape (..., S, A)
        Q, to a largest change of ``TOL · max(max|Q|, max|r|)`` between the last two Newton steps.

    Raises
    ------
    RuntimeError
        If Newton's method has not converged after ``MAX_NEWTON_STEPS`` steps.
    """
    rewards = np.asarray(rewards, dtype=float)
    transitions = np.ascontiguousarray(mean_transitions, dtype=float)
    q = _soft_q_kernel(transitions, float(gamma), _as_batch(rewards), float(beta), TOL, MAX_NEWTON_STEPS)
    return q.reshape(rewards.shape)


def soft_q_vjp(
    mean_transitions: np.ndarray, gamma: float, q: np.ndarray, beta: float, q_bar: np.ndarray
) -> np.ndarray:
    r"""The reward gradient ``r̄[..., s, a]`` of a scalar whose gradient in the soft Q-values is ``q̄`` (numpy).

    The vector–Jacobian product of :func:`soft_q_values` at its fixed point ``q`` by the implicit function
    theorem, with one transposed linear solve per table (:class:`SoftBellmanGrad` gives the formula):
    ``r̄ = q̄ + w[s] pi(a|s)`` with ``w = (I − γ P_pi)^{-T} γ P̄ᵀ q̄``.

    Parameters
    ----------
    mean_transitions : ndarray, shape (S, A, S)
        P̄.
    gamma : float
        Discount in [0, 1).
    q : ndarray, shape (..., S, A)
        Soft Q-values from :func:`soft_q_values` with the same P̄, γ and β.
    beta : float
        Inverse temperature, > 0.
    q_bar : ndarray, shape (..., S, A)
        The gradient in ``q``.

    Returns
    -------
    ndarray, shape (..., S, A)
    """
    q = np.asarray(q, dtype=float)
    transitions = np.ascontiguousarray(mean_transitions, dtype=float)
    r_bar, _ = _soft_q_vjp_kernel(transitions, float(gamma), _as_batch(q), float(beta), _as_batch(q_bar))
    return r_bar.reshape(q.shape)


class SoftBellman(Op):
    r"""``Q = SoftBellman(worlds)(reward, beta)``: the soft Bellman fixed point as a differentiable PyTensor Op.

    Inputs ``reward[..., S, A]`` (float64; leading axes are a batch of tables) and the scalar ``beta``; output
    ``Q[..., S, A]`` (:func:`soft_q_values`).

    Why an Op: with PyTensor operations the iterations are unrolled (a ``scan``), and the graph and its gradient
    grow with their number, too slow inside NUTS (``benchmarks/results/nuts_performance.md``); here the forward
    pass is a few Newton steps and the gradient one linear solve (:class:`SoftBellmanGrad`).

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ; the Op plans on ``worlds.mean_transitions`` with ``worlds.gamma``.
    """

    # The world is an attribute, not a graph input, so the Op's identity must include it: as props, PyTensor's
    # equality and hash (graph merging) and str(op) (what jax_sampler.graph_fingerprint hashes, to cache compiled
    # functions) tell two worlds apart. An array cannot be a prop (unhashable, elementwise ==), hence its digest.
    __props__ = ("gamma", "transitions_digest")

    def __init__(self, worlds) -> None:
        worlds = as_world_set(worlds)
        self.mean_transitions = np.ascontiguousarray(worlds.mean_transitions, dtype=float)
        self.gamma = float(worlds.gamma)
        self.transitions_digest = array_digest(self.mean_transitions)

    def make_node(self, reward, beta) -> Apply:
        reward = pt.as_tensor_variable(reward, dtype="float64")
        beta = pt.as_tensor_variable(beta, dtype="float64")
        if reward.type.ndim < 2 or beta.type.ndim != 0:
            raise TypeError(
                f"SoftBellman takes reward[..., S, A] (got {reward.type.ndim} dims) and a scalar beta "
                f"(got {beta.type.ndim} dims)"
            )
        return Apply(self, [reward, beta], [reward.type()])

    def perform(self, node, inputs, output_storage) -> None:
        reward, beta = inputs
        output_storage[0][0] = soft_q_values(self.mean_transitions, self.gamma, reward, float(beta))

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        """Vector–Jacobian product by the implicit function theorem (:class:`SoftBellmanGrad`)."""
        return list(SoftBellmanGrad(self)(outputs[0], inputs[1], output_grads[0]))


class SoftBellmanGrad(Op):
    r"""``(r̄, β̄)``: the vector–Jacobian product of :class:`SoftBellman`, with one transposed linear solve.

    At the fixed point ``dV = Π dQ + ∂V/∂β dβ`` with ``Π[s, (s, a)] = pi(a|s)`` (the softmax is the Jacobian
    of the soft maximum) and ``∂V/∂β = −H_pi / β²``; with ``dQ = dr + γ P̄ dV`` this gives

        dV = (I − γ P_pi)^{-1} (Π dr − H_pi / β² dβ),    dQ = dr + γ P̄ dV.

    For an output gradient ``q̄[s, a]``: ``u = γ P̄ᵀ q̄`` (``u[s'] = γ Σ_{s,a} q̄[s, a] P̄(s'|s, a)``),
    ``w = (I − γ P_pi)^{-T} u``, and then ``r̄[s, a] = q̄[s, a] + w[s] pi(a|s)`` and
    ``β̄ = −Σ_s w[s] H_pi[s] / β²`` (summed over the batch). Inputs: Q, β and q̄.
    """

    __props__ = SoftBellman.__props__

    def __init__(self, forward: SoftBellman) -> None:
        self.mean_transitions = forward.mean_transitions
        self.gamma = forward.gamma
        self.transitions_digest = forward.transitions_digest

    def make_node(self, q, beta, q_bar) -> Apply:
        q, beta, q_bar = (pt.as_tensor_variable(x, dtype="float64") for x in (q, beta, q_bar))
        return Apply(self, [q, beta, q_bar], [q.type(), beta.type()])

    def perform(self, node, inputs, output_storage) -> None:
        q, beta, q_bar = inputs
        r_bar, beta_bar = _soft_q_vjp_kernel(
            self.mean_transitions, self.gamma, _as_batch(q), float(beta), _as_batch(q_bar)
        )
        output_storage[0][0] = r_bar.reshape(q.shape)
        output_storage[1][0] = np.asarray(beta_bar)

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0], ()]


@numba_funcify.register(SoftBellman)
def _numba_soft_bellman(op, node=None, **kwargs):
    transitions, gamma = op.mean_transitions, op.gamma
    S, A = transitions.shape[:2]

    @numba.njit
    def soft_bellman(reward, beta):
        rewards = np.ascontiguousarray(reward).reshape((-1, S, A))
        return _soft_q_kernel(transitions, gamma, rewards, beta.item(), TOL, MAX_NEWTON_STEPS).reshape(
            reward.shape
        )

    return soft_bellman


@numba_funcify.register(SoftBellmanGrad)
def _numba_soft_bellman_grad(op, node=None, **kwargs):
    transitions, gamma = op.mean_transitions, op.gamma
    S, A = transitions.shape[:2]

    @numba.njit
    def soft_bellman_grad(q, beta, q_bar):
        r_bar, beta_bar = _soft_q_vjp_kernel(
            transitions,
            gamma,
            np.ascontiguousarray(q).reshape((-1, S, A)),
            beta.item(),
            np.ascontiguousarray(q_bar).reshape((-1, S, A)),
        )
        return r_bar.reshape(q.shape), np.asarray(beta_bar)

    return soft_bellman_grad


def soft_q_tensor(worlds, reward, beta):
    """In-graph soft Bellman Q of a reward tensor ``reward[..., S, A]`` at inverse temperature ``beta``."""
    return SoftBellman(worlds)(reward, beta)


__all__ = [
    "MAX_NEWTON_STEPS",
    "SoftBellman",
    "SoftBellmanGrad",
    "array_digest",
    "log_policy",
    "log_policy_tensor",
    "soft_q_tensor",
    "soft_q_values",
    "soft_q_vjp",
]
