r"""The default engine for a utility library and a world model that can be sampled: i.i.d. draws of pi from the
world model, weighted by the evidence, with U summed out exactly.

.. math::

    P(U_i \mid WM, g') \approx \frac{\sum_n a_{ni}}{\sum_n w_n}, \qquad
    a_{ni} = P(U_i)\, f(g' \mid g(\pi_n, U_i)), \quad w_n = \sum_i a_{ni}, \quad \pi_n \sim P(\pi \mid WM)

The world model is the proposal and the prior of pi at once, so each draw's weight is its likelihood
``w_n = P(g' | pi_n)`` with U marginalised (Rao–Blackwell). The Monte Carlo standard error of each ``P(U_i)`` is
the delta method's for a ratio estimator, ``sqrt(Σ_n (a_ni − p̂_i w_n)²) / Σ_n w_n``; the weights' effective
sample size is Kish's ``(Σ w)² / Σ w²`` and their Pareto k̂ ArviZ's (``az.psislw``): above 0.7 the world model is
a poor proposal, because g′ points where its draws rarely go, and the MCSE itself cannot be trusted.

Draws come in batches, each from its own child of the seed (``SeedSequence(seed, spawn_key=(0, k))``): a batch
can be drawn again, by any process, and gives the same policies. That is how the equally weighted posterior
draws are built without keeping every policy: the run keeps one log weight per draw, resamples indices, and
redraws only the batches that hold them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from utiliscope._pareto import pareto_k
from utiliscope.models.impossible import impossible_evidence

#: A fit's default largest MCSE of any ``P(U_i)``.
DEFAULT_TARGET_MCSE = 0.002
#: The least importance ESS a run needs (the same number ``diagnostics.check`` asks of MCMC: 100 per chain × 4).
MIN_IMPORTANCE_ESS = 400.0
#: Pareto k̂ above which importance weights are too heavy-tailed to trust (Vehtari et al. 2024).
MAX_PARETO_K = 0.7
#: Draws per batch, the fewest draws before the stopping rule is consulted, and the default budget.
DEFAULT_BATCH = 2000
DEFAULT_MIN_DRAWS = 2000
DEFAULT_MAX_DRAWS = 200_000

#: ``draw(n, rng) -> x[n, D]``: latents from the proposal.
Draw = Callable[[int, np.random.Generator], np.ndarray]
#: ``evidence(x) -> (log w[n], values[n, N])``: each draw's log weight and its contribution to the estimate.
Evidence = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: ``map_batches(batches) -> [evidence of each batch]``, in the order given.
MapBatches = Callable[[list[int]], list[tuple[np.ndarray, np.ndarray]]]


def batch_rng(seed: int, batch: int) -> np.random.Generator:
    """The generator of batch ``batch`` of a run seeded with ``seed``: independent of every other batch."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, batch)))


@dataclass(frozen=True)
class ImportanceRun:
    """The result of :func:`run_importance`.

    Attributes
    ----------
    log_weights : ndarray, shape (n_draws,)
        ``log w_n``, the log weight of each draw (for a library, its evidence with U summed out).
    estimate, mcse : ndarray, shape (N,)
        The weighted mean of the draws' values (for a library, ``P(U_i | WM, g′)``) and its Monte Carlo
        standard error.
    ess : float
        Kish's effective sample size of the weights.
    pareto_k : float
        ArviZ's Pareto k̂ of the weights.
    batch_size : int
        Draws per batch (batch k holds draws ``k · batch_size`` onwards).
    stopped : str
        Why the run stopped, in words.
    """

    log_weights: np.ndarray
    estimate: np.ndarray
    mcse: np.ndarray
    ess: float
    pareto_k: float
    batch_size: int
    stopped: str

    @property
    def n_draws(self) -> int:
        return int(self.log_weights.size)

    @property
    def max_mcse(self) -> float:
        return float(self.mcse.max())

    def trustworthy(self, target_mcse: float | None) -> bool:
        """Whether k̂ ≤ 0.7 (or not estimable), the ESS ≥ 400 and every MCSE ≤ ``target_mcse`` (if one)."""
        precise = target_mcse is None or self.max_mcse <= target_mcse
        return not self.pareto_k > MAX_PARETO_K and self.ess >= MIN_IMPORTANCE_ESS and precise


