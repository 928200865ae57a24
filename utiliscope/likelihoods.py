r"""Likelihood shapes P(g′ | g): how the evidence "the operator is intelligent" enters the model.

See docs/model.md#likelihood-shapes.

The operator's intelligence g (bits) is observed through one noisy number g′, believed to be ``observed``
(g′_obs, bits). Every shape is a small value object in the style of ``pymc_extras.Prior``: a ``name``,
parameters ``params``, :meth:`Likelihood.create_variable` to add the observed node ``g_prime`` to a model,
and :meth:`Likelihood.to_dict` / :func:`likelihood_from_dict` to save and rebuild it.

Kernels (``generative``: g′ can be simulated), each ``g_prime ~ Kernel(mu=g, ...)`` observed at g′_obs, so that
as a function of g the log-likelihood rises up to a peak and falls after it:

=====================  ====================================================  ================================
shape                  log P(g′_obs | g), with x = g′_obs                    defaults
=====================  ====================================================  ================================
``AsymmetricLaplace``  rises at b·κ nats per bit below x, falls at b/κ above  b = κ = √(ln 2)
``Normal``             −(x − g)² / (2σ²) + const                             σ = 2
``StudentT``           −(ν + 1)/2 · log(1 + (x − g)² / (νσ²)) + const         σ = 2, ν = 4
``SkewNormal``         −z²/2 + log Φ(α z) + const,  z = (x − g)/σ             σ = 3, α = −4
=====================  ====================================================  ================================

and the proposal's baseline ``Exponential``: the monotone potential 2^g, ``log = rate · min(g, cap)``, which
is not a distribution of g′ and cannot be simulated.

g = +inf (a policy that beats every policy of ξ) has zero density under every kernel: ``logp`` is −inf there,
never NaN, whatever the kernel's own formula gives at ``mu = inf``. The 2^g potential is improper at +inf;
pass ``cap`` (bits) or cap g before it reaches the likelihood.

A new shape subclasses :class:`Likelihood`, sets ``name`` and ``defaults`` and implements only
:meth:`Likelihood.dist`; it registers itself under its ``name`` so that saved fits can rebuild it::

    class Logistic(Likelihood):
        name = "logistic"
        defaults = {"s": 1.0}

        def dist(self, g):
            return pm.Logistic.dist(mu=g, s=self.s)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from functools import cached_property
from typing import ClassVar

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.graph.basic import Variable
from scipy.optimize import minimize_scalar

from utiliscope._math import LN2, log_normal_cdf
from utiliscope._validation import check_finite, check_number, check_positive

#: Half-width (bits) of the grid around g′_obs on which :meth:`Likelihood.peak` looks for the maximum.
PEAK_SEARCH_BITS = 64.0
#: Bits shown beyond g′_obs, the peak or the cap by :meth:`Likelihood.plot`'s default grid.
PLOT_MARGIN_BITS = 20.0

_SQRT2 = np.sqrt(np.float64(2.0))
_LOG_SQRT_2PI = np.float64(0.5 * math.log(2.0 * math.pi))
_REGISTRY: dict[str, type[Likelihood]] = {}


def _register(cls: type[Likelihood]) -> None:
    """Add ``cls`` under its name; redefining the same class (a re-run notebook cell) replaces it."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and _qualified(existing) != _qualified(cls):
        raise ValueError(
            f"likelihood name {cls.name!r} is already taken by {_qualified(existing)}; give "
            f"{_qualified(cls)} another name"
        )
    _REGISTRY[cls.name] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _signature(defaults: Mapping[str, float]) -> inspect.Signature:
    """``(observed, *, p1=default1, ...)``, so that help() shows a subclass's parameters."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            inspect.Parameter("observed", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(inspect.Parameter(key, keyword, default=value) for key, value in defaults.items()),
        ]
    )


class Likelihood:
    r"""Base class of the likelihood shapes P(g′ | g); subclasses implement :meth:`dist` only.

    Parameters
    ----------
    observed : float
        g′_obs, the believed intelligence of the operator in bits: finite and ≥ 0.
    **params : float
        The shape's parameters, each finite and > 0 (any sign for those in ``signed``); those left out take
        the values in ``defaults``.

    Attributes
    ----------
    name : str
        Registry key, also written by :meth:`to_dict`.
    defaults : dict of str to float
        Parameter names and their default values.
    generative : bool
        Whether g′ can be simulated (True for the kernels, False for the 2^g potential).
    signed : frozenset of str
        Parameters that may take any finite value rather than only positive ones (SkewNormal's alpha).
    peak_at_observed : bool
        Whether the log-likelihood is known to peak at g = g′_obs (skips the numerical search in :meth:`peak`).

    Notes
    -----
    Parameters are also attributes (``Normal(5).sigma``) and are stored as float64: PyTensor turns a Python
    float such as ``3.0`` into a float32 constant, which costs 1e-8 relative precision in ``1 / sigma**2``.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]] = {}
    generative: ClassVar[bool] = True
    peak_at_observed: ClassVar[bool] = False
    signed: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            cls.__signature__ = _signature(cls.defaults)
        if "name" in cls.__dict__:
            _register(cls)

    def __init__(self, observed: float, **params: float) -> None:
        self._observed = np.float64(check_positive(observed, "observed", allow_zero=True))
        self._params = _check_params(type(self), params)

    def __getattr__(self, item: str):
        params = self.__dict__.get("_params", {})
        if item in params:
            return params[item]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")

    @property
    def observed(self) -> float | None:
        """g′_obs in bits (None for the 2^g potential, which has no observation)."""
        return None if self._observed is None else float(self._observed)

    @property
    def params(self) -> dict[str, float | None]:
        """The shape's parameters as plain floats."""
        return {key: None if value is None else float(value) for key, value in self._params.items()}

    @property
    def _value(self) -> np.float64:
        """The value g′ is observed at: g′_obs, or 0.0 (ignored) for the 2^g potential."""
        return np.float64(0.0) if self._observed is None else self._observed

    def dist(self, g):
        """A PyMC distribution of g′ located at ``g`` (a tensor of any shape), e.g. ``pm.Normal.dist(mu=g, ...)``.

        This is the one method a new shape implements; every other method derives from it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement dist(g), returning pm.<Dist>.dist(mu=g, ...)"
        )

    def logp_tensor(self, g, value=None) -> pt.TensorVariable:
        """log P(g′_obs | g) in nats, elementwise over a tensor ``g`` of any shape; −inf where g = +inf.

        Built as ``pm.logp(self.dist(g), observed)``, with g = +inf replaced before the kernel sees it (so that
        kernels whose formula is NaN at ``mu = inf``, such as PyMC's Logistic or Gumbel, still give −inf) and
        the gradient there is 0, not NaN. ``value`` (a number or tensor, e.g. a ``pm.Data``) replaces g′_obs.
        """
        value = self._value if value is None else _as_float64(value)
        return self._log_likelihood(value, _as_float64(g))

    def logp(self, g, value=None) -> np.ndarray | float:
        """:meth:`logp_tensor` for a numpy array ``g`` (bits): an array of g's shape, or a float for scalar g.

        ``value`` is the g′ at which to evaluate (default g′_obs). The PyTensor function is compiled once per
        object and cached, so 500 plotting points cost microseconds.
        """
        values = np.asarray(g, dtype=np.float64)
        at = self._value if value is None else np.float64(value)
        out = self._logp_function(values.ravel(), at).reshape(values.shape)
        return float(out) if out.ndim == 0 else out

    def create_variable(self, g, name: str = "g_prime", observed=None) -> pt.TensorVariable:
        """Add the observed node ``name`` (g′ given g) to the model in context and return it.

        The node is a ``pm.CustomDist`` whose log-density is :meth:`logp_tensor` (so the model's term equals
        :meth:`logp` exactly, including −inf at g = +inf) and whose draws come from :meth:`dist`.

        Parameters
        ----------
        g : tensor_like
            The operator's intelligence in bits (a model variable).
        name : str
            Node name; the package's models use ``"g_prime"``.
        observed : array_like or pytensor variable, optional
            What g′ is observed at, e.g. a ``pm.Data`` holding g′_obs so that it can change without rebuilding
            the model. By default g′_obs broadcast to g's static shape (0.0, ignored, for the 2^g potential).
        """
        g = _as_float64(g)
        draws = {"dist": self._dist_with_size} if self.generative else {}
        return pm.CustomDist(
            name,
            g,
            logp=self._log_likelihood,
            observed=_observed_like(g, self._value) if observed is None else observed,
            class_name=type(self).__name__,
            **draws,
        )

    def random(self, g, rng: np.random.Generator | int) -> np.ndarray | float:
        """Draws of g′ given g (bits), one per entry of ``g``, for simulation-based calibration.

        Parameters
        ----------
        g : array_like
            Finite locations; ``np.full(n, g0)`` gives n independent draws at g0.
        rng : numpy.random.Generator or int
            Source of randomness (a Generator is advanced) or a seed.
        """
        if not self.generative:
            raise TypeError(_not_generative(self))
        values = np.asarray(g, dtype=np.float64)
        check_finite(values, "g")
        out = np.asarray(pm.draw(self.dist(pt.as_tensor_variable(values)), random_seed=rng))
        return float(out) if out.ndim == 0 else out

    def peak(self) -> float:
        """The g (bits) at which :meth:`logp` is maximal.

        g′_obs where ``peak_at_observed``; otherwise the best point of a grid over g′_obs ± 64 bits (1/16-bit
        step), refined by bounded Brent search to 1e-9 bits (``scipy.optimize.minimize_scalar``).
        """
        if self.peak_at_observed:
            return self.observed
        grid = self.observed + np.linspace(-PEAK_SEARCH_BITS, PEAK_SEARCH_BITS, 2049)
        best = int(np.argmax(self.logp(grid)))
        if best in (0, grid.size - 1):
            raise ValueError(
                f"{self!r} has no peak within g′_obs ± {PEAK_SEARCH_BITS:g} bits; a likelihood shape must rise "
                "and then fall as a function of g"
            )
        result = minimize_scalar(
            lambda x: -self.logp(x),
            bounds=(grid[best - 1], grid[best + 1]),
            method="bounded",
            options={"xatol": 1e-9},
        )
        return float(result.x)

    def plot(self, ax=None, g=None):
        """Plot log P(g′_obs | g) in nats against g in bits, marking g′_obs (dashed) and the peak (dot).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; a new figure by default. ``plt.show`` is never called.
        g : array_like, optional
            Grid of g in bits; by default 500 points from 0 to 20 bits past g′_obs, the peak or the cap.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        peak = self.peak()
        if g is None:
            anchors = [x for x in (self.observed, peak) if x is not None and math.isfinite(x)]
            g = np.linspace(0.0, max([0.0, *anchors]) + PLOT_MARGIN_BITS, 500)
        if ax is None:
            _, ax = plt.subplots()
        g = np.asarray(g, dtype=np.float64)
        ax.plot(g, self.logp(g), label=repr(self))
        if self.observed is not None:
            ax.axvline(self.observed, linestyle="--", color="0.5", label=f"g′_obs = {self.observed:g} bits")
        if math.isfinite(peak):
            ax.plot([peak], [self.logp(peak)], "o", color="C3", label=f"peak at g = {peak:.3g} bits")
        ax.set_xlabel("g (bits)")
        ax.set_ylabel("log P(g′_obs | g) (nats)")
        ax.legend()
        return ax

    def to_dict(self) -> dict:
        """``{"name": ..., "observed": ..., **params}`` in plain Python types; see :func:`likelihood_from_dict`."""
        return {"name": self.name, "observed": self.observed, **self.params}

    def _log_likelihood(self, value, g) -> pt.TensorVariable:
        """log P(g′ = value | g) as a tensor; the ``logp`` of the CustomDist built by :meth:`create_variable`."""
        at_inf = pt.eq(g, np.inf)
        # Two switches: the kernel never sees g = +inf, so neither its value nor its gradient can be NaN there.
        finite_g = pt.switch(at_inf, np.float64(0.0), g)
        return pt.switch(at_inf, -np.inf, pm.logp(self.dist(finite_g), value))

    def _dist_with_size(self, g, size):
        return self.dist(g if rv_size_is_none(size) else pt.broadcast_to(g, size))

    @cached_property
    def _logp_function(self):
        g = pt.vector("g", dtype="float64")
        value = pt.scalar("value", dtype="float64")
        return pytensor.function([g, value], self.logp_tensor(g, value=value), on_unused_input="ignore")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_logp_function", None)
        return state

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.to_dict().items())))

    def __repr__(self) -> str:
        settings = {k: v for k, v in self.to_dict().items() if k != "name" and not (k == "observed" and v is None)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"


class AsymmetricLaplace(Likelihood):
    r"""``g_prime ~ AsymmetricLaplace(mu=g, b, kappa)`` in PyMC's parametrisation.

    PyMC's density is :math:`\frac{b}{\kappa + 1/\kappa} \exp(-(x - \mu)\, b\, s\, \kappa^{s})` with
    :math:`s = \operatorname{sign}(x - \mu)`, so ``b`` acts as a *rate* (scipy's ``laplace_asymmetric`` has
    ``scale = 1 / b``). As a function of g = μ at fixed x = g′_obs the log-likelihood is piecewise linear with
    its peak at g = g′_obs:

    - below the peak (g < x, so s = +1) it rises at :math:`b\kappa` nats per bit;
    - above the peak (g > x, s = −1) it falls at :math:`b/\kappa` nats per bit.

    Parameters
    ----------
    observed : float
        g′_obs in bits (finite, ≥ 0).
    b, kappa : float
        > 0. Defaults b = κ = √(ln 2) ≈ 0.8326: the rise b·κ = ln 2 per bit reproduces the proposal's 2^g below
        the peak, and the fall b/κ = 1 nat per bit (a factor e per bit of excess intelligence) above it.
    """

    name = "asymmetric_laplace"
    defaults: ClassVar[dict[str, float]] = {"b": math.sqrt(LN2), "kappa": math.sqrt(LN2)}
    peak_at_observed = True

    def dist(self, g):
        return pm.AsymmetricLaplace.dist(mu=g, b=self.b, kappa=self.kappa)


class Normal(Likelihood):
    r"""``g_prime ~ Normal(mu=g, sigma)``: log-likelihood :math:`-(g - g'_{obs})^2 / (2\sigma^2)` + const.

    Parameters
    ----------
    observed : float
        g′_obs in bits (finite, ≥ 0).
    sigma : float
        > 0, bits; default 2. The slope equals 2^g's ln 2 per bit at σ² ln 2 ≈ 2.8 bits from the peak: flatter
        than 2^g within that distance, steeper beyond it.
    """

    name = "normal"
    defaults: ClassVar[dict[str, float]] = {"sigma": 2.0}
    peak_at_observed = True

    def dist(self, g):
        return pm.Normal.dist(mu=g, sigma=self.sigma)


class StudentT(Likelihood):
    r"""``g_prime ~ StudentT(mu=g, sigma, nu)``: log-likelihood
    :math:`-\frac{\nu + 1}{2} \log\!\big(1 + (g - g'_{obs})^2 / (\nu\sigma^2)\big)` + const.

    Parameters
    ----------
    observed : float
        g′_obs in bits (finite, ≥ 0).
    sigma, nu : float
        > 0; defaults σ = 2 bits, ν = 4. Near the peak it resembles ``Normal(sigma=2)``; far from it the fall
        is logarithmic (about 8 nats at 20 bits away, against 50 for the normal), so a wrong g′_obs is not fatal.
    """

    name = "student_t"
    defaults: ClassVar[dict[str, float]] = {"sigma": 2.0, "nu": 4.0}
    peak_at_observed = True

    def dist(self, g):
        return pm.StudentT.dist(mu=g, sigma=self.sigma, nu=self.nu)


class SkewNormal(Likelihood):
    r"""``g_prime ~ SkewNormal(mu=g, sigma, alpha)``: log-likelihood
    :math:`\log 2 - z^2/2 + \log\Phi(\alpha z) - \log(\sigma\sqrt{2\pi})` with :math:`z = (g'_{obs} - g)/\sigma`.

    Parameters
    ----------
    observed : float
        g′_obs in bits (finite, ≥ 0).
    sigma, alpha : float
        σ > 0 (bits; default 3) and the skew α, any finite number (default −4; α = 0 is the normal). With
        α < 0, below the peak (z > 0) :math:`\log\Phi(\alpha z) \approx -\alpha^2 z^2/2` adds to the Gaussian
        term, so the log-likelihood is about √(1 + α²) ≈ 4 times narrower below the peak than above it, where
        Φ(αz) → 1: "increase fast for higher g, but decrease after a certain point". The peak then lies above
        g′_obs (by 1.25 bits for the defaults); :meth:`peak` finds it.

    Notes
    -----
    Draws come from PyMC's ``SkewNormal``; the log-density is written here because PyMC's
    ``log(1 + erf(.))`` (and ``normal_lcdf``, which takes ``sqrt`` of a float32 constant 2.0) agree with
    ``scipy.stats.skewnorm`` only to about 1e-8; :func:`~utiliscope._math.log_normal_cdf` agrees to 1e-13.
    """

    name = "skew_normal"
    defaults: ClassVar[dict[str, float]] = {"sigma": 3.0, "alpha": -4.0}
    signed: ClassVar[frozenset[str]] = frozenset({"alpha"})

    def dist(self, g):
        return pm.CustomDist.dist(
            g, self.sigma, self.alpha, dist=_skew_normal_draws, logp=_skew_normal_logp, class_name="SkewNormal"
        )


class Exponential(Likelihood):
    r"""The proposal's monotone potential :math:`P(g' \mid g) \propto 2^g`: log-likelihood ``rate · min(g, cap)``.

    Not a distribution of g′ (``generative`` is False): :meth:`dist` and :meth:`random` raise. In a model,
    :meth:`create_variable` adds a ``pm.CustomDist`` observed at 0.0 whose log-density ignores that value and
    equals ``rate · min(g, cap)``, an improper likelihood term, so that every model has a node ``g_prime``.
    It is the only monotone shape: it has no peak, and it is improper at g = +inf (+inf there unless capped).

    Parameters
    ----------
    rate : float
        > 0, nats per bit; ln 2 (the default) gives exactly 2^g.
    cap : float, optional
        ≥ 0, bits. When given, g is replaced by min(g, cap), e.g. log2 of ξ's support size; without a cap the
        caller must keep g finite.
    """

    name = "exponential"
    generative = False

    def __init__(self, rate: float = LN2, cap: float | None = None) -> None:
        self._observed = None
        self._params = {
            "rate": np.float64(check_positive(rate, "rate")),
            "cap": None if cap is None else np.float64(check_positive(cap, "cap", allow_zero=True)),
        }

    def dist(self, g):
        raise TypeError(_not_generative(self))

    def peak(self) -> float:
        """The cap (logp is maximal from there on), or +inf without a cap."""
        return math.inf if self.cap is None else float(self.cap)

    def _log_likelihood(self, value, g) -> pt.TensorVariable:
        cap = np.float64(np.inf if self.cap is None else self.cap)
        return self.rate * pt.minimum(g, cap)


def likelihood_from_dict(d: Mapping) -> Likelihood:
    """Rebuild a shape from :meth:`Likelihood.to_dict`'s output, looking its ``name`` up in the registry.

    User shapes are found once the module defining their subclass has been imported.
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"d must be a dict from Likelihood.to_dict(); got {type(d).__name__}")
    settings = dict(d)
    name = settings.pop("name", None)
    if name not in _REGISTRY:
        raise ValueError(
            f"d['name'] is {name!r}, not a known likelihood shape; known: {', '.join(sorted(_REGISTRY))} "
            "(import the module that defines a custom Likelihood subclass before loading)"
        )
    if settings.get("observed", 0.0) is None:
        del settings["observed"]
    return _REGISTRY[name](**settings)


def registered_likelihoods() -> dict[str, type[Likelihood]]:
    """A copy of the registry: shape name → class, built-in and user-defined."""
    return dict(_REGISTRY)


def as_likelihood(likelihood) -> Likelihood:
    """A :class:`Likelihood` passes through, a dict is rebuilt by :func:`likelihood_from_dict`; else TypeError."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    if isinstance(likelihood, Mapping):
        return likelihood_from_dict(likelihood)
    raise TypeError(
        "likelihood must be a Likelihood (e.g. us.likelihoods.AsymmetricLaplace(observed=10.0)) or its "
        f"to_dict(); got {type(likelihood).__name__}"
    )


def _check_params(cls: type[Likelihood], params: Mapping[str, float]) -> dict[str, np.float64]:
    unknown = sorted(set(params) - set(cls.defaults))
    if unknown:
        raise TypeError(
            f"{cls.__name__} has no parameter {unknown[0]!r}; pass only its parameters: "
            f"{', '.join(cls.defaults) or 'none'}"
        )
    return {
        key: _check_signed(value, key) if key in cls.signed else np.float64(check_positive(value, key))
        for key, value in ({**cls.defaults, **params}).items()
    }


def _check_signed(value, name: str) -> np.float64:
    number = np.float64(check_number(value, name))
    if not np.isfinite(number):
        raise ValueError(f"{name} is {value}; it must be a finite number")
    return number


def _as_float64(x) -> pt.TensorVariable:
    """A float64 tensor; a Python float would become a (rounded) float32 constant in PyTensor."""
    if isinstance(x, Variable):
        return x if x.dtype == "float64" else pt.cast(x, "float64")
    return pt.as_tensor_variable(np.asarray(x, dtype=np.float64))


def _observed_like(g: pt.TensorVariable, value: float) -> np.ndarray:
    shape = g.type.shape
    if any(dim is None for dim in shape):
        raise ValueError(
            f"g has no static shape ({shape}); create_variable needs one to broadcast g′_obs, e.g. a scalar g"
        )
    return np.full(shape, value, dtype=np.float64)


def _not_generative(likelihood: Likelihood) -> str:
    generative = ", ".join(name for name, cls in _REGISTRY.items() if cls.generative)
    return (
        f"{type(likelihood).__name__} is an unnormalised potential, not a distribution of g′, so g′ cannot be "
        f"drawn from it; use a generative shape ({generative}) to simulate g′"
    )


def _skew_normal_logp(value, mu, sigma, alpha):
    z = (value - mu) / sigma
    return np.log(np.float64(2.0)) - pt.sqr(z) / 2.0 - pt.log(sigma) - _LOG_SQRT_2PI + log_normal_cdf(alpha * z)


def _skew_normal_draws(mu, sigma, alpha, size):
    return pm.SkewNormal.dist(mu=mu, sigma=sigma, alpha=alpha, size=size)
