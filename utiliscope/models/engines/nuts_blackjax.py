"""The ``blackjax`` engine: BlackJAX's NUTS on the JAX-compiled PyMC model (:mod:`utiliscope.models.jax_sampler`),
compiled once per model structure; the NUTS engine ``sampler="auto"`` runs when nothing else fits: it had the
shortest time to 400 bulk ESS on the benchmark problems (benchmarks/results/nuts_performance.md)."""

from __future__ import annotations

from utiliscope.models.engines.nuts import NUTSEngine, nuts_backend, with_data_groups


class BlackJAX(NUTSEngine):
    """BlackJAX NUTS; takes no extra arguments."""

    name = "blackjax"
    priority = 30
    checks_start = False

    def sample(self, model, settings, options):
        nuts_backend("blackjax")
        # Imported here: JAX is an optional backend, and its start-up is not needed by the other engines.
        from utiliscope.models.jax_sampler import sample_jax

        idata = sample_jax(
            model.model,
            settings.draws,
            settings.tune,
            settings.chains,
            settings.seed,
            settings.progressbar,
            settings.target_accept,
            self.name,
        )
        return with_data_groups(model.model, idata)


__all__ = ["BlackJAX"]
