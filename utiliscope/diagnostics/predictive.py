r"""Posterior predictive p-values and their combination: what :func:`~utiliscope.models.predictive_check.
predictive_check` returns (docs/model.md#checking-the-agent-model).

A :class:`Statistic` holds ``T(y, θ_d)`` and ``T(y_rep,d, θ_d)`` for the posterior draws d; its p-value is the
Monte Carlo ``P(T_rep ≥ T_obs)`` with ties counted half, or twice the smaller tail. :class:`PredictiveCheck`
combines its statistics' p-values into one (:data:`COMBINATIONS`):

* ``"min-p"`` (the default; Westfall & Young 1993): the smallest p-value, ``m = min_j p_j``, taken as a statistic
  and calibrated against its own distribution over the D posterior predictive replications. Each replication
  ``y_rep,e`` is treated as observed data: its per-statistic p-values are computed against the D replications
  (``p_j(y_rep,e) = P_d(T_j(y_rep,d, θ_d) ≥ T_j(y_rep,e, θ_d))``, its own draw a tie by construction, so the
  observed and the replicated p-values share the lattice ``(1 + k/2) / (1 + D)``), and

  .. math::

      p = \frac{1 + \#\{e : m_e < m\} + \tfrac12 \#\{e : m_e = m\}}{1 + D}, \qquad
      m_e = \min_j p_j(y_\text{rep,e}).

  The replications keep the statistics' dependence, so correlated statistics do not pay the factor m; the level
  is kept family-wise because the replications are draws of the same posterior predictive distribution that
  the observed data are judged against (with the data used twice, conservatively, as for each p_j).
* ``"Bonferroni"``: ``min(1, m · min_j p_j)``, valid whatever the dependence, conservative when the statistics
  are correlated.

:func:`calibrated_p_value` makes a posterior predictive p-value uniform against the p-values of data sets drawn
from the prior predictive (Hjort, Dahl & Steinbakk 2006).

References
----------
Westfall & Young (1993), Resampling-Based Multiple Testing, §2.6 (the min-p adjustment).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utiliscope._validation import check_seed

TAILS = ("upper", "two-sided")


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
    cross : ndarray, shape (D, D), optional
        ``cross[e, d] = T(y_rep,e, θ_d)``, each replication's statistic under every draw (its diagonal is
        ``replicated``), for the min-p combination; None for a statistic that does not depend on θ, where
        ``T(y_rep,e, θ_d) = replicated[e]``.
    """

    name: str
    tail: str
    observed: np.ndarray
    replicated: np.ndarray
    cross: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tail not in TAILS:
            raise ValueError(f"tail is {self.tail!r}; it must be one of {TAILS}")
        n = np.shape(self.replicated)
        if len(n) != 1 or np.shape(self.observed) != n:
            raise ValueError(
                f"observed has shape {np.shape(self.observed)} and replicated {n}; both must be (D,), one per draw"
            )
        if self.cross is not None and np.shape(self.cross) != (n[0], n[0]):
            raise ValueError(f"cross has shape {np.shape(self.cross)}; it must be (D, D) = {(n[0], n[0])}")

    @property
    def p_value(self) -> float:
        """The Monte Carlo p-value ``(1 + #{T_rep > T_obs} + ½ #{T_rep = T_obs}) / (1 + D)`` (or the two-sided
        one); ties count half (the mid-p value), so that draws where the statistic cannot tell the two apart (g = 0
        under a constant utility) speak for neither tail."""
        return float(_p_values(self.replicated, self.observed[None], self.tail)[0])

    def replicated_p_values(self) -> np.ndarray:
        """``p(y_rep,e)`` for every replication e: the p-value its statistic would have as observed data, against
        the D replications (its own a tie), on the same lattice as :attr:`p_value`; shape (D,)."""
        values = self.replicated[:, None] if self.cross is None else self.cross
        return _p_values(self.replicated, values, self.tail)


