r"""Maximum (causal) entropy IRL: the point estimate of a linear reward that makes the demonstrations most likely.

The discounted, causal-entropy form of maximum-entropy IRL (Ziebart et al. 2008; Ziebart 2010, "MCE IRL") on
the package's tabular worlds. For a linear reward ``r_θ = phi @ θ`` (``r_θ(s, a) = Σ_k phi[s, a, k] θ_k``) the
operator is soft-optimal: its policy maximises the expected discounted reward plus the discounted entropy of its
actions, which gives

.. math::

    Q_θ(s, a) = r_θ(s, a) + γ \sum_{s'} P̄(s' | s, a) V_θ(s'), \qquad
    V_θ(s) = \log \sum_a e^{Q_θ(s, a)}, \qquad
    \pi_θ(a \mid s) = e^{Q_θ(s, a) − V_θ(s)},

the soft Bellman fixed point at inverse temperature 1 (:func:`~utiliscope.models.soft_bellman.soft_q_values`),
and the estimate maximises the penalised log-likelihood of the demonstrations' counts ``n[s, a]``

.. math::

    \hat θ = \arg\max_θ \; ℓ(θ) − \frac{λ}{2} \lVert θ \rVert^2, \qquad
    ℓ(θ) = \sum_{s, a} n[s, a] \log \pi_θ(a \mid s),

with ``λ = l2``. Maximising causal entropy subject to matching the demonstrations' feature expectations has
as its dual maximising the likelihood of their actions under pi_θ (Ziebart 2010), so it is solved in this form.
The dual weights the pair at step t by ``γ^t``, as the discounted features do; here every observed pair counts
once, as ``n[s, a]`` records it (counts carry no time index). ℓ is then the likelihood of
:class:`~utiliscope.models.BoltzmannIRL` at β = 1, so the two are compared on the same evidence: θ̂ is its
maximum a posteriori θ under a Gaussian prior of precision λ, with the scale of θ free, since the scale plays
the role of β. θ is therefore not normalised.

The small ridge term ``λ > 0`` is there so that a finite maximiser exists: when the demonstrations are
deterministic (one action per visited state) ℓ keeps rising as θ grows along the direction that favours those
actions, and without the ridge θ would run off to infinity. It also keeps at zero the components of θ that
leave every pi_θ unchanged (such as a feature combination that adds a constant to the reward), which the
likelihood alone leaves undetermined. With stochastic dynamics ℓ is not guaranteed to be concave in θ, so the
estimate is the stationary point L-BFGS-B reaches from θ = 0.

The gradient is exact. By the implicit function theorem at the fixed point (the numpy form of
:class:`~utiliscope.models.soft_bellman.SoftBellmanGrad`), with ``P_pi[s, s'] = Σ_a pi_θ(a|s) P̄(s'|s, a)``,

.. math::

    \frac{∂ℓ}{∂θ} = \sum_{s, a} n[s, a] \Bigl(ψ_θ(s, a) − \sum_{a'} \pi_θ(a' \mid s)\, ψ_θ(s, a')\Bigr),
    \qquad ψ_θ = \frac{∂Q_θ}{∂θ} = phi + γ P̄ (I − γ P_pi)^{-1} Π phi,

the demonstrated actions' discounted successor features minus those the soft policy expects in the same states
(``(Π phi)[s] = Σ_a pi_θ(a|s) phi[s, a]``). It is computed in reverse mode: ``q̄ = n − n[s] pi_θ`` is ℓ's
gradient in Q, :func:`~utiliscope.models.soft_bellman.soft_q_vjp` carries it back to the reward with one
transposed S × S solve, and ``∂ℓ/∂θ_k = Σ_{s,a} r̄[s, a] phi[s, a, k]``. scipy's L-BFGS-B then maximises the
penalised ℓ from ``θ = 0`` (the uniform policy).

Worlds: with several worlds the operator plans on the ζ-averaged dynamics ``P̄ = Σ_e w[e] P_e``, as
BoltzmannIRL and the Boltzmann agents do. That is exact for one world and an approximation for several (the
world is fixed along a trajectory, ``P̄`` redraws it at every step).

Why it is written here rather than taken from a library: the maintained tabular MCE IRL, HumanCompatibleAI's
``imitation`` (``imitation.algorithms.mce_irl``), is finite-horizon (a time-indexed policy over a gymnasium
environment's horizon), needs gymnasium, torch and stable-baselines3 (none of which this package depends on),
and knows neither ζ's weighted worlds nor :class:`~utiliscope.Demonstrations` counts; the discounted fixed point
and its implicit gradient already exist in :mod:`utiliscope.models.soft_bellman`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from utiliscope._validation import as_float_array, check_count, check_positive, readonly
from utiliscope.evaluation import feature_table
from utiliscope.models.boltzmann import check_demonstrations
from utiliscope.models.soft_bellman import log_policy, soft_q_values, soft_q_vjp
from utiliscope.worlds.mdp import as_world_set

#: Default ridge λ: a Gaussian prior of standard deviation 10 on each θ_k, weak against rewards of order 1.
DEFAULT_L2 = 0.01
#: L-BFGS-B converges when the largest gradient component of the per-observation objective is at most this.
DEFAULT_TOL = 1e-8
#: Default cap on L-BFGS-B iterations.
DEFAULT_MAX_ITERATIONS = 1000


class MaxEntConvergenceWarning(UserWarning):
    """L-BFGS-B stopped before its convergence test passed; the estimate may not be the maximiser."""


@dataclass(frozen=True)
class MaxEntEstimate:
    """The result of :meth:`MaxEntIRL.fit` (its arrays are read-only).

    Attributes
    ----------
    theta : ndarray, shape (K,)
        The estimate θ̂ (not normalised: its scale is the operator's inverse temperature).
    reward : ndarray, shape (S, A)
        ``phi @ θ̂``.
    policy : ndarray, shape (S, A)
        The soft-optimal policy ``pi_θ̂(a | s)`` the estimate explains the demonstrations with.
    log_likelihood : float
        ``ℓ(θ̂) = Σ n[s, a] log pi_θ̂(a | s)``, without the ridge term.
    n_iterations : int
        L-BFGS-B iterations.
    converged : bool
        Whether L-BFGS-B met :class:`MaxEntIRL`'s gradient tolerance ``tol``.
    message : str
        L-BFGS-B's stopping message.
    feature_names : tuple of str
        Names of θ's components.
    """

    theta: np.ndarray
    reward: np.ndarray
    policy: np.ndarray
    log_likelihood: float
    n_iterations: int
    converged: bool
    message: str
    feature_names: tuple[str, ...]


class MaxEntIRL:
    """Maximum causal entropy IRL: the linear reward whose soft-optimal policy best explains the demonstrations.

    See the module docstring for the model, the objective and its gradient.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ; the operator plans on ``worlds.mean_transitions`` with ``worlds.gamma``.
    demonstrations : Demonstrations
        The observed behaviour; only its counts ``n[s, a]`` enter, and they must not all be zero.
    features : array_like, shape (S, K) or (S, A, K), optional
        ``phi`` of the linear reward ``r = phi @ θ``; default the worlds' own features.
    l2 : float
        The ridge λ ≥ 0 on ``|θ|²`` (default :data:`DEFAULT_L2`). With λ = 0 and deterministic demonstrations
        the maximiser does not exist.
    tol : float
        > 0; L-BFGS-B's ``gtol``: it converges when every component of the gradient of the negated objective
        divided by the total count ``Σ n[s, a]`` (a per-observation scale) is at most ``tol``. Its other test,
        on the relative reduction of the objective, is switched off (``ftol=0``), so ``converged`` means this
        gradient test passed.
    max_iterations : int
        ≥ 1; L-BFGS-B's ``maxiter``.

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", "b.c"], slip=0.1)
    >>> agent = us.agents.Boltzmann(world.features @ np.array([1.0, 0.0, -1.0]), beta=1.0)
    >>> demos = agent.demonstrate(world, n_trajectories=50, horizon=10, seed=0)
    >>> estimate = us.models.MaxEntIRL(world, demos).fit()
    >>> estimate.theta.shape, estimate.converged
    ((3,), True)
    """

    def __init__(
        self,
        worlds,
        demonstrations,
        features=None,
        l2: float = DEFAULT_L2,
        *,
        tol: float = DEFAULT_TOL,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> None:
        self.worlds = as_world_set(worlds)
        self.demonstrations = check_demonstrations(demonstrations, self.worlds)
        if self.demonstrations.counts.sum() <= 0:
            raise ValueError("demonstrations has no observations (all counts are 0); give at least one (s, a)")
        self.features = feature_table(self.worlds, features)
        self.feature_names = (
            self.worlds.feature_names
            if features is None
            else tuple(f"f{k}" for k in range(self.features.shape[-1]))
        )
        self.l2 = check_positive(l2, "l2", allow_zero=True)
        self.tol = check_positive(tol, "tol")
        self.max_iterations = check_count(max_iterations, "max_iterations")
        self._transitions = np.ascontiguousarray(self.worlds.mean_transitions)

    @property
    def counts(self) -> np.ndarray:
        """The demonstrations' counts ``n[s, a]``."""
        return self.demonstrations.counts

    @property
    def n_features(self) -> int:
        """Number of features K."""
        return self.features.shape[-1]

    def _theta(self, theta) -> np.ndarray:
        theta = as_float_array(theta, "theta", ndim=1)
        if theta.shape != (self.n_features,):
            raise ValueError(f"theta has shape {theta.shape}; it must be ({self.n_features},), one per feature")
        return theta

    def _log_policy(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Soft Q-values and ``log pi_θ`` at β = 1 on P̄."""
        q = soft_q_values(self._transitions, self.worlds.gamma, self.features @ theta, 1.0)
        return q, log_policy(q, 1.0)

    def policy(self, theta) -> np.ndarray:
        """The soft-optimal policy ``pi_θ(a | s) = exp(Q_θ(s, a) − V_θ(s))``, shape (S, A)."""
        return np.exp(self._log_policy(self._theta(theta))[1])

    def log_likelihood_and_gradient(self, theta) -> tuple[float, np.ndarray]:
        """``ℓ(θ) = Σ n[s, a] log pi_θ(a | s)`` and its exact gradient (module docstring), without the ridge.

        Parameters
        ----------
        theta : array_like, shape (K,)

        Returns
        -------
        log_likelihood : float
        gradient : ndarray, shape (K,)
        """
        theta = self._theta(theta)
        q, log_pi = self._log_policy(theta)
        n = self.counts
        q_bar = n - n.sum(axis=1, keepdims=True) * np.exp(log_pi)
        r_bar = soft_q_vjp(self._transitions, self.worlds.gamma, q, 1.0, q_bar)
        return float(np.sum(n * log_pi)), np.einsum("sa,sak->k", r_bar, self.features)

    def fit(self) -> MaxEntEstimate:
        """Maximise ``ℓ(θ) − (λ/2)|θ|²`` by L-BFGS-B from θ = 0.

        Warns with :class:`MaxEntConvergenceWarning` (and returns the last iterate, ``converged=False``) when
        L-BFGS-B stops without meeting its tolerance.
        """
        total = float(self.counts.sum())

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            log_likelihood, gradient = self.log_likelihood_and_gradient(theta)
            value = log_likelihood - 0.5 * self.l2 * theta @ theta
            return -value / total, -(gradient - self.l2 * theta) / total

        result = minimize(
            objective,
            np.zeros(self.n_features),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": self.tol, "ftol": 0.0, "maxiter": self.max_iterations},
        )
        message = str(result.message)
        if not result.success:
            warnings.warn(
                f"MaxEntIRL.fit: L-BFGS-B stopped after {result.nit} iterations without converging ({message}); "
                "raise max_iterations or l2, or loosen tol",
                MaxEntConvergenceWarning,
                stacklevel=2,
            )
        theta = np.array(result.x, dtype=float)
        _, log_pi = self._log_policy(theta)
        return MaxEntEstimate(
            theta=readonly(theta),
            reward=readonly(self.features @ theta),
            policy=readonly(np.exp(log_pi)),
            log_likelihood=float(np.sum(self.counts * log_pi)),
            n_iterations=int(result.nit),
            converged=bool(result.success),
            message=message,
            feature_names=tuple(self.feature_names),
        )

    def __repr__(self) -> str:
        return (
            f"MaxEntIRL(S={self.worlds.n_states}, A={self.worlds.n_actions}, K={self.n_features}, "
            f"l2={self.l2}, observations={self.counts.sum():g})"
        )


__all__ = [
    "DEFAULT_L2",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOL",
    "MaxEntConvergenceWarning",
    "MaxEntEstimate",
    "MaxEntIRL",
]
