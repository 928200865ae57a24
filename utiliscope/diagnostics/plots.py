"""Plots of a fit: traces and ranks (ArviZ), the utility posterior, the posterior of g, recovery against λ.

Every function returns its matplotlib Figure or Axes and never calls ``plt.show``; the caller shows, saves or
closes it. Trace and rank plots are ArviZ's; the rest are plots ArviZ does not have (a bar chart of a discrete
posterior with the truth marked, a histogram of g with the likelihood shape overlaid, a study's metrics
against the simplicity weight λ).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from utiliscope.diagnostics.convergence import (
    ConvergenceReport,
    constant_elements,
    element_draws,
    element_labels,
    element_statistics,
)
from utiliscope.diagnostics.recovery import (
    INTERVAL,
    Truth,
    credible_interval,
    utility_posterior_mass,
    utility_prior_of,
)
from utiliscope.likelihoods import Likelihood, likelihood_from_dict

TRUTH_COLOUR = "C3"


def worst_elements(
    idata: az.InferenceData, var_names: Sequence[str] | None = None, convergence: ConvergenceReport | None = None
) -> xr.Dataset:
    """For each posterior variable, the draws of its non-constant element with the worst R-hat.

    Variables whose elements are all constant are left out. The result has one ``(chain, draw)`` variable per
    posterior variable, named by its element (``"g[+a-b]"``), ready for ``az.plot_trace`` or ``az.plot_rank``.
    A ``convergence`` report of the same fit supplies the worst elements (its ``r_hat_at``) without computing
    R-hat again.
    """
    posterior = idata.posterior
    if var_names is None:
        var_names = list(posterior.data_vars)
    chosen = {}
    for name in [var_names] if isinstance(var_names, str) else var_names:
        draws = element_draws(posterior[name])
        labels = element_labels(posterior[name].rename(name))
        varying = np.flatnonzero(~constant_elements(draws))
        if varying.size:
            pick = _worst(draws, varying, labels, convergence, name)
            chosen[labels[pick]] = (("chain", "draw"), draws[:, :, pick])
    if not chosen:
        raise ValueError(
            "every element of the chosen posterior variables is constant across draws: nothing to plot"
        )
    return xr.Dataset(chosen, coords={"chain": posterior.chain, "draw": posterior.draw})


def _worst(draws: np.ndarray, varying: np.ndarray, labels: list[str], convergence, name: str) -> int:
    """Index of the element with the worst R-hat among ``varying`` (the first of them if R-hat is undefined)."""
    if convergence is not None and name in convergence.table.index and convergence.table.loc[name, "r_hat_at"]:
        return labels.index(convergence.table.loc[name, "r_hat_at"])
    if draws.shape[0] < 2:
        return int(varying[0])
    r_hat = element_statistics(draws[:, :, varying], ("r_hat",))["r_hat"]
    return int(varying[0] if np.isnan(r_hat).all() else varying[int(np.nanargmax(r_hat))])


def plot_trace(
    idata: az.InferenceData,
    var_names: Sequence[str] | None = None,
    *,
    worst_only: bool = True,
    convergence: ConvergenceReport | None = None,
) -> Figure:
    """``az.plot_trace`` of the fit; by default only each variable's element with the worst R-hat.

    Parameters
    ----------
    idata : arviz.InferenceData
    var_names : sequence of str, optional
        Posterior variables; all by default.
    worst_only : bool
        Plot one element per variable (:func:`worst_elements`) rather than every element overlaid.
    convergence : ConvergenceReport, optional
        :func:`~utiliscope.diagnostics.check` of the same fit, to reuse its worst elements.
    """
    data = worst_elements(idata, var_names, convergence) if worst_only else idata
    with _quiet_arviz():
        axes = az.plot_trace(data, var_names=None if worst_only else var_names, compact=not worst_only)
    return _figure_of(axes)


def plot_rank(
    idata: az.InferenceData,
    var_names: Sequence[str] | None = None,
    *,
    convergence: ConvergenceReport | None = None,
) -> Figure:
    """``az.plot_rank`` of each variable's element with the worst R-hat (:func:`worst_elements`).

    Rank plots show how each chain's draws rank among all chains: uniform bars when the chains mix, bars
    stacked at one end when a chain is stuck or sits at another mode.
    """
    data = worst_elements(idata, var_names, convergence)
    with _quiet_arviz():
        return _figure_of(az.plot_rank(data))


def plot_utility_posterior(
    idata: az.InferenceData,
    truth: Truth | None = None,
    scope=None,
    *,
    top: int = 15,
    ax: Axes | None = None,
) -> Axes:
    """The posterior over U as a bar chart, with the true utility marked.

    Library priors: the ``top`` utilities by posterior mass (and U* after them if it is not among them), with
    the prior mass as black ticks. Linear priors: the posterior mean of each component of theta with its 90%
    interval, and θ* (projected, unit norm) as dots.

    Parameters
    ----------
    idata : arviz.InferenceData
    truth : Truth, optional
    scope : Utiliscope, optional
        Supplies the prior; otherwise it is read from ``idata.attrs["utility_prior"]`` when there.
    top : int
        Library priors: bars shown besides U*.
    ax : matplotlib.axes.Axes, optional
    """
    ax = _axes(ax)
    prior = _prior_or_none(idata, scope)
    if "utility" in idata.posterior["U"].dims:
        _library_bars(ax, idata, truth, prior, top)
    else:
        _linear_bars(ax, idata, truth, prior)
    return ax


def _library_bars(ax: Axes, idata, truth: Truth | None, prior, top: int) -> None:
    names = [str(n) for n in idata.posterior["utility"].values]
    mass = utility_posterior_mass(idata)
    shown = list(np.argsort(-mass, kind="stable")[:top])
    star = names.index(truth.utility) if truth is not None else None
    if star is not None and star not in shown:
        shown.append(star)
    x = np.arange(len(shown))
    ax.bar(x, mass[shown], color=[TRUTH_COLOUR if i == star else "C0" for i in shown])
    handles = [Patch(color="C0", label="posterior P(U | data)")]
    if star is not None:
        rank = int(1 + np.sum(mass > mass[star]))
        handles.append(Patch(color=TRUTH_COLOUR, label=f"U* = {truth.utility} (rank {rank})"))
    if prior is not None:
        ax.plot(x, np.asarray(prior.prior)[shown], "_", color="k", markersize=14)
        handles.append(Line2D([], [], marker="_", linestyle="", color="k", markersize=14, label="prior P(U)"))
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xticks(x, [names[i] for i in shown], rotation=60, ha="right", fontsize="small")
    ax.set_ylabel("probability")
    ax.set_title("Posterior over the utility library")


def _linear_bars(ax: Axes, idata, truth: Truth | None, prior) -> None:
    theta = idata.posterior["U"].transpose("chain", "draw", "feature")
    names = [str(n) for n in theta["feature"].values]
    flat = theta.values.reshape(-1, len(names))
    bounds = np.array([credible_interval(column, INTERVAL) for column in flat.T])
    mean = flat.mean(axis=0)
    x = np.arange(len(names))
    error = np.abs(bounds.T - mean)
    ax.bar(x, mean, yerr=error, capsize=3, color="C0", label=f"posterior mean of theta, {INTERVAL:.0%} interval")
    if truth is not None:
        star = np.asarray(truth.utility, dtype=float)
        star = prior.project(star) if prior is not None else star / np.linalg.norm(star)
        ax.plot(x, star, "o", color=TRUTH_COLOUR, label="theta*")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.legend(loc="best", fontsize="small")
    ax.set_xticks(x, names)
    ax.set_ylabel("component of the unit direction theta")
    ax.set_title("Posterior of the utility direction")


def plot_g_posterior(
    idata: az.InferenceData,
    truth: Truth | None = None,
    *,
    likelihood: Likelihood | None = None,
    bins: int = 40,
    ax: Axes | None = None,
) -> Axes:
    """Histogram of the posterior of g (bits) with g* and the likelihood shape P(g′_obs | g) overlaid.

    For a library prior, g is g of the posterior's pi under U* (under the utility with the most posterior mass
    when no truth is given). The likelihood, rebuilt from ``idata.attrs["likelihood"]`` unless given, is drawn
    on a second axis relative to its largest value on the plotted range. Draws at g = +inf are counted in the
    title, not drawn.

    Parameters
    ----------
    idata : arviz.InferenceData
    truth : Truth, optional
    likelihood : Likelihood, optional
    bins : int
    ax : matplotlib.axes.Axes, optional
    """
    ax = _axes(ax)
    draws, label = _g_draws(idata, truth)
    finite = draws[np.isfinite(draws)]
    ax.hist(finite, bins=bins, density=True, color="C0", alpha=0.6, label=f"posterior of {label}")
    anchors = list(finite)
    if truth is not None and np.isfinite(truth.g):
        ax.axvline(truth.g, color=TRUTH_COLOUR, linewidth=2, label=f"g* = {truth.g:.3g} bits")
        anchors.append(truth.g)
    likelihood = likelihood if likelihood is not None else _likelihood_or_none(idata)
    handles = []
    if likelihood is not None:
        handles = _overlay_likelihood(ax, likelihood, anchors)
    infinite = int(np.isinf(draws).sum())
    suffix = f" ({infinite} draws at +inf not shown)" if infinite else ""
    ax.set_title(f"Posterior of g{suffix}")
    ax.set_xlabel("g (bits)")
    ax.set_ylabel("posterior density")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, loc="best", fontsize="small")
    return ax


def _g_draws(idata, truth: Truth | None) -> tuple[np.ndarray, str]:
    g = idata.posterior["g"]
    if "utility" in g.dims:
        if truth is not None:
            name = truth.utility
        else:
            name = str(g["utility"].values[int(np.argmax(utility_posterior_mass(idata)))])
        return g.sel(utility=name).values.ravel(), f"g under {name}"
    return g.values.ravel(), "g"


def _overlay_likelihood(ax: Axes, likelihood: Likelihood, anchors: list[float]) -> list:
    """Draw P(g′_obs | g) relative to its maximum over the plotted range on a twin axis; return its handles."""
    if likelihood.observed is not None:
        ax.axvline(likelihood.observed, color="0.4", linestyle="--", label=f"g′_obs = {likelihood.observed:g}")
        anchors = [*anchors, likelihood.observed]
    low, high = (min(anchors), max(anchors)) if anchors else (0.0, 20.0)
    margin = max(1.0, 0.1 * (high - low))
    grid = np.linspace(max(0.0, low - margin), high + margin, 400)
    log_like = np.asarray(likelihood.logp(grid), dtype=float)
    twin = ax.twinx()
    name = type(likelihood).__name__
    lines = twin.plot(grid, np.exp(log_like - log_like.max()), color="k", label=f"{name} likelihood")
    twin.set_ylim(0.0, 1.05)
    twin.set_ylabel("P(g′_obs | g), relative to its peak")
    return lines


def plot_recovery_vs_lambda(
    table: pd.DataFrame,
    metrics: Sequence[str] = ("mass_on_truth", "rank"),
    *,
    by: str | None = None,
    lambda_column: str = "lambda",
) -> Figure:
    """Recovery metrics against the simplicity weight λ, from a tidy table of fits (one row per fit).

    Each metric gets a panel with every fit as a faint dot and, per λ, the mean ± one standard error
    (``std / sqrt(n)``) as a line; ``by`` names a column (e.g. the likelihood shape) that splits the lines.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``lambda_column``, each of ``metrics``, and ``by`` if given.
    metrics : sequence of str
    by : str, optional
    lambda_column : str
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas.DataFrame with one row per fit; got {type(table).__name__}")
    needed = [lambda_column, *metrics, *([by] if by is not None else [])]
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise ValueError(f"table has no column {missing[0]!r}; its columns are {list(table.columns)}")
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    groups = table.groupby(by, sort=True) if by is not None else [(None, table)]
    for colour, (key, group) in enumerate(groups):
        for ax, metric in zip(axes[0], metrics, strict=True):
            _metric_line(ax, group, metric, lambda_column, f"C{colour}", None if by is None else f"{by} = {key}")
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.set_xlabel("simplicity weight λ")
        ax.set_ylabel(metric)
        if by is not None:
            ax.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _metric_line(ax: Axes, group: pd.DataFrame, metric: str, lambda_column: str, colour: str, label) -> None:
    ax.plot(group[lambda_column], group[metric], ".", color=colour, alpha=0.3)
    stats = group.groupby(lambda_column)[metric].agg(["mean", "std", "count"])
    error = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0).to_numpy(dtype=float)
    x, mean = stats.index.to_numpy(dtype=float), stats["mean"].to_numpy(dtype=float)
    ax.errorbar(x, mean, yerr=error, color=colour, marker="o", capsize=3, label=label)


@contextlib.contextmanager
def _quiet_arviz():
    """Silence the deprecation warning ArviZ 0.23's plots raise under matplotlib 3.11 (one per artist).

    It concerns ArviZ's own call of ``normalize_kwargs``, which the user can do nothing about; other warnings
    pass through.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*alias_mapping.*", category=MatplotlibDeprecationWarning)
        yield


def _axes(ax: Axes | None) -> Axes:
    return plt.subplots(figsize=(7, 4))[1] if ax is None else ax


def _figure_of(axes) -> Figure:
    figure = np.ravel(axes)[0].figure
    figure.tight_layout()
    return figure


def _prior_or_none(idata, scope):
    if scope is None and "utility_prior" not in idata.attrs:
        return None
    return utility_prior_of(idata, scope)


def _likelihood_or_none(idata) -> Likelihood | None:
    if "likelihood" not in idata.attrs:
        return None
    return likelihood_from_dict(json.loads(idata.attrs["likelihood"]))


__all__ = [
    "plot_g_posterior",
    "plot_rank",
    "plot_recovery_vs_lambda",
    "plot_trace",
    "plot_utility_posterior",
    "worst_elements",
]
