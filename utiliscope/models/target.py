r"""One target: a model's joint density as a sum of evidence terms over its latents, each term written once.

.. math::

    \log p(U, \pi \mid \text{data}) = \log P(U) + \log P(\pi \mid WM)
        + w_g \log f(g' \mid g(\pi, U)) + w_a \log L_\text{actions}(U) + \text{const}

The world model P(pi | WM) is what the engines draw pi from (Dirichlet rows) or sum over (a finite set, with
its log weights); every other factor is an :class:`EvidenceTerm`: the utility prior (:class:`LibraryPrior` or
:class:`LinearPrior`), the g′ likelihood (:class:`GPrimeLikelihood`, which holds g′_obs: its one home) and the
Boltzmann action likelihood (:class:`ActionLikelihood`). A term gives its NumPy log weight of a batch of
:class:`Latents` (the exact sum, the i.i.d. and SMC engines, SBC and the predictive draws read it) and its
PyTensor term of the same latents in the PyMC model (NUTS), side by side in one class.

Shapes: for a utility library a term's value broadcasts to ``(J, N)`` (J policies of the batch, N library
entries); for a linear prior to ``(J,)``, each policy with its own direction theta.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import logsumexp, softmax

from utiliscope.evaluation import evaluate_policies, feature_expectations, feature_table
from utiliscope.models.smc_engine import log_gamma_density, log_gamma_variates
from utiliscope.priors import UtilityLibrary
from utiliscope.world_model import FiniteWorldModel


@dataclass(frozen=True)
class Latents:
    """A batch of latents, NumPy arrays or PyTensor tensors alike.

    Attributes
    ----------
    pi : array or None
        Policies ``pi[J, S, A]`` (None for a model without pi, such as Boltzmann IRL).
    theta : array or None
        A linear prior's directions ``theta[J, K]`` (or ``[1, K]``, shared by the batch).
    g : array or None
        g in bits: ``g[J, N]`` under every library entry, or ``g[J]`` under each policy's own theta.
    """

    pi: Any = None
    theta: Any = None
    g: Any = None


class EvidenceTerm(ABC):
    """One factor of a model's joint density.

    Subclasses set :attr:`name` (the node of its potential in a PyMC model without discrete latents) and
    implement :meth:`log_weight` and :meth:`tensor` from one formula; :meth:`add_data` creates the Data nodes
    the tensor reads.
    """

    name: str = "evidence"
    #: Whether the term reads g (the model must then have a g method).
    needs_g: bool = False

    @abstractmethod
    def log_weight(self, latents: Latents) -> np.ndarray:
        """The term's natural log of a NumPy batch, broadcastable to ``(J, N)`` (library) or ``(J,)``."""

    @abstractmethod
    def tensor(self, latents: Latents) -> pt.TensorVariable:
        """The same term of a PyTensor batch."""

    def add_data(self) -> None:  # noqa: B027 (a hook: most terms read no Data node)
        """Create the Data nodes :meth:`tensor` reads, inside the model's context (default: none)."""


class LibraryPrior(EvidenceTerm):
    """``log P(U_i) = −λ ln 2 · K_i − log Z`` of a utility library, one value per entry."""

    name = "simplicity"

    def __init__(self, prior: UtilityLibrary) -> None:
        self.prior = prior

    def log_weight(self, latents: Latents) -> np.ndarray:
        return self.prior.log_prior[None, :]

    def tensor(self, latents: Latents) -> pt.TensorVariable:
        return pt.as_tensor(self.prior.log_prior)[None, :]


class LinearPrior(EvidenceTerm):
    """The simplicity potential ``−λ ln 2 · K(theta)`` of a linear prior's unit direction (against the uniform
    measure on the sphere of its constant-free complement, which the engines draw theta from)."""

    name = "simplicity"

    def __init__(self, prior) -> None:
        self.prior = prior

    def log_weight(self, latents: Latents) -> np.ndarray:
        return self.prior.log_prior_direction(latents.theta)

    def tensor(self, latents: Latents) -> pt.TensorVariable:
        return self.prior.log_prior_tensor(latents.theta)


