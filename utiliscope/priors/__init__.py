"""Priors over the operator's utility U: ``P(U) ∝ 2^(−λ·K(U))`` with K a description length in bits.

- :class:`UtilityLibrary`: a finite set of candidate utilities, with K given or computed by the prefix-free code
  of :mod:`utiliscope.priors.codes` (``UtilityLibrary.from_features``);
- :class:`LinearUtility`: ``r = phi @ theta`` with theta a continuous unit direction and a sparsity prior on it.

Both subclass :class:`UtilityPrior` (``kind``, ``name``, ``to_dict`` / ``UtilityPrior.from_dict``,
``with_simplicity_weight``).
"""

from utiliscope.priors.library import UtilityLibrary, UtilityPrior
from utiliscope.priors.linear import LinearUtility

__all__ = ["LinearUtility", "UtilityLibrary", "UtilityPrior"]
