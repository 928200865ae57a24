"""The errors every engine raises, in the same words, when the evidence is impossible under every utility."""

from __future__ import annotations

import numpy as np


def impossible_evidence(what: str) -> str:
    """The message of the error raised when ``what`` (the policies considered) all have zero likelihood."""
    return (
        f"the evidence is impossible under every utility: {what} have zero likelihood P(g′ | g) under every "
        "utility. g′ lies outside what the likelihood can reach from any g these utilities give; lower the "
        "likelihood's observed g′, widen its scale, or check the prior and the world model"
    )


def check_starting_point(logp: float, engine: str) -> None:
    """Raise unless the model's log density at NUTS's starting point, ``logp``, is finite: at −inf no utility
    gives the evidence any likelihood there, and NUTS would fail to start or diverge at every step."""
    if not np.isfinite(logp):
        raise ValueError(
            f"the model's log density is {logp} at the starting point of the NUTS sampler {engine!r}: g′ has zero "
            "likelihood P(g′ | g) there under every utility, so NUTS cannot move. The evidence is likely "
            "impossible under every utility: lower the likelihood's observed g′ or widen its scale, or fit with "
            "sampler='auto', whose draws from the world model say whether any policy explains it"
        )


__all__ = ["check_starting_point", "impossible_evidence"]