class _WeightedSums:
    """Running sums of the ratio estimator ``Σ w v / Σ w`` and its delta-method variance
    ``Σ w² (v − p̂)² / (Σ w)²``, kept relative to the largest log weight seen (no overflow)."""

    def __init__(self) -> None:
        self.shift = -math.inf
        self.w = self.w2 = 0.0
        self.wv = self.w2v = self.w2v2 = 0.0

    def add(self, log_w: np.ndarray, values: np.ndarray) -> None:
        top = float(log_w.max())
        if top > self.shift:
            if np.isfinite(self.shift):
                scale = math.exp(self.shift - top)
                self.w, self.wv = self.w * scale, self.wv * scale
                self.w2, self.w2v, self.w2v2 = self.w2 * scale**2, self.w2v * scale**2, self.w2v2 * scale**2
            self.shift = top
        if not np.isfinite(self.shift):
            return
        w = np.exp(log_w - self.shift)
        finite = w > 0
        w, values = w[finite], values[finite]
        self.w += float(w.sum())
        self.w2 += float((w**2).sum())
        self.wv = self.wv + w @ values
        self.w2v = self.w2v + w**2 @ values
        self.w2v2 = self.w2v2 + w**2 @ values**2

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """``p̂`` and the delta-method MCSE of each of its entries."""
        p = self.wv / self.w
        squares = np.maximum(self.w2v2 - 2.0 * p * self.w2v + p**2 * self.w2, 0.0)
        return p, np.sqrt(squares) / self.w


def weight_diagnostics(log_weights: np.ndarray) -> tuple[float, float]:
    """Kish's ESS and ArviZ's Pareto k̂ of importance weights given as logs.

    k̂ is NaN where it is not applicable (weights all but equal, or the largest tied:
    :mod:`utiliscope._pareto`) or cannot be estimated. Such weights are bounded, and the ESS and MCSE judge
    them.
    """
    finite = log_weights[np.isfinite(log_weights)]
    # Relative to the largest: (Σw)² / Σw² ≥ Σw ≥ 1 then holds in floating point too, where normalising by a
    # logsumexp of log weights near ±1e17 (a g′ of 1e6 bits) loses its digits and gave an ESS below 1.
    w = np.exp(finite - finite.max()) if finite.size else finite
    ess = float(w.sum() ** 2 / np.sum(w**2)) if finite.size else 0.0
    return ess, pareto_k(finite, ess)


def run_importance(
    draw: Draw,
    evidence: Evidence,
    seed: int,
    *,
    target_mcse: float | None = DEFAULT_TARGET_MCSE,
    batch_size: int = DEFAULT_BATCH,
    min_draws: int = DEFAULT_MIN_DRAWS,
    max_draws: int = DEFAULT_MAX_DRAWS,
    map_batches: MapBatches | None = None,
    round_size: int = 1,
) -> ImportanceRun:
    """Draw batches until the ESS is ≥ 400 and every entry of the estimate has an MCSE ≤ ``target_mcse`` (None:
    the ESS alone), or the budget ``max_draws`` is spent.

    After ``min_draws`` the run also stops early when its own error says the target is out of reach: the draws
    it would need, ``n · max((mcse / target)², 400 / ESS)`` (errors fall as 1/√n), exceed ``max_draws``; or when
    the weights' Pareto k̂ exceeds 0.7, where that projection cannot be trusted either.

    ``map_batches`` computes rounds of ``round_size`` batches elsewhere (:func:`evaluate_batch` on a Dask
    cluster, say). Their results are taken in batch order and the stopping rule is applied after each batch, as
    in one process, so a run's answer depends on its seed alone.

    Raises
    ------
    ValueError
        When every draw has zero weight: the evidence is impossible under every utility.
    """
    if map_batches is None:

        def map_batches(batches):
            return [evidence_of_batch(draw, evidence, seed, batch_size, batch) for batch in batches]

    sums = _WeightedSums()
    log_weights: list[np.ndarray] = []
    n, batch, stopped, judged = 0, 0, "", 0
    while not stopped:
        for log_w, values in map_batches(list(range(batch, batch + max(1, round_size)))):
            log_weights.append(log_w)
            sums.add(log_w, values)
            n, batch = n + batch_size, batch + 1
            # The rule reads every weight (ESS, k̂): applied at most once per DEFAULT_BATCH draws, so that small
            # batches cost linear, not quadratic, time; with batches of DEFAULT_BATCH or more, after each.
            if n >= max_draws or n - judged >= DEFAULT_BATCH:
                judged = n
                stopped = _stopping(sums, log_weights, n, target_mcse, min_draws, max_draws)
            if stopped:
                break
    all_log_w = np.concatenate(log_weights)
    if not np.isfinite(sums.shift):
        raise ValueError(impossible_evidence(f"all {n} draws from the world model"))
    estimate, mcse = sums.estimate()
    ess, k = weight_diagnostics(all_log_w)
    return ImportanceRun(all_log_w, estimate, mcse, ess, k, batch_size, stopped)


