r"""Posterior predictive checks of the agent model: do data replicated from the posterior look like the data?
(docs/model.md#checking-the-agent-model)

Every model here assumes a kind of demonstrator. For each posterior draw θ_d the check replicates what the
model predicts, ``y_rep,d ~ p(y | θ_d)``, and compares a statistic of the observed and the replicated data:

.. math::

    p = P\big(T(y_\text{rep}, θ) \ge T(y, θ) \mid y\big) \approx \frac{1 + \#\{d : T(y_{\text{rep},d}, θ_d)
        > T(y, θ_d)\} + \tfrac12 \#\{d : T(y_{\text{rep},d}, θ_d) = T(y, θ_d)\}}{1 + D}

(the Monte Carlo p-value, never 0, ties counted half), or twice the smaller tail, capped at 1, where both tails
matter.

* **Action models** (:class:`~utiliscope.models.BoltzmannIRL`, :class:`~utiliscope.models.CombinedIRL`): θ_d is
  a utility U_d (a library entry drawn from the draw's ``P(U | ·)``, or a direction theta) and β_d; its Boltzmann
  policy ``pi_d = softmax(β_d Q_d)`` replicates the demonstrated actions at the visited states,
  ``n_rep[s, :] ~ Multinomial(n_s, pi_d[s, :])``. Statistics: the negative log-likelihood ``−Σ n log pi_d``
  (two-sided: too unlikely, or more deterministic than β allows), the chi-square discrepancy of the action
  frequencies per state ``Σ_s Σ_a (n[s, a] − n_s pi_d(a|s))² / (n_s pi_d(a|s))`` (upper tail) and, where the
  worlds' features put states in the same context (the states whose feature rows are equal, such as the cells
  of one colour), the same discrepancy of the action counts pooled per feature context (upper tail). Where the
  demonstrations have trajectories, whole demonstrations are replicated from the same worlds and start states,
  adding the mean discounted return under U_d (two-sided) and, where the worlds have features, the feature
  counts' squared distance ``Σ_k (F_k − m_k)² / v_k`` from the replications' mean m and variance v (upper
  tail). The per-trajectory log-likelihood goes into the ``log_likelihood`` group, so ``az.loo`` and
  ``az.compare`` read it.
* **The Utiliscope** (and CombinedIRL's g′ term, with a generative likelihood and ``g_weight > 0``): the replicated
  ``g′_rep ~ f(· | g(pi_d, U_d))`` against g′_obs (two-sided: is g′_obs one the posterior could produce?); and,
  given the demonstrations a Dirichlet world model was built from (``alpha = alpha_0 + n``), the demonstrated
  policy's g, ``g(E[pi | WM], U_d)``, against that of demonstrations replicated from pi_d,
  ``g(E[pi | alpha_0 + n_rep], U_d)`` (two-sided).

The statistics are combined into one p-value by the min-p combination (Westfall & Young; the default): the
smallest per-statistic p-value ranked among the smallest p-values of the replications themselves, each
replication's p-values computed against the D replications
(:func:`~utiliscope.diagnostics.predictive.min_p`). The replications carry the statistics' dependence (they are
strongly dependent), so the family-wise level holds without Bonferroni's factor m; ``combination="Bonferroni"``
gives ``min(1, m · min_j p_j)`` instead. Each statistic records ``T(y_rep,e, θ_d)`` for every replication e and
draw d (a D × D table, one matrix product for most statistics) for the min-p reference. Posterior predictive
p-values use the data twice and are themselves conservative (not uniform) under a well-specified model;
:func:`~utiliscope.diagnostics.predictive.calibrated_p_value` turns one into a uniform one against p-values of
data replicated from the prior predictive. The result types and the p-value arithmetic live in
:mod:`utiliscope.diagnostics.predictive`.

References
----------
Gelman, Meng & Stern (1996), Posterior predictive assessment of model fitness via realized discrepancies.
Westfall & Young (1993), Resampling-Based Multiple Testing.
Hjort, Dahl & Steinbakk (2006), Post-processing posterior predictive p values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr

from utiliscope._validation import check_count, check_fraction, check_seed
from utiliscope.demonstrations import Demonstrations, cumulative, inverse_cdf, run_policies
from utiliscope.diagnostics.predictive import DEFAULT_COMBINATION, PredictiveCheck, Statistic, check_combination
from utiliscope.evaluation import feature_expectations
from utiliscope.models.boltzmann import BoltzmannIRL
from utiliscope.models.combined import CombinedIRL
from utiliscope.models.predictive import draw_g_prime, posterior_g
from utiliscope.models.soft_bellman import log_policy, soft_q_values
from utiliscope.models.utiliscope import Utiliscope
from utiliscope.world_model import DirichletWorldModel

#: Posterior draws used by default (evenly thinned within each chain).
DEFAULT_MAX_DRAWS = 1000


def predictive_check(
    model,
    idata: az.InferenceData,
    *,
    seed: int = 0,
    level: float = 0.05,
    demonstrations: Demonstrations | None = None,
    max_draws: int = DEFAULT_MAX_DRAWS,
    combination: str = DEFAULT_COMBINATION,
) -> PredictiveCheck:
    """Posterior predictive check of a fit's agent model (module docstring: the statistics and the correction).

    Parameters
    ----------
    model : Utiliscope, BoltzmannIRL or CombinedIRL
        The model that made ``idata``.
    idata : arviz.InferenceData
        Its fit.
    seed : int
        Seed of the replications.
    level : float
        In (0, 1): ``ok`` is ``p_value >= level``.
    demonstrations : Demonstrations, optional
        The Utiliscope's: the demonstrations its Dirichlet world model was built from, which add the statistic of
        the demonstrated policy's g. Action models check their own demonstrations.
    max_draws : int
        Posterior draws used at most (thinned evenly within each chain); the min-p reference holds D² values
        per statistic. For a Utiliscope with a linear prior and demonstrations those are D² g evaluations, the
        check's slowest part: lower ``max_draws`` there.
    combination : {"min-p", "Bonferroni"}
        How the statistics' p-values are combined into ``p_value`` (module docstring);
        ``PredictiveCheck.combined`` gives the other on the same replications.

    Returns
    -------
    PredictiveCheck
        ``.p_value``, ``.ok``, ``.table``, ``.plot()`` and ``.idata`` (for ``az.plot_ppc``).

    Examples
    --------
    >>> import utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    >>> library = us.priors.UtilityLibrary.from_features(world.features)
    >>> demos = us.agents.Boltzmann(library.rewards[1], beta=5.0).demonstrate(world, 20, 10, seed=0)
    >>> birl = us.models.BoltzmannIRL(world, demos, library, beta=5.0)
    >>> pc = us.diagnostics.predictive_check(birl, birl.fit(draws=200, chains=2), seed=0)
    >>> list(pc.table.index)
    ['log-likelihood', 'action frequencies', 'action frequencies per feature context', 'return', 'feature counts']
    >>> pc.combination
    'min-p'
    """
    if not isinstance(model, BoltzmannIRL | Utiliscope):
        raise TypeError(
            f"model is a {type(model).__name__}; predictive_check checks a Utiliscope, BoltzmannIRL or "
            "CombinedIRL: pass the model that made idata"
        )
    check_seed(seed)
    level = check_fraction(level, "level", "0.05")
    max_draws = check_count(max_draws, "max_draws")
    combination = check_combination(combination)
    if not hasattr(idata, "posterior"):
        raise ValueError("idata has no posterior group; pass the InferenceData that model.fit returned")
    if isinstance(model, Utiliscope) and not isinstance(model, CombinedIRL) and not model.likelihood.generative:
        raise TypeError(
            f"{type(model.likelihood).__name__} is an unnormalised potential, not a distribution of g′: there is "
            "nothing to replicate g′ from; use a generative likelihood shape for predictive checks"
        )
    prior_alpha = None if demonstrations is None else _prior_alpha(model, demonstrations)
    needed = (
        {"U"}
        | ({"g"} if isinstance(model, Utiliscope) else set())
        | ({"pi"} if prior_alpha is not None else set())
    )
    missing = sorted(needed - set(idata.posterior.data_vars))
    if missing:
        raise ValueError(f"idata's posterior lacks {missing}; pass the fit that this {type(model).__name__} made")
    rng = np.random.default_rng(seed)
    posterior = _thinned(idata.posterior, max_draws)
    replications = []
    if isinstance(model, BoltzmannIRL | CombinedIRL):
        replications.append(_action_replication(model, posterior, rng))
    if isinstance(model, Utiliscope):
        replications.append(_g_replication(model, posterior, rng, demonstrations, prior_alpha))
    statistics = tuple(s for replication in replications for s in replication.statistics)
    return PredictiveCheck(statistics, level, _extended(idata, posterior, replications, model), combination)


@dataclass(frozen=True)
class _Replication:
    """What one kind of replication adds: statistics and the data of the InferenceData groups (name → (dims,
    values)); ``log_likelihood`` may be empty."""

    statistics: tuple[Statistic, ...]
    predictive: dict
    observed: dict
    log_likelihood: dict


# ---------------------------------------------------------------------------------------------- action models
def _action_replication(model, posterior: xr.Dataset, rng: np.random.Generator) -> _Replication:
    """Actions at the visited states and, with trajectories, whole demonstrations from each draw's policy."""
    birl = model.boltzmann if isinstance(model, CombinedIRL) else model
    rewards, log_pi = _boltzmann_draws(birl, posterior, rng)
    counts = birl.counts
    visits = counts.sum(axis=1)
    pi = np.exp(log_pi)
    pi /= pi.sum(axis=-1, keepdims=True)
    replicated = rng.multinomial(visits.astype(np.int64)[None, :], pi)
    draws = len(pi)
    # An action the draw's policy cannot take costs log(1 / tiny) ≈ 708 nats rather than ∞, so that every
    # replication's log-likelihood under every draw is one matrix product.
    log_pi_table = np.maximum(log_pi, np.log(np.finfo(float).tiny)).reshape(draws, -1)
    replicated_nll = -replicated.reshape(draws, -1) @ log_pi_table.T
    expected = visits[None, :, None] * pi
    statistics = [
        _statistic("log-likelihood", "two-sided", -log_pi_table @ counts.ravel(), replicated_nll),
        _frequencies("action frequencies", counts, replicated, expected, None),
    ]
    contexts = _contexts(birl)
    if contexts is not None:
        statistics.append(
            _frequencies("action frequencies per feature context", counts, replicated, expected, contexts)
        )
    shape = posterior.sizes["chain"], posterior.sizes["draw"]
    predictive = {"actions": (("state", "action"), replicated.reshape(*shape, *counts.shape))}
    observed = {"actions": (("state", "action"), counts)}
    log_likelihood = {}
    trajectories = birl.demonstrations.trajectories
    if trajectories:
        more, feature_counts, per_trajectory = _trajectory_statistics(birl, trajectories, rewards, pi, log_pi, rng)
        statistics += more
        log_likelihood["actions"] = (("trajectory",), per_trajectory.reshape(*shape, -1))
        if feature_counts is not None:
            predictive["feature_counts"] = (("feature",), feature_counts[1].reshape(*shape, -1))
            observed["feature_counts"] = (("feature",), feature_counts[0])
    return _Replication(tuple(statistics), predictive, observed, log_likelihood)


