r"""Seeds of the NUTS warmup metric: approximate posterior variances on the sampler's unconstrained scale.

BlackJAX's warmup (:mod:`utiliscope.models.jax_sampler`) starts its diagonal inverse mass matrix at these values
instead of the identity; the first mass-matrix window (steps 76–100 of 500 in Stan's schedule) replaces them.
The Utiliscope's posterior of pi is the world model's Dirichlet reweighted by one scalar observation g′, so the
Dirichlet's own variances are a close seed (:func:`dirichlet_simplex_variance`); ``z`` of a linear prior is
seeded with its prior variance (:attr:`~utiliscope.priors.LinearUtility.z_variance`). Measured on problem (a) of
``benchmarks/performance.py`` (importance g, one seed, 4 chains): from the identity, the first 100 tuning steps
took 500–800 leapfrog steps each, about half of the warmup's; seeded, 100–350. Seeding pi alone (z left at 1)
did not shorten them. The ``warmup_seed`` section of that benchmark measures the effect on whole fits.
"""

from __future__ import annotations

import numpy as np
from scipy.special import polygamma


def dirichlet_simplex_variance(alpha) -> np.ndarray:
    r"""Variances of the unconstrained coordinates PyMC samples a Dirichlet row on, for rows ``alpha[..., N]``.

    PyMC's simplex transform maps x to ``y_k = log x_k − (1/N) Σ_j log x_j`` for k < N. Under
    ``Dirichlet(alpha)`` the logs have ``Cov(log x_i, log x_j) = ψ₁(α_i) δ_ij − ψ₁(α₀)`` (ψ₁ the trigamma
    function, α₀ = Σ α); centring removes the common ``−ψ₁(α₀)``, leaving

    .. math:: \operatorname{Var} y_k = ψ_1(α_k) (1 − 2/N) + \frac{1}{N^2} \sum_j ψ_1(α_j).

    Returns an array of shape ``alpha.shape[:-1] + (N − 1,)``.
    """
    alpha = np.asarray(alpha, dtype=float)
    n = alpha.shape[-1]
    trigamma = polygamma(1, alpha)
    variance = trigamma * (1.0 - 2.0 / n) + trigamma.sum(axis=-1, keepdims=True) / n**2
    return variance[..., :-1]


__all__ = ["dirichlet_simplex_variance"]
