r"""Convergence report of a fit: can its draws be trusted at a glance?

:func:`check` judges a fit's ``InferenceData`` on the criteria of Vehtari et al. (2021) and Betancourt (2017),
each configurable by keyword:

==========================  ======================================================  =============
criterion                   statistic (ArviZ)                                       default
==========================  ======================================================  =============
rank-normalised split R-hat ``az.rhat(method="rank")``, worst element                ≤ 1.01
bulk ESS                    ``az.ess(method="bulk")``, least element                 ≥ 100 × chains
tail ESS                    ``az.ess(method="tail")``, least element                 ≥ 100 × chains
divergences                 ``sample_stats.diverging``, summed over chains and draws = 0
E-BFMI                      ``az.bfmi``, each chain                                  ≥ 0.3
tree depth                  draws that hit NUTS's depth limit                        = 0
==========================  ======================================================  =============

The Monte Carlo standard error of the mean (``az.mcse(method="mean")``) is reported but not judged: what is
small enough depends on the question asked of the fit.

A fit by i.i.d. draws from the world model (``fit``'s ``iid`` engine, group ``utility_estimate``) is judged on its
importance weights instead: Pareto k̂ ≤ 0.7 (``az.psislw``; Vehtari et al. 2024), importance ESS ≥ 400 and the
largest MCSE of P(U) at most the fit's target. Its posterior draws are resampled from the weighted draws, so their
R-hat and ESS describe the resampling, not the estimate: they are shown in the table and not judged. A fit by
tempered SMC (``smc``: one independent run per chain) is judged on R-hat and ESS like MCMC, and its MCSE of P(U),
from the spread of the runs, is reported.

Written here rather than taken from ArviZ: ``az.summary`` gives one row per *element* and judges nothing; the
report aggregates each variable over its elements (worst R-hat, least ESS, largest MCSE, and where each happens),
skips elements that are constant across every draw (g under the constant utility is 0 in every draw: its R-hat
is NaN and its ESS meaningless, which says nothing about the sampler), reads the tree-depth flag under PyMC's
name (``reached_max_treedepth``) or nutpie's (``maxdepth_reached``), and turns each failure into a sentence
with the value, the threshold and a remedy.

References
----------
Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021). Rank-normalization, folding, and localization: an improved
R-hat for assessing convergence of MCMC. Bayesian Analysis 16(2).

Betancourt (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.

Vehtari, Simpson, Gelman, Yao, Gabry (2024). Pareto smoothed importance sampling. JMLR 25(72).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from utiliscope._pareto import k_text
from utiliscope._validation import check_count, check_positive

#: An element whose draws span at most this fraction of its largest absolute value is constant.
CONSTANT_RTOL = 1e-12
#: Sampler-statistic names of the "hit the tree-depth limit" flag: PyMC's, then nutpie's.
TREE_DEPTH_FLAGS = ("reached_max_treedepth", "maxdepth_reached")
NO_SAMPLER_STATS = "no NUTS statistics (draws by the exact or smc engine): judged on R-hat and ESS only"
WEIGHTED_DRAWS = (
    "i.i.d. draws weighted by the evidence (engine 'iid'): judged on Pareto k̂, the importance ESS and the MCSE of "
    "P(U); the table's R-hat and ESS describe the resampled posterior draws and are not judged"
)

REMEDIES = {
    "chains": "run at least 2 chains (fit(chains=4)) so that R-hat can compare them",
    "r_hat": (
        "the chains disagree: run longer (more tune and draws); if the trace plot shows chains at different "
        "modes, the posterior is multimodal: start the chains closer or reparametrise"
    ),
    "ess_bulk": (
        "too few effective draws: raise draws (and tune); strong autocorrelation points to a reparametrisation"
    ),
    "ess_tail": (
        "the tails are explored poorly: raise draws and tune, or target_accept (fit(target_accept=0.95))"
    ),
    "divergences": (
        "raise target_accept (fit(target_accept=0.99)); divergences that persist mark a region the sampler "
        "cannot enter (a funnel, a hard boundary): reparametrise it"
    ),
    "bfmi": (
        "momentum resampling explores the energy poorly: tune longer (fit(tune=2000)) or reparametrise "
        "heavy tails and funnels"
    ),
    "pareto_k": (
        "the world model is a poor proposal for this evidence (g′ points where its draws rarely go): fit with "
        "sampler='smc' (sampler='auto' switches by itself), or give the world model more demonstrations"
    ),
    "importance_ess": "too few effective draws: raise the budget (fit(max_draws=...)) or fit with sampler='smc'",
    "mcse": "raise the budget (fit(max_draws=...)) so that the run can reach its target_mcse, or fit with 'smc'",
    "tree_depth": (
        "NUTS hit its tree-depth limit: raise it (PyMC: fit(..., nuts={'max_treedepth': 12}); nutpie: "
        "maxdepth) or reparametrise to reduce correlations between the variables"
    ),
}


def format_r_hat(value: float, missing: str = "NaN") -> str:
    """R-hat with four decimals (at four significant digits 1.0104 would read 1.01 beside a "≤ 1.01" threshold);
    ``missing`` for NaN (constant variables), as pandas writes other missing cells."""
    return missing if np.isnan(value) else f"{value:.4f}"


@dataclass(frozen=True)
class Failure:
    """One failed criterion: which statistic, where, its value, the threshold it broke and a remedy."""

    criterion: str
    variable: str
    value: float
    threshold: str
    where: str = ""
    remedy: str = ""

    @property
    def message(self) -> str:
        """The failure as one line, e.g. ``R-hat of x = 1.52 at x[a]; want ≤ 1.01. Remedy: ...``."""
        where = f" {self.where}" if self.where else ""
        value = format_r_hat(self.value) if self.criterion == "R-hat" else f"{self.value:.4g}"
        return (
            f"{self.criterion} of {self.variable} = {value}{where}; want {self.threshold}. Remedy: {self.remedy}"
        )


@dataclass(frozen=True)
class ConvergenceReport:
    """The result of :func:`check`.

    Attributes
    ----------
    ok : bool
        True when no criterion failed.
    table : pandas.DataFrame
        One row per posterior variable (index ``variable``): ``elements``, ``constant`` (elements skipped as
        constant), ``r_hat`` (worst) and ``r_hat_at``, ``ess_bulk`` / ``ess_tail`` (least, summed over chains)
        and where, ``mcse_mean`` (largest) and where, and ``status`` ("ok", "failed" or "constant").
    failures : list of Failure
        Each failed criterion.
    sampler : dict
        ``divergences``, ``min_bfmi`` and ``tree_depth_hits`` (NaN when the statistic is absent).
    notes : list of str
        What was skipped and why (constant elements, missing sampler statistics).
    """

    ok: bool
    table: pd.DataFrame
    failures: list[Failure] = field(default_factory=list)
    sampler: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """Flat numbers for a table of many fits: ok, worst R-hat, least ESS, largest MCSE, sampler counts."""
        table = self.table
        return {
            "ok": self.ok,
            "n_failures": len(self.failures),
            "max_r_hat": _nan_reduce(np.max, table["r_hat"]),
            "min_ess_bulk": _nan_reduce(np.min, table["ess_bulk"]),
            "min_ess_tail": _nan_reduce(np.min, table["ess_tail"]),
            "max_mcse_mean": _nan_reduce(np.max, table["mcse_mean"]),
            **{key: float(value) for key, value in self.sampler.items()},
        }

    def __str__(self) -> str:
        if self.ok:
            lines = ["Convergence check: OK"]
        else:
            lines = [f"Convergence check: FAILED ({len(self.failures)} problem(s))"]
            lines += [f"  ✗ {failure.message}" for failure in self.failures]
        lines += [f"  note: {note}" for note in self.notes]
        if "pareto_k" in self.sampler:
            lines.append(
                f"  importance weights: Pareto k̂ = {k_text(self.sampler['pareto_k'])}, ESS = "
                f"{self.sampler['importance_ess']:.0f}, largest MCSE of the estimate = "
                f"{self.sampler['max_mcse_U']:.2g}"
            )
        shown = self.table.to_string(formatters={"r_hat": format_r_hat}, float_format=lambda x: f"{x:.4g}")
        return "\n".join([*lines, "", shown])

    def _repr_html_(self) -> str:
        return f"<pre>{self.__str__()}</pre>"


def check(
    idata: az.InferenceData,
    var_names: Sequence[str] | None = None,
    *,
    max_r_hat: float = 1.01,
    min_ess_bulk_per_chain: float = 100.0,
    min_ess_tail_per_chain: float = 100.0,
    max_divergences: int = 0,
    min_bfmi: float = 0.3,
    max_tree_depth_hits: int = 0,
    max_pareto_k: float = 0.7,
    min_importance_ess: float = 400.0,
    max_mcse: float | None = None,
    describe: bool = True,
) -> ConvergenceReport:
    """Judge a fit's convergence; see the module docstring for the criteria.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with a ``posterior`` group (dims ``chain``, ``draw``, ...); ``sample_stats`` is optional (exact
        i.i.d. draws have none, and are then judged on R-hat and ESS only).
    var_names : sequence of str, optional
        Posterior variables to judge; all of them by default.
    max_r_hat : float
        Largest acceptable rank-normalised split R-hat.
    min_ess_bulk_per_chain, min_ess_tail_per_chain : float
        Smallest acceptable bulk and tail ESS *per chain*; the threshold on the total is this times the chains.
    max_divergences : int
        Most divergent transitions allowed, over all chains.
    min_bfmi : float
        Smallest acceptable E-BFMI of any chain.
    max_tree_depth_hits : int
        Most draws allowed to hit the tree-depth limit, over all chains.
    max_pareto_k, min_importance_ess : float
        Largest acceptable Pareto k̂ and smallest importance ESS of an ``iid`` fit's weights.
    max_mcse : float, optional
        Largest acceptable MCSE of any P(U) of an ``iid`` fit; by default the fit's own ``target_mcse``.
    describe : bool
        Compute the table of an ``iid`` fit, whose statistics are shown but not judged; ``False`` leaves it
        empty (``fit``'s own check, where it would cost most of the fit's time).

    Returns
    -------
    ConvergenceReport
        ``.ok``, ``.table`` (one row per variable) and ``str(report)`` listing each failure with a remedy.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> draws = np.random.default_rng(0).normal(size=(4, 500))
    >>> check(az.from_dict(posterior={"x": draws})).ok
    True
    >>> stuck = draws.copy(); stuck[0] = 3.0
    >>> check(az.from_dict(posterior={"x": stuck})).ok
    False
    """
    posterior = _posterior(idata)
    names = _var_names(posterior, var_names)
    thresholds = {
        "r_hat": check_positive(max_r_hat, "max_r_hat"),
        "ess_bulk": check_positive(min_ess_bulk_per_chain, "min_ess_bulk_per_chain", allow_zero=True),
        "ess_tail": check_positive(min_ess_tail_per_chain, "min_ess_tail_per_chain", allow_zero=True),
    }
    # The engine records what judges it: importance weights (their Pareto k̂ and ESS) or chains.
    weighted = "utility_estimate" in idata.groups() and "pareto_k" in idata.utility_estimate.attrs
    if weighted and not describe:
        table, failures, notes = pd.DataFrame(index=pd.Index([], name="variable")), [], []
    else:
        table, failures, notes = _posterior_table(posterior, names, thresholds)
    sampler, sampler_failures, sampler_notes = _sampler_checks(
        idata,
        max_divergences=check_count(max_divergences, "max_divergences", minimum=0),
        min_bfmi=check_positive(min_bfmi, "min_bfmi", allow_zero=True),
        max_tree_depth_hits=check_count(max_tree_depth_hits, "max_tree_depth_hits", minimum=0),
    )
    if "utility_estimate" in idata.groups():
        estimate, estimate_failures, estimate_notes = _estimate_checks(
            idata.utility_estimate,
            max_pareto_k=check_positive(max_pareto_k, "max_pareto_k"),
            min_importance_ess=check_positive(min_importance_ess, "min_importance_ess", allow_zero=True),
            max_mcse=None if max_mcse is None else check_positive(max_mcse, "max_mcse"),
        )
        if weighted:
            failures, sampler_notes = [], [WEIGHTED_DRAWS]
            if len(table):
                table["status"] = ["constant" if status == "constant" else "ok" for status in table["status"]]
        sampler.update(estimate)
        sampler_failures += estimate_failures
        sampler_notes += estimate_notes
    return ConvergenceReport(
        ok=not (failures or sampler_failures),
        table=table,
        failures=failures + sampler_failures,
        sampler=sampler,
        notes=notes + sampler_notes,
    )


def _estimate_checks(
    estimate: xr.Dataset, *, max_pareto_k: float, min_importance_ess: float, max_mcse: float | None
) -> tuple[dict, list[Failure], list[str]]:
    """Pareto k̂, importance ESS and the largest MCSE of P(U) of an ``iid`` fit; the MCSE of an ``smc`` fit."""
    mcse = estimate["mcse"]
    worst = int(np.nanargmax(mcse.values)) if np.isfinite(mcse.values).any() else 0
    largest = float(mcse.values[worst])
    where = f"at U[{mcse[mcse.dims[0]].values[worst]}]"
    numbers = {"max_mcse_U": largest}
    if "pareto_k" not in estimate.attrs:
        return numbers, [], [f"MCSE of P(U) from the spread of {estimate.attrs.get('engine')} runs across chains"]
    k, ess = float(estimate.attrs["pareto_k"]), float(estimate.attrs["ess"])
    # A linear prior's iid run targets the ESS alone (target_mcse NaN): its MCSE is reported, not judged.
    target = float(estimate.attrs["target_mcse"]) if max_mcse is None else max_mcse
    numbers.update(pareto_k=k, importance_ess=ess)
    failures, notes = [], []
    if np.isnan(k):
        notes.append(
            "Pareto k̂ not applicable (the weights are all but equal, or the largest are tied: no tail to fit); "
            "judged on ESS and MCSE"
        )
    elif k > max_pareto_k:
        failures.append(
            Failure("Pareto k̂", "utility_estimate", k, f"≤ {max_pareto_k:g}", "", REMEDIES["pareto_k"])
        )
    if not ess >= min_importance_ess:
        failures.append(
            Failure(
                "importance ESS",
                "utility_estimate",
                ess,
                f"≥ {min_importance_ess:g}",
                "",
                REMEDIES["importance_ess"],
            )
        )
    if not np.isnan(target) and not largest <= target:
        failures.append(
            Failure("MCSE of P(U)", "utility_estimate", largest, f"≤ {target:g}", where, REMEDIES["mcse"])
        )
    return numbers, failures, []


def _posterior_table(
    posterior: xr.Dataset, names: list[str], thresholds: dict
) -> tuple[pd.DataFrame, list[Failure], list[str]]:
    """The table (one row per variable), the R-hat and ESS failures, and the notes on skipped elements."""
    n_chains = posterior.sizes["chain"]
    failures: list[Failure] = []
    notes: list[str] = []
    if n_chains < 2:
        failures.append(Failure("chains", "posterior", n_chains, "≥ 2", remedy=REMEDIES["chains"]))
    rows = []
    for name in names:
        row, notes_of_variable = _variable_row(posterior[name], name)
        rows.append(row)
        notes += notes_of_variable
        if n_chains >= 2:
            failures += _variable_failures(row, name, thresholds, n_chains)
    table = pd.DataFrame(rows).set_index("variable")
    failed = {failure.variable for failure in failures}
    table["status"] = [
        "constant" if row.constant == row.elements else ("failed" if failed & {name, "posterior"} else "ok")
        for name, row in table.iterrows()
    ]
    return table, failures, notes


def _posterior(idata) -> xr.Dataset:
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"idata must be an arviz.InferenceData (the result of fit); got {type(idata).__name__}")
    if "posterior" not in idata.groups():
        raise ValueError("idata has no posterior group; pass the InferenceData returned by fit()")
    return idata.posterior


def _var_names(posterior: xr.Dataset, var_names) -> list[str]:
    if var_names is None:
        names = list(posterior.data_vars)
    else:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
    if not names:
        raise ValueError("no posterior variables to judge: idata.posterior is empty or var_names is []")
    for i, name in enumerate(names):
        if name not in posterior.data_vars:
            raise ValueError(
                f"var_names[{i}] is {name!r}, not a posterior variable; choose from {list(posterior.data_vars)}"
            )
    return names


def element_labels(data: xr.DataArray) -> list[str]:
    """Labels ``name[c1, c2]`` of a variable's elements (C order over its non-sample dims), from coordinates."""
    dims = [d for d in data.dims if d not in ("chain", "draw")]
    if not dims:
        return [str(data.name)]
    values = [data.coords[d].values if d in data.coords else np.arange(data.sizes[d]) for d in dims]
    return [
        f"{data.name}[{', '.join(str(v[i]) for v, i in zip(values, index, strict=True))}]"
        for index in np.ndindex(*(len(v) for v in values))
    ]