def _statistic(name: str, tail: str, observed: np.ndarray, cross: np.ndarray) -> Statistic:
    """A statistic that depends on the draw, from its observed values and ``cross[e, d] = T(y_rep,e, θ_d)``."""
    return Statistic(name, tail, observed, np.diagonal(cross).copy(), cross)


def _frequencies(name, counts, replicated, expected, contexts) -> Statistic:
    """The chi-square discrepancy of action counts from each draw's expected counts, per state or pooled per
    context (``contexts[s, c]`` one-hot), over the states or contexts with visits:
    ``Σ_c Σ_a (n[c, a] − e_d[c, a])² / e_d[c, a] = Σ n² / e_d − 2 Σ n + Σ e_d``, for every replication under
    every draw."""
    if contexts is not None:
        counts, replicated, expected = (
            np.einsum("...sa,sc->...ca", x, contexts) for x in (counts, replicated, expected)
        )
    visited = counts.sum(axis=1) > 0
    counts, replicated, expected = counts[visited], replicated[:, visited], expected[:, visited]
    draws = len(expected)
    with np.errstate(divide="ignore", over="ignore"):
        inverse = 1.0 / np.maximum(expected, np.finfo(float).tiny).reshape(draws, -1)
    total, expected_total = counts.sum(), expected.reshape(draws, -1).sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        observed = inverse @ (counts.ravel() ** 2.0) - 2.0 * total + expected_total
        cross = (replicated.reshape(draws, -1) ** 2.0) @ inverse.T - 2.0 * total + expected_total[None, :]
    return _statistic(name, "upper", observed, cross)


