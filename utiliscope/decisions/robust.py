r"""The ``robust`` rule: the deterministic policy with the highest lower ``alpha``-quantile of ``Ṽ_U`` under the
posterior, ties broken by the posterior expected normalised value.

.. math::

    \pi = \arg\max_{\pi \text{ deterministic}} \inf\{v : \textstyle\sum_{n: \tilde V_n(\pi) \le v} P_n \ge
    \alpha\}.

The search enumerates the deterministic policies when ``A^S ≤ max_enumerate`` (exact); beyond that it runs
single-state coordinate ascent on its own objective from the ``expected`` rule's policy and from the optima of the
:data:`STARTS` most probable utilities, and keeps the best (a local optimum; benchmarks/results/decisions.md
measures how often it reaches the enumerated optimum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_fraction
from utiliscope.agents.planning import coordinate_ascent, one_hot
from utiliscope.counting import RTOL
from utiliscope.decisions.base import Choice, DecisionProblem, Rule, parameter
from utiliscope.decisions.expected import Expected
from utiliscope.decisions.values import (
    can_enumerate,
    deterministic_chunks,
    normalised_values,
    weighted_lower_quantile,
)

#: Starts of the local search beyond the expected rule's policy: the optima of this many of the most probable
#: utilities.
STARTS = 8


@dataclass(frozen=True)
class Robust(Rule):
    """Maximise the lower ``alpha``-quantile of the normalised value over the posterior.

    Parameters
    ----------
    alpha : float
        The quantile level, in (0, 1): the posterior mass allowed to rate the policy below the objective.
    """

    name = "robust"
    description = "maximise the lower alpha-quantile of Ṽ_U over the posterior"

    alpha: float = parameter(0.1, "the quantile level, in (0, 1)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_fraction(self.alpha, "alpha", "0.1"))

    def objective(self, values: np.ndarray, probabilities: np.ndarray) -> float:
        """The lower ``alpha``-quantile of ``values[n]`` under ``probabilities[n]``."""
        return float(weighted_lower_quantile(values[None], probabilities, self.alpha)[0])

    def decide(self, problem: DecisionProblem) -> Choice:
        worlds, A = problem.worlds, problem.worlds.n_actions
        if can_enumerate(worlds, problem.max_enumerate):
            best_key, best = None, None
            for chunk in deterministic_chunks(worlds, problem.max_enumerate):
                keys = self._keys(problem, chunk)
                m = _best_row(keys)
                if best_key is None or _better(keys[m], best_key):
                    best_key, best = keys[m], chunk[m]
            search = f"enumeration of the {A}^{worlds.n_states} deterministic policies"
            return Choice(one_hot(best, A), None, search, True)
        starts = [np.argmax(Expected().decide(problem).policy, axis=1)]
        for n in np.argsort(-problem.sample.weights, kind="stable")[:STARTS]:
            starts.append(coordinate_ascent(worlds, problem.sample.rewards[n]))
        best_key, best = None, None
        for start in starts:
            policy, key = self._ascent(problem, start)
            if best_key is None or _better(key, best_key):
                best_key, best = key, policy
        search = (
            f"single-state coordinate ascent on the {self.alpha:g}-quantile from {len(starts)} starts (the "
            "expected rule's policy and the most probable utilities' optima): a local optimum"
        )
        return Choice(one_hot(best, A), None, search, False)

    def _keys(self, problem: DecisionProblem, policies: np.ndarray) -> np.ndarray:
        """The objective of each policy and the expected value that breaks its ties, as ``(m, 2)``."""
        values = normalised_values(problem.worlds, policies, problem.sample, problem.ranges)
        weights = problem.sample.weights
        return np.column_stack([weighted_lower_quantile(values, weights, self.alpha), values @ weights])

    def _ascent(self, problem: DecisionProblem, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Change one state's action at a time while that raises the key; stop after a sweep without one."""
        worlds = problem.worlds
        key = self._keys(problem, policy[None])[0]
        changed = True
        while changed:
            changed = False
            for s in range(worlds.n_states):
                candidates = np.repeat(policy[None], worlds.n_actions, axis=0)
                candidates[:, s] = np.arange(worlds.n_actions)
                keys = self._keys(problem, candidates)
                best = _best_row(keys)
                if _better(keys[best], key):
                    policy, key, changed = candidates[best], keys[best], True
        return policy, key


def _best_row(keys: np.ndarray) -> int:
    """The first row whose ``(quantile, expected)`` key is lexicographically best within the tie tolerance."""
    tol = RTOL * max(1.0, np.abs(keys).max())
    top = keys[:, 0] >= keys[:, 0].max() - tol
    second = np.where(top, keys[:, 1], -np.inf)
    return int(np.argmax(top & (second >= second.max() - tol)))


def _better(candidate: np.ndarray, incumbent: np.ndarray) -> bool:
    """Whether ``candidate``'s key beats ``incumbent``'s beyond the tie tolerance."""
    return _best_row(np.stack([incumbent, candidate])) == 1


__all__ = ["STARTS", "Robust"]
