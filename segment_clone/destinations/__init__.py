"""Destinations: where a client's Segment calls are delivered, and how they are mapped there."""

from .mixpanel import Mixpanel
from .mixpanel_mapping import MappingSettings, Record, Refused, to_mixpanel
from .segment import Segment

__all__ = ["MappingSettings", "Mixpanel", "Record", "Refused", "Segment", "to_mixpanel"]
