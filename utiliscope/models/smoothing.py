r"""The default temperature of ``monte_carlo`` and ``importance`` g's smoothed count, calibrated on the sample.

In-graph ``importance`` g replaces the hard weighted count ``Σ_m w_m [V_m ≥ t]`` by
``Σ_m w_m σ((V_m − t) / τ)`` (:mod:`utiliscope.models.graph`), which blurs the count over a few τ. Where the
weight of the reference policies grows fast below the threshold, the blur mixes in more weight from below than it
loses above, and g comes out low: for a locally exponential tail ``P(V ≥ t) ∝ e^{−a t}`` by
``log2(π s / sin(π s))`` bits, ``s = a τ``. A fixed fraction of the values' spread is wrong in both directions:
the top of a value distribution is often far more compressed than its bulk, so the tail that the likelihood's mass
reaches falls many bits per τ (the biases this caused are in ``benchmarks/results/nuts_performance.md``).

:func:`calibrated_smoothing` therefore chooses τ per utility, from the sample: the widest of
:data:`CANDIDATE_WIDTHS` (fractions of the spread) under which, as under every narrower one (the bias grows with
the width; the search climbs from the narrowest), the smoothed g stays within :data:`MAX_BIAS_BITS`
of the hard g of the same sample in every one-bit window of g over the likelihood's mass (counted down from its
top). The test thresholds are midpoints between adjacent distinct reference values (a latent policy's value lies
between the sample's atoms); in each window at most :data:`THRESHOLDS_PER_BIT` of them, evenly spread, and the
window's bias is their mean of smoothed minus hard (which averages out the sample's granularity). A wider τ gives
NUTS a smoother surface; the bound keeps the bias below the estimator's own Monte Carlo error
(``benchmarks/smoothing_bias.py``). ``monte_carlo`` g is the same count with every weight 1 (and the floor 1),
calibrated the same way. Where even the narrowest candidate misses the bound, the returned bias says so.

Hand-written: the criterion is this estimator's own bias, which no library computes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from utiliscope.models.graph import DEGENERATE

#: Largest mean bias (bits) of the smoothed g against the hard g in any one-bit window of the likelihood's mass.
MAX_BIAS_BITS = 0.1
#: Temperatures tried, widest first, as fractions of the spread sd_m(V_mn): 0.05 down to 0.05 / 2^4.5 ≈ 0.0022 in
#: steps of √2. The floor bounds the size of the count's table (:mod:`utiliscope.models.tabulated`) and so the
#: compile (benchmarks/results/nuts_performance.md).
CANDIDATE_WIDTHS = 0.05 * 2.0 ** (-0.5 * np.arange(10))
#: Test thresholds per one-bit window of g (at most).
THRESHOLDS_PER_BIT = 32
#: Temperatures from a threshold beyond which the logistic is taken as exactly 0 or 1.
SATURATED = 40.0
#: The width of a utility with no test threshold in the mass range (its sample never reaches it) or no spread.
FALLBACK_WIDTH = 0.01


def calibrated_smoothing(
    reference: np.ndarray,
    weights: np.ndarray,
    g_range: tuple[float, float],
    max_bias_bits: float = MAX_BIAS_BITS,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per utility, the widest candidate smoothing whose bias stays within ``max_bias_bits`` over ``g_range``.

    Parameters
    ----------
    reference : ndarray, shape (M, N)
        Reference values ``V[m, n]`` of the sample under each of N utilities (ξ's draws, or the tilted ones).
    weights : ndarray, shape (M,) or (M, N)
        Their weights ``w[m, n]`` (importance weights, or all 1 for ``monte_carlo``); the floor
        ``f_n = min_m w_mn`` stands for pi itself, as in :func:`utiliscope.models.graph.monte_carlo_bits`.
    g_range : (float, float)
        Bits between which g must be accurate (the likelihood's mass range for ``importance``, 0 to
        log2(M) − 3 for ``monte_carlo``).
    max_bias_bits : float
        The bound on each one-bit window's mean of ``g_smoothed − g_hard``, in absolute value.

    Returns
    -------
    widths : ndarray, shape (N,)
        The smoothing of each utility, one of :data:`CANDIDATE_WIDTHS`; the narrowest when none meets the bound,
        :data:`FALLBACK_WIDTH` when the sample never reaches ``g_range`` or the utility has no spread.
    bias : ndarray, shape (N,)
        The largest window's ``|mean(g_smoothed − g_hard)|`` at that width (0 where there was nothing to test):
        above ``max_bias_bits`` where even the narrowest width misses the bound.
    """
    reference = np.asarray(reference, dtype=float)
    M, N = reference.shape
    w = np.broadcast_to(np.reshape(weights, (M, -1)), (M, N))
    chosen = [_column_smoothing(reference[:, n], w[:, n], g_range, max_bias_bits) for n in range(N)]
    widths, bias = (np.array(column) for column in zip(*chosen, strict=True))
    return widths, bias


