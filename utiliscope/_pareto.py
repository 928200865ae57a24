r"""Pareto k̂ of importance weights, judged only where its fit means something.

k̂ is the shape of a generalised Pareto distribution fitted to the largest weights (``az.psislw``; Vehtari et
al. 2024, Pareto smoothed importance sampling, JMLR 25). It tells a heavy tail of the weights from a light one;
it says nothing, and can come out far above 0.7, where the weights have no tail to fit:

* the weights are all but equal: Kish's ESS ``(Σ w)² / Σ w²`` is at least :data:`EQUAL_ESS_FRACTION` of the
  draws, or the log weights span less than :data:`EQUAL_LOG_RANGE` (the largest weight within a factor
  ``e^0.5 ≈ 1.65`` of the smallest). Such weights are bounded, so the estimate's variance is finite whatever
  k̂ says (10,000 demonstrations of the quickstart: ESS 1,999 of 2,000, range 0.17, yet k̂ = 1.74);
* the largest weights are tied: fewer than half of the tail's draws carry distinct weights (an exact g that
  takes few values), and a continuous tail is fitted to a few steps.

There :func:`pareto_k` returns NaN, "not applicable": the ESS and the MCSE judge the weights instead.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np

#: Kish's ESS over the number of draws at or above which the weights count as all but equal.
EQUAL_ESS_FRACTION = 0.99
#: A spread of the log weights below which they count as all but equal.
EQUAL_LOG_RANGE = 0.5


def tail_size(n: int) -> int:
    """The number of largest weights PSIS fits its tail to: ``min(n / 5, 3 √n)``."""
    return math.ceil(min(0.2 * n, 3.0 * math.sqrt(n)))


def not_applicable(log_weights: np.ndarray, ess: float) -> str:
    """Why k̂ of these finite log weights (Kish's ESS ``ess``) means nothing, or "" when it is meaningful."""
    n = log_weights.size
    if ess >= EQUAL_ESS_FRACTION * n or np.ptp(log_weights) < EQUAL_LOG_RANGE:
        return "the weights are all but equal"
    tail = np.sort(log_weights)[-tail_size(n) :]
    if np.unique(tail).size < tail.size / 2:
        return "the largest weights are tied"
    return ""


def pareto_k(log_weights: np.ndarray, ess: float) -> float:
    """ArviZ's Pareto k̂ of finite log weights, or NaN where it is not applicable (module docstring) or cannot be
    estimated (ArviZ needs at least five weights above its tail's cutoff)."""
    if log_weights.size == 0 or not_applicable(log_weights, ess):
        return math.nan
    _, k = az.psislw(log_weights - log_weights.max())
    return float(k) if np.isfinite(k) else math.nan


def k_text(k: float) -> str:
    """k̂ for a message: two decimals, or "not applicable" for NaN."""
    return "not applicable" if math.isnan(k) else f"{k:.2f}"


__all__ = ["EQUAL_ESS_FRACTION", "EQUAL_LOG_RANGE", "k_text", "not_applicable", "pareto_k", "tail_size"]
