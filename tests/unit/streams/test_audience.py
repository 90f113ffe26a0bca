"""The walk behind the fan-out and the audience preview: every row decided from its own recipient,
contact and history rows, however many rows the walk reads ahead."""

from __future__ import annotations

from booster.processors.audience import decide
from booster.processors.boosters import Schedule
from booster.processors.frequency import FrequencyCap, capped, pack_history
from booster.processors.packing import pack_contact, pack_recipient
from booster.processors.recipients import ContactState, Exclusion, RecipientState
from booster.streams.audience import READ_AHEAD, decide_rows
from booster.streams.store import MemoryTable, recipient_key

T0 = 1_800_000_000_000
DAY = 86_400_000


def test_each_row_is_decided_with_its_own_contact_and_history_across_read_ahead_chunks() -> None:
    cap = FrequencyCap(max_boosters=1, window_ms=7 * DAY)
    schedule = Schedule(
        campaign_id="c", booster_id="b", booster_name="n", account_id="a", channel="SMS",
        criterion="NOT_OPENED", content_ref="r", deadline=T0, frequency_cap=cap,
    )  # fmt: skip
    recipients, contacts, history = MemoryTable(), MemoryTable(), MemoryTable()
    n = 2 * READ_AHEAD + 37
    expected: dict[str, object] = {}
    for i in range(n):
        contact_id = f"k{i:05d}"
        recipient = RecipientState(
            sent_at=T0 - DAY, messages=("m",), reports=(("m", T0 - DAY + 5, False),),
            opened_at=T0 - 1 if i % 5 == 0 else None,
        )  # fmt: skip
        recipients.partition(0).write({recipient_key("c", contact_id): pack_recipient(recipient)})
        recipients.partition(0).write({recipient_key("other", contact_id): pack_recipient(RecipientState())})
        contact = ContactState(deleted_at=T0 - 2) if i % 7 == 0 else None
        if contact is not None:
            contacts.partition(0).write({contact_id.encode(): pack_contact(contact)})
        sent = ((T0 - DAY, "earlier"),) if i % 3 == 0 else ()
        if sent:
            history.partition(0).write({contact_id.encode(): pack_history(sent)})
        decision = decide(recipient, contact, channel="SMS", criterion="NOT_OPENED", at=T0, count_machine_opens=False)
        if decision is None and capped(sent, "b", T0, cap):
            decision = Exclusion.FREQUENCY_CAP
        expected[contact_id] = decision
    read: dict[bytes, object] = {}
    rows = decide_rows(
        recipients.partition(0), contacts.partition(0), schedule, T0,
        issued_at=T0, history=history.partition(0), histories_read=read,  # type: ignore[arg-type]
    )  # fmt: skip
    decided = {contact_id: decision for contact_id, decision, _, _ in rows}
    assert decided == expected
    assert {Exclusion.FREQUENCY_CAP, Exclusion.DELETED, None} <= set(decided.values())
    # the histories read are those of the contacts the cap kept, and only theirs
    assert set(read) == {k.encode() for k, d in expected.items() if d is None}
