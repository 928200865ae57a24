r"""Tempered sequential Monte Carlo from the world model (and the utility prior) to the posterior: the engine for
when the world model is a poor importance proposal.

The targets run from the prior of the latents x (pi's Dirichlet rows, and for a linear prior the direction too)
to their posterior,

.. math::

    p_\beta(x) \propto p_0(x)\; L(x)^\beta, \qquad 0 = \beta_0 < \beta_1 < \dots < \beta_T = 1,

with L the evidence ``P(g′ | x)`` (a library's U summed out), each ``β`` chosen by bisection so that the
incremental weights ``L^{β_{t+1} − β_t}`` keep half the particles' effective sample size. After reweighting, the
particles are resampled (systematic) and moved by random-walk Metropolis steps that leave ``p_β`` invariant. The
likelihood uses the hard count of the g method (a step function of pi): random-walk moves need no gradient, so
nothing is smoothed and the target is the model's own.

The latents are unconstrained. Each row ``pi[s, :] ~ Dirichlet(alpha[s])`` is written as normalised Gamma
variates, ``pi[s, a] = e^{y_sa} / Σ_a' e^{y_sa'}`` with ``y_sa = log Gamma(alpha_sa, 1)``, of log density
``Σ alpha_sa y_sa − e^{y_sa}``; a linear prior's direction is ``theta = B z / ||z||`` with ``z ~ Normal(0, I)``
(uniform on the sphere) and the simplicity potential on theta. The random walk's step per coordinate is a
fraction of the particles' spread, adapted stage by stage toward an acceptance rate of 0.234, as PyMC's SMC does.

Written here rather than taken from ``pm.sample_smc``: PyMC's evaluates the model once per particle, while the
hard count and the policy values are computed here for all particles at once in numpy, several times faster and,
with a linear prior, without PyMC's collapse onto one direction (``benchmarks/results/smc.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from utiliscope.models.impossible import impossible_evidence

#: Metropolis steps per stage: enough to bring four runs together on a weak world model
#: (benchmarks/results/smc.md).
DEFAULT_STEPS = 25
#: Each stage keeps this fraction of the particles' effective sample size.
ESS_FRACTION = 0.5
#: The least ``log G`` a start takes: below about −745, ``e^y`` is 0 in float64 and the row's pi the same, while
#: starts near −1e200 (alpha of 1e-200) would overflow the particles' spread and the random walk to NaN.
LOG_GAMMA_FLOOR = -1e4
#: The random walk's acceptance-rate target.
TARGET_ACCEPTANCE = 0.234
#: The most stages a run may take before it reports failure.
MAX_STAGES = 200

#: ``function(x[P, D]) -> values[P]``: a log prior or log likelihood of flat latents.
LogDensity = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SMCRun:
    """One SMC run's final particles and its path.

    Attributes
    ----------
    particles : ndarray, shape (P, D)
        Equally weighted draws of the flat latents from the posterior.
    betas : ndarray
        The tempering schedule, from 0 to 1.
    acceptance : ndarray
        The random walk's acceptance rate in each stage.
    log_evidence : float
        ``log E_prior[L(x)]``, the sum of the stages' log mean incremental weights.
    """

    particles: np.ndarray
    betas: np.ndarray
    acceptance: np.ndarray
    log_evidence: float


def log_gamma_variates(alpha: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``log G`` with ``G ~ Gamma(alpha, 1)``, shape (size, *alpha.shape), finite even for tiny alpha:
    ``log G(a) = log G(a + 1) + log(V) / a`` with V uniform (Marsaglia and Tsang's boost), at least
    :data:`LOG_GAMMA_FLOOR`."""
    boosted = np.log(rng.standard_gamma(alpha + 1.0, size=(size, *alpha.shape)))
    return np.maximum(boosted + np.log(rng.random((size, *alpha.shape))) / alpha, LOG_GAMMA_FLOOR)


def log_gamma_density(y: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Log density (up to a constant) of ``y = log G``, ``G ~ Gamma(alpha, 1)`` elementwise, summed per row of
    ``y[P, ...]``: ``Σ alpha · y − e^y``."""
    return (alpha * y - np.exp(y)).reshape(len(y), -1).sum(axis=1)


def _next_beta(log_l: np.ndarray, beta: float) -> float:
    """The largest β ≤ 1 whose incremental weights keep :data:`ESS_FRACTION` of the particles' ESS."""

    def ess(delta: float) -> float:
        w = delta * log_l
        return math.exp(2.0 * logsumexp(w) - logsumexp(2.0 * w)) if np.isfinite(w).any() else 0.0

    target = ESS_FRACTION * log_l.size
    if ess(1.0 - beta) >= target:
        return 1.0
    low, high = 0.0, 1.0 - beta
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if ess(mid) >= target else (low, mid)
    return beta + max(low, 1e-12)


def _systematic(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    positions = (rng.random() + np.arange(weights.size)) / weights.size
    return np.minimum(np.searchsorted(np.cumsum(weights), positions), weights.size - 1)


def run_smc(
    particles: np.ndarray,
    log_prior: LogDensity,
    log_likelihood: LogDensity,
    rng: np.random.Generator,
    n_steps: int = DEFAULT_STEPS,
) -> SMCRun:
    """Temper ``particles[P, D]``, drawn from the prior, to the posterior.

    Raises
    ------
    ValueError
        When every particle has zero likelihood (the evidence is impossible), or the schedule does not reach
        β = 1 within :data:`MAX_STAGES` stages.
    """
    x = np.array(particles, dtype=float)
    n_particles, dimension = x.shape
    log_l, log_p = log_likelihood(x), log_prior(x)
    betas, acceptance, log_evidence = [0.0], [], 0.0
    scale = 2.38 / math.sqrt(dimension)
    while betas[-1] < 1.0:
        if not np.isfinite(log_l).any():
            raise ValueError(impossible_evidence(f"all {n_particles} particles"))
        if len(betas) > MAX_STAGES:
            raise ValueError(f"SMC did not reach β = 1 in {MAX_STAGES} stages (β = {betas[-1]:.3g})")
        beta = _next_beta(log_l, betas[-1])
        increment = (beta - betas[-1]) * log_l
        log_evidence += float(logsumexp(increment) - math.log(n_particles))
        keep = _systematic(np.exp(increment - logsumexp(increment)), rng)
        x, log_l, log_p = x[keep], log_l[keep], log_p[keep]
        spread = x.std(axis=0) + 1e-12
        accepted = 0
        for _ in range(n_steps):
            proposal = x + scale * spread * rng.standard_normal(x.shape)
            log_l_new, log_p_new = log_likelihood(proposal), log_prior(proposal)
            with np.errstate(invalid="ignore"):
                log_ratio = log_p_new - log_p + beta * (log_l_new - log_l)
            accept = np.log(rng.random(n_particles)) < np.nan_to_num(log_ratio, nan=-np.inf)
            x[accept], log_l[accept], log_p[accept] = proposal[accept], log_l_new[accept], log_p_new[accept]
            accepted += int(accept.sum())
        rate = accepted / (n_steps * n_particles)
        acceptance.append(rate)
        scale *= math.exp(rate - TARGET_ACCEPTANCE)
        betas.append(beta)
    return SMCRun(x, np.array(betas), np.array(acceptance), log_evidence)


__all__ = ["DEFAULT_STEPS", "SMCRun", "log_gamma_density", "log_gamma_variates", "run_smc"]