def element_draws(data: xr.DataArray) -> np.ndarray:
    """The draws as ``(chain, draw, element)`` floats."""
    array = data.transpose("chain", "draw", ...).values.astype(float)
    return array.reshape(array.shape[0], array.shape[1], -1)


def constant_elements(draws: np.ndarray) -> np.ndarray:
    """Which columns of ``draws[chain, draw, element]`` never change (up to ``CONSTANT_RTOL`` of their scale)."""
    same = (draws == draws[:1, :1]).all(axis=(0, 1))
    with np.errstate(invalid="ignore"):
        spread = np.ptp(draws, axis=(0, 1))
        close = np.isfinite(spread) & (spread <= CONSTANT_RTOL * np.abs(draws).max(axis=(0, 1)))
    return same | close


def _variable_row(data: xr.DataArray, name: str) -> tuple[dict, list[str]]:
    """One table row: worst R-hat, least ESS, largest MCSE over the variable's non-constant elements."""
    draws = element_draws(data)
    labels = element_labels(data.rename(name))
    constant = constant_elements(draws)
    row = {"variable": name, "elements": draws.shape[2], "constant": int(constant.sum())}
    notes = []
    if constant.any():
        notes.append(
            f"{name}: {int(constant.sum())} of {draws.shape[2]} element(s) constant across draws, skipped"
        )
    varying = np.flatnonzero(~constant)
    stats = element_statistics(draws[:, :, varying]) if varying.size and draws.shape[0] >= 2 else {}
    infinite = np.isinf(draws[:, :, varying]).any(axis=(0, 1))
    if infinite.any():
        notes.append(f"{name}: {int(infinite.sum())} element(s) have infinite draws; their MCSE is undefined")
    for key, worst in (("r_hat", np.argmax), ("ess_bulk", np.argmin), ("ess_tail", np.argmin)):
        row[key], row[f"{key}_at"] = _extreme(stats.get(key), worst, varying, labels)
    mcse = stats.get("mcse_mean")
    row["mcse_mean"], row["mcse_mean_at"] = _extreme(
        None if mcse is None else np.where(infinite, np.nan, mcse), np.nanargmax, varying, labels, nan_fails=False
    )
    return row, notes


