"""Linear utilities ``r = phi @ theta`` with a continuous direction theta and a sparsity prior on it.

g and the posterior do not change under ``c·U + d`` (c > 0), so only theta's direction matters, and only its
part that changes rewards: a direction c with ``phi @ c`` constant over (s, a) (one-hot colours covering every
cell: c = 1) only adds a constant. theta therefore lives on the unit sphere of the complement of those
"constant directions", parametrised as

    z ~ Normal(0, I_K'),   theta = B z / ||z||,

with B (K × K') an orthonormal basis of the complement. z/||z|| is uniform on the sphere, and so is theta on the
sphere of the complement. A potential ``−(||z|| − 1)² / (2 · 0.25²)`` (``z_radius``) keeps z near the unit
sphere: it depends on ||z|| alone, so the direction's prior is unchanged, but it keeps samplers away from
z = 0, where the direction turns fast (a funnel where NUTS diverged: ``benchmarks/results/nuts_performance.md``).
Simplicity enters as a potential on the direction, weighted by λ like the library's ``2^(−λ·K)``:

    log p(theta) = −λ · ln2 · K(theta)   (+ a constant),

where the description length K(theta) in bits is one of

- ``"laplace"``: ``K = ||theta||_1 / scale``; at λ = 1 a Laplace density of scale ``scale / ln2`` on each
  component, restricted to the sphere (the L1 norm that costs one bit is ``scale``);
- ``"spike_and_slab"``: ``K = −Σ_k log2[(1 − p) N(theta_k; 0, s0²) + p N(theta_k; 0, s1²)]``, a continuous
  spike-and-slab with spike scale ``s0 = scale``, slab scale ``s1 = slab_scale`` and slab probability p.

λ = 0 gives the uniform direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from utiliscope._math import LN2
from utiliscope._validation import as_float_array, check_count, check_names, check_positive, readonly, rng_from
from utiliscope.priors.library import UtilityPrior

#: Scale of the ``z_radius`` potential that keeps ``z`` near the unit sphere (the direction's prior is unchanged).
RADIUS_SD = 0.25
#: The sparsity priors on the direction, with the default ``scale`` of each.
DEFAULT_SCALES = {"laplace": 0.25, "spike_and_slab": 0.05}
#: A right singular direction of the centred features is "constant" below this fraction of the largest one.
NULL_RTOL = 1e-10
#: Proposals per batch in :meth:`LinearUtility.sample_prior`.
SAMPLE_BATCH = 65_536


def constant_free_basis(features: np.ndarray) -> np.ndarray:
    """Orthonormal basis B (K × K') of the complement of the directions that only add a constant.

    ``phi @ c`` is constant over the rows of ``features`` (D × K) exactly when the centred features map c to 0,
    so the complement is the span of the centred features' right singular vectors with singular value above
    ``NULL_RTOL`` times the largest.
    """
    centred = features - features.mean(axis=0)
    _, sigma, vt = np.linalg.svd(centred, full_matrices=True)
    top = sigma.max(initial=0.0)
    rank = int(np.sum(sigma > NULL_RTOL * top)) if top > 0 else 0
    return vt[:rank].T


class LinearUtility(UtilityPrior):
    """A prior over linear utilities ``r = phi @ theta`` with theta a unit direction and a sparsity potential.

    Parameters
    ----------
    features : array_like, shape (S, K) or (S, A, K)
        Features ``phi``; at least two directions must remain after removing those that only add a constant.
    simplicity_weight : float
        λ ≥ 0, the weight of the potential ``−λ · ln2 · K(theta)``.
    sparsity : {"laplace", "spike_and_slab"}
        The description length K(theta) in bits (see the module docstring).
    scale : float, optional
        > 0. The Laplace L1 norm per bit (default 0.25), or the spike's standard deviation s0 (default 0.05).
    slab_scale : float
        > 0. The slab's standard deviation s1 (spike-and-slab only; default 1).
    slab_probability : float
        In (0, 1). The slab's weight p (spike-and-slab only; default 0.5).
    feature_names : sequence of str, optional
        K distinct labels; default ``f0, f1, ...``.
    initial_direction : array_like, shape (K,), optional
        Starting direction of samplers, projected into the complement. Default: ``B @ 1 / sqrt(K')``.

    Examples
    --------
    >>> import numpy as np
    >>> colours = np.eye(3)[[0, 1, 2, 0]]          # 4 cells, one-hot colours covering every cell
    >>> prior = LinearUtility(colours)
    >>> prior.n_directions                          # theta + c·1 is the same utility: 3 − 1 directions
    2
    >>> theta = prior.project([1.0, 0.0, 0.0])
    >>> bool(np.isclose(theta.sum(), 0.0)), bool(np.isclose(np.linalg.norm(theta), 1.0))
    (True, True)
    """

    kind = "linear"
    name = "linear_utility"

    def __init__(
        self,
        features,
        simplicity_weight: float = 1.0,
        sparsity: str = "laplace",
        scale: float | None = None,
        slab_scale: float = 1.0,
        slab_probability: float = 0.5,
        feature_names: Sequence[str] | None = None,
        initial_direction=None,
    ) -> None:
        phi = as_float_array(features, "features", ndim=(2, 3))
        if 0 in phi.shape:
            raise ValueError(f"features has shape {phi.shape}; it needs at least one state and one feature")
        n_features = phi.shape[-1]
        basis = constant_free_basis(phi.reshape(-1, n_features))
        if basis.shape[1] < 2:
            raise ValueError(
                f"features leave {basis.shape[1]} direction(s) once those that only add a constant are removed "
                "(phi @ c constant over states and actions); a direction on the unit sphere needs at least 2: "
                "use features that vary differently across states"
            )
        if sparsity not in DEFAULT_SCALES:
            raise ValueError(f"sparsity is {sparsity!r}; choose one of {sorted(DEFAULT_SCALES)}")
        probability = check_positive(slab_probability, "slab_probability")
        if probability >= 1:
            raise ValueError(f"slab_probability is {slab_probability}; it must lie in (0, 1)")
        labels = check_names(
            feature_names if feature_names is not None else [f"f{k}" for k in range(n_features)],
            n_features,
            "feature_names",
        )
        self._freeze(
            features=readonly(phi),
            feature_names=labels,
            simplicity_weight=check_positive(simplicity_weight, "simplicity_weight", allow_zero=True),
            sparsity=sparsity,
            scale=check_positive(DEFAULT_SCALES[sparsity] if scale is None else scale, "scale"),
            slab_scale=check_positive(slab_scale, "slab_scale"),
            slab_probability=probability,
            basis=readonly(basis),
        )
        start = basis @ np.ones(self.n_directions) if initial_direction is None else initial_direction
        self._freeze(initial_direction=readonly(self.project(start, name="initial_direction")))

    @property
    def n_features(self) -> int:
        """K, the number of features."""
        return self.basis.shape[0]

    @property
    def n_directions(self) -> int:
        """K', the dimension of the complement of the constant directions (the length of ``z``)."""
        return self.basis.shape[1]

    def __repr__(self) -> str:
        return (
            f"LinearUtility(K={self.n_features}, K'={self.n_directions}, sparsity={self.sparsity!r}, "
            f"simplicity_weight={self.simplicity_weight})"
        )

    def _settings(self) -> dict:
        return {
            "features": self.features,
            "simplicity_weight": self.simplicity_weight,
            "sparsity": self.sparsity,
            "scale": self.scale,
            "slab_scale": self.slab_scale,
            "slab_probability": self.slab_probability,
            "feature_names": self.feature_names,
            "initial_direction": self.initial_direction,
        }

    def _bits(self, theta, xp):
        """K(theta) in bits over the last axis, with ``xp`` either ``numpy`` or ``pytensor.tensor``."""
        if self.sparsity == "laplace":
            return xp.sum(xp.abs(theta), axis=-1) / self.scale
        log_spike = math.log1p(-self.slab_probability) + _normal_logpdf(theta, self.scale)
        log_slab = math.log(self.slab_probability) + _normal_logpdf(theta, self.slab_scale)
        return -xp.sum(xp.logaddexp(log_spike, log_slab), axis=-1) / LN2

    def _check_theta(self, theta, name: str) -> np.ndarray:
        array = as_float_array(theta, name, ndim=(1, 2))
        if array.shape[-1] != self.n_features:
            raise ValueError(
                f"{name} has shape {array.shape}; its last axis needs one entry per feature ({self.n_features})"
            )
        return array

    def description_bits(self, theta) -> np.ndarray | float:
        """K(theta) in bits of a unit direction ``theta[K]`` (or of each row of ``theta[n, K]``)."""
        return self._bits(self._check_theta(theta, "theta"), np)

    def log_prior_direction(self, theta) -> np.ndarray | float:
        """Unnormalised log density (natural log) of a unit direction: ``−λ · ln2 · K(theta)``."""
        return -self.simplicity_weight * LN2 * self.description_bits(theta)

    def log_prior_tensor(self, theta) -> pt.TensorVariable:
        """:meth:`log_prior_direction` of a tensor ``theta`` (over its last axis), from the same ``K``."""
        return -self.simplicity_weight * LN2 * self._bits(theta, pt)

    def project(self, theta, name: str = "theta") -> np.ndarray:
        """The unit vector along the part of ``theta`` in the complement of the constant directions."""
        array = self._check_theta(theta, name)
        inside = (array @ self.basis) @ self.basis.T
        norms = np.linalg.norm(inside, axis=-1, keepdims=True)
        if np.any(norms <= 1e-12 * np.linalg.norm(array, axis=-1, keepdims=True)):
            raise ValueError(
                f"{name} only adds a constant to the rewards (or is zero), so it has no direction; give one "
                "with a part outside the constant directions"
            )
        return inside / norms

    def check_worlds(self, n_states: int, n_actions: int) -> None:
        phi = self.features
        if phi.shape[0] != n_states or (phi.ndim == 3 and phi.shape[1] != n_actions):
            raise ValueError(
                f"utility_prior has features of shape {phi.shape} but the worlds have {n_states} states and "
                f"{n_actions} actions; build the prior from the worlds' features"
            )

    def reward(self, theta) -> np.ndarray:
        """Reward table ``phi @ theta``, of shape (S,) or (S, A) like the features."""
        array = self._check_theta(theta, "theta")
        if array.ndim != 1:
            raise ValueError(f"theta has shape {array.shape}; reward takes one direction theta[K]")
        return self.features @ array

    def create_theta(self) -> pt.TensorVariable:
        """:meth:`create_direction` and the ``simplicity`` potential (:meth:`log_prior_tensor`); return theta."""
        theta = self.create_direction()
        pm.Potential("simplicity", self.log_prior_tensor(theta))
        return theta

    def create_direction(self) -> pt.TensorVariable:
        """Create ``z`` and the ``z_radius`` potential in the active ``pm.Model``: theta (K,) uniform on the
        sphere of the constant-free complement, before the simplicity potential; return theta.

        The model must have a coordinate ``"feature"`` of length K. ``z`` starts at the initial direction, where
        theta is a unit vector and the log density is finite (at z = 0 theta would be 0/0); the norm is guarded
        by ε = sqrt(smallest normal float), so neither the density nor its gradient is NaN there either. The
        caller wraps the result, e.g. as ``pm.Deterministic("U", theta, dims="feature")``.
        """
        try:
            model = pm.modelcontext(None)
        except TypeError as err:
            raise TypeError("create_theta must be called inside a `with pm.Model(coords=...)` block") from err
        n_coords = len(model.coords.get("feature") or ())
        if n_coords != self.n_features:
            raise ValueError(
                f"the model's coordinate 'feature' has {n_coords} entries; it needs one per feature "
                f"({self.n_features}): pm.Model(coords={{'feature': prior.feature_names}})"
            )
        z = pm.Normal("z", 0.0, 1.0, shape=self.n_directions, initval=self.initial_direction @ self.basis)
        # At z = 0 the gradient multiplies z = 0 by (Σz² + ε)^(−3/2): ε = sqrt(tiny) keeps that factor finite,
        # where ε = tiny would overflow it to inf and give inf · 0 = NaN.
        guard = math.sqrt(np.finfo(pytensor.config.floatX).tiny)
        radius = pt.sqrt(pt.sum(z**2) + guard)
        theta = pt.dot(pt.as_tensor(self.basis), z) / radius
        pm.Potential("z_radius", -0.5 * ((radius - 1.0) / RADIUS_SD) ** 2)
        return theta

    def sample_prior(self, n: int, seed: int = 0, max_proposals: int = 10_000_000) -> np.ndarray:
        """Draw ``n`` unit directions ``theta[n, K]`` from the prior.

        Uniform directions in the complement (``B z / ||z||``) are accepted with probability
        ``exp(log_prior_direction(theta) − ceiling)``, where the ceiling is the potential's supremum over the
        whole unit sphere, reached on a coordinate axis: ``||theta||_1 ≥ 1`` for the Laplace code, and the
        spike-and-slab's log density is a log-sum-exp of affine functions of ``theta_k²``, hence convex on the
        simplex of ``(theta_1², ..., theta_K²)`` and largest at a vertex. The ceiling bounds the potential, so
        the draws are exact; the acceptance rate falls as λ grows, and past ``max_proposals`` proposals the
        method raises rather than run on.
        """
        n = check_count(n, "n")
        max_proposals = check_count(max_proposals, "max_proposals")
        rng = rng_from(seed)
        ceiling = self.log_prior_direction(np.eye(self.n_features)[0])
        accepted: list[np.ndarray] = []
        n_accepted = n_proposed = 0
        while n_accepted < n:
            if n_proposed >= max_proposals:
                raise ValueError(
                    f"sample_prior accepted {n_accepted} of {n_proposed} uniform proposals; rejection sampling "
                    f"is too slow at simplicity_weight={self.simplicity_weight}: lower it, raise max_proposals, "
                    "or sample the prior with pm.sample"
                )
            batch = min(SAMPLE_BATCH, max_proposals - n_proposed)
            z = rng.standard_normal((batch, self.n_directions))
            theta = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ self.basis.T
            # −Exp(1) is the log of a Uniform(0, 1) draw, without log(0) when the draw is 0.
            keep = -rng.exponential(size=batch) < self.log_prior_direction(theta) - ceiling
            accepted.append(theta[keep])
            n_accepted += int(keep.sum())
            n_proposed += batch
        return np.concatenate(accepted)[:n]


def _normal_logpdf(x, sigma: float):
    """log N(x; 0, sigma²), written with arithmetic only so that it works on NumPy arrays and PyTensor tensors."""
    return -0.5 * (x / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)