def _contexts(birl: BoltzmannIRL) -> np.ndarray | None:
    """``contexts[s, c]``: one-hot of the state's feature context, the states whose features (every action's)
    are the same; None without features, or where every state is its own context (the per-state statistic)."""
    features = _features(birl)
    if features is None:
        return None
    _, context = np.unique(features.reshape(len(features), -1), axis=0, return_inverse=True)
    context = np.ravel(context)
    n_contexts = int(context.max()) + 1
    if n_contexts == len(context):
        return None
    return np.eye(n_contexts)[context]


def _boltzmann_draws(birl: BoltzmannIRL, posterior: xr.Dataset, rng: np.random.Generator):
    """``(r_d[D, S, A], log pi_d[D, S, A])``: each draw's reward (a library entry drawn from its ``U``
    probabilities, or its direction theta) and Boltzmann policy at its β."""
    utility = _flat(posterior["U"])
    n = len(utility)
    beta = _flat(posterior["beta"]) if birl.is_latent_beta else np.full(n, birl.beta)
    if birl.is_library:
        picks = inverse_cdf(cumulative(utility), rng.random(n))
        rewards = birl.rewards[picks]
        if not birl.is_latent_beta:
            return rewards, birl.library_log_policies()[picks]
    else:
        rewards = np.einsum("sak,dk->dsa", birl.features, utility)
    worlds = birl.worlds
    log_pi = np.stack(
        [
            log_policy(soft_q_values(worlds.mean_transitions, worlds.gamma, r, b), b)
            for r, b in zip(rewards, beta, strict=True)
        ]
    )
    return rewards, log_pi


