"""A prefix-free code over weighted feature sums: the description lengths of ``UtilityLibrary.from_features``.

A utility expression over K features ``phi[..., k]`` is a sum of n distinct features with non-zero integer
weights, ``U = Σ_j w_j · phi[..., k_j]`` with ``1 ≤ |w_j| ≤ W`` (``n = 0`` is the constant utility). Its code word
is the concatenation of

1. the number of terms n, by the Elias gamma code of n + 1: ``2⌊log2(n + 1)⌋ + 1`` bits (the constant: 1 bit);
2. the *set* ``{k_1, ..., k_n}``, one of the C(K, n) equally likely n-subsets: ``log2 C(K, n)`` bits;
3. for each term in increasing feature order, its sign (1 bit) and its magnitude, uniform over 1..W:
   ``1 + log2 W`` bits.

so that

    K(U) = 2⌊log2(n + 1)⌋ + 1 + log2 C(K, n) + n · (1 + log2 W)   bits.

Parts 2 and 3 are ideal code lengths, −log2 of a uniform probability, and need not be whole numbers: an
arithmetic coder attains them to within 2 bits per word, and the prior ``2^(−λ·K)`` needs only the lengths.

The code is prefix-free: the gamma code is, and once n is read the rest has a fixed length. Kraft's inequality
holds for every K and W: the C(K, n) · (2W)^n words with n terms share ``2^−gamma(n+1)`` equally, so

    Σ_U 2^−K(U) = Σ_{n ≤ min(max_terms, K)} 2^−(2⌊log2(n+1)⌋+1) < Σ_{j ≥ 0} 2^j · 2^−(2j+1) = 1.

The gamma code is used rather than a uniform code over 0..max_terms because it does not depend on max_terms:
the length of an expression stays the same when a larger library is enumerated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

#: Name of the constant utility (the expression with no terms).
CONSTANT_NAME = "const"


def elias_gamma_bits(m: int) -> int:
    """Length of the Elias gamma code word of the integer ``m ≥ 1``: ``2⌊log2 m⌋ + 1`` bits."""
    if m < 1:
        raise ValueError(f"m is {m}; the Elias gamma code encodes integers ≥ 1")
    return 2 * int(m).bit_length() - 1


def expression_bits(n_terms: int, n_features: int, max_weight: int) -> float:
    """Description length K in bits of an expression with ``n_terms`` terms (see the module docstring).

    Examples
    --------
    >>> expression_bits(0, 5, 2)  # the constant
    1.0
    >>> expression_bits(1, 4, 2)  # 3 (gamma of 2) + 2 (which of 4) + 1 (sign) + 1 (magnitude of 2)
    7.0
    """
    return (
        elias_gamma_bits(n_terms + 1)
        + math.log2(math.comb(n_features, n_terms))
        + n_terms * (1.0 + math.log2(max_weight))
    )


def count_expressions(n_features: int, max_terms: int, max_weight: int) -> int:
    """Number of expressions :func:`enumerate_expressions` lists: ``Σ_n C(K, n) · (2W)^n``."""
    return sum(math.comb(n_features, n) * (2 * max_weight) ** n for n in range(min(max_terms, n_features) + 1))


def enumerate_expressions(n_features: int, max_terms: int, max_weight: int) -> tuple[np.ndarray, np.ndarray]:
    """Every expression with at most ``max_terms`` terms, and its description length.

    The order is: number of terms (0 first), then the feature subset in lexicographic order, then the weights
    with each weight running over ``1, −1, 2, −2, ..., W, −W`` (the last term fastest). So among utilities that
    are equal up to a positive affine map and have the same length, the one with the smallest weights comes
    first.

    Returns
    -------
    coefficients : ndarray of int, shape (N, K)
        ``coefficients[i, k]`` is the weight of feature k in expression i.
    bits : ndarray of float, shape (N,)
        ``K_i`` from :func:`expression_bits`.
    """
    weights = np.array([sign * size for size in range(1, max_weight + 1) for sign in (1, -1)])
    blocks = [np.zeros((1, n_features), dtype=int)]
    bits = [np.full(1, expression_bits(0, n_features, max_weight))]
    for n in range(1, min(max_terms, n_features) + 1):
        subsets = np.array(list(itertools.combinations(range(n_features), n)))
        choices = np.array(list(itertools.product(weights, repeat=n)))
        shape = (len(subsets), len(choices), n)
        block = np.zeros((len(subsets), len(choices), n_features), dtype=int)
        np.put_along_axis(
            block, np.broadcast_to(subsets[:, None, :], shape), np.broadcast_to(choices[None], shape), axis=2
        )
        blocks.append(block.reshape(-1, n_features))
        bits.append(np.full(len(subsets) * len(choices), expression_bits(n, n_features, max_weight)))
    return np.concatenate(blocks), np.concatenate(bits)


def expression_name(coefficients: np.ndarray, feature_names: Sequence[str]) -> str:
    """Readable name of an expression: ``"const"``, ``"+red"``, ``"-blue"``, ``"+2*red-blue"``.

    A magnitude of 1 is left out; larger ones are written ``2*`` before the feature name.
    """
    terms = [
        f"{'+' if w > 0 else '-'}{'' if abs(w) == 1 else f'{abs(w)}*'}{feature_names[k]}"
        for k, w in enumerate(coefficients)
        if w != 0
    ]
    return "".join(terms) if terms else CONSTANT_NAME
