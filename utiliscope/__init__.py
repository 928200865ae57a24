"""utiliscope: Bayesian inverse reinforcement learning from the intelligence of an operator's policy.

The Utiliscope infers an operator's utility U from a world model's belief about the operator's policy pi, a
simplicity prior over U, and the evidence that the operator is intelligent under U but not perfect. See
docs/model.md in the source repository for the math and the README for a first fit.
"""

from utiliscope import agents, decisions, diagnostics, likelihoods, priors, studies, worlds
from utiliscope._version import __version__
from utiliscope.decisions import Decision
from utiliscope.demonstrations import Demonstrations, Trajectory
from utiliscope.evaluation import (
    evaluate,
    evaluate_policies,
    feature_expectations,
    occupancy,
    state_occupancy,
)
from utiliscope.intelligence import intelligence, intelligence_table
from utiliscope.io import load, save
from utiliscope.models import Utiliscope
from utiliscope.models.predictive_check import predictive_check
from utiliscope.policies import DirichletPolicies, PolicyPrior, PolicySet, UniformDeterministic
from utiliscope.world_model import WorldModel
from utiliscope.worlds import TabularMDP, WorldSet

# The public API names the studies and the predictive check under diagnostics (us.diagnostics.sbc); they live in
# utiliscope.studies and utiliscope.models, above diagnostics, so the package wires the names here rather than
# diagnostics importing upward.
diagnostics.sbc, diagnostics.SBCResult, diagnostics.recovery_study = (
    studies.sbc,
    studies.SBCResult,
    studies.recovery_study,
)
diagnostics.predictive_check = predictive_check

__all__ = [
    "Decision",
    "Demonstrations",
    "DirichletPolicies",
    "PolicyPrior",
    "PolicySet",
    "TabularMDP",
    "Trajectory",
    "UniformDeterministic",
    "Utiliscope",
    "WorldModel",
    "WorldSet",
    "__version__",
    "agents",
    "decisions",
    "diagnostics",
    "evaluate",
    "evaluate_policies",
    "feature_expectations",
    "intelligence",
    "intelligence_table",
    "likelihoods",
    "load",
    "occupancy",
    "priors",
    "save",
    "state_occupancy",
    "studies",
    "worlds",
]
