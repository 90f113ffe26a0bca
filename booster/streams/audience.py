"""Walking one partition's rows of a campaign and deciding each recipient, for the fan-out and for
the operators' preview (`booster audience`), so both count the same way."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from booster.processors.audience import Decision, Mark, decide, deferred_until, marks_of
from booster.processors.boosters import Schedule
from booster.processors.frequency import Sent, capped, unpack_history
from booster.processors.packing import unpack_contact, unpack_recipient
from booster.processors.recipients import ContactState, Exclusion, RecipientState, time_zone_at
from booster.processors.uplift import holdout_of
from booster.streams.store import PartitionStore, recipient_key, recipient_prefix

READ_AHEAD = 256  # recipients


def decide_rows(
    recipients: PartitionStore,
    contacts: PartitionStore,
    schedule: Schedule,
    at: int,
    after: bytes | None = None,
    *,
    issued_at: int,
    history: PartitionStore | None = None,
    histories_read: dict[bytes, tuple[Sent, ...]] | None = None,
) -> Iterator[tuple[str, Decision, tuple[Mark, ...], int | None]]:
    """(contact_id, decision at `at`, its marks, the end of the quiet hours its command waits for) for
    every row of the booster's campaign in this partition, in key order, after the row `after` when
    given; quiet hours are judged at `issued_at`, when the command is issued. A booster with a
    frequency cap leaves out the contacts whose `history` already holds the most its account allows;
    the rows it read for the contacts it keeps go to `histories_read`, when given. A booster with a
    holdout then holds out its share of the contacts left (HOLDOUT: no command)."""
    quiet_hours = schedule.quiet_hours
    # every command of a walk is issued at one moment: the end of the quiet hours depends on the zone only
    waits_in: dict[str | None, int | None] = {}
    cap = schedule.frequency_cap if history is not None else None
    window_ms = schedule.scanner_window_seconds * 1000
    held_out = holdout_of(schedule.booster_id, schedule.holdout_percent) if schedule.holdout_percent else None
    prefix = recipient_prefix(schedule.campaign_id)
    cut = len(prefix)
    rows = recipients.items(prefix, after)
    # the contacts' rows (and histories) read for READ_AHEAD recipients at once: a multi-get costs half
    # as much a row. A fact ingested while the walk runs arrived past the lag gate either way.
    while chunk := list(itertools.islice(rows, READ_AHEAD)):
        contact_keys = [key[cut:] for key, _ in chunk]
        raw_contacts = contacts.get_many(contact_keys)
        raw_histories = history.get_many(contact_keys) if cap is not None and history is not None else None
        for i, (_, value) in enumerate(chunk):
            contact_key = contact_keys[i]
            raw_contact = raw_contacts[i]
            recipient = unpack_recipient(value)
            contact = None if raw_contact is None else unpack_contact(raw_contact)
            decision = decide(
                recipient,
                contact,
                channel=schedule.channel,
                criterion=schedule.criterion,
                at=at,
                count_machine_opens=schedule.count_machine_opens,
                scanner_window_ms=window_ms,
                campaign_channel=schedule.campaign_channel,
            )
            if decision is None and cap is not None and raw_histories is not None:
                raw_history = raw_histories[i]
                sent = () if raw_history is None else unpack_history(raw_history)
                if capped(sent, schedule.booster_id, schedule.deadline, cap):
                    decision = Exclusion.FREQUENCY_CAP
                elif histories_read is not None:
                    histories_read[contact_key] = sent
            contact_id = contact_key.decode()
            if decision is None and held_out is not None and held_out(contact_id):
                decision = Exclusion.HOLDOUT  # after every exclusion, so drawn from the eligible
            marks = marks_of(recipient, decision, criterion=schedule.criterion, at=at, scanner_window_ms=window_ms)
            waits = None
            if decision is None and quiet_hours is not None:
                zone = time_zone_at(contact, schedule.deadline)
                if zone in waits_in:
                    waits = waits_in[zone]
                else:
                    waits = waits_in[zone] = deferred_until(
                        contact, quiet_hours, deadline=schedule.deadline, issued_at=issued_at
                    )
                if waits is not None:
                    marks = (*marks, Mark.DEFERRED)
            yield contact_id, decision, marks, waits


def recipient_states(recipients: PartitionStore, campaign_id: str) -> Iterator[RecipientState]:
    """The campaign's recipient rows in this partition, in key order, read as they are needed."""
    for _, value in recipients.items(recipient_prefix(campaign_id)):
        yield unpack_recipient(value)


def facts_of(
    recipients: PartitionStore, contacts: PartitionStore, campaign_id: str, contact_id: str
) -> tuple[RecipientState | None, ContactState | None]:
    raw_recipient = recipients.get(recipient_key(campaign_id, contact_id))
    raw_contact = contacts.get(contact_id.encode())
    return (
        None if raw_recipient is None else unpack_recipient(raw_recipient),
        None if raw_contact is None else unpack_contact(raw_contact),
    )


def delete_rows(recipients: PartitionStore, campaign_id: str, limit: int | None = None) -> int:
    """Delete a campaign's rows in this partition, the first `limit` of them when given; how many
    were deleted."""
    keys = [key for key, _ in itertools.islice(recipients.items(recipient_prefix(campaign_id)), limit)]
    recipients.write(dict.fromkeys(keys))
    return len(keys)
