"""Quiet hours: the local hours of the day when an account does not want a channel's messages sent (many
countries regulate the hours of SMS marketing). A recipient whose local time falls inside them when the
booster is issued gets a command that carries the earliest moment it may be sent (`send_after`).

Local time is the contact's time zone (its latest `contact.time-zone` fact) or, without one, the
account's. Daylight-saving changes count: the end of the quiet hours is the first instant whose local
time of day has reached it, so an end inside a spring-forward gap is the moment the clocks jump, and an
end that occurs twice in a fall-back night is its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from booster.errors import BoosterError

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class QuietHours:
    """[start, end) in minutes of the local day; an end at or before the start crosses midnight
    (21:00-08:00); start == end is no quiet hours at all. `time_zone`: the account's, for contacts
    without their own."""

    start_minute: int
    end_minute: int
    time_zone: str = "UTC"


def parse_clock(text: str) -> int:
    """ "HH:MM" (24-hour) as minutes of the day; ValueError names what is wrong."""
    hours, sep, minutes = text.partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (24-hour), such as 21:00")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{text!r} is not a time of day: hours 00-23, minutes 00-59")
    return h * 60 + m


def format_clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name (Europe/Paris, America/New_York); BoosterError if none is."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BoosterError(f"{name!r} is not an IANA time zone name (such as Europe/Paris or UTC)") from None


def _quiet_at(minute_of_day: float, quiet: QuietHours) -> bool:
    start, end = quiet.start_minute, quiet.end_minute
    if start == end:
        return False
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


def _local_minute(at_ms: int, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(at_ms / 1000, tz)
    return local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60


def send_after(at_ms: int, quiet: QuietHours | None, contact_time_zone: str | None) -> int | None:
    """The earliest moment (epoch ms) a message issued at `at_ms` may be sent, when that is inside the
    quiet hours in the recipient's local time; None when it may be sent at once."""
    if quiet is None or quiet.start_minute == quiet.end_minute:
        return None
    tz = zone(contact_time_zone or quiet.time_zone)
    if not _quiet_at(_local_minute(at_ms, tz), quiet):
        return None
    today = datetime.fromtimestamp(at_ms / 1000, tz).date()
    # inside the quiet hours: they end later today or (after the start of hours that cross midnight)
    # tomorrow; in a fall-back night, an end that comes twice counts from the occurrence after `at_ms`
    for day in (today, today + timedelta(1)):
        wall = datetime(day.year, day.month, day.day, quiet.end_minute // 60, quiet.end_minute % 60)
        later = [instant for instant in _instants_at(wall, tz) if instant > at_ms]
        if later:
            return later[0]
    raise AssertionError("quiet hours end within a day")  # pragma: no cover - any day has its end time


def _instants_at(wall: datetime, tz: ZoneInfo) -> list[int]:
    """The instants (epoch ms, in order) at which the local clock first shows `wall`: two in a fall-back
    night, one on other days, and in a spring-forward gap, where it never shows it, the jump itself."""
    candidates = sorted({int(wall.replace(tzinfo=tz, fold=fold).timestamp() * 1000) for fold in (0, 1)})
    exists = [c for c in candidates if datetime.fromtimestamp(c / 1000, tz).replace(tzinfo=None) == wall]
    if exists:
        return exists
    # fold 1 reads the wall time with the offset after the jump (an instant before it), fold 0 with
    # the one before (after it): the jump, to the millisecond, lies between
    lo, hi = candidates[0], candidates[-1]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid / 1000, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return [hi]
