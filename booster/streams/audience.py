"""Walking one partition's recipients of a booster and deciding each one, for the fan-out and for
the operators' preview (`booster audience`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from booster.processors.boosters import Schedule
from booster.processors.packing import unpack_contact, unpack_recipient
from booster.processors.recipients import ContactState, Exclusion, RecipientState, exclusion, is_recipient
from booster.streams.tables import partition_get, partition_items, recipient_key, recipient_prefix

NOT_A_RECIPIENT = "NOT_A_RECIPIENT"  # a row of facts without a `sent` fact (R4)

Decision = Exclusion | None | str


def decide_rows(
    recipients: Any, contacts: Any, partition: int, schedule: Schedule, at: int, after: bytes | None = None
) -> Iterator[tuple[str, Decision]]:
    """(contact_id, decision) for every row of the booster's campaign in this partition, in key order.

    The decision is None for an eligible recipient, the Exclusion that applies at `at`, or
    NOT_A_RECIPIENT.
    """
    prefix = recipient_prefix(schedule.campaign_id)
    cut = len(prefix)
    for key, value in partition_items(recipients, partition, prefix, after):
        contact_id = key[cut:].decode()
        recipient = unpack_recipient(value)
        if not is_recipient(recipient):
            yield contact_id, NOT_A_RECIPIENT
            continue
        raw_contact = partition_get(contacts, partition, key[cut:])
        contact = unpack_contact(raw_contact) if raw_contact is not None else None
        yield (
            contact_id,
            exclusion(recipient, contact, channel=schedule.channel, criterion=schedule.criterion, deadline=at),
        )


def facts_of(
    recipients: Any, contacts: Any, partition: int, campaign_id: str, contact_id: str
) -> tuple[RecipientState | None, ContactState | None]:
    raw_recipient = partition_get(recipients, partition, recipient_key(campaign_id, contact_id))
    raw_contact = partition_get(contacts, partition, contact_id.encode())
    return (
        None if raw_recipient is None else unpack_recipient(raw_recipient),
        None if raw_contact is None else unpack_contact(raw_contact),
    )
