r"""PyTensor versions of V_U(pi) and of the three g estimators, for use inside PyMC models.

Only the latent policy's value is computed per logp evaluation; everything about ξ's reference policies
(their values under every library utility, or their feature expectations for linear utilities) is a constant
computed once with :mod:`utiliscope.evaluation`.

``exact``
    A step function of V(pi): ``g = −log2 Σ_m w_m [V_m ≥ V(pi) − tol]``, with the relative tie tolerance
    (docs/model.md#ties), found by binary search in the sorted reference values. It equals
    :func:`utiliscope.intelligence` to the last bit; its gradient is zero, so gradient-based samplers move pi by
    the prior's gradient and the likelihood enters through the acceptance of each trajectory (valid, and the steps
    are small when ξ is large).
``monte_carlo``
    ``g = −log2((1 + Σ_m σ((V_m − V(pi) + tol) / τ)) / (M + 1))`` with ``τ = smoothing · sd(V_m)``: the
    finite (k + 1)/(M + 1) estimator of :mod:`utiliscope.intelligence` with the step smoothed by a logistic of
    temperature τ so that its gradient carries information; ``smoothing = 0`` gives the step exactly. Finite for
    every pi, at most log2(M + 1).
    With a library prior the reference values are constants, and the model evaluates this count from a table
    built once (:mod:`utiliscope.models.tabulated`, :func:`tabulated_bits`): O(1) per utility instead of O(M),
    within about 1e-6 bits.
``importance``
    The same smoothed count with fixed importance weights ``w_m = ξ(π_m) / (M q(π_m))`` of policies drawn once
    from a tilted proposal q (:class:`~utiliscope.models.reference.ImportanceReference`):
    ``g = −log2((f + Σ_m w_m σ((V_m − thr) / τ)) / (f + Σ_m w_m))`` with the floor ``f = min_m w_m`` standing
    for pi itself, as the 1 does above (with q = ξ, w_m = 1/M and this is the Monte Carlo formula exactly).
    Finite for every pi, at most ``−log2(f / (f + Σ_m w_m))``.
``gaussian``
    ``g = −log2 Φ((m − V(pi)) / sd)`` with a stable log normal CDF (erfcx in the tail, accurate to hundreds
    of bits); for linear utilities ``m = m_mu · theta`` and
    ``sd² = thetaᵀ S_mu theta`` with the moments of ξ's feature expectations.

Each guards a vanishing spread (a utility under which every policy ties) so that it returns 0 bits, never NaN.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from utiliscope._math import LN2, log_normal_cdf
from utiliscope.counting import RTOL
from utiliscope.worlds.mdp import WorldSet

#: Spreads below this fraction of the value scale count as "every policy ties".
DEGENERATE = 1e-12


def occupancy_tensor(worlds: WorldSet, pi) -> pt.TensorVariable:
    r"""World-averaged state–action occupancy ``rho[s, a] = Σ_e w_e d_e[s] pi[s, a]`` of a tensor policy.

    ``d_e`` solves ``(I − γ P_e^piᵀ) d_e = mu0_e`` for all worlds in one batched solve.
    """
    S = worlds.n_states
    # One 2-d solve per world rather than one batched (Blockwise) solve: numba, which nutpie compiles with, runs
    # a Blockwise's gradient in object mode through C thunks that are not safe across nutpie's chain threads.
    d = 0.0
    for weight, P, mu0 in zip(worlds.weights, worlds.transitions, worlds.starts, strict=True):
        P_pi = pt.einsum("sa,sat->st", pi, pt.as_tensor(np.asarray(P)))  # dense: the graph solves directly
        d = d + weight * pt.linalg.solve(pt.eye(S) - worlds.gamma * P_pi.T, pt.as_tensor(mu0), b_ndim=1)
    return d[:, None] * pi


def _tie_threshold(v_pi, max_abs_reference, rtol: float):
    return v_pi - rtol * pt.maximum(pt.abs(v_pi), max_abs_reference)


def _bits(probability):
    """``−log2 p``; p = 0 gives +inf (a policy better than every reference policy)."""
    return -pt.log2(probability)


def exact_bits_sorted(v_pi, sorted_reference: np.ndarray, tail: np.ndarray, rtol: float = RTOL):
    """Exact g of pi under N fixed utilities: binary search in each row of ``sorted_reference[n, m]``.

    ``tail[n, i]`` is the weight of the reference policies at positions ≥ i in row n (``tail[n, M] = 0``).
    """
    max_abs = np.abs(sorted_reference).max(axis=1)
    threshold = _tie_threshold(v_pi, max_abs, rtol)
    # One 1-d search per utility rather than a vectorised (Blockwise) one, which numba runs in object mode.
    first = pt.stack([pt.extra_ops.searchsorted(row, threshold[n]) for n, row in enumerate(sorted_reference)])
    probability = pt.as_tensor(tail)[pt.arange(tail.shape[0]), first]
    return _bits(probability)


def exact_bits(v_pi, reference, weights, rtol: float = RTOL):
    """Exact g for reference values that are themselves tensors (linear utilities): a weighted count."""
    threshold = _tie_threshold(v_pi, pt.abs(reference).max(axis=0), rtol)
    at_least_as_good = pt.ge(reference, threshold[None]).astype("float64")
    if np.all(weights == weights[0]):
        # Count, then divide once, exactly as utiliscope.counting.exceedance does.
        return _bits(at_least_as_good.sum(axis=0) / len(weights))
    return _bits(pt.dot(pt.as_tensor(weights / weights.sum()), at_least_as_good))


def monte_carlo_bits(v_pi, reference, smoothing, rtol: float = RTOL, weights=None):
    """Smoothed, optionally weighted, Monte Carlo g per utility (columns of ``reference[m, n]``).

    ``g = −log2((f + Σ_m w_m σ((V_m − thr) / τ)) / (f + Σ_m w_m))`` with the floor ``f = min_m w_m``. Without
    ``weights`` every ``w_m = 1``, so ``f = 1`` and ``g = −log2((1 + k) / (M + 1))``; with the fixed importance
    weights ``weights[m]`` (shared) or ``weights[m, n]`` (per utility) it is the importance estimator of the
    module docstring. ``smoothing`` is a number, one per utility, or a scalar tensor (a Data node); the number
    0 replaces σ by the step ``[V_m ≥ thr]``. A utility under which all
    reference values tie (spread ≤ 1e-12 of their scale: the constant utility) gets 0 bits exactly, and its
    temperature is replaced by 1 so that no gradient divides by a vanishing τ.
    """
    reference = pt.as_tensor(reference)
    threshold = _tie_threshold(v_pi, pt.abs(reference).max(axis=0), rtol)
    above = reference - threshold[None]
    if not isinstance(smoothing, Variable) and np.all(np.asarray(smoothing) == 0):
        return _bits(_weighted_fraction(pt.ge(above, 0).astype("float64"), weights, reference.shape[0]))
    spread = reference.std(axis=0)
    degenerate = pt.le(spread, DEGENERATE * pt.abs(reference).max(axis=0))
    tau = pt.switch(degenerate, 1.0, smoothing * spread)
    fraction = _weighted_fraction(pt.sigmoid(above / tau[None]), weights, reference.shape[0])
    return pt.switch(degenerate, 0.0, _bits(fraction))


def tabulated_bits(v_pi, table, rtol: float = RTOL):
    """:func:`monte_carlo_bits` of fixed reference values from their :class:`~utiliscope.models.tabulated.
    TabulatedCount`: the same smoothed (weighted) count, interpolated, at O(1) cost per utility."""
    threshold = _tie_threshold(v_pi, table.max_abs, rtol)
    return pt.switch(table.degenerate, 0.0, table.bits_tensor(threshold))


def _weighted_fraction(at_least_as_good, weights, M):
    """``(f + Σ_m w_m c_m) / (f + Σ_m w_m)``, ``f = min_m w_m``; ``(1 + Σ_m c_m) / (M + 1)`` without weights.

    Clipped at 1: a weighted all-tie sums the same weights in two orders, which may differ in the last bit.
    """
    if weights is None:
        return (1.0 + at_least_as_good.sum(axis=0)) / (M + 1.0)
    w = pt.as_tensor_variable(weights).astype("float64")
    w = w[:, None] if w.ndim == 1 else w
    floor = w.min(axis=0)
    return pt.minimum((floor + (w * at_least_as_good).sum(axis=0)) / (floor + w.sum(axis=0)), 1.0)


def gaussian_bits(v_pi, mean, sd, scale, rtol: float = RTOL):
    """``−log2 Φ((mean − V(pi)) / sd)``; a vanishing sd gives 0 bits (all tie) or +inf (pi above them all)."""
    degenerate = pt.le(sd, rtol * scale + 1e-300)
    z = (mean - v_pi) / pt.switch(degenerate, 1.0, sd)
    tied = pt.le(v_pi - rtol * scale, mean)
    return pt.switch(degenerate, pt.switch(tied, 0.0, np.inf), -log_normal_cdf(z) / LN2)


__all__ = [
    "exact_bits",
    "exact_bits_sorted",
    "gaussian_bits",
    "monte_carlo_bits",
    "occupancy_tensor",
    "tabulated_bits",
]
