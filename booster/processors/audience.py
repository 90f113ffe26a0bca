"""One recipient's decision at a deadline, and the tally of a booster's audience (R4, R11).

The fan-out and the operators' preview both walk a campaign's rows and count them here, so what the
preview shows is what the fan-out will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from booster.processors.events import Channel, Criterion
from booster.processors.quiet import QuietHours, format_clock, send_after
from booster.processors.recipients import (
    EXCLUSION_ORDER,
    ContactState,
    Exclusion,
    RecipientState,
    delivery,
    exclusion,
    first_open,
    scanner_clicked,
    time_zone_at,
)
from booster.processors.text import format_timestamp


class NotARecipient(Enum):
    """A row of facts without a `sent` fact for the campaign: not in its audience at all (R4)."""

    NOT_A_RECIPIENT = "NOT_A_RECIPIENT"


NOT_A_RECIPIENT = NotARecipient.NOT_A_RECIPIENT

# None: eligible; an Exclusion: excluded for that reason; NOT_A_RECIPIENT: not counted
Decision = Exclusion | NotARecipient | None


def decide(
    recipient: RecipientState,
    contact: ContactState | None,
    *,
    channel: Channel,
    criterion: Criterion,
    at: int,
    count_machine_opens: bool,
    scanner_window_ms: int = 0,
    campaign_channel: Channel | None = None,
) -> Decision:
    if recipient.sent_at is None:
        return NOT_A_RECIPIENT
    return exclusion(
        recipient, contact, channel=channel, criterion=criterion, deadline=at,
        count_machine_opens=count_machine_opens, scanner_window_ms=scanner_window_ms,
        campaign_channel=campaign_channel,
    )  # fmt: skip


class Mark(StrEnum):
    """What the report counts of an included recipient besides the audience: it was boosted despite..."""

    MACHINE_OPEN = "MACHINE_OPEN"  # ...a machine open of the original, not counted as an open (R6)
    SCANNER_CLICK = "SCANNER_CLICK"  # ...a link scanner's click on the original (flagged, or in the window)
    DEFERRED = "DEFERRED"  # not despite anything: its command waits for the end of the quiet hours


NO_MARKS: tuple[Mark, ...] = ()


def deferred_until(
    contact: ContactState | None, quiet_hours: QuietHours | None, *, deadline: int, issued_at: int
) -> int | None:
    """When an included recipient's command may be sent, if it is issued inside the account's quiet
    hours in the contact's local time (its time zone as of the deadline, R5, else the account's)."""
    if quiet_hours is None:
        return None
    return send_after(issued_at, quiet_hours, time_zone_at(contact, deadline))


def explain_deferral(contact: ContactState | None, quiet_hours: QuietHours | None, deadline: int) -> str:
    """Words on the quiet hours for an included contact's explanation, if its command fired at the
    deadline would wait; "" otherwise."""
    waits = deferred_until(contact, quiet_hours, deadline=deadline, issued_at=deadline)
    if waits is None or quiet_hours is None:
        return ""
    zone_name = time_zone_at(contact, deadline) or f"{quiet_hours.time_zone}, the account's"
    hours = f"{format_clock(quiet_hours.start_minute)}-{format_clock(quiet_hours.end_minute)}"
    until = format_timestamp(waits)
    return f"; at the deadline it is inside the quiet hours {hours} ({zone_name}): its command waits until {until}"


def marks_of(
    recipient: RecipientState, decision: Decision, *, criterion: Criterion, at: int, scanner_window_ms: int = 0
) -> tuple[Mark, ...]:
    """The marks of an included recipient. MACHINE_OPEN: a NOT_OPENED booster's recipient whose
    original a machine opened by `at` (one that counts machine opens has none: they exclude).
    SCANNER_CLICK: a recipient with a scanner's click by `at` (a person's click would have excluded)."""
    if decision is not None or (recipient.machine_opened_at is None and recipient.clicked_at is None
                                and recipient.bot_clicked_at is None):  # fmt: skip
        return NO_MARKS
    marks: list[Mark] = []
    opened = recipient.machine_opened_at
    if criterion == "NOT_OPENED" and opened is not None and opened <= at:
        marks.append(Mark.MACHINE_OPEN)
    _, delivered_at = delivery(recipient, at)
    if scanner_clicked(recipient, delivered_at, scanner_window_ms, at) is not None:
        marks.append(Mark.SCANNER_CLICK)
    return tuple(marks)


INCLUDED = "INCLUDED"  # a recipient's outcome when the booster was sent to it


def outcome_of(decision: Decision) -> str | None:
    """A recipient's outcome in a fired booster's audience (R16): INCLUDED, or the exclusion that
    applied; None for a row that is not a recipient (it is in no campaign report)."""
    if decision is NOT_A_RECIPIENT:
        return None
    return INCLUDED if decision is None else decision.value


@dataclass(frozen=True, slots=True)
class Tally:
    """Audience and exclusions counted so far (one partition's, or a whole booster's)."""

    audience: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)
    marks: Mapping[str, int] = field(default_factory=dict)  # of the audience, by Mark (see `marks_of`)

    def add(self, reason: Exclusion | None, count: int = 1, *, marks: tuple[Mark, ...] = NO_MARKS) -> Tally:
        if reason is None:
            if not marks:  # most rows: no mapping to make
                return Tally(self.audience + count, self.excluded, self.marks)
            return Tally(self.audience + count, self.excluded, _plus(self.marks, {m.value: count for m in marks}))
        return Tally(self.audience, _plus(self.excluded, {reason.value: count}), self.marks)

    def count(self, decision: Decision, *, marks: tuple[Mark, ...] = NO_MARKS) -> Tally:
        """The tally with one more decided row and its marks; a row that is not a recipient is not counted."""
        return self if decision is NOT_A_RECIPIENT else self.add(decision, marks=marks)

    def count_all(self, counts: Mapping[tuple[Decision, tuple[Mark, ...]], int]) -> Tally:
        """The tally with rows counted in bulk, by decision and marks: a fan-out counts a chunk's rows
        in a plain dict and adds them at the chunk's end, not a new Tally per row."""
        tally = self
        for (decision, marks), n in counts.items():
            if decision is not NOT_A_RECIPIENT:
                tally = tally.add(decision, n, marks=marks)
        return tally

    def merge(self, other: Tally) -> Tally:
        return Tally(
            self.audience + other.audience, _plus(self.excluded, other.excluded), _plus(self.marks, other.marks)
        )

    def marked(self, mark: Mark) -> int:
        return self.marks.get(mark.value, 0)

    @property
    def recipients(self) -> int:
        return self.audience + sum(self.excluded.values())


