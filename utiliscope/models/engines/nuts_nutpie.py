"""The ``nutpie`` engine: nutpie's NUTS on the numba-compiled model, compiled once per model object (later fits
swap data in with ``with_data``, so a study that changes g′ or counts with ``pm.set_data`` does not recompile:
numba compiles take 30–100 s); every extra keyword argument of ``fit`` goes to ``nutpie.sample``."""

from __future__ import annotations

from utiliscope.models.engines.base import NoOptions
from utiliscope.models.engines.nuts import NUTSEngine, nuts_backend, with_data_groups


class Nutpie(NUTSEngine):
    """nutpie's NUTS; options are ``nutpie.sample``'s."""

    name = "nutpie"
    Options = NoOptions
    passes_extra = True

    def compiled(self, model):
        """nutpie's compiled model of ``model``, compiled once per model object and kept on it."""
        compiled = model.__dict__.get("_nutpie_compiled")
        if compiled is None:
            compiled = nuts_backend(self.name).compile_pymc_model(model.model, backend="numba", freeze_model=False)
            model.__dict__["_nutpie_compiled"] = compiled
        return compiled

    def sample(self, model, settings, options):
        _, extra = options
        nutpie = nuts_backend(self.name)
        compiled = self.compiled(model)
        # The compiled graph holds the data its logp uses; pass their current values (set with pm.set_data).
        data = {var.name: var.get_value() for var in model.model.data_vars if var.name in compiled.shared_data}
        idata = nutpie.sample(
            compiled.with_data(**data),
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            seed=settings.seed,
            progress_bar=settings.progressbar,
            target_accept=settings.target_accept,
            save_warmup=False,
            **extra,
        )
        return with_data_groups(model.model, idata)


__all__ = ["Nutpie"]