#: The per-element statistics of :func:`element_statistics`: ArviZ's function and method for each.
STATISTICS = {
    "r_hat": (az.rhat, "rank"),
    "ess_bulk": (az.ess, "bulk"),
    "ess_tail": (az.ess, "tail"),
    "mcse_mean": (az.mcse, "mean"),
}


def element_statistics(draws: np.ndarray, statistics: Sequence[str] = tuple(STATISTICS)) -> dict[str, np.ndarray]:
    """ArviZ statistics (default: all of :data:`STATISTICS`) of each column of ``draws[chain, draw, element]``."""
    dataset = xr.Dataset({"x": (("chain", "draw", "element"), draws)})
    with np.errstate(invalid="ignore", divide="ignore"):
        return {key: STATISTICS[key][0](dataset, method=STATISTICS[key][1])["x"].values for key in statistics}


def _extreme(values, pick, varying: np.ndarray, labels: list[str], nan_fails: bool = True) -> tuple[float, str]:
    """The worst value by ``pick`` and its element label.

    With ``nan_fails`` a NaN is the worst value (an undefined R-hat or ESS fails); otherwise NaNs are ignored.
    """
    if values is None or values.size == 0 or np.isnan(values).all():
        return np.nan, ""
    nan = np.isnan(values)
    i = int(np.flatnonzero(nan)[0]) if nan_fails and nan.any() else int(pick(values))
    return float(values[i]), labels[varying[i]]


