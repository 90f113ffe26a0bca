"""Clock skew between the producers that stamp records and the worker that judges deadlines.

A deadline is `launched_at` (the launching service's clock) plus the delay, judged by the worker's
clock, and a fact counts if it was processed before the deadline plus the allowed lateness. A record
timestamped ahead of the worker's clock can only come from a producer whose clock runs ahead (lag
makes records look older, never younger), so the largest amount ahead over a window is a lower bound
of that skew. Past the allowed lateness, facts stamped before a deadline may be judged after it.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_MS = 60_000  # the gauge is the largest amount ahead over the current minute


@dataclass(frozen=True, slots=True)
class ClockWindow:
    """For one topic: since `started_at` (worker clock), the largest record timestamp minus the
    worker's clock. Negative when every record was stamped before it was processed."""

    started_at: int
    ahead_ms: int


def observe_clock(window: ClockWindow | None, record_ms: int, now: int, window_ms: int = WINDOW_MS) -> ClockWindow:
    """The window after one record stamped `record_ms` is processed at `now`; the same object when
    nothing changed."""
    ahead = record_ms - now
    if window is None or now - window.started_at >= window_ms:
        return ClockWindow(now, ahead)
    if ahead <= window.ahead_ms:
        return window
    return ClockWindow(window.started_at, ahead)


def skewed(window: ClockWindow, allowed_lateness_ms: int) -> bool:
    """Records ahead by more than the allowed lateness: the producers' and this worker's clocks disagree
    by more than the engine tolerates."""
    return window.ahead_ms > allowed_lateness_ms
