"""Models: the Utiliscope, the Boltzmann-rational IRL baseline, and their shared fitting machinery."""

from utiliscope.models.base import SamplerWarning, SamplingError
from utiliscope.models.boltzmann import BoltzmannIRL
from utiliscope.models.utiliscope import Utiliscope

__all__ = ["BoltzmannIRL", "SamplerWarning", "SamplingError", "Utiliscope"]