def _variable_failures(row: dict, name: str, thresholds: dict, n_chains: int) -> list[Failure]:
    """Failures of one table row against the R-hat and ESS thresholds (NaN statistics fail)."""
    failures = []
    r_hat = row["r_hat"]
    if row["r_hat_at"] and not r_hat <= thresholds["r_hat"]:
        failures.append(
            Failure("R-hat", name, r_hat, f"≤ {thresholds['r_hat']:g}", f"at {row['r_hat_at']}", REMEDIES["r_hat"])
        )
    for key, label in (("ess_bulk", "bulk ESS"), ("ess_tail", "tail ESS")):
        least, per_chain = row[key], thresholds[key]
        if row[f"{key}_at"] and not least >= per_chain * n_chains:
            threshold = f"≥ {per_chain * n_chains:g} ({per_chain:g} per chain × {n_chains} chains)"
            failures.append(Failure(label, name, least, threshold, f"at {row[f'{key}_at']}", REMEDIES[key]))
    return failures


def _sampler_checks(
    idata: az.InferenceData, *, max_divergences: int, min_bfmi: float, max_tree_depth_hits: int
) -> tuple[dict, list[Failure], list[str]]:
    """Divergences, E-BFMI per chain and tree-depth saturation from ``sample_stats`` (when present)."""
    sampler = {"divergences": np.nan, "min_bfmi": np.nan, "tree_depth_hits": np.nan}
    if "sample_stats" not in idata.groups():
        return sampler, [], [NO_SAMPLER_STATS]
    stats = idata.sample_stats
    failures, notes = [], []
    if "diverging" in stats:
        per_chain = stats["diverging"].sum("draw").values.astype(int)
        sampler["divergences"] = int(per_chain.sum())
        if per_chain.sum() > max_divergences:
            failures.append(_count_failure("divergences", "sample_stats.diverging", per_chain, max_divergences))
    else:
        notes.append("no 'diverging' in sample_stats: divergences not checked")
    if "energy" in stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        sampler["min_bfmi"] = float(bfmi.min())
        failures += [
            Failure(
                "E-BFMI", "sample_stats.energy", float(value), f"≥ {min_bfmi:g}", f"in chain {c}", REMEDIES["bfmi"]
            )
            for c, value in enumerate(bfmi)
            if not value >= min_bfmi
        ]
    else:
        notes.append("no 'energy' in sample_stats: E-BFMI not checked")
    flag = next((name for name in TREE_DEPTH_FLAGS if name in stats), None)
    if flag is None:
        notes.append(f"no tree-depth flag ({' or '.join(TREE_DEPTH_FLAGS)}) in sample_stats: depth not checked")
    else:
        per_chain = stats[flag].sum("draw").values.astype(int)
        sampler["tree_depth_hits"] = int(per_chain.sum())
        if per_chain.sum() > max_tree_depth_hits:
            failures.append(_count_failure("tree_depth", f"sample_stats.{flag}", per_chain, max_tree_depth_hits))
    return sampler, failures, notes


def _count_failure(criterion: str, variable: str, per_chain: np.ndarray, allowed: int) -> Failure:
    """A failure for a count of bad transitions, saying how many fell in each chain."""
    where = "(" + ", ".join(f"chain {c}: {n}" for c, n in enumerate(per_chain) if n) + ")"
    label = {"divergences": "divergences", "tree_depth": "tree-depth hits"}[criterion]
    return Failure(label, variable, int(per_chain.sum()), f"≤ {allowed}", where, REMEDIES[criterion])


def _nan_reduce(reduce, values) -> float:
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    return float(reduce(finite)) if finite.size else np.nan


__all__ = [
    "ConvergenceReport",
    "Failure",
    "check",
    "constant_elements",
    "element_draws",
    "element_labels",
    "element_statistics",
]
