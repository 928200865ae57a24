"""What every engine of ``fit`` is: a name, the structures it supports, an options dataclass and ``run``.

An engine is one module of :mod:`utiliscope.models.engines` holding a subclass of :class:`Engine`, registered
by name (:func:`~utiliscope.models.engines.register`). ``fit(sampler=name)`` looks it up; ``sampler="auto"``
runs the first registered engine, by :attr:`Engine.priority`, that supports the model. What ``check`` judges a
fit on is what the engine recorded: NUTS's sample statistics, or the importance weights' Pareto k̂ and ESS in
the group ``utility_estimate``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import arviz as az


@dataclass(frozen=True)
class FitSettings:
    """``fit``'s own settings, checked, as every engine receives them."""

    draws: int
    tune: int
    chains: int
    seed: int
    progressbar: bool
    target_accept: float
    auto: bool


@dataclass(frozen=True)
class NoOptions:
    """An engine that takes no extra keyword arguments."""


class Engine(ABC):
    """One way to fit a model's posterior.

    Subclasses set :attr:`name`, :attr:`priority` (lower runs first under ``sampler="auto"``), :attr:`Options`
    (a frozen dataclass of the keyword arguments ``fit`` passes on, checked in its ``__post_init__``) and
    implement :meth:`supports` and :meth:`run`.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 100
    Options: ClassVar[type] = NoOptions
    #: Whether the engine's answer is a finite sum, exact: NUTS asked of a model it supports gets it instead.
    exhaustive: ClassVar[bool] = False
    #: Whether the engine supports every model (``sampler="auto"`` never looks past the first such engine).
    universal: ClassVar[bool] = False
    #: Whether the engine samples NUTS on the PyMC model (its draws per chain are checked before the run).
    is_nuts: ClassVar[bool] = False
    #: Options that many-fit runs (studies, SBC) add: e.g. one core per fit, as Dask runs the fits in parallel.
    many_fits_options: ClassVar[dict] = {}
    #: Keyword arguments the options take beyond their fields, passed on whole (a NUTS library's own).
    passes_extra: ClassVar[bool] = False

    @abstractmethod
    def supports(self, model) -> bool:
        """Whether the engine can fit ``model``'s structure."""

    @abstractmethod
    def run(self, model, settings: FitSettings, options) -> az.InferenceData:
        """Fit ``model``; set ``idata.attrs["engine"]`` (and ``"engine_reason"`` if not the default)."""

    def check_draws(self, draws: int) -> None:  # noqa: B027 (a hook: most engines take any number)
        """Raise ValueError, before any work, when ``draws`` per chain are too few or too many for this engine
        (default: any number)."""

    def options(self, kwargs: dict):
        """The options dataclass of ``fit``'s extra keyword arguments; unknown keys are refused by name."""
        fields = {field.name for field in dataclasses.fields(self.Options)}
        unknown = sorted(set(kwargs) - fields)
        if unknown and not self.passes_extra:
            if not fields:
                raise TypeError(
                    f"sampler {self.name!r} takes no extra arguments; got {unknown}: pass only fit's own settings "
                    "(draws, chains, seed, ...)"
                )
            raise TypeError(
                f"sampler {self.name!r} does not take {unknown}; it takes {sorted(fields)}: pass only those"
            )
        known = {key: value for key, value in kwargs.items() if key in fields}
        options = self.Options(**known)
        return (options, {key: kwargs[key] for key in unknown}) if self.passes_extra else options

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The names of the options dataclass's fields."""
        return tuple(field.name for field in dataclasses.fields(cls.Options))

    @classmethod
    def spec_option_names(cls) -> tuple[str, ...]:
        """The options a spec's ``[sampler]`` may set: the fields of numbers (not ``metadata={"spec": False}``)."""
        return tuple(field.name for field in dataclasses.fields(cls.Options) if field.metadata.get("spec", True))


__all__ = ["Engine", "FitSettings", "NoOptions"]