def _trajectory_statistics(birl: BoltzmannIRL, trajectories, rewards, pi, log_pi, rng):
    """Return and feature counts of whole demonstrations replicated from the same worlds and start states, and
    each draw's log-likelihood of each observed trajectory."""
    worlds = birl.worlds
    n, draws = len(trajectories), len(pi)
    lengths = np.array([len(t.states) for t in trajectories])
    horizon = int(lengths.max())
    mask = np.arange(horizon)[None, :] < lengths[:, None]
    states = np.zeros((n, horizon), dtype=np.intp)
    actions = np.zeros((n, horizon), dtype=np.intp)
    for i, trajectory in enumerate(trajectories):
        states[i, : lengths[i]], actions[i, : lengths[i]] = trajectory.states, trajectory.actions
    world = np.array([t.world for t in trajectories])
    rep_states, rep_actions = run_policies(
        worlds,
        pi,
        np.repeat(np.arange(draws), n),
        np.tile(world, draws),
        np.tile(states[:, 0], draws),
        horizon,
        rng,
    )
    rep_states, rep_actions = rep_states.reshape(draws, n, horizon), rep_actions.reshape(draws, n, horizon)
    discount = np.where(mask, worlds.gamma ** np.arange(horizon), 0.0) / n
    # The mean discounted return is linear in the discounted state–action counts w: T(y, θ_d) = w(y) · r_d.
    size = worlds.n_states * worlds.n_actions
    flat = (np.arange(draws)[:, None, None] * size + rep_states * worlds.n_actions + rep_actions).ravel()
    replicated_w = np.bincount(flat, np.broadcast_to(discount, rep_states.shape).ravel(), draws * size)
    observed_w = np.bincount((states * worlds.n_actions + actions).ravel(), discount.ravel(), size)
    reward_table = rewards.reshape(draws, size)
    statistics = [
        _statistic(
            "return", "two-sided", reward_table @ observed_w, replicated_w.reshape(draws, size) @ reward_table.T
        )
    ]
    per_trajectory = np.sum(np.where(mask, log_pi[:, states, actions], 0.0), axis=2)
    features = _features(birl)
    if features is None:
        return statistics, None, per_trajectory
    observed_counts = np.einsum("it,itk->k", mask, features[states, actions])
    replicated_counts = np.einsum("it,ditk->dk", mask, features[rep_states, rep_actions])
    mean, variance = replicated_counts.mean(axis=0), replicated_counts.var(axis=0)
    spread = variance > 1e-12 * max(1.0, float(np.abs(mean).max()))

    def distance(f):
        return np.sum((f - mean)[..., spread] ** 2 / variance[spread], axis=-1)

    statistics.append(
        Statistic(
            "feature counts",
            "upper",
            np.full(draws, distance(observed_counts)),
            distance(replicated_counts),
        )
    )
    return statistics, (observed_counts, replicated_counts), per_trajectory