def utility_prior_term(prior) -> EvidenceTerm:
    """The prior's term: :class:`LibraryPrior` for a library, else :class:`LinearPrior`."""
    return LibraryPrior(prior) if isinstance(prior, UtilityLibrary) else LinearPrior(prior)


class GPrimeLikelihood(EvidenceTerm):
    """``w_g · log f(g′_obs | g)``: the likelihood of the observed intelligence, weighted.

    The improper 2^g potential (a likelihood that is not ``generative``) is evaluated at ``min(g, cap)``.
    g′_obs lives here: :attr:`observed` reads the model's Data node ``g_prime_observed`` once the PyMC model
    exists (``pm.set_data`` changes it), else the value this term was made with; :meth:`set_observed` changes
    both.

    Parameters
    ----------
    likelihood : Likelihood
        The shape ``f``.
    cap : float
        Bits at which the 2^g potential is capped (unused by generative shapes).
    weight : float
        ``w_g ≥ 0``.
    """

    name = "g_prime"
    needs_g = True

    def __init__(self, likelihood, cap: float, weight: float = 1.0) -> None:
        self.likelihood = likelihood
        self.cap = float(cap)
        self.weight = float(weight)
        self._observed = float(likelihood.observed or 0.0)
        self._node = None

    @property
    def observed(self) -> float:
        """g′_obs as the model holds it now."""
        return self._observed if self._node is None else float(self._node.get_value())

    def set_observed(self, value: float) -> None:
        """Observe g′ at ``value`` (and in the PyMC model's Data node, if built)."""
        self._observed = float(value)
        if self._node is not None:
            self._node.set_value(np.asarray(self._observed, dtype=self._node.dtype))

    def add_data(self) -> None:
        self._node = pm.Data("g_prime_observed", self.observed)

    @property
    def node(self):
        """The Data node of g′_obs (after :meth:`add_data`)."""
        return self._node

    def capped(self, g, xp=np):
        """g as the shape reads it: ``min(g, cap)`` for the 2^g potential, else g."""
        return g if self.likelihood.generative else xp.minimum(g, np.float64(self.cap))

    def log_weight(self, latents: Latents) -> np.ndarray:
        if self.weight == 0.0:
            return np.zeros(np.shape(latents.g))
        log_f = self.likelihood.logp(self.capped(latents.g), value=self.observed)
        return log_f if self.weight == 1.0 else self.weight * log_f

    def tensor(self, latents: Latents, value=None) -> pt.TensorVariable:
        """The term at g′ = ``value`` (a tensor; default the Data node)."""
        value = self._node if value is None else value
        log_f = self.likelihood.logp_tensor(self.capped(latents.g, pt), value=value)
        return log_f if self.weight == 1.0 else self.weight * log_f


class ActionLikelihood(EvidenceTerm):
    """``w_a · Σ_{s,a} n[s, a] log pi^β_i(a | s)``: the Boltzmann likelihood of the demonstrated actions under
    each library entry (constants: they depend on U alone)."""

    name = "actions"

    def __init__(self, log_likelihoods: np.ndarray, counts: np.ndarray, weight: float = 1.0) -> None:
        self.log_likelihoods = np.asarray(log_likelihoods, dtype=float)
        self.counts = np.asarray(counts, dtype=float)
        self.weight = float(weight)
        self._node = None

    def log_weight(self, latents: Latents) -> np.ndarray:
        return self.weight * self.log_likelihoods[None, :]

    def add_data(self) -> None:
        pm.Data("counts", self.counts, dims=("state", "action"))
        self._node = pm.Data("action_log_likelihood", self.log_likelihoods, dims="utility")

    def tensor(self, latents: Latents) -> pt.TensorVariable:
        return self.weight * self._node[None, :]


