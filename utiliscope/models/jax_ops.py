r"""JAX implementations of the PyTensor Ops that PyTensor's JAX backend lacks; imported for their registration.

:mod:`utiliscope.models.jax_sampler` turns a model's log density into JAX with ``jax_funcify``, which knows
PyTensor's own Ops but neither this package's Ops nor every special function. They are written here by hand:

* ``Erfcx`` (the scaled complementary error function), which PyTensor's JAX backend has only through TensorFlow
  Probability, not a dependency;
* :class:`~utiliscope.models.soft_bellman.SoftBellman`, the soft Bellman fixed point ``Q`` of a reward at an
  inverse temperature β, and :class:`~utiliscope.models.soft_bellman.SoftBellmanGrad`, its vector–Jacobian
  product, which have only Python and numba implementations.

The soft Bellman forward pass is the numba kernel's soft policy iteration (Newton's method on V) as one
``jax.lax.while_loop`` over a stack of reward tables: each step solves the batch of S × S systems
``(I − γ P_pi) V = r_pi + H_pi / β`` with one batched ``jnp.linalg.solve`` (a ``vmap`` of solves hung
XLA's CPU runtime) and sets ``Q ← r + γ P̄ V``; a table stops changing once its largest change
is at most ``TOL · max(max|Q|, max|r|)``, the numba kernel's stopping rule. A reverse-mode derivative of a while
loop does not exist in JAX, so the function carries a ``jax.custom_vjp`` whose backward pass is the implicit
function theorem's transposed solve (:class:`~utiliscope.models.soft_bellman.SoftBellmanGrad`), the same one
PyTensor's gradient uses.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.scalar.math import Erfcx

from utiliscope.agents.planning import TOL

# Imported for its side effect: 64-bit floats and the CPU devices, set before JAX's first computation.
from utiliscope.models import jax_setup  # noqa: F401
from utiliscope.models.soft_bellman import MAX_NEWTON_STEPS, SoftBellman, SoftBellmanGrad

#: Where the JAX erfcx switches from the log-normal-CDF form to the asymptotic series.
ERFCX_SERIES_FROM = 8.0
ERFCX_SERIES_TERMS = 13


@jax_funcify.register(Erfcx)
def _jax_erfcx(op, **kwargs):
    r"""``erfcx(x) = exp(x²) erfc(x)``, which PyTensor's JAX backend has only through TensorFlow Probability (not
    a dependency). Below :data:`ERFCX_SERIES_FROM` (8) it is ``exp(x² + log 2 + log Φ(−√2 x))`` (relative error
    below 5e-14 there: JAX's ``log_ndtr`` loses accuracy further out); above, the asymptotic series
    ``Σ_{k<13} (−1)^k (2k−1)!! / (2x²)^k / (x √π)``, within 3e-15 from x = 8 on."""

    def erfcx(x):
        small = jnp.minimum(x, ERFCX_SERIES_FROM)
        direct = jnp.exp(small * small + math.log(2.0) + log_ndtr(-math.sqrt(2.0) * small))
        large = jnp.maximum(x, ERFCX_SERIES_FROM)
        u = 1.0 / (2.0 * large * large)
        term = series = jnp.ones_like(large)
        for k in range(1, ERFCX_SERIES_TERMS):
            term = -(2 * k - 1) * u * term
            series = series + term
        return jnp.where(x < ERFCX_SERIES_FROM, direct, series / (large * math.sqrt(math.pi)))

    return erfcx


def _solve(system, rhs):
    """``x[n] = system[n]^{-1} rhs[n]`` for stacks ``system[N, S, S]``, ``rhs[N, S]``: one batched solve."""
    return jnp.linalg.solve(system, rhs[..., None])[..., 0]


def _policy_system(q, transitions, gamma: float, beta):
    """``pi``, ``log pi`` and ``I − γ P_pi`` of the softmax policies of stacked tables ``q[N, S, A]``."""
    z = beta * q
    log_pi = z - jax.nn.logsumexp(z, axis=-1, keepdims=True)
    pi = jnp.exp(log_pi)
    system = jnp.eye(q.shape[-2]) - gamma * jnp.einsum("nsa,sat->nst", pi, transitions)
    return pi, log_pi, system


def soft_q_batch(transitions, gamma: float, rewards, beta):
    """The soft Bellman fixed points of ``rewards[N, S, A]`` by soft policy iteration; NaN where one fails.

    Parameters
    ----------
    transitions : array, shape (S, A, S)
        P̄.
    gamma : float
        Discount in [0, 1).
    rewards : array, shape (N, S, A)
        Reward tables.
    beta : scalar array
        Inverse temperature, > 0.

    Returns
    -------
    array, shape (N, S, A)
        Q of each table, held fixed from the Newton step whose largest change was at most
        ``TOL · max(max|Q|, max|r|)`` on; a table not converged after ``MAX_NEWTON_STEPS`` steps is NaN (the
        numba kernel raises instead; inside a sampler a NaN log density rejects the proposal).
    """
    scale = jnp.max(jnp.abs(rewards), axis=(1, 2))

    def newton_step(carry):
        q, step, done = carry
        pi, log_pi, system = _policy_system(q, transitions, gamma, beta)
        value = _solve(system, jnp.sum(pi * (rewards - log_pi / beta), axis=-1))
        new = rewards + gamma * jnp.einsum("sat,nt->nsa", transitions, value)
        change = jnp.max(jnp.abs(new - q), axis=(1, 2))
        converged = change <= TOL * jnp.maximum(jnp.max(jnp.abs(new), axis=(1, 2)), scale)
        return jnp.where(done[:, None, None], q, new), step + 1, done | converged

    def unfinished(carry):
        _, step, done = carry
        return (step < MAX_NEWTON_STEPS) & ~jnp.all(done)

    start = (rewards, jnp.asarray(0), jnp.zeros(rewards.shape[0], dtype=bool))
    q, _, done = jax.lax.while_loop(unfinished, newton_step, start)
    return jnp.where(done[:, None, None], q, jnp.nan)


def soft_q_vjp_batch(transitions, gamma: float, q, beta, q_bar):
    """``(r̄[N, S, A], β̄)`` of :class:`~utiliscope.models.soft_bellman.SoftBellmanGrad` for stacked fixed points.

    ``u = γ P̄ᵀ q̄``, ``w = (I − γ P_pi)^{-T} u`` (one batched solve), ``r̄ = q̄ + w pi`` and
    ``β̄ = −Σ_{n,s} w[n, s] H_pi[n, s] / β²``.
    """
    pi, log_pi, system = _policy_system(q, transitions, gamma, beta)
    u = gamma * jnp.einsum("nsa,sat->nt", q_bar, transitions)
    w = _solve(jnp.swapaxes(system, -1, -2), u)
    entropy = -jnp.sum(pi * log_pi, axis=-1)
    return q_bar + w[..., None] * pi, -jnp.sum(w * entropy) / beta**2


def soft_bellman_vjp_function(mean_transitions, gamma: float):
    """``vjp(q[..., S, A], beta, q_bar[..., S, A]) -> (r̄, β̄)``: :func:`soft_q_vjp_batch` on any leading axes."""
    transitions = jnp.asarray(mean_transitions)
    table = transitions.shape[:2]

    def vjp(q, beta, q_bar):
        r_bar, beta_bar = soft_q_vjp_batch(
            transitions, gamma, q.reshape(-1, *table), beta, q_bar.reshape(-1, *table)
        )
        return r_bar.reshape(q.shape), jnp.reshape(beta_bar, jnp.shape(beta))

    return vjp


def soft_bellman_function(mean_transitions, gamma: float):
    """``soft_q(reward[..., S, A], beta)``: the soft Bellman fixed point with its implicit-function gradient."""
    transitions = jnp.asarray(mean_transitions)
    table = transitions.shape[:2]
    vjp = soft_bellman_vjp_function(transitions, gamma)

    @jax.custom_vjp
    def soft_q(reward, beta):
        return soft_q_batch(transitions, gamma, reward.reshape(-1, *table), beta).reshape(reward.shape)

    def forward(reward, beta):
        q = soft_q(reward, beta)
        return q, (q, beta)

    def backward(residuals, q_bar):
        q, beta = residuals
        return vjp(q, beta, q_bar)

    soft_q.defvjp(forward, backward)
    return soft_q


@jax_funcify.register(SoftBellman)
def _jax_soft_bellman(op, **kwargs):
    return soft_bellman_function(op.mean_transitions, op.gamma)


@jax_funcify.register(SoftBellmanGrad)
def _jax_soft_bellman_grad(op, **kwargs):
    return soft_bellman_vjp_function(op.mean_transitions, op.gamma)


__all__ = [
    "ERFCX_SERIES_FROM",
    "ERFCX_SERIES_TERMS",
    "soft_bellman_function",
    "soft_bellman_vjp_function",
    "soft_q_batch",
    "soft_q_vjp_batch",
]
