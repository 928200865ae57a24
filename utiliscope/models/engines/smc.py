"""The ``smc`` engine: tempered sequential Monte Carlo from the priors to the posterior
(:mod:`utiliscope.models.smc_engine`), ``chains`` independent runs of ``draws`` particles each."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import arviz as az
import numpy as np

from utiliscope._validation import check_count
from utiliscope.models.engines.base import Engine
from utiliscope.models.engines.weighted import sampled_world_model, weighted_idata
from utiliscope.models.sizes import MIN_SMC_DRAWS, check_smc_draws
from utiliscope.models.smc_engine import DEFAULT_STEPS, run_smc


@dataclass(frozen=True)
class SMCOptions:
    """``n_steps``: random-walk Metropolis steps per tempering stage."""

    n_steps: int = DEFAULT_STEPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_steps", check_count(self.n_steps, "n_steps"))


class SMC(Engine):
    """Tempered SMC over pi's Dirichlet rows (and a linear prior's direction); the estimate's MCSE from the
    spread of the runs."""

    name = "smc"
    priority = 20
    Options = SMCOptions

    def supports(self, model) -> bool:
        return sampled_world_model(model)

    def check_draws(self, draws: int) -> None:
        """Between :data:`MIN_SMC_DRAWS` and :data:`MAX_SMC_DRAWS` particles per chain."""
        check_smc_draws(draws)

    def run(self, model, settings, options, reason: str = "requested") -> az.InferenceData:
        """``chains`` runs of ``draws`` particles (at least :data:`MIN_SMC_DRAWS`, of which the posterior keeps
        ``draws``, evenly spaced: the i.i.d. engine's fallback with few draws)."""
        target = model.target
        particles = max(settings.draws, MIN_SMC_DRAWS)
        runs = [
            run_smc(
                target.smc_start(particles, rng),
                target.smc_log_prior,
                target.log_likelihood,
                rng,
                options.n_steps,
            )
            for rng in np.random.default_rng(settings.seed).spawn(settings.chains)
        ]
        x = np.stack([target.natural(run.particles) for run in runs])
        per_chain = np.stack([target.evidence(chain)[1].mean(axis=0) for chain in x])
        chains = settings.chains
        mcse = (
            per_chain.std(axis=0, ddof=1) / math.sqrt(chains)
            if chains > 1
            else np.full(per_chain.shape[1], np.nan)
        )
        extra = {"log_evidence": (("chain",), np.array([run.log_evidence for run in runs]))}
        attrs = {
            "stages": json.dumps([len(run.betas) - 1 for run in runs]),
            "min_acceptance": float(min(run.acceptance.min() for run in runs)),
        }
        kept = np.linspace(0, particles - 1, settings.draws).round().astype(int)
        return weighted_idata(model, self.name, reason, x[:, kept], per_chain.mean(axis=0), mcse, extra, attrs)


__all__ = ["SMC", "SMCOptions"]
