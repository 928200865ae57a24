"""The ``exact`` engine: nothing continuous is left (a library prior over a finite world model, or a library
model without pi), so the posterior is a finite sum and its draws are i.i.d. from it."""

from __future__ import annotations

import arviz as az
import numpy as np
from scipy.special import logsumexp, softmax

from utiliscope.models.engines.base import Engine
from utiliscope.models.target import LibraryTarget


class Exact(Engine):
    """I.i.d. draws from the exact posterior ``∝ Σ_j w_j exp(Σ terms)`` (the model's ``exact_draws``)."""

    name = "exact"
    priority = 0
    exhaustive = True

    def supports(self, model) -> bool:
        return isinstance(model.target, LibraryTarget) and model.target.is_finite

    def run(self, model, settings, options):
        idata = model.exact_draws(settings.draws, settings.chains, settings.seed)
        idata.attrs["engine"] = self.name
        return idata


def candidate_draws(
    model, log_joint: np.ndarray, g_table: np.ndarray, draws: int, chains: int, seed
) -> az.InferenceData:
    """I.i.d. draws of a finite world model's candidate ``j`` from its exact posterior, given the log joint
    ``log_joint[j, i]`` and g table ``g[j, i]``: each draw records ``U = P(U_i | pi_j, data)``, pi_j, its g and
    ``policy_index``."""
    p_policy = softmax(logsumexp(log_joint, axis=1))
    picks = np.random.default_rng(seed).choice(len(p_policy), size=(chains, draws), p=p_policy)
    world_model = model.world_model
    constant, constant_dims = model.constant_data()
    return az.from_dict(
        posterior={
            "U": softmax(log_joint, axis=1)[picks],
            "pi": world_model.policies[picks],
            "g": g_table[picks],
            "policy_index": picks,
        },
        observed_data=model.observed_data(),
        constant_data={**constant, "world_model_weights": world_model.weights},
        coords=model.coords(),
        dims={
            "U": ["utility"],
            "pi": ["state", "action"],
            "g": ["utility"],
            **constant_dims,
            "world_model_weights": ["policy"],
        },
    )


__all__ = ["Exact", "candidate_draws"]
