"""The ``iid`` engine: i.i.d. draws of the latents from their priors (pi from the world model, a linear prior's
direction uniform on its sphere), weighted by the target's log joint (a library's U summed out exactly), until
every P(U) has its MCSE target (:mod:`utiliscope.models.iid_engine`). Under ``sampler="auto"`` a run whose
weights cannot be trusted moves on to tempered SMC and says why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import arviz as az

from utiliscope._validation import check_count, check_positive
from utiliscope.models.engines.base import Engine
from utiliscope.models.engines.smc import SMC
from utiliscope.models.engines.weighted import sampled_world_model, weighted_idata
from utiliscope.models.iid_engine import (
    DEFAULT_BATCH,
    DEFAULT_MAX_DRAWS,
    DEFAULT_MIN_DRAWS,
    DEFAULT_TARGET_MCSE,
    evidence_of_batch,
    redraw,
    resample,
    run_importance,
)
from utiliscope.models.target import LibraryTarget


@dataclass(frozen=True)
class IIDOptions:
    """The i.i.d. engine's options.

    ``target_mcse``: the largest MCSE of any P(U) to reach (``"auto"``: 0.002 for a library, and for a linear
    prior None: the ESS alone); ``max_draws``, ``min_draws``, ``batch_size``: the budget, the fewest draws
    before the stopping rule, draws per batch; ``client``: a ``distributed.Client`` that computes the batches,
    with the answer of one process.
    """

    target_mcse: float | str | None = "auto"
    max_draws: int = DEFAULT_MAX_DRAWS
    min_draws: int = DEFAULT_MIN_DRAWS
    batch_size: int = DEFAULT_BATCH
    client: Any = field(default=None, metadata={"spec": False})

    def __post_init__(self) -> None:
        if not (self.target_mcse is None or (isinstance(self.target_mcse, str) and self.target_mcse == "auto")):
            object.__setattr__(self, "target_mcse", check_positive(self.target_mcse, "target_mcse"))
        for key in ("max_draws", "min_draws", "batch_size"):
            object.__setattr__(self, key, check_count(getattr(self, key), key))

    def mcse_target(self, library: bool) -> float | None:
        """The MCSE target in force: the given one, else 0.002 for a library and None for a linear prior."""
        if isinstance(self.target_mcse, str):
            return DEFAULT_TARGET_MCSE if library else None
        return self.target_mcse


class IID(Engine):
    """I.i.d. draws weighted by the evidence (importance sampling with the priors as the proposal)."""

    name = "iid"
    priority = 10
    Options = IIDOptions
    #: Where a run whose weights cannot be trusted goes under ``sampler="auto"``.
    fallback = SMC()

    def supports(self, model) -> bool:
        return sampled_world_model(model)

    def options(self, kwargs: dict):
        """The i.i.d. options, and the fallback's among them (used only if the fit moves on)."""
        fallback_keys = set(self.fallback.option_names())
        own = {key: value for key, value in kwargs.items() if key not in fallback_keys}
        return super().options(own), self.fallback.options(
            {key: value for key, value in kwargs.items() if key in fallback_keys}
        )

    def run(self, model, settings, options) -> az.InferenceData:
        options, fallback_options = options
        if not settings.auto and fallback_options != self.fallback.Options():
            raise TypeError(
                f"sampler {self.name!r} does not take {list(self.fallback.option_names())}; they are options of "
                f"sampler {self.fallback.name!r}"
            )
        target = model.target
        target_mcse = options.mcse_target(isinstance(target, LibraryTarget))
        spread = (
            {}
            if options.client is None
            else _dask_batches(options.client, target, settings.seed, options.batch_size)
        )
        run = run_importance(
            target.draw,
            target.evidence,
            settings.seed,
            target_mcse=target_mcse,
            batch_size=options.batch_size,
            min_draws=options.min_draws,
            max_draws=options.max_draws,
            **spread,
        )
        summary = (
            f"{run.stopped}; Pareto k̂ = {run.pareto_k:.2f}, ESS = {run.ess:.0f}, largest MCSE of the estimate = "
            f"{run.max_mcse:.2g}"
        )
        if settings.auto and not run.trustworthy(target_mcse):
            reason = (
                f"{self.name}: {summary}. The world model is a poor proposal for this evidence (g′ points where "
                f"its draws rarely go), so the fit moved on to the {self.fallback.name} engine"
            )
            return self.fallback.run(model, settings, fallback_options, reason=reason)
        picks = resample(run, settings.chains * settings.draws, settings.seed)
        x = redraw(target.draw, settings.seed, run.batch_size, picks).reshape(settings.chains, settings.draws, -1)
        attrs = {
            "ess": run.ess,
            "pareto_k": run.pareto_k,
            "n_draws": run.n_draws,
            "target_mcse": math.nan if target_mcse is None else target_mcse,
            "stopped": run.stopped,
        }
        extra = {"log_weight": (("world_model_draw",), run.log_weights)}
        return weighted_idata(model, self.name, summary, x, run.estimate, run.mcse, extra, attrs)


def _dask_batches(client, target, seed: int, batch_size: int) -> dict:
    """``map_batches`` and ``round_size`` of :func:`~utiliscope.models.iid_engine.run_importance` that compute
    a round of batches (one per worker thread) on a ``distributed.Client``; the target travels once."""
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client; got {type(client).__name__}")
    [shared] = client.scatter([target], broadcast=True)

    def map_batches(batches):
        n = len(batches)
        futures = client.map(_batch_on_worker, [shared] * n, [seed] * n, [batch_size] * n, batches, pure=False)
        return client.gather(futures)

    return {"map_batches": map_batches, "round_size": max(1, sum(client.nthreads().values()))}


def _batch_on_worker(target, seed: int, batch_size: int, batch: int) -> tuple:
    return evidence_of_batch(target.draw, target.evidence, seed, batch_size, batch)


__all__ = ["IID", "IIDOptions"]
