"""One recipient's decision at a deadline, and the tally of a booster's audience (R4, R11).

The fan-out and the operators' preview both walk a campaign's rows and count them here, so what the
preview shows is what the fan-out will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from booster.processors.events import Channel, Criterion
from booster.processors.recipients import (
    EXCLUSION_ORDER,
    ContactState,
    Exclusion,
    RecipientState,
    exclusion,
    first_open,
)


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
) -> Decision:
    if recipient.sent_at is None:
        return NOT_A_RECIPIENT
    return exclusion(
        recipient, contact, channel=channel, criterion=criterion, deadline=at, count_machine_opens=count_machine_opens
    )


def boosted_despite_machine_open(
    recipient: RecipientState, decision: Decision, *, criterion: Criterion, at: int
) -> bool:
    """An included recipient of a NOT_OPENED booster whose original message a machine opened by `at`:
    one the machine-open policy kept in the audience (a booster that counts machine opens has none)."""
    opened = recipient.machine_opened_at
    return decision is None and criterion == "NOT_OPENED" and opened is not None and opened <= at


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
    machine_opened: int = 0  # of the audience: boosted although a machine opened the original (R6)

    def add(self, reason: Exclusion | None, count: int = 1, *, machine_opened: bool = False) -> Tally:
        if reason is None:
            return Tally(self.audience + count, self.excluded, self.machine_opened + (count if machine_opened else 0))
        excluded = dict(self.excluded)
        excluded[reason.value] = excluded.get(reason.value, 0) + count
        return Tally(self.audience, excluded, self.machine_opened)

    def count(self, decision: Decision, *, machine_opened: bool = False) -> Tally:
        """The tally with one more decided row (`machine_opened`: see `boosted_despite_machine_open`);
        a row that is not a recipient is not counted."""
        return self if decision is NOT_A_RECIPIENT else self.add(decision, machine_opened=machine_opened)

    def merge(self, other: Tally) -> Tally:
        excluded = dict(self.excluded)
        for k, v in other.excluded.items():
            excluded[k] = excluded.get(k, 0) + v
        return Tally(self.audience + other.audience, excluded, self.machine_opened + other.machine_opened)

    @property
    def recipients(self) -> int:
        return self.audience + sum(self.excluded.values())


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
