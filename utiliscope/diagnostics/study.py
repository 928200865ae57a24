"""Recovery studies: many synthetic agents, one fit per agent and setting, one tidy table, run on Dask.

A study compares settings (likelihood shapes, λ, g methods, amounts of data) by how well each recovers the
known utility U* and intelligence g* of synthetic agents. Seeds: agent i gets the i-th child of
``SeedSequence(seed)``, split into an agent seed, a data seed and a fit seed that are the *same for every
setting*, so that every setting sees the same agent and the same demonstrations (a paired comparison) and the
table does not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from utiliscope._validation import check_count
from utiliscope.diagnostics.parallel import TaskSeed, run_tasks

#: Fit settings used unless ``fit_kwargs`` overrides them: small, one core per fit (Dask runs fits in parallel).
DEFAULT_FIT_KWARGS = {
    "draws": 500,
    "tune": 500,
    "chains": 2,
    "cores": 1,
    "progressbar": False,
    "compute_convergence_checks": False,
}
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
    """The default per-fit metric: recovery of the agent's U* and g*.

    Library priors: ``mass_on_truth`` (posterior probability of the library entry equal to U* up to a positive
    affine map; NaN if U* is not in the library), ``rank`` (1 = the most probable entry), ``bayes_factor``
    (posterior over prior of that entry), and ``g_true_in_90`` (whether g* lies in the central 90% posterior
    interval of g under that entry). Linear priors: ``cosine`` between the posterior mean reward and U*
    (both centred), and ``g_true_in_90`` for the scalar g.

    ``g_true`` is ``agent.true_intelligence`` with the scope's policy prior and g method (and its seed and
    sample size for sampled methods).
    """
    g_true = agent.true_intelligence(worlds, scope.policy_prior, scope.g_method, scope.n_samples, scope.seed)
    posterior = idata.posterior
    if not scope.is_library:
        mean_theta = posterior["U"].mean(dim=("chain", "draw")).values
        mean_reward, true_reward = _direction(scope.features @ mean_theta), _direction(agent.reward_table(worlds))
        cosine = np.nan if mean_reward is None or true_reward is None else float(mean_reward @ true_reward)
        return {"g_true": g_true, "cosine": cosine, "g_true_in_90": _in_interval(posterior["g"].values, g_true)}
    probabilities = scope.utility_posterior(idata).values
    index = true_utility_index(scope.rewards, agent.reward_table(worlds))
    if index is None:
        return {"g_true": g_true, "mass_on_truth": np.nan, "rank": np.nan, "bayes_factor": np.nan}
    g_draws = posterior["g"].isel(utility=index).values if "utility" in posterior["g"].dims else np.nan
    return {
        "g_true": g_true,
        "U_true": scope.utility_prior.names[index],
        "mass_on_truth": float(probabilities[index]),
        "rank": int(1 + np.count_nonzero(probabilities > probabilities[index])),
        "bayes_factor": float(probabilities[index] / scope.utility_prior.prior[index]),
        "g_true_in_90": _in_interval(g_draws, g_true),
    }


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
    row = {"agent_type": type(agent).__name__}
    if "sample_stats" in idata and "diverging" in idata.sample_stats:
        row["divergences"] = int(idata.sample_stats["diverging"].sum())
    return {**row, **study.metric(idata, scope, agent, worlds)}


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
        ``scope_factory(agent, worlds, setting, rng) -> Utiliscope``: typically demonstrations
        ``agent.demonstrate(worlds, ..., seed=rng)``, a world model and the setting's prior and likelihood.
        ``rng`` is the same for every setting of one agent, so all settings see the same demonstrations.
    n_agents : int
        Number of agents (≥ 1).
    settings : sequence of dict, optional
        One dict per setting, e.g. ``[{"likelihood": "normal", "lam": 0.5}, ...]``; its keys become columns.
        Default: one empty setting.
    seed : int
        Root of the per-agent seeds; the same seed gives the same table with any client.
    client : None, "serial", str or distributed.Client
        Where the fits run (:mod:`utiliscope.diagnostics.parallel`).
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
        setting's keys, ``agent_type``, ``divergences`` (MCMC fits), the metric's columns, and ``error`` (None,
        or the message of a failed fit: its other columns are missing; a warning also lists the failures).
    """
    n_agents = check_count(n_agents, "n_agents")
    settings = [{}] if settings is None else [dict(_check_setting(s, i)) for i, s in enumerate(settings)]
    if not settings:
        raise ValueError("settings is empty; give at least one setting dict, or None for a single default one")
    for name, factory in (("agent_factory", agent_factory), ("scope_factory", scope_factory)):
        if not callable(factory):
            raise TypeError(f"{name} must be callable; got {type(factory).__name__}")
    study = _Study(
        agent_factory,
        scope_factory,
        settings,
        {**DEFAULT_FIT_KWARGS, **(fit_kwargs or {})},
        metric or truth_metrics,
    )
    agent_seeds = TaskSeed.children(seed, n_agents)
    payloads = [(i, k, agent_seeds[i]) for i in range(n_agents) for k in range(len(settings))]
    results = run_tasks(_fit_task, study, payloads, client, progressbar=progressbar, label="fit")
    rows = [
        {"agent": i, "setting": k, **settings[k], **(result.row or {}), "error": result.error}
        for (i, k, _), result in zip(payloads, results, strict=True)
    ]
    return pd.DataFrame(rows)


def _check_setting(setting, index: int) -> Mapping:
    if not isinstance(setting, Mapping):
        raise TypeError(
            f"settings[{index}] is a {type(setting).__name__}; each setting must be a dict such as "
            "{'lam': 0.5}, whose keys become columns of the table"
        )
    return setting


__all__ = ["DEFAULT_FIT_KWARGS", "recovery_study", "true_utility_index", "truth_metrics"]
