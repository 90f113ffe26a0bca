"""Times and durations as people read them, in reasons, explanations and the operators' views."""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds: 2026-01-01T00:00:05.000Z."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_duration(seconds: int) -> str:
    """A duration as its non-zero units, largest first: 1d2h, 1h59m59s, 0s. The sign is dropped."""
    days, rest = divmod(abs(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
