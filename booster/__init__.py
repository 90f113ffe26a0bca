"""Booster: an event-sourced engine that sends one follow-up to the recipients who did not engage."""

__version__ = "0.1.0"
