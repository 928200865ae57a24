r"""Robust decisions as programs over occupancy measures, solved by HiGHS: exact over stochastic policies.

In one world (or several worlds that share their dynamics and differ only in where they start) the discounted
state–action occupancies of the stationary policies are exactly the ``d(s, a) ≥ 0`` that satisfy the Bellman flow
constraints

.. math::

    \sum_a d(s, a) - \gamma \sum_{s', a'} P(s \mid s', a')\, d(s', a') = \bar\mu_0(s) \quad \text{for every } s,

and a policy is recovered as ``pi(a | s) = d(s, a) / Σ_a d(s, a)`` (uniform where ``s`` is never reached). Each
utility's normalised value is linear in ``d``: ``Ṽ_n(d) = (Σ_sa d(s, a) r_n(s, a) − V_n(uniform)) / range_n``.
The flow matrix is sparse (``S`` rows, ``nnz(P) + S·A`` entries): nothing ``S × S`` or ``S × A × S`` is formed.

Two lower-tail objectives over the posterior weights ``P_n`` are solved:

- CVaR (Rockafellar & Uryasev 2000), the mean of the lowest ``alpha`` of posterior mass, a linear program:
  ``max t − (1/α) Σ_n P_n z_n`` over ``d``, ``t`` and ``z_n ≥ max(0, t − Ṽ_n(d))``;
- the lower ``alpha``-quantile, a mixed-integer program with one binary ``y_n`` per utility allowed below the
  objective: ``max t`` subject to ``Ṽ_n(d) ≥ t − M_n y_n`` and ``Σ_n P_n y_n ≤ α − ε`` (a mass of exactly
  ``α`` below ``t`` already puts the quantile below it; ``ε`` = :data:`MASS_SLACK`), with ``M_n`` from the
  smallest value a reward can give, ``min r_n / (1 − γ)``.

Both are solved to optimality (MIP gap 0; the quantile's branch and bound stops after :data:`NODE_LIMIT` nodes
and reports its gap), then a second linear program keeps the objective within :data:`TIE_TOL` of its optimum and
maximises the posterior expected normalised value ``Σ_n P_n Ṽ_n(d)``, as the enumerating search breaks ties (for
the quantile, among the policies that leave the same utilities below it).

With several worlds whose dynamics differ, a shared stationary policy has one occupancy per world and their
mixture is not a convex set in ``d``: these programs are exact when the worlds share their dynamics
(:func:`~utiliscope.agents.planning.shares_dynamics`).

References
----------
R. T. Rockafellar and S. Uryasev, "Optimization of conditional value-at-risk", Journal of Risk 2(3), 2000.
D. S. Brown, S. Niekum and M. Petrik, "Bayesian robust optimization for imitation learning", NeurIPS 2020.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from utiliscope.agents.planning import transition_matrix
from utiliscope.counting import RTOL
from utiliscope.decisions.values import Ranges, UtilitySample
from utiliscope.worlds.mdp import WorldSet

#: HiGHS's primal, dual and MIP feasibility tolerances: the recovered policy's values match the program's to about
#: this.
FEASIBILITY_TOL = 1e-9
#: The second program keeps the first objective within this of its optimum (Ṽ is at most 1): the package's tie
#: tolerance.
TIE_TOL = RTOL
#: The most branch-and-bound nodes the quantile's mixed-integer program explores: a bound on its cost that, unlike
#: a time limit, gives the same policy on every machine.
NODE_LIMIT = 200
#: ``scipy.optimize.milp``'s status codes of a program without a solution (any other code with a point: a limit).
INFEASIBLE, UNBOUNDED = 2, 3
#: Posterior mass below the quantile must stay this far under alpha: well above the feasibility tolerance, which
#: would otherwise let a mass of exactly alpha through.
MASS_SLACK = 1e-6


def flow_constraints(worlds: WorldSet) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    r"""The Bellman flow constraints ``F d = μ̄0`` on occupancies ``d[s·A + a]``, with ``F = E − γ Pᵀ`` sparse.

    ``E[s, s·A + a] = 1`` sums a state's actions; ``Pᵀ[s, s'·A + a'] = P(s | s', a')`` is the first world's
    dynamics (the caller checks that the worlds share it); ``μ̄0`` is the worlds' weighted start.
    """
    S, A = worlds.n_states, worlds.n_actions
    incoming = transition_matrix(worlds.worlds[0].transitions).T
    actions = scipy.sparse.kron(scipy.sparse.eye_array(S), np.ones((1, A)))
    return scipy.sparse.csr_array(actions - worlds.gamma * incoming), worlds.mean_start


def policy_of(d: np.ndarray) -> np.ndarray:
    """``pi[s, a] = d(s, a) / Σ_a d(s, a)``, uniform in states the occupancy ``d[s, a]`` never reaches."""
    d = np.clip(d, 0.0, None)
    visits = d.sum(axis=1)
    pi = np.full(d.shape, 1.0 / d.shape[1])
    reached = visits > 0
    pi[reached] = d[reached] / visits[reached, None]
    return pi


@dataclass(frozen=True)
class Solution:
    """A program's policy ``pi[s, a]`` and its relative MIP gap (0: proven optimal)."""

    policy: np.ndarray
    gap: float