class Target(ABC):
    """A model's joint density: the latents' priors and its evidence terms.

    Parameters
    ----------
    worlds : WorldSet
        ζ.
    world_model : WorldModel or None
        P(pi | WM); None for a model without pi.
    utility_prior : UtilityLibrary or LinearUtility
        P(U); its term is the first of :attr:`terms`.
    estimator : GMethod or None
        The g method whose hard count gives g (None: no term reads g).
    terms : list of EvidenceTerm
        The evidence after the prior's term.
    """

    #: The estimate's dimension: ``"utility"`` (library) or ``"feature"`` (linear).
    estimate_dim: str

    def __init__(self, worlds, world_model, utility_prior, estimator, terms=()) -> None:
        self.worlds = worlds
        self.world_model = world_model
        self.utility_prior = utility_prior
        self.estimator = estimator
        self.terms: list[EvidenceTerm] = [utility_prior_term(utility_prior), *terms]

    def add(self, term: EvidenceTerm) -> None:
        """Add an evidence term; every engine reads it from then on."""
        if not isinstance(term, EvidenceTerm):
            raise TypeError(f"term is a {type(term).__name__}; it must be an EvidenceTerm")
        if term.needs_g and self.estimator is None:
            raise ValueError(f"the term {term.name!r} reads g, but this model has no g")
        self.terms.append(term)

    @property
    def g_prime(self) -> GPrimeLikelihood | None:
        """The g′ likelihood term, if the model has one."""
        return next((term for term in self.terms if isinstance(term, GPrimeLikelihood)), None)

    @property
    def needs_g(self) -> bool:
        return any(term.needs_g for term in self.terms)

    @property
    def is_finite(self) -> bool:
        """Whether pi is a finite set of candidates (summed over) or absent, rather than Dirichlet rows."""
        return not self.has_policy or isinstance(self.world_model, FiniteWorldModel)

    @property
    def has_policy(self) -> bool:
        return self.world_model is not None

    def log_joint_of(self, latents: Latents) -> np.ndarray:
        """Σ of the terms' log weights of a NumPy batch."""
        total = sum(term.log_weight(latents) for term in self.terms)
        return np.broadcast_to(total, self.joint_shape(latents)).copy()

    def tensor_of(self, latents: Latents, *, exclude=()) -> pt.TensorVariable:
        """Σ of the terms' PyTensor terms of a batch, leaving out the terms in ``exclude``."""
        return sum(term.tensor(latents) for term in self.terms if term not in exclude)

    @abstractmethod
    def joint_shape(self, latents: Latents) -> tuple[int, ...]:
        """The shape of a batch's log joint."""

    # -------------------------------------------------------------- what the structure engines draw
    @property
    def alpha(self) -> np.ndarray:
        return self.world_model.alpha

    @property
    def table_size(self) -> int:
        return self.alpha.size

    def policies(self, x: np.ndarray) -> np.ndarray:
        """pi[n, S, A] of flat natural latents ``x[n, D]`` (pi's table first)."""
        return x[:, : self.table_size].reshape(len(x), *self.alpha.shape)

    @abstractmethod
    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` flat natural latents from the priors (the i.i.d. engine's proposal)."""

    @abstractmethod
    def evidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log w[n], values[n, ·])``: each draw's log weight and its contribution to the estimate."""

    @abstractmethod
    def smc_start(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unconstrained latents from the base measure of SMC."""

    @abstractmethod
    def smc_log_prior(self, u: np.ndarray) -> np.ndarray:
        """Log density of the base measure in unconstrained coordinates (up to a constant)."""

    @abstractmethod
    def natural(self, u: np.ndarray) -> np.ndarray:
        """Natural latents of unconstrained ones."""

    @abstractmethod
    def posterior(self, x: np.ndarray) -> tuple[dict, dict]:
        """Posterior variables of each draw (``U``, ``pi``, ``g``) and their dims."""

    def log_likelihood(self, u: np.ndarray) -> np.ndarray:
        """SMC's tempered factor: the log weight of unconstrained latents."""
        return self.evidence(self.natural(u))[0]

    # -------------------------------------------------------------- what a simulation of the model draws
    def draw_policy(self, rng: np.random.Generator) -> tuple[int | None, np.ndarray]:
        """One pi from the world model: ``(candidate index, pi)`` of a finite set, ``(None, pi)`` of Dirichlet
        rows."""
        if isinstance(self.world_model, FiniteWorldModel):
            index = int(rng.choice(self.world_model.weights.size, p=self.world_model.weights))
            return index, self.world_model.policies[index]
        return None, self.world_model.sample(1, seed=rng)[0]

    def policy_variables(self) -> tuple[str, ...]:
        """The scalar names under which a simulation ranks pi: the candidate index ``pi`` of a finite world
        model, every element ``pi[s,a]`` of Dirichlet rows."""
        if self.is_finite:
            return ("pi",)
        worlds = self.worlds
        return tuple(f"pi[{s},{a}]" for s in worlds.state_names for a in worlds.action_names)

    @abstractmethod
    def draw_utility(self, rng: np.random.Generator):
        """One U from the prior: a library index, or a linear prior's direction theta."""

    @abstractmethod
    def utility_variables(self) -> tuple[str, ...]:
        """The scalar names under which a simulation ranks U."""

    @abstractmethod
    def g_of(self, utility, policy: np.ndarray) -> float:
        """g(pi, U) of one policy under one drawn U, by the g method's hard count (the g the structure engines
        condition on)."""


def _conditional(joint: np.ndarray) -> np.ndarray:
    """``P(U_i | pi, data)`` of each draw from its log joint ``joint[draw, i]``; NaN for a draw of zero weight
    (every entry −inf), which the estimates leave out, without NumPy's warning about it."""
    with np.errstate(invalid="ignore"):
        return softmax(joint, axis=1)


class LibraryTarget(Target):
    """A utility library: U summed out exactly; the estimate is ``P(U_i | pi, data)``."""

    estimate_dim = "utility"

    def __init__(self, worlds, world_model, utility_prior, estimator, terms=()) -> None:
        super().__init__(worlds, world_model, utility_prior, estimator, terms)
        self.rewards = utility_prior.reward_table(worlds.n_actions)

    def joint_shape(self, latents: Latents) -> tuple[int, ...]:
        n = 1 if latents.pi is None else len(latents.pi)
        return (n, len(self.utility_prior.names))

    def hard_g(self, policies: np.ndarray) -> np.ndarray:
        """``g[j, n]`` of ``pi[j, s, a]`` under every library entry by the g method's hard count."""
        return self.estimator.library_bits(evaluate_policies(self.worlds, policies, self.rewards))

    def log_joint(self, policies: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
        """``(g[j, n], log joint[j, n])`` of policies (None: a model without pi, one row)."""
        g = self.hard_g(policies) if self.needs_g else None
        return g, self.log_joint_of(Latents(pi=policies, g=g))

    def exact_log_joint(self, g: np.ndarray | None = None) -> np.ndarray:
        """``log w_j + log joint[j, n]`` over a finite world model's candidates (one row without pi); ``g`` is
        their g table when the caller holds it."""
        policies = self.world_model.policies if self.has_policy else None
        if g is None and self.needs_g:
            g = self.hard_g(policies)
        joint = self.log_joint_of(Latents(pi=policies, g=g))
        return joint + np.log(self.world_model.weights)[:, None] if self.has_policy else joint

    def draw(self, n, rng):
        return self.world_model.sample(n, rng).reshape(n, -1)

    def evidence(self, x):
        joint = self.log_joint(self.policies(x))[1]
        return logsumexp(joint, axis=1), _conditional(joint)

    def log_likelihood(self, u):
        """SMC's tempered factor, U summed out: the log weight alone (each Metropolis step needs no P(U | pi))."""
        return logsumexp(self.log_joint(self.policies(self.natural(u)))[1], axis=1)

    def smc_start(self, n, rng):
        return log_gamma_variates(self.alpha, n, rng).reshape(n, -1)

    def smc_log_prior(self, u):
        return log_gamma_density(u.reshape(len(u), *self.alpha.shape), self.alpha)

    def natural(self, u):
        return softmax(u.reshape(len(u), *self.alpha.shape), axis=-1).reshape(len(u), -1)

    def posterior(self, x):
        g, joint = self.log_joint(self.policies(x))
        variables = {"U": _conditional(joint), "pi": self.policies(x), "g": g}
        return variables, {"U": ["utility"], "pi": ["state", "action"], "g": ["utility"]}

    def draw_utility(self, rng):
        return int(rng.choice(len(self.utility_prior), p=self.utility_prior.prior))

    def utility_variables(self):
        return ("U",)

    def g_of(self, utility, policy):
        return float(self.hard_g(policy[None])[0, utility])


class LinearTarget(Target):
    """A linear prior: theta uniform on the sphere of its constant-free complement, weighted by the terms
    (the simplicity potential first); the estimate is theta."""

    estimate_dim = "feature"

    def __init__(self, worlds, world_model, utility_prior, estimator, terms=()) -> None:
        super().__init__(worlds, world_model, utility_prior, estimator, terms)
        self.features = feature_table(worlds, utility_prior.features)

    def joint_shape(self, latents: Latents) -> tuple[int, ...]:
        return (max(len(latents.pi), len(latents.theta)),)

    def thetas(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.table_size :]

    def _direction(self, z: np.ndarray) -> np.ndarray:
        prior = self.utility_prior
        return (z @ prior.basis.T) / np.linalg.norm(z, axis=1, keepdims=True)

    def hard_g(self, policies: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """g of each policy ``pi[n]`` under its own direction ``theta[n]`` (or one shared ``theta[1]``)."""
        mu = feature_expectations(self.worlds, policies, self.features)
        theta = np.broadcast_to(theta, (len(mu), theta.shape[-1]))
        return self.estimator.linear_bits(np.einsum("nk,nk->n", mu, theta), theta)

    def log_joint(self, policies: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g[n], log joint[n])`` of policies and directions."""
        g = self.hard_g(policies, theta) if self.needs_g else None
        return g, self.log_joint_of(Latents(pi=policies, theta=theta, g=g))

    def draw(self, n, rng):
        pi = self.world_model.sample(n, rng).reshape(n, -1)
        z = rng.standard_normal((n, self.utility_prior.n_directions))
        return np.concatenate([pi, self._direction(z)], axis=1)

    def evidence(self, x):
        theta = self.thetas(x)
        return self.log_joint(self.policies(x), theta)[1], theta

    def smc_start(self, n, rng):
        y = log_gamma_variates(self.alpha, n, rng).reshape(n, -1)
        return np.concatenate([y, rng.standard_normal((n, self.utility_prior.n_directions))], axis=1)

    def smc_log_prior(self, u):
        y, z = u[:, : self.table_size], u[:, self.table_size :]
        return log_gamma_density(y.reshape(len(u), *self.alpha.shape), self.alpha) - 0.5 * np.sum(z**2, axis=1)

    def natural(self, u):
        y, z = u[:, : self.table_size], u[:, self.table_size :]
        pi = softmax(y.reshape(len(u), *self.alpha.shape), axis=-1).reshape(len(u), -1)
        return np.concatenate([pi, self._direction(z)], axis=1)

    def posterior(self, x):
        g, _ = self.log_joint(self.policies(x), self.thetas(x))
        variables = {"U": self.thetas(x), "pi": self.policies(x), "g": g}
        return variables, {"U": ["feature"], "pi": ["state", "action"], "g": []}

    def draw_utility(self, rng):
        return self.utility_prior.sample_prior(1, seed=rng)[0]

    def utility_variables(self):
        return tuple(f"U[{name}]" for name in self.utility_prior.feature_names)

    def g_of(self, utility, policy):
        return float(self.hard_g(policy[None], utility[None])[0])


def make_target(worlds, world_model, utility_prior, estimator, terms=()) -> Target:
    """The target of a library or a linear prior."""
    kind = LibraryTarget if isinstance(utility_prior, UtilityLibrary) else LinearTarget
    return kind(worlds, world_model, utility_prior, estimator, terms)


__all__ = [
    "ActionLikelihood",
    "EvidenceTerm",
    "GPrimeLikelihood",
    "Latents",
    "LibraryPrior",
    "LibraryTarget",
    "LinearPrior",
    "LinearTarget",
    "Target",
    "make_target",
    "utility_prior_term",
]
