"""The frequency cap: an account's limit of boosters per contact per rolling window, across campaigns.

A contact's history is the boosters sent to it that counted toward a cap: those whose schedule carried
its account's cap when the launch was decided. It is judged on deadlines, so that a worker that fires
late decides as one that fires on time: a booster may go to a contact unless some window of the cap's
length that holds its deadline would then hold more than the cap's number of boosters. The first
booster to fire takes the place; one that fires later is left out (FREQUENCY_CAP), whatever the order
of their deadlines.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from booster.processors.text import format_timestamp

DAY_MS = 86_400_000
MAX_CAP_WINDOW_MS = 30 * DAY_MS

Sent = tuple[int, str]  # (deadline, booster_id) of a booster sent to the contact


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most `max_boosters` boosters per contact in any `window_ms`."""

    max_boosters: int
    window_ms: int


def capped(sent: tuple[Sent, ...], booster_id: str, deadline: int, cap: FrequencyCap) -> bool:
    """Whether sending this booster (its deadline) to a contact with this history would break the cap.
    Its own entry (a fan-out resumed after a crash) does not count against it."""
    if not sent:  # most contacts: no booster yet
        return False
    w = cap.window_ms
    others = sorted(d for d, b in sent if b != booster_id and deadline - w < d < deadline + w)
    if len(others) < cap.max_boosters:
        return False
    # of the windows [s, s + w) that hold the deadline, the fullest is the first one, or one that
    # starts just as a later booster comes into it
    starts = [deadline - w + 1, *(d - w + 1 for d in others if d > deadline)]
    return any(sum(1 for d in others if s <= d < s + w) >= cap.max_boosters for s in starts)


def explain_cap(sent: Iterable[Sent], booster_id: str, deadline: int, cap: FrequencyCap) -> str:
    """Why the cap leaves a contact out, in words: the boosters it got near this one's deadline."""
    w = cap.window_ms
    near = sorted((d, b) for d, b in sent if b != booster_id and deadline - w < d < deadline + w)
    listed = ", ".join(f"{b} (deadline {format_timestamp(d)})" for d, b in near)
    hours = w // 3_600_000
    return (
        f"excluded, FREQUENCY_CAP: its account allows {cap.max_boosters} booster(s) per {hours} h and it got {listed}"
    )


def with_sent(history: tuple[Sent, ...], entries: Iterable[Sent]) -> tuple[Sent, ...]:
    """The history with these boosters sent: a set, so that a catch-up that reads a send again
    changes nothing."""
    return tuple(sorted({*history, *entries}))


def outlived(history: tuple[Sent, ...], now: int) -> tuple[Sent, ...]:
    """The entries still able to count: deadlines within the longest window before `now` (a booster's
    deadline is never before its fan-out)."""
    return tuple(e for e in history if e[0] > now - MAX_CAP_WINDOW_MS)


_COUNT = struct.Struct("<H")
_ENTRY = struct.Struct("<qH")


def pack_history(history: tuple[Sent, ...]) -> bytes:
    parts = [_COUNT.pack(len(history))]
    for deadline, booster_id in history:
        raw = booster_id.encode()
        parts += [_ENTRY.pack(deadline, len(raw)), raw]
    return b"".join(parts)


def unpack_history(data: bytes) -> tuple[Sent, ...]:
    (n,) = _COUNT.unpack_from(data, 0)
    pos = _COUNT.size
    out = []
    for _ in range(n):
        deadline, length = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        out.append((deadline, data[pos : pos + length].decode()))
        pos += length
    return tuple(out)
