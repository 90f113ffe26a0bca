"""The producers' clocks seen from this worker: per consumed topic, how far record timestamps run
ahead of the worker's clock (a gauge), and a warning when that passes the allowed lateness.
booster.control and the like are stamped by the workers; booster.rerouted keeps the upstream stamps."""

from __future__ import annotations

import logging

from booster.processors.clocks import WINDOW_MS, ClockWindow, observe_clock, skewed
from booster.streams.metrics import Metrics
from booster.streams.records import Incoming

log = logging.getLogger("booster.worker")


class Clocks:
    def __init__(self, metrics: Metrics, allowed_lateness_ms: int) -> None:
        self.metrics = metrics
        self.allowed_lateness_ms = allowed_lateness_ms
        self._windows: dict[str, ClockWindow] = {}  # one per consumed topic: bounded by the contract
        self._warned_at: dict[str, int] = {}

    def observe(self, incoming: Incoming, now: int) -> None:
        old = self._windows.get(incoming.topic)
        new = observe_clock(old, incoming.timestamp_ms, now)
        if new is old:
            return
        self._windows[incoming.topic] = new
        self.metrics.set("booster_record_clock_ahead_seconds", new.ahead_ms / 1000, topic=incoming.topic)
        if skewed(new, self.allowed_lateness_ms) and now - self._warned_at.get(incoming.topic, -WINDOW_MS) >= WINDOW_MS:
            self._warned_at[incoming.topic] = now
            log.warning(
                "records of %s are stamped %.1f s ahead of this worker's clock, more than the allowed "
                "lateness (%.1f s): facts may be judged against the wrong side of a deadline. Synchronise "
                "the clocks of the producers and the workers (NTP), or raise BOOSTER_ALLOWED_LATENESS_SECONDS",
                incoming.topic,
                new.ahead_ms / 1000,
                self.allowed_lateness_ms / 1000,
            )
