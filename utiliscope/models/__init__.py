"""Models: the Utiliscope and its in-graph pieces."""

from utiliscope.models.utiliscope import SamplerWarning, SamplingError, Utiliscope

__all__ = ["SamplerWarning", "SamplingError", "Utiliscope"]