def _column_smoothing(values: np.ndarray, weights: np.ndarray, g_range, max_bias_bits: float):
    """:func:`calibrated_smoothing` of one utility: (width, its largest window bias)."""
    spread = values.std()
    if spread <= DEGENERATE * np.abs(values).max():
        return FALLBACK_WIDTH, 0.0
    thresholds, hard, window = _test_thresholds(values, weights, g_range)
    if not len(thresholds):
        return FALLBACK_WIDTH, 0.0
    floor, log_total = weights.min(), np.log2(weights.min() + weights.sum())
    windows = np.unique(window)

    def largest_bias(width: float) -> float:
        # Values more than SATURATED temperatures from every threshold count 0 or their whole weight (σ(∓40)
        # differs from them by 4e-18): only the values in between go through expit.
        reach = SATURATED * width * spread
        below, above = values < thresholds.min() - reach, values > thresholds.max() + reach
        near = ~(below | above)
        count = expit((values[near, None] - thresholds[None]) / (width * spread)).T @ weights[near]
        error = log_total - np.log2(floor + count + weights[above].sum()) - hard
        return max(abs(error[window == k].mean()) for k in windows)

    # Narrowest first (the cheapest: fewest values near a threshold); the bias grows with the width, so the
    # search stops at the first width past the bound and keeps the one before it.
    narrowest = CANDIDATE_WIDTHS[-1]
    width, bias = narrowest, largest_bias(narrowest)
    for wider in CANDIDATE_WIDTHS[-2::-1]:
        if bias > max_bias_bits:
            break
        wider_bias = largest_bias(wider)
        if wider_bias > max_bias_bits:
            break
        width, bias = wider, wider_bias
    return float(width), float(bias)


def _test_thresholds(values: np.ndarray, weights: np.ndarray, g_range):
    """Midpoints between adjacent distinct values whose hard g lies in ``g_range``, at most
    :data:`THRESHOLDS_PER_BIT` per one-bit window: (thresholds, their hard g, their window's index)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    floor, total = w.min(), w.sum()
    distinct, first = np.unique(v, return_index=True)
    # Weight at or above each distinct value; a midpoint between distinct[i] and distinct[i + 1] counts
    # everything from distinct[i + 1] up.
    weight_from = np.cumsum(w[::-1])[::-1][first]
    midpoints = 0.5 * (distinct[1:] + distinct[:-1])
    hard = np.log2(floor + total) - np.log2(floor + weight_from[1:])
    low, high = g_range
    inside = np.flatnonzero((hard >= low) & (hard <= high))
    window = np.floor(high - hard[inside]).astype(int)
    keep = []
    for k in np.unique(window):
        members = np.flatnonzero(window == k)
        keep.extend(members[np.unique(np.linspace(0, len(members) - 1, THRESHOLDS_PER_BIT).round().astype(int))])
    keep = np.array(keep, dtype=int)
    return midpoints[inside[keep]], hard[inside[keep]], window[keep]


__all__ = ["CANDIDATE_WIDTHS", "FALLBACK_WIDTH", "MAX_BIAS_BITS", "THRESHOLDS_PER_BIT", "calibrated_smoothing"]
