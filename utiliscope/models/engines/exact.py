"""The ``exact`` engine: nothing continuous is left (a library prior over a finite world model, or a library
model without pi), so the posterior is a finite sum and its draws are i.i.d. from it."""

from __future__ import annotations

from utiliscope.models.engines.base import Engine
from utiliscope.models.target import LibraryTarget


class Exact(Engine):
    """I.i.d. draws from the exact posterior ``∝ Σ_j w_j exp(Σ terms)`` (the model's ``_exact_draws``)."""

    name = "exact"
    priority = 0
    exhaustive = True

    def supports(self, model) -> bool:
        return isinstance(model.target, LibraryTarget) and model.target.is_finite

    def run(self, model, settings, options):
        idata = model._exact_draws(settings.draws, settings.chains, settings.seed)
        idata.attrs["engine"] = self.name
        return idata


__all__ = ["Exact"]