def _features(birl: BoltzmannIRL) -> np.ndarray | None:
    """``phi[s, a, k]``: the linear prior's features, else the worlds' (None when they have none)."""
    if not birl.is_library:
        return birl.features
    phi = birl.worlds.features
    if phi is None:
        return None
    phi = np.asarray(phi, dtype=float)
    return np.repeat(phi[:, None, :], birl.worlds.n_actions, axis=1) if phi.ndim == 2 else phi


# ---------------------------------------------------------------------------------------------- the Utiliscope
def _prior_alpha(model, demonstrations) -> np.ndarray:
    """The prior pseudo-counts ``alpha_0 = alpha − n`` of a Utiliscope's Dirichlet world model built from
    ``demonstrations``, checked before any work."""
    if not isinstance(demonstrations, Demonstrations):
        raise TypeError(f"demonstrations is a {type(demonstrations).__name__}; pass a us.Demonstrations or None")
    world_model = getattr(model, "world_model", None)
    if isinstance(model, CombinedIRL) or not isinstance(world_model, DirichletWorldModel):
        raise ValueError(
            "demonstrations is only used by a Utiliscope whose Dirichlet world model was built from them "
            "(WorldModel.from_demonstrations(demonstrations)); otherwise pass demonstrations=None (action models "
            "check their own)"
        )
    counts = demonstrations.counts
    if counts.shape != world_model.alpha.shape or np.any(world_model.alpha - counts <= 0):
        raise ValueError(
            "demonstrations does not fit the world model (its counts must be below alpha, with the same shape); "
            "pass the demonstrations the world model was built from (WorldModel.from_demonstrations)"
        )
    return world_model.alpha - counts


def _g_replication(scope: Utiliscope, posterior, rng, demonstrations, prior_alpha) -> _Replication:
    """g′ replicated at each draw's g and, given the world model's demonstrations, the demonstrated policy's g."""
    if not scope.likelihood.generative or getattr(scope, "g_weight", 1.0) == 0.0:
        # A CombinedIRL whose g′ term predicts no g′ (the 2^g potential, or weight 0): its actions are checked.
        return _Replication((), {}, {}, {})
    g, picks = posterior_g(scope, posterior, rng)
    g_rep = draw_g_prime(scope, g, rng)
    observed_g = scope.observed_g_prime
    statistics = [Statistic("g′", "two-sided", np.full(g.size, observed_g), g_rep.ravel())]
    predictive = {"g_prime": ((), g_rep)}
    observed = {"g_prime": ((), np.array(observed_g))}
    if demonstrations is not None:
        statistic, replicated = _demonstrated_g(scope, posterior, picks, demonstrations.counts, prior_alpha, rng)
        statistics.append(statistic)
        predictive["actions"] = (("state", "action"), replicated)
        observed["actions"] = (("state", "action"), demonstrations.counts)
    return _Replication(tuple(statistics), predictive, observed, {})


