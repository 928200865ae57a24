"""Recovery studies: many synthetic agents, one fit per agent and setting, one tidy table, run on Dask.

A study compares settings (likelihood shapes, λ, g methods, amounts of data) by how well each recovers the
known utility U* and intelligence g* of synthetic agents. Seeds: agent i gets the i-th child of
``SeedSequence(seed)``, split into an agent seed, a data seed and a fit seed that are the *same for every
setting*, so that every setting sees the same agent and the same demonstrations (a paired comparison) and the
table does not depend on the number of workers. A setting may choose the model itself (the Utiliscope or the
Boltzmann-rational baseline): :func:`truth_metrics` measures both the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from utiliscope._validation import check_count, check_seed
from utiliscope.diagnostics.recovery import decision_columns, decision_numbers, decision_outcomes
from utiliscope.models.fit_settings import many_fits_kwargs
from utiliscope.models.many_fits import check_many_fits
from utiliscope.studies.parallel import TaskSeed, run_tasks

#: Fit settings used unless ``fit_kwargs`` overrides them (with PyMC's sampler also one core per fit, as Dask runs
#: fits in parallel: ``models.base.PYMC_MANY_FITS_OPTIONS``).
DEFAULT_FIT_KWARGS = {"draws": 500, "tune": 500, "chains": 2, "progressbar": False}
#: Utilities equal up to a positive affine map count as the same when their centred, normalised tables agree
#: to this absolute tolerance.
SAME_UTILITY_ATOL = 1e-9


def _direction(reward: np.ndarray) -> np.ndarray | None:
    """``(r − mean r) / ||r − mean r||``: the positive-affine class of a reward table (None if constant)."""
    centred = np.ravel(reward) - np.mean(reward)
    norm = np.linalg.norm(centred)
    return None if norm <= SAME_UTILITY_ATOL * max(1.0, np.abs(reward).max()) else centred / norm


def true_utility_index(library_rewards: np.ndarray, reward: np.ndarray) -> int | None:
    """Position of the first library entry equal to ``reward`` up to a positive affine map, or None."""
    target = _direction(reward)
    for i, entry in enumerate(library_rewards):
        candidate = _direction(entry)
        if candidate is None or target is None:
            if candidate is None and target is None:
                return i
            continue
        if np.allclose(candidate, target, rtol=0.0, atol=1e-6):
            return i
    return None


def truth_metrics(idata, scope, agent, worlds) -> dict:
    """The default per-fit metric: recovery of the agent's U* (and of its g*, for models with a ``g`` node).

    Works with any model of :mod:`utiliscope.models` (the Utiliscope, :class:`~utiliscope.models.BoltzmannIRL`).

    Library priors: the columns of :func:`library_metrics` (mass, rank and Bayes factor of U*, mass on the
    constant and on the negation of U*, cosine of the posterior-mean reward with U*). Linear priors: ``cosine``
    between the posterior mean reward ``phi @ E[theta]`` and U*, both centred.

    Models with a ``g`` node in ``idata.posterior`` add ``g_true``, ``agent.true_intelligence`` with the scope's
    policy prior and g method (and its seed and sample size for sampled methods), and ``g_true_in_90``: whether
    g* lies in the central 90% posterior interval of g (under U*'s library entry; NaN if U* is not in the
    library). Models without g (Boltzmann IRL) have neither column.

    Every model adds, per decision rule, ``policy_loss_<rule>`` and ``g_decided_<rule>``: the loss under U* of the
    policy decided from the posterior and its g under U*
    (:func:`~utiliscope.diagnostics.recovery.decision_outcomes`).
    """
    true_reward = agent.reward_table(worlds)
    has_g = "g" in idata.posterior
    row = decision_numbers(decision_outcomes(idata, true_reward, scope))
    if has_g:
        row["g_true"] = agent.true_intelligence(
            worlds, scope.policy_prior, scope.g_method, scope.n_samples, scope.seed
        )
    if not scope.is_library:
        mean_theta = idata.posterior["U"].mean(dim=("chain", "draw")).values
        row["cosine"] = centred_cosine(scope.features @ mean_theta, true_reward)
        if has_g:
            row["g_true_in_90"] = _in_interval(idata.posterior["g"].values, row["g_true"])
        return row
    probabilities = scope.utility_posterior(idata).values
    row.update(library_metrics(probabilities, scope.utility_prior, scope.rewards, true_reward))
    if has_g:
        row["g_true_in_90"] = _g_interval_under_truth(idata.posterior["g"], row)
    return row


def library_metrics(probabilities, library, rewards: np.ndarray, true_reward: np.ndarray) -> dict:
    """Where a library posterior puts the true utility U*.

    Parameters
    ----------
    probabilities : array_like, shape (N,)
        ``P(U_i | data)``.
    library : UtilityLibrary
        Its prior and names (and which entries are the constant and the negations).
    rewards : ndarray, shape (N, S, A)
        The library's reward tables ``r_i``.
    true_reward : ndarray, shape (S, A)
        U*'s reward table.

    Returns
    -------
    dict
        ``U_true`` (the name of the entry i* equal to U* up to a positive affine map, None if there is none),
        ``mass_on_truth`` = P(U_i*), ``rank`` = 1 + #{i : P(U_i) > P(U_i*)}, ``bayes_factor`` =
        P(U_i* | data) / P(U_i*), ``mass_on_negation`` = P(−U*) (the entry equal to −U* up to a positive affine
        map; NaN without i* or without such an entry), ``mass_on_constant`` (NaN if the library has no constant),
        and ``cosine``: the cosine between the centred posterior-mean reward ``Σ_i P(U_i) r_i`` and the centred
        U* (NaN if either is constant). The mass columns need U* in the library; the cosine does not.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    constant = library.constant_index()
    row = {
        "U_true": None,
        "mass_on_truth": np.nan,
        "rank": np.nan,
        "bayes_factor": np.nan,
        "mass_on_constant": np.nan if constant is None else float(probabilities[constant]),
        "mass_on_negation": np.nan,
        "cosine": centred_cosine(np.tensordot(probabilities, rewards, axes=1), true_reward),
    }
    index = true_utility_index(rewards, true_reward)
    if index is None:
        return row
    negation = library.negation_index(index)
    return {
        **row,
        "U_true": library.names[index],
        "mass_on_truth": float(probabilities[index]),
        "rank": int(1 + np.count_nonzero(probabilities > probabilities[index])),
        "bayes_factor": float(probabilities[index] / library.prior[index]),
        "mass_on_negation": np.nan if negation is None else float(probabilities[negation]),
    }


