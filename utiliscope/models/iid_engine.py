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

import arviz as az
import numpy as np
from scipy.special import logsumexp

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

#: ``draw(n, rng) -> policies[n, S, A]``
Draw = Callable[[int, np.random.Generator], np.ndarray]
#: ``log_joint(policies) -> log_joint[n, N]``: ``log P(U_i) + log f(g' | g(pi_n, U_i))``.
LogJoint = Callable[[np.ndarray], np.ndarray]


def batch_rng(seed: int, batch: int) -> np.random.Generator:
    """The generator of batch ``batch`` of a run seeded with ``seed``: independent of every other batch."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, batch)))


@dataclass(frozen=True)
class ImportanceRun:
    """The result of :func:`run_importance`.

    Attributes
    ----------
    log_weights : ndarray, shape (n_draws,)
        ``log w_n``, the log evidence of each draw with U summed out.
    probabilities, mcse : ndarray, shape (N,)
        ``P(U_i | WM, g′)`` and its Monte Carlo standard error.
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
    probabilities: np.ndarray
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

    def trustworthy(self, target_mcse: float) -> bool:
        """Whether k̂ ≤ 0.7 (or not estimable), the ESS ≥ 400 and every MCSE ≤ ``target_mcse``."""
        return not self.pareto_k > MAX_PARETO_K and self.ess >= MIN_IMPORTANCE_ESS and self.max_mcse <= target_mcse


class _WeightedSums:
    """Running sums of the ratio estimator, kept relative to the largest log weight seen (no overflow)."""

    def __init__(self, n_utilities: int) -> None:
        self.shift = -math.inf
        self.w = 0.0
        self.w2 = 0.0
        self.a = np.zeros(n_utilities)
        self.a2 = np.zeros(n_utilities)
        self.aw = np.zeros(n_utilities)

    def add(self, log_joint: np.ndarray, log_w: np.ndarray) -> None:
        top = float(log_w.max())
        if top > self.shift:
            if np.isfinite(self.shift):
                scale = math.exp(self.shift - top)
                self.w *= scale
                self.a *= scale
                self.w2 *= scale**2
                self.a2 *= scale**2
                self.aw *= scale**2
            self.shift = top
        if not np.isfinite(self.shift):
            return
        a = np.exp(log_joint - self.shift)
        w = np.exp(log_w - self.shift)
        self.w += float(w.sum())
        self.w2 += float((w**2).sum())
        self.a += a.sum(axis=0)
        self.a2 += (a**2).sum(axis=0)
        self.aw += a.T @ w

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """``p̂_i`` and the delta-method MCSE of each."""
        p = self.a / self.w
        squares = np.maximum(self.a2 - 2.0 * p * self.aw + p**2 * self.w2, 0.0)
        return p, np.sqrt(squares) / self.w


def weight_diagnostics(log_weights: np.ndarray) -> tuple[float, float]:
    """Kish's ESS and ArviZ's Pareto k̂ of importance weights given as logs.

    k̂ is NaN when it cannot be estimated: ArviZ needs at least five weights above its tail's cutoff, and a g
    that takes few values (exact g on a small ξ) can tie the largest weights. Such weights are bounded, and the
    ESS and MCSE judge them.
    """
    finite = log_weights[np.isfinite(log_weights)]
    normalised = np.exp(finite - logsumexp(finite))
    ess = float(1.0 / np.sum(normalised**2))
    _, k = az.psislw(finite - finite.max())
    return ess, float(k) if np.isfinite(k) else math.nan


def run_importance(
    draw: Draw,
    log_joint: LogJoint,
    n_utilities: int,
    seed: int,
    *,
    target_mcse: float = DEFAULT_TARGET_MCSE,
    batch_size: int = DEFAULT_BATCH,
    min_draws: int = DEFAULT_MIN_DRAWS,
    max_draws: int = DEFAULT_MAX_DRAWS,
) -> ImportanceRun:
    """Draw batches of policies until every ``P(U_i)`` has an MCSE ≤ ``target_mcse`` and the ESS is ≥ 400, or
    the budget ``max_draws`` is spent.

    After ``min_draws`` the run also stops early when its own error says the target is out of reach: the draws
    it would need, ``n · max((mcse / target)², 400 / ESS)`` (errors fall as 1/√n), exceed ``max_draws``; or when
    the weights' Pareto k̂ exceeds 0.7, where that projection cannot be trusted either.

    Raises
    ------
    ValueError
        When every draw has zero likelihood under every utility: the evidence is impossible under this world
        model and likelihood.
    """
    sums = _WeightedSums(n_utilities)
    log_weights: list[np.ndarray] = []
    n, batch, stopped = 0, 0, ""
    while not stopped:
        joint = log_joint(draw(batch_size, batch_rng(seed, batch)))
        log_w = logsumexp(joint, axis=1)
        log_weights.append(log_w)
        sums.add(joint, log_w)
        n, batch = n + batch_size, batch + 1
        if n < min(min_draws, max_draws) or not np.isfinite(sums.shift):
            if n >= max_draws:
                break
            continue
        p, mcse = sums.estimate()
        ess, k = weight_diagnostics(np.concatenate(log_weights))
        needed = n * max((float(mcse.max()) / target_mcse) ** 2, MIN_IMPORTANCE_ESS / ess)
        if mcse.max() <= target_mcse and ess >= MIN_IMPORTANCE_ESS:
            stopped = f"every MCSE ≤ {target_mcse:g} after {n} draws"
        elif n >= max_draws:
            stopped = f"the budget of {max_draws} draws was spent"
        elif k > MAX_PARETO_K:
            stopped = f"Pareto k̂ = {k:.2f} > {MAX_PARETO_K} after {n} draws"
        elif needed > max_draws:
            stopped = f"the target needs about {needed:.3g} draws, over the budget of {max_draws}"
    all_log_w = np.concatenate(log_weights)
    if not np.isfinite(sums.shift):
        raise ValueError(
            f"the evidence is impossible under every utility: all {n} policies drawn from the world model have "
            "zero likelihood P(g′ | g) under every library utility. g′ lies outside what the likelihood can "
            "reach from any g these utilities give; lower the likelihood's observed g′, widen its scale, or "
            "check the library and the world model"
        )
    p, mcse = sums.estimate()
    ess, k = weight_diagnostics(all_log_w)
    return ImportanceRun(all_log_w, p, mcse, ess, k, batch_size, stopped)


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
    "redraw",
    "resample",
    "run_importance",
    "weight_diagnostics",
]
