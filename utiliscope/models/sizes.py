"""The sizes a fit can run, checked before any work: the least particles SMC needs, the most it may take, and
the memory the posterior draws will fill.

A fit that fails on allocation after its engine has run loses the work (``fit(draws=10**7)`` used to run every
batch, then raise MemoryError while building the posterior); one with too few SMC particles answers wrongly
without a word (two particles per chain put P(U) 0.06 off, 166 of its own MCSEs).
"""

from __future__ import annotations

from utiliscope._validation import check_array_size

#: SMC's least particles per chain: fewer collapse onto a few distinct values when resampled, and the spread of
#: the chains, its MCSE, no longer measures its error.
MIN_SMC_DRAWS = 50
#: SMC's most particles per chain: every Metropolis step of every stage values all of them (25 steps a stage),
#: so 3 million particles run for minutes; the error falls as fast with more chains, which run apart.
MAX_SMC_DRAWS = 200_000


def check_smc_draws(draws: int) -> None:
    """Raise ValueError, before sampling, unless SMC gets between :data:`MIN_SMC_DRAWS` and
    :data:`MAX_SMC_DRAWS` particles per chain."""
    if draws < MIN_SMC_DRAWS:
        raise ValueError(
            f"draws is {draws}; SMC needs at least {MIN_SMC_DRAWS} particles per chain (fewer collapse onto a "
            "few values and its error is larger than its MCSE says): raise draws"
        )
    if draws > MAX_SMC_DRAWS:
        raise ValueError(
            f"draws is {draws:,}; SMC takes at most {MAX_SMC_DRAWS:,} particles per chain (each Metropolis step "
            "values them all): lower draws and raise chains, which shrink the error as fast"
        )


def check_posterior_size(draws: int, chains: int, per_draw: int) -> None:
    """Raise ValueError, before sampling, when ``chains × draws`` posterior draws of ``per_draw`` numbers each
    (pi's table, and U and g per utility) would pass the package's array limit."""
    check_array_size(
        (chains * draws, per_draw), float, f"{chains} chains × {draws:,} draws", "lower draws or chains"
    )


__all__ = ["MAX_SMC_DRAWS", "MIN_SMC_DRAWS", "check_posterior_size", "check_smc_draws"]
