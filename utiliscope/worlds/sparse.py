r"""Sparse dynamics: ``P[s, a, s']`` held as next-state indices and probabilities per (s, a).

A world whose (s, a) reach at most B states stores two ``(S, A, B)`` arrays, ``next_states`` and
``probabilities`` (shorter lists padded with probability 0; a state listed twice has its probabilities added),
instead of the dense ``(S, A, S)`` table: a 100×100 gridworld takes 2 MB instead of 4 GB. The
:class:`SparseTransitions` object acts as the dense table where the package multiplies by it
(``P @ v`` gives ``Σ_s' P[s, a, s'] v[s']``) and keeps a ``scipy.sparse`` matrix of shape ``(S·A, S)`` for
occupancy iterations. The builders keep a world sparse where the batched iteration of policy evaluation is
cheaper than a direct dense solve (:func:`direct_solve_is_faster`, ``benchmarks/results/sparse_evaluation.md``),
and evaluation densifies a sparse world where it is not.
"""

from __future__ import annotations

import math
from functools import cached_property, singledispatch

import numpy as np
import scipy.sparse

from utiliscope._validation import as_float_array, check_array_size, check_probability_rows, readonly

#: Policy evaluation's iteration stops once the occupancy mass it has not yet accounted for, γ^(n+1)/(1 − γ), is
#: this fraction of the total 1/(1 − γ): every value is then within ``ITERATION_TOL · max|r| / (1 − γ)``.
ITERATION_TOL = 1e-13
#: Cost of a direct solve per S³, over the cost of one sparse sweep per stored entry, per policy: between 1.25
#: and 1.9 on the gridworlds of ``benchmarks/results/sparse_evaluation.md``, whose crossover lies between 64 and
#: 100 states at γ = 0.9 (and, less clearly on a loaded machine, between 64 and 256 at γ = 0.99).
DIRECT_SOLVE_COST = 1.5


def iteration_count(gamma: float, tol: float = ITERATION_TOL) -> int:
    """Sweeps n of the occupancy iteration with ``γ^(n+1) ≤ tol`` (0 for γ = 0)."""
    return 0 if gamma == 0 else max(math.ceil(math.log(tol) / math.log(gamma)) - 1, 0)


def check_sparse_tables(next_states, probabilities) -> tuple[np.ndarray, np.ndarray]:
    """Check next-state indices ``[S, A, B]`` and their probabilities; return them as (intp, float64) arrays."""
    p = as_float_array(probabilities, "probabilities", ndim=3)
    raw = np.asarray(next_states)
    if raw.shape != p.shape:
        raise ValueError(
            f"next_states has shape {raw.shape} but probabilities has {p.shape}; give one probability per "
            "listed next state, both (S, A, B)"
        )
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise TypeError(f"next_states must hold integer state indices; got an array of {raw.dtype}")
    n_states = raw.shape[0]
    if 0 in raw.shape:
        raise ValueError(f"next_states has shape {raw.shape}; it needs at least one state, action and next state")
    outside = (raw < 0) | (raw >= n_states)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"next_states{list(index)} is {raw[index]}, outside the states 0..{n_states - 1}; "
            "next_states[s, a, b] indexes the first axis"
        )
    check_probability_rows(p, "probabilities")
    return raw.astype(np.intp), p


