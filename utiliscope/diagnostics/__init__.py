"""Diagnostics of fits: convergence, recovery of a synthetic agent's truth, plots and an HTML report.

- :func:`check`: R-hat, ESS, MCSE per variable and the sampler's divergences, E-BFMI and tree depth, judged
  against configurable thresholds (:mod:`~utiliscope.diagnostics.convergence`);
- :func:`policy_loss`: ``1 − Ṽ_U*(pi)`` of a decided policy under the true utility, and :func:`decide_fit`, a
  decision from a saved run alone (:mod:`~utiliscope.decisions`, :mod:`~utiliscope.diagnostics.fitted`);
- :func:`recovery` with :class:`Truth`: posterior mass and rank of the true utility, or the angle to theta*, and
  whether g* lies in the credible interval of g (:mod:`~utiliscope.diagnostics.recovery`);
- :class:`PredictiveCheck`, what ``us.diagnostics.predictive_check`` returns (posterior predictive p-values,
  combined by min-p calibrated on the replications, or Bonferroni), and :func:`calibrated_p_value`
  (:mod:`~utiliscope.diagnostics.predictive`); the check itself replicates data from the models, so it lives in
  :mod:`utiliscope.models.predictive_check`, and the package names it here;
- plots (:mod:`~utiliscope.diagnostics.plots`) and :func:`report`, a folder of PNGs with a one-page HTML summary;
- :func:`sbc`, simulation-based calibration, and :func:`recovery_study`, many synthetic agents and settings, both
  run in parallel on Dask, live in :mod:`utiliscope.studies`, the layer above the models they fit; the package
  names them here too (``us.diagnostics.sbc``), as the public API always has.
"""

from utiliscope.decisions import policy_loss
from utiliscope.diagnostics.convergence import ConvergenceReport, Failure, check
from utiliscope.diagnostics.fitted import decide_fit
from utiliscope.diagnostics.plots import (
    plot_g_posterior,
    plot_rank,
    plot_recovery_vs_lambda,
    plot_trace,
    plot_utility_posterior,
)
from utiliscope.diagnostics.predictive import PredictiveCheck, Statistic, calibrated_p_value
from utiliscope.diagnostics.recovery import LibraryRecovery, LinearRecovery, Truth, recovery
from utiliscope.diagnostics.report import report

__all__ = [
    "ConvergenceReport",
    "Failure",
    "LibraryRecovery",
    "LinearRecovery",
    "PredictiveCheck",
    "Statistic",
    "Truth",
    "calibrated_p_value",
    "check",
    "decide_fit",
    "plot_g_posterior",
    "plot_rank",
    "plot_recovery_vs_lambda",
    "plot_trace",
    "plot_utility_posterior",
    "policy_loss",
    "recovery",
    "report",
]


#: Names of the layers above (:mod:`utiliscope.studies`, the predictive check) the public API gives here; the
#: package wires them in on first access.
_STUDY_NAMES = ("sbc", "SBCResult", "recovery_study", "predictive_check")


def __getattr__(name: str):
    if name in _STUDY_NAMES:
        import utiliscope

        utiliscope._wire_studies()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