def evidence_of_batch(draw: Draw, evidence: Evidence, seed: int, batch_size: int, batch: int) -> tuple:
    """``evidence`` of batch ``batch``'s draws: what one worker computes."""
    return evidence(draw(batch_size, batch_rng(seed, batch)))


def _stopping(sums, log_weights, n, target_mcse, min_draws, max_draws) -> str:
    """Why the run stops after ``n`` draws, or "" to go on (:func:`run_importance`)."""
    if n >= max_draws:
        if n > max_draws:  # batches are drawn whole
            return f"the budget of {max_draws} draws was reached after {n} draws (whole batches)"
        return f"the budget of {max_draws} draws was spent"
    if n < min_draws:
        return ""
    if not np.isfinite(sums.shift):
        return f"all {n} draws have zero weight"
    _, mcse = sums.estimate()
    ess, k = weight_diagnostics(np.concatenate(log_weights))
    precision = 1.0 if target_mcse is None else (float(mcse.max()) / target_mcse) ** 2
    needed = n * max(precision, MIN_IMPORTANCE_ESS / ess)
    if precision <= 1.0 and ess >= MIN_IMPORTANCE_ESS:
        criterion = "the ESS ≥ 400" if target_mcse is None else f"every MCSE ≤ {target_mcse:g}"
        return f"{criterion} after {n} draws"
    if k > MAX_PARETO_K:
        return f"Pareto k̂ = {k:.2f} > {MAX_PARETO_K} after {n} draws"
    if needed > max_draws:
        return f"the target needs about {needed:.3g} draws, over the budget of {max_draws}"
    return ""


def resample(run: ImportanceRun, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` draws picked with probability proportional to their weights (multinomial), with a
    generator of its own (independent of every batch's)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    log_w = run.log_weights
    probabilities = np.exp(log_w - logsumexp(log_w))
    return rng.choice(log_w.size, size=size, p=probabilities / probabilities.sum())


def redraw(draw: Draw, seed: int, batch_size: int, indices: np.ndarray) -> np.ndarray:
    """The policies of a run's draws ``indices``, drawn again batch by batch (:func:`batch_rng`)."""
    indices = np.asarray(indices)
    out: np.ndarray | None = None
    for batch in np.unique(indices // batch_size):
        policies = draw(batch_size, batch_rng(seed, int(batch)))
        if out is None:
            out = np.empty((indices.size, *policies.shape[1:]))
        here = indices // batch_size == batch
        out[here] = policies[indices[here] % batch_size]
    return out


__all__ = [
    "DEFAULT_MAX_DRAWS",
    "DEFAULT_TARGET_MCSE",
    "MAX_PARETO_K",
    "MIN_IMPORTANCE_ESS",
    "ImportanceRun",
    "batch_rng",
    "evidence_of_batch",
    "redraw",
    "resample",
    "run_importance",
    "weight_diagnostics",
]
