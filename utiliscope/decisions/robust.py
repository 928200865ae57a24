r"""The ``robust`` rule: the policy with the highest lower tail of ``Ṽ_U`` under the posterior, ties broken by the
posterior expected normalised value.

The tail is the lower ``alpha``-quantile (``tail = "quantile"``, the default) or CVaR, the posterior mean of the
lowest ``alpha`` of mass (``tail = "cvar"``, a lower bound on the quantile):

.. math::

    Q_\alpha(\pi) = \inf\{v : \textstyle\sum_{n: \tilde V_n(\pi) \le v} P_n \ge \alpha\}, \qquad
    \mathrm{CVaR}_\alpha(\pi) = \max_t \; t - \frac{1}{\alpha} \sum_n P_n \max(0, t - \tilde V_n(\pi)).

Which search runs (the decision's ``search`` names it):

1. the quantile, when ``A^S ≤ max_enumerate``: enumeration of the deterministic policies (exact over them);
2. otherwise, in one world or worlds that share their dynamics
   (:func:`~utiliscope.agents.planning.shares_dynamics`): a program over occupancy measures solved by HiGHS
   (:mod:`utiliscope.decisions.occupancy`), exact over stochastic policies at any size: a linear program for
   CVaR, a mixed-integer one (a binary per utility) for the quantile, whose cost grows fast with the number of
   utilities (benchmarks/results/robust_lp.md): its branch and bound stops after
   :data:`~utiliscope.decisions.occupancy.NODE_LIMIT` nodes, and short of a proof of optimality the rule keeps the
   better of its policy and the CVaR program's and says the decision is not exact;
3. otherwise (several dynamics, where a shared policy's value is not linear in one occupancy): enumeration of the
   deterministic policies when ``A^S ≤ max_enumerate``, else single-state coordinate ascent on the rule's own
   objective from the ``expected`` rule's policy and from the optima of the :data:`STARTS` most probable
   utilities, keeping the best (a local optimum; benchmarks/results/decisions.md measures how often it reaches the
   enumerated optimum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utiliscope._validation import check_choice, check_fraction
from utiliscope.agents.planning import coordinate_ascent, one_hot, shares_dynamics
from utiliscope.counting import RTOL
from utiliscope.decisions.base import Choice, DecisionProblem, Rule, parameter
from utiliscope.decisions.expected import Expected
from utiliscope.decisions.occupancy import TailProgram
from utiliscope.decisions.values import (
    can_enumerate,
    deterministic_chunks,
    normalised_values,
    weighted_lower_cvar,
    weighted_lower_quantile,
)

#: Starts of the local search beyond the expected rule's policy: the optima of this many of the most probable
#: utilities.
STARTS = 8
#: The names the ``tail`` parameter takes.
QUANTILE, CVAR = "quantile", "cvar"
#: The lower-tail measure of each name, row-wise over ``values[m, n]`` with ``weights[n]`` and ``alpha``.
TAILS = {QUANTILE: weighted_lower_quantile, CVAR: weighted_lower_cvar}


@dataclass(frozen=True)
class Robust(Rule):
    """Maximise a lower tail of the normalised value over the posterior: its ``alpha``-quantile or CVaR.

    Parameters
    ----------
    alpha : float
        The tail's level, in (0, 1): the posterior mass allowed to rate the policy below the quantile, or whose
        mean is CVaR.
    tail : str
        ``"quantile"`` (the lower ``alpha``-quantile) or ``"cvar"`` (the posterior mean of the lowest
        ``alpha`` of mass).
    """

    name = "robust"
    description = "maximise the lower alpha-quantile (or CVaR) of Ṽ_U over the posterior"

    alpha: float = parameter(0.1, "the tail's level, in (0, 1)")
    tail: str = parameter(
        QUANTILE, f"the lower tail maximised: {QUANTILE} or {CVAR} (the mean of the lowest alpha)"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_fraction(self.alpha, "alpha", "0.1"))
        check_choice(self.tail, tuple(TAILS), "tail")

    def objective(self, values: np.ndarray, probabilities: np.ndarray) -> float:
        """The lower tail of ``values[n]`` under ``probabilities[n]``."""
        return float(TAILS[self.tail](values[None], probabilities, self.alpha)[0])

    def decide(self, problem: DecisionProblem) -> Choice:
        enumerable = can_enumerate(problem.worlds, problem.max_enumerate)
        if not (enumerable and self.tail == QUANTILE) and shares_dynamics(problem.worlds):
            return self._program(problem)
        return self._enumeration(problem) if enumerable else self._local_search(problem)

    def _enumeration(self, problem: DecisionProblem) -> Choice:
        """The best deterministic policy by the rule's key, every policy evaluated."""
        worlds, A = problem.worlds, problem.worlds.n_actions
        best_key, best = None, None
        for chunk in deterministic_chunks(worlds, problem.max_enumerate):
            keys = self._keys(problem, chunk)
            m = _best_row(keys)
            if best_key is None or _better(keys[m], best_key):
                best_key, best = keys[m], chunk[m]
        return Choice(
            one_hot(best, A), None, f"enumeration of the {A}^{worlds.n_states} deterministic policies", True
        )

    def _local_search(self, problem: DecisionProblem) -> Choice:
        """Coordinate ascent on the rule's key from the expected policy and the likeliest utilities' optima."""
        worlds = problem.worlds
        starts = [np.argmax(Expected().decide(problem).policy, axis=1)]
        for n in np.argsort(-problem.sample.weights, kind="stable")[:STARTS]:
            starts.append(coordinate_ascent(worlds, problem.sample.rewards[n]))
        best_key, best = None, None
        for start in starts:
            policy, key = self._ascent(problem, start)
            if best_key is None or _better(key, best_key):
                best_key, best = key, policy
        search = (
            f"single-state coordinate ascent on the {self.alpha:g}-{self.tail} from {len(starts)} starts (the "
            "expected rule's policy and the most probable utilities' optima): a local optimum"
        )
        return Choice(one_hot(best, worlds.n_actions), None, search, False)

    def _program(self, problem: DecisionProblem) -> Choice:
        """The occupancy program's policy; for the quantile stopped short of optimality, the better (by the rule's
        key) of its incumbent and the CVaR program's policy."""
        solution = TailProgram(self.alpha, self.tail == QUANTILE).solve(
            problem.worlds, problem.sample, problem.ranges
        )
        kind = "mixed-integer" if self.tail == QUANTILE else "linear"
        search = (
            f"HiGHS {kind} program on the {self.tail} over occupancy measures (exact over stochastic policies)"
        )
        if solution.gap == 0:
            return Choice(solution.policy, None, search, True)
        cvar = TailProgram(self.alpha, quantile=False).solve(problem.worlds, problem.sample, problem.ranges)
        keys = self._keys(problem, np.stack([solution.policy, cvar.policy]))
        search = (
            f"HiGHS mixed-integer program on the {QUANTILE} over occupancy measures, stopped at its node limit "
            f"(MIP gap {solution.gap:.3g}); the better of its policy and the {CVAR} linear program's: not proven "
            "optimal"
        )
        return Choice((solution.policy, cvar.policy)[_best_row(keys)], None, search, False)

    def _keys(self, problem: DecisionProblem, policies: np.ndarray) -> np.ndarray:
        """The objective of each policy and the expected value that breaks its ties, as ``(m, 2)``."""
        values = normalised_values(problem.worlds, policies, problem.sample, problem.ranges)
        weights = problem.sample.weights
        return np.column_stack([TAILS[self.tail](values, weights, self.alpha), values @ weights])

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


__all__ = ["CVAR", "QUANTILE", "STARTS", "TAILS", "Robust"]
