"""Priors ξ over random policies, against which an operator's intelligence g is measured.

A prior either enumerates a finite support with weights (``support``) or draws samples (``sample``). Every
prior can sample; only finite ones can enumerate. Deterministic policies are returned as integer action
indices ``a[m, s]``, stochastic ones as tables ``pi[m, s, a]``; :mod:`utiliscope.evaluation` takes both.
"""

from __future__ import annotations

import math

import numpy as np

from utiliscope._validation import (
    as_float_array,
    check_array_size,
    check_count,
    check_positive,
    check_probability_rows,
    rng_from,
)
from utiliscope.evaluation import check_policy

#: The largest support ``UniformDeterministic`` enumerates by default (A^S ≤ 2^20 ≈ 1.05 million policies, about a
#: second of evaluation at S = 8: benchmarks/results/linear_solve.md).
MAX_ENUMERATE = 2**20


class PolicyPrior:
    """Base class of ξ. Subclasses implement :meth:`sample` and, if finite, :meth:`support`."""

    name = "policy_prior"

    def support_size(self, n_states: int, n_actions: int) -> float:
        """Number of policies in the support (``math.inf`` if continuous)."""
        return math.inf

    def can_enumerate(self, n_states: int, n_actions: int) -> bool:
        """Whether :meth:`support` can list every policy for this problem size."""
        return False

    def support(self, n_states: int, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
        """``(policies, weights)`` of the whole support; raises ValueError if it cannot be enumerated."""
        raise ValueError(
            f"{type(self).__name__} has infinite support and cannot be enumerated; use "
            "method='monte_carlo' or method='gaussian'"
        )

    def sample(self, n_states: int, n_actions: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` policies."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Settings as a plain dict, for saving with a fit."""
        return {"name": self.name}


class UniformDeterministic(PolicyPrior):
    """The default ξ: uniform over the A^S deterministic stationary policies.

    Parameters
    ----------
    max_enumerate : int
        Largest A^S that :meth:`support` enumerates (default 2^20 = 1,048,576). Larger problems must be sampled.
    """

    name = "uniform_deterministic"

    def __init__(self, max_enumerate: int = MAX_ENUMERATE) -> None:
        self.max_enumerate = check_count(max_enumerate, "max_enumerate")

    def support_size(self, n_states: int, n_actions: int) -> float:
        return _power(n_actions, n_states)

    def can_enumerate(self, n_states: int, n_actions: int) -> bool:
        return n_actions**n_states <= self.max_enumerate

    def support(self, n_states: int, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
        """All A^S policies as action indices ``a[m, s]`` in mixed-radix order (state 0 most significant)."""
        if not self.can_enumerate(n_states, n_actions):
            raise ValueError(
                f"UniformDeterministic over A^S = {n_actions}^{n_states} ≈ "
                f"{_power_text(n_actions, n_states)} policies exceeds max_enumerate={self.max_enumerate}; "
                "use method='monte_carlo' or method='gaussian' instead of 'exact', or method='auto' to let the "
                "package choose (or raise max_enumerate if you have the memory)"
            )
        check_array_size(
            (n_actions**n_states, n_states),
            np.intp,
            f"enumerating ξ's {n_actions}^{n_states} policies",
            "lower max_enumerate and use method='monte_carlo' or method='gaussian'",
        )
        actions = np.indices((n_actions,) * n_states, dtype=np.intp).reshape(n_states, -1).T
        return np.ascontiguousarray(actions), np.full(actions.shape[0], 1.0 / actions.shape[0])

    def sample(self, n_states: int, n_actions: int, n: int, rng: np.random.Generator) -> np.ndarray:
        check_array_size((n, n_states), np.intp, f"drawing {n:,} policies from ξ", "lower n_samples")
        return rng.integers(0, n_actions, size=(n, n_states), dtype=np.intp)

    def to_dict(self) -> dict:
        return {"name": self.name, "max_enumerate": self.max_enumerate}

    def __repr__(self) -> str:
        return "UniformDeterministic()"


class DirichletPolicies(PolicyPrior):
    """ξ over stochastic policies: each row ``pi[s, :] ~ Dirichlet(concentration · 1)`` independently.

    Parameters
    ----------
    concentration : float
        > 0. Small values give nearly deterministic policies, large values nearly uniform ones.
    """

    name = "dirichlet"

    def __init__(self, concentration: float = 1.0) -> None:
        self.concentration = check_positive(concentration, "concentration")

    def sample(self, n_states: int, n_actions: int, n: int, rng: np.random.Generator) -> np.ndarray:
        check_array_size((n, n_states, n_actions), float, f"drawing {n:,} policies from ξ", "lower n_samples")
        policies = rng.dirichlet(np.full(n_actions, self.concentration), size=(n, n_states))
        # Dirichlet draws with tiny concentrations can underflow to an all-zero row; renormalise safely.
        sums = policies.sum(axis=-1, keepdims=True)
        bad = sums[..., 0] <= 0
        if bad.any():
            policies[bad] = np.eye(n_actions)[rng.integers(0, n_actions, size=int(bad.sum()))]
            sums = policies.sum(axis=-1, keepdims=True)
        return policies / sums

    def to_dict(self) -> dict:
        return {"name": self.name, "concentration": self.concentration}

    def __repr__(self) -> str:
        return f"DirichletPolicies(concentration={self.concentration})"


class PolicySet(PolicyPrior):
    """ξ as a finite, weighted set of policies given by the user.

    Parameters
    ----------
    policies : array_like, shape (M, S, A)
        Tables with rows summing to 1 (or integer action indices ``a[m, s]``).
    weights : array_like, shape (M,), optional
        Non-negative, summing to 1; equal by default.
    """

    name = "policy_set"

    def __init__(self, policies, weights=None) -> None:
        array = np.asarray(policies)
        if np.issubdtype(array.dtype, np.integer):
            if array.ndim != 2:
                raise ValueError(f"policies has shape {array.shape}; integer policies are a[m, s]")
            if array.size and array.min() < 0:
                index = tuple(int(i) for i in np.argwhere(array < 0)[0])
                raise ValueError(f"policies{list(index)} is {array[index]}; action indices must be ≥ 0")
            self.policies = array.astype(np.intp)
        else:
            table = as_float_array(policies, "policies", ndim=3)
            self.policies = check_policy(table, table.shape[1], table.shape[2], name="policies")
        if self.policies.shape[0] == 0:
            raise ValueError("policies is empty; a PolicySet needs at least one policy")
        if weights is None:
            self.weights = np.full(self.policies.shape[0], 1.0 / self.policies.shape[0])
        else:
            w = as_float_array(weights, "weights", ndim=1)
            if w.shape != (self.policies.shape[0],):
                raise ValueError(
                    f"weights has shape {w.shape}; it needs one weight per policy ({self.policies.shape[0]})"
                )
            check_probability_rows(w, "weights", what="set of weights")
            self.weights = w

    def _check_size(self, n_states: int, n_actions: int) -> None:
        S = self.policies.shape[1]
        A = self.policies.shape[2] if self.policies.ndim == 3 else int(self.policies.max()) + 1
        if S != n_states or (self.policies.ndim == 3 and A != n_actions) or A > n_actions:
            raise ValueError(
                f"PolicySet holds policies of shape {self.policies.shape[1:]} but the worlds have "
                f"{n_states} states and {n_actions} actions; build the PolicySet over the worlds' states and "
                "actions"
            )

    def support_size(self, n_states: int, n_actions: int) -> float:
        return float(self.policies.shape[0])

    def can_enumerate(self, n_states: int, n_actions: int) -> bool:
        return True

    def support(self, n_states: int, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_size(n_states, n_actions)
        return self.policies, self.weights

    def sample(self, n_states: int, n_actions: int, n: int, rng: np.random.Generator) -> np.ndarray:
        self._check_size(n_states, n_actions)
        check_array_size(
            (n, *self.policies.shape[1:]), self.policies.dtype, f"drawing {n:,} policies from ξ", "lower n_samples"
        )
        return self.policies[rng.choice(self.policies.shape[0], size=n, p=self.weights)]

    def to_dict(self) -> dict:
        return {"name": self.name, "n_policies": int(self.policies.shape[0])}

    def __repr__(self) -> str:
        return f"PolicySet(M={self.policies.shape[0]})"


def as_policy_prior(policy_prior) -> PolicyPrior:
    """``None`` → :class:`UniformDeterministic`; a PolicyPrior passes through; anything else is an error."""
    if policy_prior is None:
        return UniformDeterministic()
    if isinstance(policy_prior, PolicyPrior):
        return policy_prior
    raise TypeError(
        f"policy_prior must be a PolicyPrior (UniformDeterministic(), DirichletPolicies(...), "
        f"PolicySet(...)) or None; got {type(policy_prior).__name__}"
    )


def policy_prior_from_dict(data: dict) -> PolicyPrior:
    """The ξ that ``to_dict`` described, for a saved run. A :class:`PolicySet`'s policies are not saved with a
    run, so it cannot be rebuilt (ValueError)."""
    name = data.get("name")
    if name == UniformDeterministic.name:
        return UniformDeterministic(data.get("max_enumerate", MAX_ENUMERATE))
    if name == DirichletPolicies.name:
        return DirichletPolicies(data.get("concentration", 1.0))
    raise ValueError(
        f"the policy prior {name!r} cannot be rebuilt from a saved run (a PolicySet's policies are not saved "
        "with it); act on the fit with the model that made it, e.g. scope.decide(idata)"
    )


def sample_policies(policy_prior, n_states: int, n_actions: int, n_samples: int, seed) -> np.ndarray:
    """Draw ``n_samples`` policies from ξ with a generator seeded by ``seed``."""
    n_samples = check_count(n_samples, "n_samples")
    return as_policy_prior(policy_prior).sample(n_states, n_actions, n_samples, rng_from(seed))


def _power(base: int, exponent: int) -> float:
    """``base ** exponent`` as a float, ``inf`` past the largest float (``float ** int`` raises OverflowError)."""
    return math.inf if exponent * math.log10(max(base, 1)) > 308 else float(base) ** exponent


def _power_text(base: int, exponent: int) -> str:
    """``base ** exponent`` in words for a message: ``3.05e+06``, or ``10^6990`` past the largest float."""
    value = _power(base, exponent)
    return f"{value:.3g}" if math.isfinite(value) else f"10^{exponent * math.log10(base):.0f}"


__all__ = [
    "MAX_ENUMERATE",
    "DirichletPolicies",
    "PolicyPrior",
    "PolicySet",
    "UniformDeterministic",
    "as_policy_prior",
    "policy_prior_from_dict",
    "sample_policies",
]
