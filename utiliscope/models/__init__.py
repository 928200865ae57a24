"""Models: the Utiliscope, the Boltzmann-rational IRL baseline, both combined, maximum-entropy IRL, and fitting."""

from utiliscope.models import engines
from utiliscope.models.base import SamplerWarning, SamplingError
from utiliscope.models.boltzmann import BoltzmannIRL
from utiliscope.models.combined import CombinedIRL
from utiliscope.models.g_methods import GSaturationWarning, likelihood_mass_range
from utiliscope.models.maxent import MaxEntConvergenceWarning, MaxEntEstimate, MaxEntIRL
from utiliscope.models.target import EvidenceTerm, Latents
from utiliscope.models.utiliscope import Utiliscope

__all__ = [
    "BoltzmannIRL",
    "CombinedIRL",
    "EvidenceTerm",
    "GSaturationWarning",
    "Latents",
    "MaxEntConvergenceWarning",
    "MaxEntEstimate",
    "MaxEntIRL",
    "SamplerWarning",
    "SamplingError",
    "Utiliscope",
    "engines",
    "likelihood_mass_range",
]