def _plus(a: Mapping[str, int], b: Mapping[str, int]) -> Mapping[str, int]:
    if not b:
        return a
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def tally_of(decisions: Iterable[Decision], start: Tally | None = None) -> Tally:
    tally = start or Tally()
    for decision in decisions:
        tally = tally.count(decision)
    return tally


def full_exclusions(excluded: Mapping[str, int]) -> dict[str, int]:
    """Every reason of R11, zero where none, in R11's order."""
    return {reason.value: int(excluded.get(reason.value, 0)) for reason in EXCLUSION_ORDER}


def all_opened(recipients: Iterable[RecipientState], deadline: int, *, count_machine_opens: bool) -> bool | None:
    """R7's 100 % open rate in one partition: whether every recipient (a `sent` fact) opened the
    original campaign at or before the deadline, machine opens counting as the booster's policy says;
    None when there is no recipient. It stops at the first one who did not, so a campaign with a usual
    open rate costs a few rows, not a walk."""
    seen = False
    for r in recipients:
        if r.sent_at is None:
            continue
        opened = first_open(r, count_machine_opens)
        if opened is None or opened > deadline:
            return False
        seen = True
    return True if seen else None


def full_open_rate(counts: Iterable[bool | None]) -> bool:
    """Every partition's recipients all opened, and there was at least one recipient."""
    values = list(counts)
    return any(v is True for v in values) and not any(v is False for v in values)
