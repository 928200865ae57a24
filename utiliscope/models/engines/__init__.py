"""The engines ``fit`` can run, by name: one module each (:class:`~utiliscope.models.engines.base.Engine`).

``sampler="auto"`` runs the first engine, by priority, that supports the model's structure: ``exact`` when
nothing continuous is left, ``iid`` for pi drawn from Dirichlet rows (moving on to ``smc`` when its weights
cannot be trusted), else NUTS by BlackJAX. A new engine is one module and one :func:`register` call.
"""

from __future__ import annotations

from utiliscope.models.engines.base import Engine, FitSettings, NoOptions
from utiliscope.models.engines.exact import Exact
from utiliscope.models.engines.iid import IID
from utiliscope.models.engines.nuts_blackjax import BlackJAX
from utiliscope.models.engines.nuts_nutpie import Nutpie
from utiliscope.models.engines.nuts_pymc import PyMCNUTS
from utiliscope.models.engines.smc import SMC

#: The registered engines by name, in priority order.
ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Register ``engine`` under its name (replacing one of the same name) and return it."""
    if not isinstance(engine, Engine):
        raise TypeError(f"engine is a {type(engine).__name__}; it must be an Engine instance")
    ENGINES[engine.name] = engine
    ordered = sorted(ENGINES.values(), key=lambda e: e.priority)
    ENGINES.clear()
    ENGINES.update({e.name: e for e in ordered})
    return engine


for _engine in (Exact(), IID(), SMC(), BlackJAX(), PyMCNUTS(), Nutpie()):
    register(_engine)


def engine_names() -> tuple[str, ...]:
    """Every registered engine's name, in priority order."""
    return tuple(ENGINES)


def nuts_engine_names() -> tuple[str, ...]:
    """The registered NUTS engines."""
    return tuple(name for name, engine in ENGINES.items() if engine.is_nuts)


def auto_candidates() -> tuple[Engine, ...]:
    """The engines ``sampler="auto"`` may run: by priority, up to the first that supports every model."""
    candidates = []
    for engine in ENGINES.values():
        candidates.append(engine)
        if engine.universal:
            break
    return tuple(candidates)


def get_engine(name: str) -> Engine:
    """The engine registered as ``name``."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"sampler is {name!r}; choose 'auto' or one of {list(ENGINES)}") from None


def check_engine_options(sampler: str, options: dict) -> None:
    """Check ``fit``'s engine options for ``sampler`` before any work: each key must be an option of that
    engine (for ``"auto"``: of an engine it may run; the NUTS libraries' pass-through keys are theirs to check),
    and each value must pass the engine's ``Options`` dataclass."""
    engines = auto_candidates() if sampler == "auto" else (get_engine(sampler),)
    if not any(engine.passes_extra for engine in engines):
        allowed = {name for engine in engines for name in engine.option_names()}
        unknown = sorted(set(options) - allowed)
        if unknown:
            owners = sorted({e.name for key in unknown for e in ENGINES.values() if key in e.option_names()})
            where = f" (options of the engine {' or '.join(map(repr, owners))})" if owners else ""
            raise TypeError(
                f"sampler {sampler!r} does not take {unknown}{where}; it takes {sorted(allowed) or 'none'}"
            )
    for engine in engines:
        engine.options({key: value for key, value in options.items() if key in engine.option_names()})


def auto_engine(model) -> Engine:
    """The first engine, by priority, that supports ``model``."""
    return next(engine for engine in ENGINES.values() if engine.supports(model))


__all__ = [
    "ENGINES",
    "Engine",
    "FitSettings",
    "NoOptions",
    "auto_candidates",
    "auto_engine",
    "check_engine_options",
    "engine_names",
    "get_engine",
    "nuts_engine_names",
    "register",
]