def _p_values(replicated: np.ndarray, observed: np.ndarray, tail: str) -> np.ndarray:
    """Each row's Monte Carlo p-value: ``observed[e, d]`` (or ``observed[e, 0]``, broadcast) against
    ``replicated[d]`` over the draws d, ties counted half."""
    n = replicated.size
    greater = np.count_nonzero(replicated[None, :] > observed, axis=1)
    ties = 0.5 * np.count_nonzero(replicated[None, :] == observed, axis=1)
    upper = (1 + greater + ties) / (1 + n)
    if tail == "upper":
        return upper
    lower = (1 + (n - greater - 2 * ties) + ties) / (1 + n)
    return np.minimum(1.0, 2.0 * np.minimum(upper, lower))


def min_p(statistics: Sequence[Statistic]) -> float:
    """The min-p combination (module docstring): ``min_j p_j`` ranked among the replications' ``min_j p_j``."""
    observed = min(statistic.p_value for statistic in statistics)
    reference = np.min([statistic.replicated_p_values() for statistic in statistics], axis=0)
    below = np.count_nonzero(reference < observed) + 0.5 * np.count_nonzero(reference == observed)
    return float((1 + below) / (1 + reference.size))


def bonferroni(statistics: Sequence[Statistic]) -> float:
    """Bonferroni's combination ``min(1, m · min_j p_j)`` of the m statistics' p-values."""
    return float(min(1.0, len(statistics) * min(statistic.p_value for statistic in statistics)))


#: The names of the combinations.
MIN_P, BONFERRONI = "min-p", "Bonferroni"
#: How the statistics' p-values may be combined into one: name → combination of the statistics.
COMBINATIONS: dict[str, Callable[[Sequence[Statistic]], float]] = {MIN_P: min_p, BONFERRONI: bonferroni}
#: The combination :func:`~utiliscope.models.predictive_check.predictive_check` uses by default.
DEFAULT_COMBINATION = MIN_P


def check_combination(combination: str) -> str:
    """``combination`` if it names one of :data:`COMBINATIONS`, else a ValueError listing them."""
    if combination not in COMBINATIONS:
        raise ValueError(f"combination is {combination!r}; it must be one of {sorted(COMBINATIONS)}")
    return combination


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
    combination : str
        The name in :data:`COMBINATIONS` of how :attr:`p_value` combines the statistics.
    """

    statistics: tuple[Statistic, ...]
    level: float
    idata: az.InferenceData
    combination: str = DEFAULT_COMBINATION

    def __post_init__(self) -> None:
        check_combination(self.combination)

    @property
    def p_value(self) -> float:
        """The statistics' p-values combined by :attr:`combination`."""
        return self.combined(self.combination)

    def combined(self, combination: str) -> float:
        """The statistics' p-values combined by any of :data:`COMBINATIONS` (to compare them on one check)."""
        return COMBINATIONS[check_combination(combination)](self.statistics)

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
        draws = self.statistics[0].replicated.size
        return (
            f"Posterior predictive check: p = {self.p_value:.3g} ({self.combination} over {len(self.statistics)} "
            f"statistics, {draws} replications) at level {self.level:g}: {verdict}\n"
            f"{self.table.to_string(float_format='{:.4g}'.format)}"
        )


def calibrated_p_value(p_value: float, reference, seed: int = 0) -> float:
    """A posterior predictive p-value made uniform: its rank among the p-values of data replicated from the
    prior predictive (Hjort, Dahl & Steinbakk 2006),

    ``(#{reference < p} + V · (#{reference = p} + 1)) / (1 + R)``, ``V ~ Uniform(0, 1)``:

    ties are broken at random, so the result is exactly uniform when the data come from the prior, even though
    the p-values have atoms (a combination capped at 1, statistics that tie).

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


__all__ = [
    "BONFERRONI",
    "COMBINATIONS",
    "DEFAULT_COMBINATION",
    "MIN_P",
    "PredictiveCheck",
    "Statistic",
    "bonferroni",
    "calibrated_p_value",
    "check_combination",
    "min_p",
]
