"""The prefix-free code over weighted feature sums, checked against hand counts and a brute-force enumeration."""

import itertools
import math

import numpy as np
import pytest

from utiliscope.priors.codes import (
    count_expressions,
    elias_gamma_bits,
    enumerate_expressions,
    expression_bits,
    expression_name,
)


def test_elias_gamma_lengths_by_hand():
    # Gamma words: 1 -> "1", 2 -> "010", 3 -> "011", 4..7 -> "00100".."00111", 8 -> "0001000".
    assert [elias_gamma_bits(m) for m in range(1, 9)] == [1, 3, 3, 5, 5, 5, 5, 7]
    with pytest.raises(ValueError, match="m is 0"):
        elias_gamma_bits(0)


@pytest.mark.parametrize(
    ("n_terms", "n_features", "max_weight", "expected"),
    [
        (0, 5, 2, 1.0),  # the constant: gamma(1) only
        (1, 3, 2, 3 + math.log2(3) + 2),  # gamma(2) + which of 3 + sign + magnitude of 2
        (2, 3, 2, 3 + math.log2(3) + 4),  # gamma(3) + which pair of 3 + 2 × (sign + magnitude)
        (3, 3, 2, 5 + 0 + 6),  # gamma(4) + the only triple + 3 × 2
        (1, 4, 1, 3 + 2 + 1),  # a magnitude of 1 costs nothing
        (2, 8, 4, 3 + math.log2(28) + 2 * 3),
    ],
)
def test_expression_bits_by_hand(n_terms, n_features, max_weight, expected):
    assert expression_bits(n_terms, n_features, max_weight) == pytest.approx(expected, abs=1e-12)


def brute_force(n_features, max_terms, max_weight):
    """Every integer weight vector with entries in [−W, W] and at most ``max_terms`` non-zero entries."""
    span = range(-max_weight, max_weight + 1)
    return {w for w in itertools.product(span, repeat=n_features) if sum(x != 0 for x in w) <= max_terms}


@pytest.mark.parametrize(("n_features", "max_terms", "max_weight"), [(1, 1, 1), (3, 2, 2), (4, 3, 1), (3, 5, 3)])
def test_enumeration_matches_brute_force(n_features, max_terms, max_weight):
    coefficients, bits = enumerate_expressions(n_features, max_terms, max_weight)
    rows = [tuple(int(x) for x in row) for row in coefficients]
    assert len(rows) == len(set(rows)) == count_expressions(n_features, max_terms, max_weight)
    assert set(rows) == brute_force(n_features, max_terms, max_weight)
    assert rows[0] == (0,) * n_features
    n_terms = (coefficients != 0).sum(axis=1)
    assert np.all(np.diff(n_terms) >= 0), "expressions are listed by number of terms"
    expected = [expression_bits(int(n), n_features, max_weight) for n in n_terms]
    np.testing.assert_allclose(bits, expected, rtol=0, atol=1e-12)


def test_smallest_weights_come_first():
    coefficients, _ = enumerate_expressions(2, 1, 2)
    expected = [(0, 0), (1, 0), (-1, 0), (2, 0), (-2, 0), (0, 1), (0, -1), (0, 2), (0, -2)]
    assert [tuple(r) for r in coefficients] == expected


@pytest.mark.parametrize(("n_features", "max_terms", "max_weight"), [(3, 3, 2), (5, 2, 3), (6, 6, 1), (7, 3, 2)])
def test_kraft_sum_of_the_whole_enumeration(n_features, max_terms, max_weight):
    _, bits = enumerate_expressions(n_features, max_terms, max_weight)
    # Each n-term block carries 2^-gamma(n+1), gamma(m) = 2 floor(log2 m) + 1, written out independently.
    expected = sum(2.0 ** -(2 * math.floor(math.log2(n + 1)) + 1) for n in range(min(max_terms, n_features) + 1))
    total = np.sum(2.0**-bits)
    assert total == pytest.approx(expected, rel=1e-12)
    assert total < 1.0


def test_expression_names():
    names = ["red", "blue", "green"]
    assert expression_name(np.array([0, 0, 0]), names) == "const"
    assert expression_name(np.array([1, 0, 0]), names) == "+red"
    assert expression_name(np.array([0, -1, 0]), names) == "-blue"
    assert expression_name(np.array([2, -1, 0]), names) == "+2*red-blue"
    assert expression_name(np.array([0, 3, -2]), names) == "+3*blue-2*green"
