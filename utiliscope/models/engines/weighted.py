"""What the engines that draw from the priors share: which models they fit, and the InferenceData of their
equally weighted draws with the group ``utility_estimate`` (the estimate over every weighted draw)."""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

from utiliscope.world_model import DirichletWorldModel


def sampled_world_model(model) -> bool:
    """Whether ``model`` has a target whose pi is drawn from Dirichlet rows."""
    target = model.target
    return target is not None and isinstance(target.world_model, DirichletWorldModel)


def weighted_idata(model, engine: str, reason: str, x, estimate, mcse, extra, attrs) -> az.InferenceData:
    """InferenceData of equally weighted draws ``x[chain, draw, D]`` and the group ``utility_estimate``."""
    target = model.target
    chains, draws = x.shape[:2]
    variables, dims = target.posterior(x.reshape(chains * draws, -1))
    target.estimator.warn_outside(variables["g"], variables["U"] if target.estimate_dim == "utility" else None)
    constant, constant_dims = model.constant_data()
    coords = model.coords()
    idata = az.from_dict(
        posterior={name: value.reshape(chains, draws, *value.shape[1:]) for name, value in variables.items()},
        observed_data=model.observed_data(),
        constant_data={"alpha": target.alpha, **constant},
        coords=coords,
        dims={**dims, "alpha": ["state", "action"], **constant_dims},
    )
    dim = target.estimate_dim
    name = "probability" if dim == "utility" else "mean"
    group = xr.Dataset(
        {name: ((dim,), np.asarray(estimate)), "mcse": ((dim,), np.asarray(mcse)), **extra},
        coords={dim: coords[dim]},
        attrs={"engine": engine, **attrs},
    )
    idata.add_groups({"utility_estimate": group})
    idata.attrs.update({"engine": engine, "engine_reason": reason})
    return idata


__all__ = ["sampled_world_model", "weighted_idata"]
