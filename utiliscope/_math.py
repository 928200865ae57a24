"""Numerical constants and functions used across layers, defined once."""

from __future__ import annotations

import math

import pytensor.tensor as pt

#: ln 2: bits = nats / LN2.
LN2 = math.log(2.0)


def log_normal_cdf(z):
    """``log Φ(z)`` as a PyTensor expression, to full double precision (it matches ``scipy.special.log_ndtr``).

    Written here because ``pymc.distributions.dist_math.normal_lcdf`` differs from ``log_ndtr`` by up to 1e-8 in
    the body: ``erfcx`` carries the lower tail (no underflow), ``log1p(−erfc/2)`` the upper one, and each branch
    sees only its own range, so that neither overflows nor poisons the gradient.
    """
    z_lower, z_upper = pt.minimum(z, -1.0), pt.maximum(z, -1.0)
    lower = pt.log(pt.erfcx(-z_lower / math.sqrt(2.0)) / 2.0) - z_lower**2 / 2.0
    upper = pt.log1p(-pt.erfc(z_upper / math.sqrt(2.0)) / 2.0)
    return pt.switch(pt.lt(z, -1.0), lower, upper)


__all__ = ["LN2", "log_normal_cdf"]
