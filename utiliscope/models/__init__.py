"""Models: the Utiliscope and its in-graph pieces."""

from utiliscope.models.utiliscope import Utiliscope

__all__ = ["Utiliscope"]
