"""Studies: many fits at once, above the models and diagnostics they use.

- :func:`sbc`: simulation-based calibration of a model (:mod:`~utiliscope.studies.sbc`);
- :func:`recovery_study`: many synthetic agents and settings, one tidy table (:mod:`~utiliscope.studies.study`);
- the Dask plumbing both run on: a seed per task, the shared problem in a worker plugin, a dead worker failing only
  its own row (:mod:`~utiliscope.studies.parallel`).
"""

from utiliscope.studies.sbc import SBCResult, sbc
from utiliscope.studies.study import recovery_study, truth_metrics

__all__ = ["SBCResult", "recovery_study", "sbc", "truth_metrics"]