def _demonstrated_g(scope: Utiliscope, posterior, picks, counts: np.ndarray, prior_alpha: np.ndarray, rng):
    """g of the world model's mean policy under each draw's U, against that of demonstrations replicated from
    the draw's pi (the world model rebuilt from them with the same prior pseudo-counts ``prior_alpha``)."""
    world_model = scope.world_model
    pi = _flat(posterior["pi"])
    pi = pi / pi.sum(axis=-1, keepdims=True)
    replicated = rng.multinomial(counts.sum(axis=1).astype(np.int64)[None, :], pi)
    alpha = prior_alpha[None] + replicated
    observed_mean, replicated_mean = world_model.mean()[None], alpha / alpha.sum(axis=-1, keepdims=True)
    draws = len(pi)
    if scope.is_library:
        picks = picks.ravel()
        observed_g = scope.target.hard_g(observed_mean)[0, picks]
        cross = scope.target.hard_g(replicated_mean)[:, picks]
    else:
        theta = _flat(posterior["U"])
        observed_g = scope.target.hard_g(np.broadcast_to(observed_mean, pi.shape), theta)
        # Every replication's policy under every draw's direction: the replications' feature expectations once,
        # then g of the D² values mu_e · theta_d under theta_d (LinearTarget.hard_g, paired out).
        target = scope.target
        mu = feature_expectations(target.worlds, replicated_mean, target.features)
        values = (mu @ theta.T).ravel()
        cross = target.estimator.linear_bits(values, np.tile(theta, (draws, 1))).reshape(draws, draws)
    shape = posterior.sizes["chain"], posterior.sizes["draw"]
    statistic = _statistic("demonstrated policy's g", "two-sided", observed_g, cross)
    return statistic, replicated.reshape(*shape, *counts.shape)


# ---------------------------------------------------------------------------------------------- plumbing
def _thinned(posterior: xr.Dataset, max_draws: int) -> xr.Dataset:
    """The posterior with every k-th draw of each chain, k the smallest that keeps at most ``max_draws``."""
    step = max(1, math.ceil(posterior.sizes["chain"] * posterior.sizes["draw"] / max_draws))
    return posterior.isel(draw=slice(None, None, step))


def _flat(variable: xr.DataArray) -> np.ndarray:
    """A posterior variable's values with (chain, draw) flattened into the first axis."""
    other = [dim for dim in variable.dims if dim not in ("chain", "draw")]
    values = variable.transpose("chain", "draw", *other).values
    return values.reshape(-1, *values.shape[2:])


def _extended(idata: az.InferenceData, posterior: xr.Dataset, replications, model) -> az.InferenceData:
    """A copy of the fit with the replications' ``posterior_predictive``, ``observed_data`` and
    ``log_likelihood`` groups (observed data it already held are kept)."""
    sample = ("chain", "draw")
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    names = {"state": list(model.worlds.state_names), "action": list(model.worlds.action_names)}
    if model.worlds.features is not None and model.worlds.feature_names is not None:
        names["feature"] = list(model.worlds.feature_names)

    def dataset(variables: dict, with_sample: bool) -> xr.Dataset:
        data = {
            name: ((*sample, *dims) if with_sample else dims, values) for name, (dims, values) in variables.items()
        }
        used = {dim for dims, _ in data.values() for dim in dims}
        return xr.Dataset(
            data, coords={**(coords if with_sample else {}), **{k: v for k, v in names.items() if k in used}}
        )

    merged = {"posterior_predictive": {}, "observed_data": {}, "log_likelihood": {}}
    for replication in replications:
        merged["posterior_predictive"].update(replication.predictive)
        merged["observed_data"].update(replication.observed)
        merged["log_likelihood"].update(replication.log_likelihood)
    observed = dataset(merged["observed_data"], with_sample=False)
    if "observed_data" in idata.groups():
        observed = idata.observed_data.drop_vars(list(observed.data_vars), errors="ignore").merge(
            observed, compat="override", join="outer"
        )
    groups = {"posterior_predictive": dataset(merged["posterior_predictive"], True), "observed_data": observed}
    if merged["log_likelihood"]:
        groups["log_likelihood"] = dataset(merged["log_likelihood"], True)
    out = idata.copy()
    out.extend(az.InferenceData(**groups), join="right")
    return out


__all__ = ["DEFAULT_MAX_DRAWS", "predictive_check"]