class SparseTransitions:
    """``P(next_states[s, a, b] | s, a) = probabilities[s, a, b]``: a world's dynamics without an S×A×S table.

    Parameters
    ----------
    next_states : array_like of int, shape (S, A, B)
    probabilities : array_like, shape (S, A, B)
        Each ``probabilities[s, a]`` sums to 1.

    Attributes
    ----------
    next_states, probabilities : ndarray, shape (S, A, B)
        Read-only.
    shape : tuple
        ``(S, A, S)``, the shape of the dense table it stands for.
    """

    def __init__(self, next_states, probabilities) -> None:
        successors, p = check_sparse_tables(next_states, probabilities)
        self.next_states = readonly(successors)
        self.probabilities = readonly(p)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, A, S)``."""
        S, A, _ = self.next_states.shape
        return (S, A, S)

    @cached_property
    def matrix(self) -> scipy.sparse.csr_array:
        """P as a ``(S·A, S)`` CSR matrix, row ``s·A + a``, duplicates summed and zeros dropped."""
        S, A, B = self.next_states.shape
        rows = np.repeat(np.arange(S * A), B)
        matrix = scipy.sparse.csr_array(
            (self.probabilities.ravel(), (rows, self.next_states.ravel())), shape=(S * A, S)
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix

    @cached_property
    def incoming(self) -> scipy.sparse.csr_array:
        """Pᵀ as a ``(S, S·A)`` CSR matrix: row s' holds the probabilities of reaching s' from every (s, a)."""
        return self.matrix.T.tocsr()

    def __matmul__(self, values) -> np.ndarray:
        """``(P @ v)[s, a, ...] = Σ_b probabilities[s, a, b] v[next_states[s, a, b], ...]``, as for the dense P."""
        values = np.asarray(values)
        gathered = values[self.next_states]
        return np.einsum("sab,sab...->sa...", self.probabilities, gathered)

    def to_dense(self) -> np.ndarray:
        """The dense ``P[s, a, s']`` (refused above the package's array limit, naming the size)."""
        S, A, _ = self.shape
        check_array_size(
            self.shape, float, f"a dense table of {S:,} states and {A} actions", "keep the world sparse"
        )
        dense = np.zeros(self.shape)
        s, a = np.indices((S, A))
        np.add.at(dense, (s[..., None], a[..., None], self.next_states), self.probabilities)
        return dense

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The dense table, for the code paths that need one (the NUTS graph, the soft Bellman Op)."""
        dense = self.to_dense()
        return dense if dtype is None else dense.astype(dtype)

    @classmethod
    def from_dense(cls, transitions: np.ndarray) -> SparseTransitions:
        """The nonzero entries of a dense ``P[s, a, s']``, B = the most of any (s, a)."""
        return cls.from_matrix(
            scipy.sparse.csr_array(transitions.reshape(-1, transitions.shape[-1])), transitions.shape[1]
        )

    @classmethod
    def from_matrix(cls, matrix, n_actions: int) -> SparseTransitions:
        """From a ``scipy.sparse`` matrix of shape ``(S·A, S)`` whose row ``s·A + a`` is ``P[s, a, :]``."""
        csr = scipy.sparse.csr_array(matrix)
        csr.sum_duplicates()
        n_rows, n_states = csr.shape
        if n_rows != n_states * n_actions:
            raise ValueError(
                f"matrix has shape {csr.shape}; it must be (S·A, S) = ({n_states * n_actions}, {n_states}) "
                f"for {n_actions} actions"
            )
        counts = np.diff(csr.indptr)
        width = max(int(counts.max()), 1)
        offsets = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
        rows = np.repeat(np.arange(n_rows), counts)
        next_states = np.zeros((n_rows, width), dtype=np.intp)
        probabilities = np.zeros((n_rows, width))
        next_states[rows, offsets] = csr.indices
        probabilities[rows, offsets] = csr.data
        shape = (n_states, n_actions, width)
        return cls(next_states.reshape(shape), probabilities.reshape(shape))

    @classmethod
    def mixture(cls, weights: np.ndarray, tables: list[SparseTransitions]) -> SparseTransitions:
        """``Σ_e w[e] P_e``: every world's successor lists side by side, probabilities weighted."""
        next_states = np.concatenate([t.next_states for t in tables], axis=-1)
        probabilities = np.concatenate(
            [w * t.probabilities for w, t in zip(weights, tables, strict=True)], axis=-1
        )
        return cls(next_states, probabilities)

    def __repr__(self) -> str:
        S, A, B = self.next_states.shape
        return f"SparseTransitions(S={S}, A={A}, B={B})"


def direct_solve_is_faster(transitions: SparseTransitions, gamma: float) -> bool:
    """Whether evaluating policies by a dense direct solve, ``DIRECT_SOLVE_COST · S³`` per policy, is cheaper
    than the sparse iteration's :func:`iteration_count` sweeps over ``nnz(P) + S·A`` entries."""
    S, A, _ = transitions.shape
    return DIRECT_SOLVE_COST * S**3 <= iteration_count(gamma) * (transitions.matrix.nnz + S * A)


@singledispatch
def successor_tables(transitions) -> tuple[np.ndarray, np.ndarray]:
    """``(next_states, probabilities)``, each ``(S, A, B)``, of a world's transitions (dense: B = S states)."""
    S = transitions.shape[0]
    return np.broadcast_to(np.arange(S), transitions.shape), transitions


@successor_tables.register
def _(transitions: SparseTransitions) -> tuple[np.ndarray, np.ndarray]:
    return transitions.next_states, transitions.probabilities


__all__ = [
    "DIRECT_SOLVE_COST",
    "ITERATION_TOL",
    "SparseTransitions",
    "check_sparse_tables",
    "direct_solve_is_faster",
    "iteration_count",
    "successor_tables",
]
