"""A Utiliscope's constructor arguments read back from a saved fit (``Utiliscope.from_idata``)."""

from __future__ import annotations

import arviz as az

from utiliscope.diagnostics.fitted import (
    likelihood_of,
    policy_prior_of,
    saved_json,
    saved_setting,
    utility_prior_of,
    world_model_of,
    worlds_of,
)


def utiliscope_arguments(idata: az.InferenceData) -> dict:
    """The constructor's arguments from a fit; the concrete g method, so that a later rule for ``"auto"`` cannot
    change it (``Utiliscope._restore`` puts back the requested one)."""
    return {
        "worlds": worlds_of(idata),
        "world_model": world_model_of(idata),
        "utility_prior": utility_prior_of(idata),
        "likelihood": likelihood_of(idata),
        "policy_prior": policy_prior_of(idata),
        "g_method": str(saved_setting(idata, "g_method")),
        "seed": int(saved_setting(idata, "seed")),
        "n_samples": int(saved_setting(idata, "n_samples")),
        "smoothing": _saved_smoothing(idata),
        "rtol": float(saved_setting(idata, "rtol")),
    }


def _saved_smoothing(idata) -> float | None:
    """The ``smoothing`` argument of a fit's model: recorded since ``smoothing_requested`` was; before, the
    stored value when it is one number a smoothing method used (an argument, or a linear prior's calibrated
    width, which calibration would give again), else None (calibrated, or unused)."""
    if "smoothing_requested" in idata.attrs:
        return saved_json(idata, "smoothing_requested")
    stored = saved_json(idata, "smoothing")
    return stored if isinstance(stored, float) and stored != 0.0 else None


__all__ = ["utiliscope_arguments"]