def centred_cosine(reward: np.ndarray, true_reward: np.ndarray) -> float:
    """Cosine between two reward tables after subtracting each one's mean (NaN if either is constant)."""
    first, second = _direction(reward), _direction(true_reward)
    return np.nan if first is None or second is None else float(first @ second)


def _g_interval_under_truth(g, row: dict) -> bool | float:
    """Whether g* lies in the 90% interval of g under U*'s entry (NaN if U* is not in the library)."""
    if row["U_true"] is None:
        return np.nan
    return _in_interval(g.sel(utility=row["U_true"]).values, row["g_true"])


def _in_interval(draws, value: float, prob: float = 0.9) -> bool:
    low, high = np.quantile(np.ravel(draws), [(1 - prob) / 2, (1 + prob) / 2])
    return bool(low <= value <= high)


class _Study:
    """What every task shares: the factories, the settings, the fit arguments and the metric."""

    def __init__(self, agent_factory, scope_factory, settings, fit_kwargs, metric) -> None:
        self.agent_factory = agent_factory
        self.scope_factory = scope_factory
        self.settings = settings
        self.fit_kwargs = fit_kwargs
        self.metric = metric


def _fit_task(study: _Study, payload: tuple[int, int, TaskSeed]) -> dict:
    """One (agent, setting): build the agent, its data and scope, fit, and measure recovery."""
    agent_index, setting_index, seed_sequence = payload
    agent_seed, data_seed, fit_seed = seed_sequence.spawn(3)
    agent, worlds = study.agent_factory(agent_index, np.random.default_rng(agent_seed))
    setting = study.settings[setting_index]
    scope = study.scope_factory(agent, worlds, setting, np.random.default_rng(data_seed))
    idata = scope.fit(seed=int(fit_seed.generate_state(1)[0]), **study.fit_kwargs)
    row = {"agent_type": type(agent).__name__, "model_type": type(scope).__name__}
    if "sample_stats" in idata and "diverging" in idata.sample_stats:
        row["divergences"] = int(idata.sample_stats["diverging"].sum())
    metrics = study.metric(idata, scope, agent, worlds)
    clashes = sorted(set(metrics) & {*setting, "agent", "setting", "error"})
    if clashes:
        raise ValueError(
            f"the metric returned the column(s) {clashes}, named like a setting or a column of the study's "
            "table, which they would replace; rename the setting or the metric's column"
        )
    return {**row, **metrics}