@dataclass(frozen=True)
class TailProgram:
    """A lower-tail objective of ``Ṽ_n(d)`` as the extra variables and rows of a program over occupancies."""

    alpha: float
    quantile: bool

    def solve(self, worlds: WorldSet, sample: UtilitySample, ranges: Ranges) -> Solution:
        """The optimal stationary policy ``pi[s, a]`` (ties: the highest posterior expected normalised value), or
        for the quantile the best HiGHS found within :data:`NODE_LIMIT` nodes, with its MIP gap."""
        S, A = worlds.n_states, worlds.n_actions
        N, SA = len(sample.weights), S * A
        span = ranges.span
        scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
        # Ṽ_n(d) = C[n] · d − offset[n]; the variables are x = (d, t, w), w the z_n (CVaR) or the y_n (quantile).
        C = sample.rewards.reshape(N, SA) * scale[:, None]
        offset = ranges.uniform * scale
        n_vars, t, tail = SA + 1 + N, SA, slice(SA + 1, SA + 1 + N)
        # Ṽ_n ≥ lowest_n for every policy, since V_n ≥ min r_n / (1 − γ); with t ≤ 1, M_n = 1 − lowest_n.
        lowest = np.minimum(C.min(axis=1) / (1.0 - worlds.gamma) - offset, 0.0)
        coefficient = 1.0 - lowest if self.quantile else np.ones(N)
        flow, start = flow_constraints(worlds)
        tail_rows = scipy.sparse.hstack(  # t − Ṽ_n(d) − coefficient_n w_n ≤ 0
            [scipy.sparse.csr_array(-C), np.ones((N, 1)), scipy.sparse.diags_array(-coefficient)]
        )
        constraints = [
            LinearConstraint(scipy.sparse.hstack([flow, scipy.sparse.csr_array((S, 1 + N))]), start, start),
            LinearConstraint(tail_rows, -np.inf, -offset),
        ]
        lower, upper = np.zeros(n_vars), np.full(n_vars, np.inf)
        objective = np.zeros(n_vars)
        objective[t] = -1.0
        integrality = np.zeros(n_vars)
        if self.quantile:
            lower[t], upper[t], integrality[tail] = lowest.min(), 1.0, 1
            mass = np.zeros((1, n_vars))
            mass[0, tail] = sample.weights
            constraints.append(LinearConstraint(mass, -np.inf, self.alpha - MASS_SLACK))
        else:
            lower[t] = -np.inf
            objective[tail] = sample.weights / self.alpha
        if self.quantile:  # a utility with alpha of mass or more can never be below the quantile alone
            upper[tail] = np.where(sample.weights < self.alpha - MASS_SLACK, 1.0, 0.0)
        first = _solve(objective, integrality, Bounds(lower, upper), constraints)
        # Second program: the objective within TIE_TOL of its optimum, the expected value maximised; for the
        # quantile with the first program's utilities below t kept there (a linear program again).
        if self.quantile:
            lower[tail] = upper[tail] = np.round(first.x[tail])
        expected = np.zeros(n_vars)
        expected[:SA] = -(sample.weights @ C)
        tie = LinearConstraint(objective[None], -np.inf, first.fun + TIE_TOL)
        second = _solve(expected, np.zeros(n_vars), Bounds(lower, upper), [*constraints, tie])
        gap = 0.0 if first.status == 0 else float(np.inf if first.mip_gap is None else first.mip_gap)
        return Solution(policy_of(second.x[:SA].reshape(S, A)), gap)


def _solve(objective, integrality, bounds, constraints):
    """HiGHS on ``min objective · x``, branching at most :data:`NODE_LIMIT` nodes; a RuntimeError naming HiGHS's
    status unless it reports optimality or stops at the node limit with a feasible point."""
    options = {"mip_rel_gap": 0.0, "node_limit": NODE_LIMIT, "primal_feasibility_tolerance": FEASIBILITY_TOL}
    options |= {"dual_feasibility_tolerance": FEASIBILITY_TOL, "mip_feasibility_tolerance": FEASIBILITY_TOL}
    with warnings.catch_warnings():  # scipy passes the tolerances on to HiGHS, warning that it does not know them
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        result = milp(objective, integrality=integrality, bounds=bounds, constraints=constraints, options=options)
    if result.status != 0 and (result.x is None or result.status in (INFEASIBLE, UNBOUNDED)):
        raise RuntimeError(f"HiGHS did not solve the occupancy program: {result.message}")
    return result


__all__ = [
    "FEASIBILITY_TOL",
    "MASS_SLACK",
    "NODE_LIMIT",
    "TIE_TOL",
    "Solution",
    "TailProgram",
    "flow_constraints",
    "policy_of",
]
