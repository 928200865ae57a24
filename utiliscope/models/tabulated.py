r"""The smoothed count of a utility library, tabulated once so that a logp evaluation costs O(N), not O(M·N).

With a library prior the reference values ``V[m, n]`` are constants, so the log of the smoothed (weighted) count
that ``monte_carlo`` and ``importance`` g compare the latent policy with,

.. math::

    f_n(t) = \log\Big(f^0_n + \sum_m w_{mn}\, \sigma\big((V_{mn} - t) / \tau_n\big)\Big),
    \qquad g_n = \big(\log(f^0_n + \textstyle\sum_m w_{mn}) - f_n(\mathrm{thr}_n)\big) / \ln 2,

is a fixed smooth function of one number, the threshold t (``thr_n = V_n(pi) − tol``). Evaluating it directly
costs M sigmoids per utility per logp, most of the gradient's cost; here it is evaluated once at G_n nodes for
utility n, with its exact derivative, and interpolated by the cubic Hermite polynomial through the two nodes
around t. The result is C¹ in t, which is what NUTS needs, and its error is bounded by ``Δ⁴ max|f⁗| / 384`` for
node spacing Δ: with :data:`NODES_PER_TAU` = 4 nodes per temperature τ it is orders of magnitude below the
estimator's own Monte Carlo error. The table is built from the sigmoids within :data:`WINDOW` temperatures of
each node and closed forms for the rest (:func:`_node_sums`), equal to the full sum to 1e-14 bits and several
times faster. The measured errors and build times are in ``benchmarks/results/nuts_performance.md``.

Beyond the nodes, which reach :data:`MARGIN` = 36 temperatures past the extreme reference values, every sigmoid is
within e^−36 (2e-16) of its asymptote, so the count is extrapolated in closed form: above the last node t_G,
``Σ w σ ≈ C e^{−(t − t_G)/τ}`` with C the sum at t_G; below the first node t_1, ``Σ w σ ≈ W − D e^{(t − t_1)/τ}``
with W = Σ w and D = W − (the sum at t_1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from utiliscope.models.graph import DEGENERATE

#: Interpolation nodes per temperature τ.
NODES_PER_TAU = 4
#: The nodes reach this many temperatures beyond the smallest and largest reference value.
MARGIN = 36.0
#: While the table is built, reference values more than this many temperatures from a node enter through their
#: sigmoid's exponential tail in closed form (:func:`_node_sums`): e^−36 = 2e-16 relative.
WINDOW = 36.0
#: Nodes whose sigmoids are evaluated together while the table is built (bounds its memory, not its result).
NODES_PER_BLOCK = 128


@dataclass(frozen=True)
class TabulatedCount:
    r"""``f_n(t)`` of the module docstring at G_n equally spaced nodes for utility n, for Hermite interpolation.

    Attributes
    ----------
    start, spacing : ndarray, shape (N,)
        The first node ``t_1`` and the node spacing Δ of each utility.
    offset, n_nodes : ndarray of int, shape (N,)
        Where utility n's G_n nodes start in the flat arrays, and G_n (each utility has its own τ_n, so its own
        number of nodes: one rectangular (N, max G_n) array would hold mostly padding).
    log_count, slope : ndarray, shape (Σ_n G_n,)
        ``f_n`` and ``df_n/dt`` at the nodes, utility after utility.
    tau : ndarray, shape (N,)
        The temperatures τ_n.
    log_floor, log_total : ndarray, shape (N,)
        ``log f⁰_n`` and ``log(f⁰_n + Σ_m w_mn)``: f_n's limits as t → +∞ and −∞.
    top_sum, bottom_gap : ndarray, shape (N,)
        C (the weighted sum at the last node) and D (W minus the sum at the first node), for the extrapolation.
    max_abs : ndarray, shape (N,)
        ``max_m |V_mn|``, the scale of the tie tolerance (docs/model.md#ties).
    degenerate : ndarray of bool, shape (N,)
        Utilities under which every reference value ties (g = 0; their table is built with τ = 1 and unused).
    """

    start: np.ndarray
    spacing: np.ndarray
    offset: np.ndarray
    n_nodes: np.ndarray
    log_count: np.ndarray
    slope: np.ndarray
    tau: np.ndarray
    log_floor: np.ndarray
    log_total: np.ndarray
    top_sum: np.ndarray
    bottom_gap: np.ndarray
    max_abs: np.ndarray
    degenerate: np.ndarray

    @classmethod
    def build(
        cls, reference: np.ndarray, smoothing: float | np.ndarray, weights: np.ndarray | None = None
    ) -> TabulatedCount:
        """Tabulate ``f_n`` for reference values ``reference[m, n]`` at ``τ_n = smoothing_n · sd_m(V_mn)`` (> 0).

        ``smoothing`` is one fraction for every utility or one per utility (shape (N,)). ``weights[m]`` or
        ``weights[m, n]`` are importance weights with the floor ``f⁰_n = min_m w_mn``; without them every weight
        and the floor are 1 (Monte Carlo's ``(1 + k) / (M + 1)``). A utility whose spread is at most
        :data:`~utiliscope.models.graph.DEGENERATE` times its scale is degenerate, as in
        :func:`~utiliscope.models.graph.monte_carlo_bits`.
        """
        reference = np.asarray(reference, dtype=float)
        M, N = reference.shape
        max_abs = np.abs(reference).max(axis=0)
        spread = reference.std(axis=0)
        degenerate = spread <= DEGENERATE * max_abs
        tau = np.where(degenerate, 1.0, np.broadcast_to(smoothing, (N,)) * spread)
        w = np.ones((M, N)) if weights is None else np.broadcast_to(np.reshape(weights, (M, -1)), (M, N))
        floor = np.ones(N) if weights is None else w.min(axis=0)
        low = reference.min(axis=0) - MARGIN * tau
        high = reference.max(axis=0) + MARGIN * tau
        n_nodes = np.ceil((high - low) / tau * NODES_PER_TAU).astype(int) + 1
        offset = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        spacing = (high - low) / (n_nodes - 1)
        log_count = np.empty(n_nodes.sum())
        slope = np.empty(n_nodes.sum())
        for n in range(N):
            nodes = low[n] + spacing[n] * np.arange(n_nodes[n])
            total, spread_sum = _node_sums(reference[:, n], w[:, n], nodes, tau[n])
            at = slice(offset[n], offset[n] + n_nodes[n])
            log_count[at] = np.log(floor[n] + total)
            slope[at] = -spread_sum / (tau[n] * (floor[n] + total))
        weight_sum = w.sum(axis=0)
        last = offset + n_nodes - 1
        return cls(
            start=low,
            spacing=spacing,
            offset=offset,
            n_nodes=n_nodes,
            log_count=log_count,
            slope=slope,
            tau=tau,
            log_floor=np.log(floor),
            log_total=np.log(floor + weight_sum),
            # Floored so that the closed forms stay finite when the sum underflows or rounds below zero.
            top_sum=np.maximum(np.exp(log_count[last]) - floor, np.finfo(float).tiny),
            bottom_gap=np.maximum(floor + weight_sum - np.exp(log_count[offset]), 0.0),
            max_abs=max_abs,
            degenerate=degenerate,
        )

    def log_count_tensor(self, t):
        """``f_n(t[n])`` for a tensor of thresholds ``t[N]``: Hermite inside the nodes, closed form outside.

        Each branch sees its argument clamped to its own range, so that the branches not taken stay finite and
        contribute a zero (not NaN) gradient.
        """
        last = self.n_nodes - 1.0
        top = self.start + self.spacing * last
        position = pt.clip((t - self.start) / self.spacing, 0.0, last)
        local = pt.clip(pt.floor(position), 0, self.n_nodes - 2)
        s = position - local
        index = (self.offset + local).astype("int64")
        values = pt.as_tensor(self.log_count)
        slopes = pt.as_tensor(self.slope * np.repeat(self.spacing, self.n_nodes))
        f0, f1 = values[index], values[index + 1]
        d0, d1 = slopes[index], slopes[index + 1]
        s2, s3 = s * s, s * s * s
        inside = (2 * s3 - 3 * s2 + 1) * f0 + (s3 - 2 * s2 + s) * d0 + (3 * s2 - 2 * s3) * f1 + (s3 - s2) * d1
        above = pt.logaddexp(self.log_floor, pt.log(self.top_sum) - (pt.maximum(t, top) - top) / self.tau)
        total = np.exp(self.log_total)
        below = pt.log(total - self.bottom_gap * pt.exp((pt.minimum(t, self.start) - self.start) / self.tau))
        return pt.switch(pt.gt(t, top), above, pt.switch(pt.lt(t, self.start), below, inside))

    def bits_tensor(self, t):
        """``g_n = (log_total − f_n(t)) / ln 2``, at least 0 (a weighted all-tie may round just below)."""
        return pt.maximum((self.log_total - self.log_count_tensor(t)) / math.log(2.0), 0.0)


def _node_sums(values: np.ndarray, weights: np.ndarray, nodes: np.ndarray, tau: float):
    r"""``Σ_m w_m σ(z_m)`` and ``Σ_m w_m σ(z_m)(1 − σ(z_m))`` at each node t, ``z_m = (V_m − t) / τ``.

    Summing every sigmoid costs M per node. Here only the reference values within :data:`WINDOW` temperatures of
    a block of nodes get their sigmoid; the others are in a sigmoid's exponential tail, where
    ``σ(z) = e^z (1 + O(e^z))`` (z < −WINDOW) and ``1 − σ(z) = e^{−z} (1 + O(e^{−z}))`` (z > WINDOW), so their
    sums are closed forms of prefix and suffix log-sum-exps over the sorted values:
    ``Σ_{V_m < t − Kτ} w_m σ(z_m) ≈ exp(log Σ w_m e^{V_m/τ} − t/τ)`` and
    ``Σ_{V_m > t + Kτ} w_m σ(z_m) ≈ Σ_{V_m > t + Kτ} w_m − exp(log Σ w_m e^{−V_m/τ} + t/τ)`` (K = WINDOW, each
    log-sum-exp over the same values as its sum), with relative error
    e^−WINDOW (2e-16); σ(1 − σ) is the same exponential tail in both. (A direct sum over a band matrix; numpy has
    no banded logistic convolution, and an FFT one would lose the far tails' relative accuracy.)
    """
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    below = np.concatenate([[-np.inf], np.logaddexp.accumulate(log_w + v / tau)])
    above = np.concatenate([np.logaddexp.accumulate((log_w - v / tau)[::-1])[::-1], [-np.inf]])
    weight_above = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
    total = np.empty(len(nodes))
    spread_sum = np.empty(len(nodes))
    for first in range(0, len(nodes), NODES_PER_BLOCK):
        t = nodes[first : first + NODES_PER_BLOCK]
        lo = int(np.searchsorted(v, t[0] - WINDOW * tau, side="left"))
        hi = int(np.searchsorted(v, t[-1] + WINDOW * tau, side="right"))
        z = (v[None, lo:hi] - t[:, None]) / tau
        # σ(z) and σ(z)σ(−z) from one e^−|z|: σ(z)(1 − σ(z)) would round to 0 where σ(z) rounds to 1.
        e = np.exp(-np.abs(z))
        s = np.where(z >= 0, 1.0, e) / (1.0 + e)
        s_spread = e / (1.0 + e) ** 2
        tail_below = np.exp(below[lo] - t / tau)
        tail_above = np.exp(above[hi] + t / tau)
        block = slice(first, first + len(t))
        total[block] = s @ w[lo:hi] + tail_below + (weight_above[hi] - tail_above)
        spread_sum[block] = s_spread @ w[lo:hi] + tail_below + tail_above
    return total, spread_sum


__all__ = ["MARGIN", "NODES_PER_TAU", "TabulatedCount"]
