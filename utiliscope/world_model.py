"""The world model P(pi | WM): what we believe about the operator's policy before asking about its utility.

Two kinds (docs/model.md#world-model):

``dirichlet``
    Independent rows ``pi[s, :] ~ Dirichlet(alpha[s, :])``, e.g. ``alpha = concentration + n[s, a]`` from
    demonstrations.
``finite``
    A finite set of candidate policies ``pi_m`` with weights ``w[m]``; a single known policy is a point mass.
"""

from __future__ import annotations

import numpy as np

from utiliscope._validation import (
    as_float_array,
    check_array_size,
    check_count,
    check_positive,
    check_probability_rows,
    readonly,
    rng_from,
)
from utiliscope.demonstrations import Demonstrations, cumulative, inverse_cdf
from utiliscope.evaluation import check_policy


def _check_alpha(alpha) -> np.ndarray:
    a = as_float_array(alpha, "alpha", ndim=2)
    if 0 in a.shape:
        raise ValueError(f"alpha has shape {a.shape}; it needs at least one state and one action")
    bad = a <= 0
    if bad.any():
        s, act = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"alpha[{s}, {act}] is {a[s, act]:.6g}; Dirichlet concentrations must be > 0 "
            "(add a positive concentration to counts)"
        )
    return a


class WorldModel:
    """A distribution over the operator's tabular policy ``pi[s, a]``: :class:`DirichletWorldModel` or
    :class:`FiniteWorldModel`.

    Build one with :meth:`from_demonstrations`, :meth:`dirichlet` or :meth:`from_policies`; code that needs to
    know which one it holds asks its type.

    Attributes
    ----------
    kind : {"dirichlet", "finite"}
        The name saved with a fit (:meth:`to_dict`).
    n_states, n_actions : int

    Examples
    --------
    >>> import utiliscope as us
    >>> demos = us.Demonstrations.from_counts([[3, 1], [0, 2]])
    >>> wm = us.WorldModel.from_demonstrations(demos, concentration=1.0)
    >>> wm.mean().round(3).tolist()
    [[0.667, 0.333], [0.25, 0.75]]
    """

    kind: str = ""

    @classmethod
    def from_demonstrations(cls, demos: Demonstrations, concentration: float = 1.0) -> DirichletWorldModel:
        r"""Dirichlet rows from counts: ``pi[s, :] ~ Dirichlet(concentration + n[s, :])``.

        This is the posterior over each row after a symmetric ``Dirichlet(concentration)`` prior and the
        multinomial action counts ``n[s, a]`` of ``demos`` (actions at each visit are independent draws from
        ``pi[s]``, so the rows update independently). Unvisited states keep the prior.

        Parameters
        ----------
        demos : Demonstrations
            Use ``Demonstrations.from_counts(counts)`` for counts observed elsewhere.
        concentration : float
            > 0, the prior pseudo-count of each action.
        """
        if not isinstance(demos, Demonstrations):
            raise TypeError(
                f"demos must be a Demonstrations; got {type(demos).__name__}. "
                "Wrap counts in us.Demonstrations.from_counts(counts)"
            )
        concentration = check_positive(concentration, "concentration")
        return DirichletWorldModel(concentration + demos.counts)

    @classmethod
    def dirichlet(cls, alpha) -> DirichletWorldModel:
        """Dirichlet rows ``pi[s, :] ~ Dirichlet(alpha[s, :])`` with ``alpha`` (S, A), finite and > 0."""
        return DirichletWorldModel(alpha)

    @classmethod
    def from_policies(cls, policies, weights=None) -> FiniteWorldModel:
        """A finite set of candidate policies ``(M, S, A)`` with weights; one table ``(S, A)`` is a point mass.

        Parameters
        ----------
        policies : array_like, shape (S, A) or (M, S, A)
            Rows sum to 1.
        weights : array_like, shape (M,), optional
            Non-negative, summing to 1; equal by default.
        """
        return FiniteWorldModel(policies, weights)

    @classmethod
    def from_dict(cls, data: dict) -> WorldModel:
        """Rebuild a world model from :meth:`to_dict`'s output."""
        kinds = {sub.kind: sub for sub in (DirichletWorldModel, FiniteWorldModel)}
        kind = data.get("kind")
        if kind not in kinds:
            raise ValueError(f"kind is {kind!r}; choose 'dirichlet' or 'finite'")
        return kinds[kind].from_parameters(data)

    @property
    def n_states(self) -> int:
        """Number of states S."""
        return self.table_shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return self.table_shape[1]

    @property
    def table_shape(self) -> tuple[int, int]:
        """``(S, A)``."""
        raise NotImplementedError

    def mean(self) -> np.ndarray:
        """The mean policy ``E[pi[s, a]]``."""
        raise NotImplementedError

    def sample(self, n: int, seed=0) -> np.ndarray:
        """Draw ``n`` policies, shape (n, S, A), with ``numpy.random.default_rng(seed)``."""
        n = check_count(n, "n")
        rng = rng_from(seed)
        check_array_size((n, self.n_states, self.n_actions), float, f"drawing {n:,} policies", "lower n")
        return self._draw(n, rng)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def check_compatible(self, worlds) -> None:
        """Raise a ValueError unless ``worlds`` has this model's numbers of states and actions."""
        if (worlds.n_states, worlds.n_actions) != (self.n_states, self.n_actions):
            raise ValueError(
                f"the world model is over {self.n_states} states and {self.n_actions} actions but the worlds "
                f"have {worlds.n_states} and {worlds.n_actions}; build both over the same states and actions"
            )

    def to_dict(self) -> dict:
        """Kind and parameters as plain lists, for saving with a fit (see :meth:`from_dict`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(S={self.n_states}, A={self.n_actions})"


class DirichletWorldModel(WorldModel):
    """Independent rows ``pi[s, :] ~ Dirichlet(alpha[s, :])``, ``alpha`` (S, A) finite and > 0."""

    kind = "dirichlet"

    def __init__(self, alpha) -> None:
        self.alpha = readonly(_check_alpha(alpha))

    @classmethod
    def from_parameters(cls, data: dict) -> DirichletWorldModel:
        return cls(data.get("alpha"))

    @property
    def table_shape(self) -> tuple[int, int]:
        return self.alpha.shape

    def mean(self) -> np.ndarray:
        """``alpha[s, a] / Σ_a' alpha[s, a']``."""
        return self.alpha / self.alpha.sum(axis=1, keepdims=True)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return _dirichlet_rows(self.alpha, n, rng)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "alpha": self.alpha.tolist()}


class FiniteWorldModel(WorldModel):
    """Candidate policies ``pi_m`` (M, S, A) with weights ``w[m]``; one policy is a point mass."""

    kind = "finite"

    def __init__(self, policies, weights=None) -> None:
        self.policies, self.weights = (readonly(x) for x in _check_finite_set(policies, weights))

    @classmethod
    def from_parameters(cls, data: dict) -> FiniteWorldModel:
        return cls(data.get("policies"), data.get("weights"))

    @property
    def table_shape(self) -> tuple[int, int]:
        return self.policies.shape[1:]

    def mean(self) -> np.ndarray:
        """``Σ_m w[m] pi_m[s, a]``."""
        return np.einsum("m,msa->sa", self.weights, self.policies)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.policies[rng.choice(self.weights.size, size=n, p=self.weights)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "policies": self.policies.tolist(), "weights": self.weights.tolist()}

    def __repr__(self) -> str:
        return f"FiniteWorldModel(M={self.weights.size}, S={self.n_states}, A={self.n_actions})"


def _check_finite_set(policies, weights) -> tuple[np.ndarray, np.ndarray]:
    """Validate a stack of candidate policies (one table becomes a stack of one) and their weights."""
    table = as_float_array(policies, "policies", ndim=(2, 3))
    stack = table[None] if table.ndim == 2 else table
    if 0 in stack.shape:
        raise ValueError(f"policies has shape {table.shape}; it needs at least one policy, state and action")
    stack = check_policy(stack, stack.shape[1], stack.shape[2], name="policies")
    if weights is None:
        return stack, np.full(stack.shape[0], 1.0 / stack.shape[0])
    w = as_float_array(weights, "weights", ndim=1)
    if w.shape != (stack.shape[0],):
        raise ValueError(f"weights has shape {w.shape}; it needs one weight per policy ({stack.shape[0]})")
    check_probability_rows(w, "weights", what="set of weights")
    return stack, w


def _dirichlet_rows(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of independent rows ``Dirichlet(alpha[s])``, as normalised Gamma variates.

    Written out because ``Generator.dirichlet`` takes one concentration vector per call, not one per row. With
    very small concentrations every Gamma variate of a row can underflow to 0; such a row is replaced by the
    one-hot vector of an action drawn with probability ``alpha[s, a] / Σ alpha[s]``, the Dirichlet's own
    limit as the concentrations shrink.
    """
    gammas = rng.standard_gamma(alpha, size=(n, *alpha.shape))
    sums = gammas.sum(axis=-1, keepdims=True)
    empty = sums[..., 0] <= 0
    if empty.any():
        m, s = np.nonzero(empty)
        gammas[m, s] = np.eye(alpha.shape[1])[inverse_cdf(cumulative(alpha[s]), rng.random(s.size))]
        sums = gammas.sum(axis=-1, keepdims=True)
    return gammas / sums


__all__ = ["DirichletWorldModel", "FiniteWorldModel", "WorldModel"]
