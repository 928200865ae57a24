"""Declarative TOML specs of a fit or a recovery study: reading, validation and building the problem.

A spec names the pieces of the Bayes net (docs/model.md#the-bayes-net), one TOML table each (every key is
documented in ``examples/README.md``)::

    [worlds]        ζ: gridworld layout(s) and slips, or garnet parameters; gamma; weights
    [prior]         P(U): a utility library over the worlds' features, or a linear direction prior
    [agent]         a synthetic agent with a known utility, and [agent.demonstrations] of it ...
    [observations]  ... or counts n[s, a] (or candidate policies) observed elsewhere
    [world_model]   P(pi | WM): Dirichlet rows, a finite sample of them, the agent's policy, or given policies
    [likelihood]    P(g' | g): a shape's name, its parameters and g'_obs (a number, or "agent" for g*)
    [model]         how g is computed: g_method, n_samples, seed, smoothing, ξ
    [sampler]       draws, tune, chains, seed, sampler, target_accept, cores
    [decide]        (``utiliscope fit`` only) a decision rule applied after the fit, and its output file
    [study]         (``utiliscope study`` only) agents, their number, the grid of settings

:func:`fit_problem` and :func:`study_problem` validate a parsed spec completely before anything is fitted and
build the objects a fit or a study needs: :mod:`~utiliscope.spec.schema` holds the sections, keys and reading,
:mod:`~utiliscope.spec.builders` builds one table at a time, :mod:`~utiliscope.spec.problems` a whole spec. Every
mistake raises :class:`SpecError` (a ValueError) whose message names the key (``[agent].beta``) and what is
allowed there: unknown sections and keys, wrong types, unknown names, and the package's own input errors
prefixed with their section.
"""

from utiliscope.spec.problems import (
    FitProblem,
    StudyProblem,
    fit_problem,
    study_problem,
    truth_from_attrs,
)
from utiliscope.spec.schema import SpecError, read_spec

__all__ = [
    "FitProblem",
    "SpecError",
    "StudyProblem",
    "fit_problem",
    "read_spec",
    "study_problem",
    "truth_from_attrs",
]