def recovery_study(
    agent_factory: Callable,
    scope_factory: Callable,
    n_agents: int,
    settings: Sequence[Mapping] | None = None,
    seed: int = 0,
    client=None,
    fit_kwargs: Mapping | None = None,
    metric: Callable | None = None,
    *,
    progressbar: bool = True,
) -> pd.DataFrame:
    """Fit every synthetic agent under every setting and tabulate how well each recovers the truth.

    Parameters
    ----------
    agent_factory : callable
        ``agent_factory(i, rng) -> (agent, worlds)``: agent i (with a known reward) and the worlds it acts in.
    scope_factory : callable
        ``scope_factory(agent, worlds, setting, rng) -> model``: typically demonstrations
        ``agent.demonstrate(worlds, ..., seed=rng)``, then the setting's model on them: a ``Utiliscope`` (a
        world model, prior and likelihood) or another model of :mod:`utiliscope.models` such as
        ``BoltzmannIRL``. ``rng`` is the same for every setting of one agent, so all settings see the same
        demonstrations when they draw them first: a setting such as ``{"model": "boltzmann"}`` compares models
        on paired data.
    n_agents : int
        Number of agents (≥ 1).
    settings : sequence of dict, optional
        One dict per setting, e.g. ``[{"likelihood": "normal", "lam": 0.5}, ...]``; its keys become columns.
        Default: one empty setting.
    seed : int
        Root of the per-agent seeds; the same seed gives the same table with any client.
    client : None, "serial", str or distributed.Client
        Where the fits run (:mod:`utiliscope.studies.parallel`).
    fit_kwargs : dict, optional
        Arguments of ``scope.fit`` on top of :data:`DEFAULT_FIT_KWARGS` (the fit seed is set per agent).
    metric : callable, optional
        ``metric(idata, scope, agent, worlds) -> dict`` of columns; default :func:`truth_metrics`.
    progressbar : bool
        Show Dask's progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per agent and setting, ordered by agent then setting: ``agent``, ``setting`` (its index), the
        setting's keys, ``agent_type`` and ``model_type`` (the class names of the agent and of the scope),
        ``divergences`` (MCMC fits), the metric's columns, and ``error`` (None,
        or the message of a failed fit: its other columns are missing; a warning also lists the failures).
        A fit whose worker process died has a ``"WorkerDied: ..."`` error; the others are unaffected.
        ``table.attrs["incomplete"]`` is True when the study was interrupted (KeyboardInterrupt): the fits
        finished before it are kept and the others carry an ``"Interrupted: ..."`` error (a warning says so;
        the call returns instead of raising).

    Raises
    ------
    ValueError
        A setting's key is named like a column of the table (``agent``, ``error``, ..., and the default metric's
        columns when ``metric`` is None), which it would replace.
    """
    n_agents = check_count(n_agents, "n_agents")
    seed = check_seed(seed)
    fit_settings = check_many_fits(many_fits_kwargs(DEFAULT_FIT_KWARGS, fit_kwargs))
    if "seed" in fit_settings:
        raise ValueError("fit_kwargs sets seed; pass the seed as seed: each fit's seed is drawn from the study's")
    settings = [{}] if settings is None else [dict(_check_setting(s, i)) for i, s in enumerate(settings)]
    if not settings:
        raise ValueError("settings is empty; give at least one setting dict, or None for a single default one")
    for name, factory in (
        ("agent_factory", agent_factory),
        ("scope_factory", scope_factory),
        ("metric", metric or truth_metrics),
    ):
        if not callable(factory):
            raise TypeError(f"{name} must be callable; got {type(factory).__name__}")
    study = _Study(
        agent_factory,
        scope_factory,
        settings,
        fit_settings,
        metric or truth_metrics,
    )
    _check_setting_names(settings, metric is None)
    agent_seeds = TaskSeed.children(seed, n_agents)
    payloads = [(i, k, agent_seeds[i]) for i in range(n_agents) for k in range(len(settings))]
    results = run_tasks(_fit_task, study, payloads, client, progressbar=progressbar, label="fit")
    rows = [
        {"agent": i, "setting": k, **settings[k], **(result.row or {}), "error": result.error}
        for (i, k, _), result in zip(payloads, results, strict=True)
    ]
    table = pd.DataFrame(rows)
    table.attrs["incomplete"] = any(result.interrupted for result in results)
    return table


#: Columns every study table has, whatever the metric: a setting may not be named like one of them.
TABLE_COLUMNS = ("agent", "setting", "agent_type", "model_type", "divergences", "error")
#: The columns of the default metric (:func:`truth_metrics`) beside those of each decision rule.
RECOVERY_COLUMNS = (
    "g_true",
    "g_true_in_90",
    "U_true",
    "mass_on_truth",
    "rank",
    "bayes_factor",
    "mass_on_constant",
    "mass_on_negation",
    "cosine",
)


def truth_columns() -> tuple[str, ...]:
    """The columns of the default metric: :data:`RECOVERY_COLUMNS` and each registered rule's decision columns."""
    return RECOVERY_COLUMNS + decision_columns()


def _check_setting_names(settings: Sequence[Mapping], default_metric: bool) -> None:
    """A setting's key becomes a column: one named like a column of the table would silently replace it."""
    taken = TABLE_COLUMNS + (truth_columns() if default_metric else ())
    for index, setting in enumerate(settings):
        for name in setting:
            if name in taken:
                raise ValueError(
                    f"settings[{index}] has the key {name!r}, the name of a column of the study's table, which "
                    f"it would replace; rename that setting (taken: {', '.join(taken)})"
                )


def _check_setting(setting, index: int) -> Mapping:
    if not isinstance(setting, Mapping):
        raise TypeError(
            f"settings[{index}] is a {type(setting).__name__}; each setting must be a dict such as "
            "{'lam': 0.5}, whose keys become columns of the table"
        )
    return setting


__all__ = [
    "DEFAULT_FIT_KWARGS",
    "centred_cosine",
    "library_metrics",
    "recovery_study",
    "true_utility_index",
    "truth_columns",
    "truth_metrics",
]
