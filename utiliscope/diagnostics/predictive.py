r"""Posterior predictive p-values and their combination: what :func:`~utiliscope.models.predictive_check.
predictive_check` returns (docs/model.md#checking-the-agent-model).

A :class:`Statistic` holds ``T(y, θ_d)`` and ``T(y_rep,d, θ_d)`` for the posterior draws d; its p-value is the
Monte Carlo ``P(T_rep ≥ T_obs)`` with ties counted half, or twice the smaller tail. :class:`PredictiveCheck`
combines its statistics by Bonferroni's correction (:func:`combine`), valid whatever their dependence;
:func:`calibrated_p_value` makes a posterior predictive p-value uniform against the p-values of data sets drawn
from the prior predictive (Hjort, Dahl & Steinbakk 2006).
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utiliscope._validation import check_seed

#: How the statistics' p-values are combined into one.
CORRECTION = "Bonferroni"


@dataclass(frozen=True)
class Statistic:
    """One statistic's observed and replicated values per posterior draw.

    Attributes
    ----------
    name : str
    tail : {"upper", "two-sided"}
        ``"upper"``: ``P(T_rep ≥ T_obs)``; ``"two-sided"``: twice the smaller tail, capped at 1.
    observed, replicated : ndarray, shape (D,)
        ``T(y, θ_d)`` and ``T(y_rep,d, θ_d)``.
    """

    name: str
    tail: str
    observed: np.ndarray
    replicated: np.ndarray

    @property
    def p_value(self) -> float:
        """The Monte Carlo p-value ``(1 + #{T_rep > T_obs} + ½ #{T_rep = T_obs}) / (1 + D)`` (or the two-sided
        one); ties count half (the mid-p value), so that draws where the statistic cannot tell the two apart (g = 0
        under a constant utility) speak for neither tail."""
        n = self.replicated.size
        ties = 0.5 * np.count_nonzero(self.replicated == self.observed)
        upper = (1 + np.count_nonzero(self.replicated > self.observed) + ties) / (1 + n)
        if self.tail == "upper":
            return float(upper)
        lower = (1 + np.count_nonzero(self.replicated < self.observed) + ties) / (1 + n)
        return float(min(1.0, 2.0 * min(upper, lower)))


@dataclass(frozen=True)
class PredictiveCheck:
    """The result of :func:`~utiliscope.models.predictive_check.predictive_check`.

    Attributes
    ----------
    statistics : tuple of Statistic
    level : float
        The level ``ok`` is judged at.
    idata : arviz.InferenceData
        The fit extended with ``posterior_predictive`` (the replicated data of the draws used),
        ``observed_data`` and, for action models with trajectories, ``log_likelihood`` (per trajectory).
    """

    statistics: tuple[Statistic, ...]
    level: float
    idata: az.InferenceData

    @property
    def p_value(self) -> float:
        """The statistics' p-values combined by Bonferroni's correction, ``min(1, m · min_j p_j)``."""
        return combine([statistic.p_value for statistic in self.statistics])

    @property
    def ok(self) -> bool:
        """Whether ``p_value >= level``: no statistic says the agent model misfits."""
        return self.p_value >= self.level

    @property
    def table(self) -> pd.DataFrame:
        """One row per statistic: its tail, the observed and replicated means over draws, and its p-value."""
        return pd.DataFrame(
            {
                "tail": [s.tail for s in self.statistics],
                "observed": [float(np.mean(s.observed)) for s in self.statistics],
                "replicated": [float(np.mean(s.replicated)) for s in self.statistics],
                "p_value": [s.p_value for s in self.statistics],
            },
            index=pd.Index([s.name for s in self.statistics], name="statistic"),
        )

    def plot(self, axes=None) -> np.ndarray:
        """One panel per statistic: the histogram of ``T(y_rep, θ) − T(y, θ)`` over draws, 0 marked.

        Returns
        -------
        ndarray of matplotlib Axes
        """
        if axes is None:
            _, axes = plt.subplots(
                1, len(self.statistics), figsize=(3.2 * len(self.statistics), 2.8), squeeze=False
            )
        axes = np.ravel(axes)
        if len(axes) != len(self.statistics):
            raise ValueError(f"axes has {len(axes)} panels; the check has {len(self.statistics)} statistics")
        for ax, statistic in zip(axes, self.statistics, strict=True):
            difference = statistic.replicated - statistic.observed
            ax.hist(difference[np.isfinite(difference)], bins=30, color="C0", alpha=0.7)
            ax.axvline(0.0, color="C3")
            ax.set_title(f"{statistic.name}\np = {statistic.p_value:.3g}", fontsize=9)
            ax.set_xlabel("T(replicated) − T(observed)")
        return axes

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "the agent model misfits"
        return (
            f"Posterior predictive check: p = {self.p_value:.3g} ({CORRECTION} over {len(self.statistics)} "
            f"statistics) at level {self.level:g}: {verdict}\n{self.table.to_string(float_format='{:.4g}'.format)}"
        )


def combine(p_values) -> float:
    """Bonferroni's combination ``min(1, m · min_j p_j)`` of m p-values."""
    p_values = np.asarray(p_values, dtype=float)
    return float(min(1.0, p_values.size * p_values.min()))


def calibrated_p_value(p_value: float, reference, seed: int = 0) -> float:
    """A posterior predictive p-value made uniform: its rank among the p-values of data replicated from the
    prior predictive (Hjort, Dahl & Steinbakk 2006),

    ``(#{reference < p} + V · (#{reference = p} + 1)) / (1 + R)``, ``V ~ Uniform(0, 1)``:

    ties are broken at random, so the result is exactly uniform when the data come from the prior, even though
    the p-values have atoms (Bonferroni's cap at 1, statistics that tie).

    Parameters
    ----------
    p_value : float
        The observed data's p-value.
    reference : array_like, shape (R,)
        The same check's p-values on R data sets simulated from the model's own prior (each fitted anew).
    seed : int
        Seed of V.
    """
    reference = np.ravel(np.asarray(reference, dtype=float))
    if reference.size == 0:
        raise ValueError("reference is empty; give the p-values of data sets replicated from the prior")
    below = np.count_nonzero(reference < p_value)
    tied = np.count_nonzero(reference == p_value)
    share = np.random.default_rng(check_seed(seed)).random()
    return float((below + share * (tied + 1)) / (1 + reference.size))


__all__ = ["CORRECTION", "PredictiveCheck", "Statistic", "calibrated_p_value", "combine"]
