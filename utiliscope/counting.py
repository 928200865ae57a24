"""Counting primitives of g, shared by every estimator: the tie rule, exceedance fractions and bits
(docs/model.md#ties).

A reference policy pi' is at least as good as pi when ``V(pi') ≥ V(pi) − rtol · max(|V(pi)|, max |V(pi')|)``
with ``rtol = 1e-9`` (ties count against pi), and g is ``−log2`` of the (weighted) fraction of ξ at least as
good. :mod:`utiliscope.intelligence` (the numpy estimators) and :mod:`utiliscope.rare_event` (importance
sampling) both build on this module; it imports neither.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

from utiliscope._math import LN2
from utiliscope._validation import check_count, rng_from
from utiliscope.evaluation import evaluate_policies
from utiliscope.policies import as_policy_prior
from utiliscope.worlds.mdp import as_world_set

#: Relative tie tolerance: V(pi') ≥ V(pi) − RTOL · max(|V(pi)|, max |V(pi')|) counts as a tie.
RTOL = 1e-9


def tie_threshold(v_pi: np.ndarray, reference: np.ndarray, rtol: float = RTOL) -> np.ndarray:
    """``V(pi) − rtol · max(|V(pi)|, max |V(pi')|)``, per column of ``reference[m, n]`` and ``v_pi[j, n]``."""
    scale = np.maximum(np.abs(v_pi), np.abs(reference).max(axis=0, initial=0.0))
    return v_pi - rtol * scale


def exceedance(
    v_pi: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None, rtol: float = RTOL
) -> np.ndarray:
    """Weighted fraction of reference policies at least as good as each pi, ties as in docs/model.md#ties.

    Parameters
    ----------
    v_pi : ndarray, shape (J, N)
        Values of J policies under N utilities.
    reference : ndarray, shape (M, N)
        Values of ξ's policies under the same utilities.
    weights : ndarray, shape (M,), optional
        ξ's weights; equal if omitted.

    Returns
    -------
    ndarray, shape (J, N)
        ``Σ_m w[m] · [reference[m, n] ≥ threshold[j, n]]``.
    """
    M, N = reference.shape
    uniform = weights is None or np.all(np.asarray(weights) == np.asarray(weights)[0])
    threshold = tie_threshold(v_pi, reference, rtol)
    out = np.empty(threshold.shape)
    for n in range(N):
        order = np.argsort(reference[:, n], kind="stable")
        first = np.searchsorted(reference[order, n], threshold[:, n], side="left")
        if uniform:
            # Count, then divide once: an all-tie gives exactly 1 and a single winner exactly 1/M.
            out[:, n] = (M - first) / M
        else:
            tail = np.concatenate([np.cumsum(np.asarray(weights, float)[order][::-1])[::-1], [0.0]])
            out[:, n] = tail[first] / tail[0]
    return out


def bits(probability: np.ndarray) -> np.ndarray:
    """``-log2 p`` with ``p = 0`` giving +inf (never NaN); returns 0.0 rather than -0.0."""
    p = np.asarray(probability, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, -np.log2(np.where(p > 0, p, 1.0)) + 0.0, np.inf)


def gaussian_bits(v_pi: np.ndarray, mean: np.ndarray, sd: np.ndarray, scale: np.ndarray, rtol=RTOL):
    """``-log2 Φ((mean − V(pi)) / sd)``, with the degenerate spread (sd ≤ rtol · scale) handled as ties."""
    degenerate = sd <= rtol * np.maximum(scale, np.finfo(float).tiny)
    safe_sd = np.where(degenerate, 1.0, sd)
    g = -log_ndtr((mean - v_pi) / safe_sd) / LN2
    tied = v_pi - rtol * scale <= mean
    return np.where(degenerate, np.where(tied, 0.0, np.inf), g) + 0.0


def reference_values(
    worlds, rewards: np.ndarray, policy_prior, method: str, n_samples: int, seed
) -> tuple[np.ndarray, np.ndarray | None]:
    """Values of ξ's reference policies under each reward, and their weights (None for a plain sample).

    ``exact`` enumerates ξ; ``monte_carlo`` and ``gaussian`` draw ``n_samples`` policies with ``seed``.
    """
    worlds = as_world_set(worlds)
    prior = as_policy_prior(policy_prior)
    S, A = worlds.n_states, worlds.n_actions
    if method == "exact":
        policies, weights = prior.support(S, A)
    else:
        n_samples = check_count(n_samples, "n_samples")
        policies, weights = prior.sample(S, A, n_samples, rng_from(seed)), None
    return evaluate_policies(worlds, policies, rewards.reshape(-1, S, A)), weights


def bits_from_values(
    v_pi: np.ndarray,
    reference: np.ndarray,
    weights: np.ndarray | None,
    method: str,
    rtol: float = RTOL,
) -> tuple[np.ndarray, np.ndarray]:
    """g and its Monte Carlo standard error from values: ``v_pi[j, n]`` against ``reference[m, n]``."""
    M = reference.shape[0]
    if method == "exact":
        g = bits(exceedance(v_pi, reference, weights, rtol))
        return g, np.zeros_like(g)
    if method == "monte_carlo":
        k = exceedance(v_pi, reference, None, rtol) * M
        p = (np.rint(k) + 1.0) / (M + 1.0)
        return bits(p), np.sqrt((1.0 - p) / (p * M)) / LN2
    mean, sd = reference.mean(axis=0), reference.std(axis=0)
    scale = np.maximum(np.abs(v_pi), np.abs(reference).max(axis=0))
    g = gaussian_bits(v_pi, mean, sd, scale, rtol)
    z = (mean - v_pi) / np.where(sd > 0, sd, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        dg_dz = np.exp(-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - log_ndtr(z)) / LN2
        degenerate = sd <= rtol * np.maximum(scale, np.finfo(float).tiny)
        se = np.where(np.isfinite(g) & ~degenerate, dg_dz * np.sqrt((1.0 + z**2 / 2.0) / M), 0.0)
    return g, se


__all__ = [
    "RTOL",
    "bits",
    "bits_from_values",
    "exceedance",
    "gaussian_bits",
    "reference_values",
    "tie_threshold",
]
