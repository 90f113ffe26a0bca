"""Eligibility of one recipient at a deadline (R4-R6, R11), folding facts in any order."""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booster.processors.audience import all_opened
from booster.processors.events import (
    ContactBlocked,
    ContactDeleted,
    ContactEvent,
    ContactReachability,
    ContactUnsubscribed,
    MessageClicked,
    MessageDelivered,
    MessageEvent,
    MessageOpened,
    MessageSent,
    message_event_from_record,
)
from booster.processors.packing import (
    pack_contact,
    pack_recipient,
    pack_recipient_general,
    unpack_contact,
    unpack_recipient,
)
from booster.processors.recipients import (
    MAX_KEPT_CLICKS,
    ContactState,
    Exclusion,
    RecipientState,
    exclusion,
    explain,
    first_click,
    fold,
    is_recipient,
    is_unreachable,
)

C, K = "cmp", "contact"
T0 = 1_767_225_600_000
DEADLINE = T0 + 2 * 3600 * 1000


def one(
    messages: Sequence[MessageEvent], contacts: Sequence[ContactEvent] = ()
) -> tuple[RecipientState, ContactState | None]:
    """The state of the one recipient (C, K) these events fold into."""
    folded = fold([*messages, *contacts])
    return folded.recipients[(C, K)], folded.contacts.get(K)


def decide(
    messages: Sequence[MessageEvent],
    contacts: Sequence[ContactEvent] = (),
    *,
    channel: str = "EMAIL",
    criterion: str = "NOT_OPENED",
    count_machine_opens: bool = False,
    scanner_window_ms: int = 0,
) -> Exclusion | None:
    r, c = one(messages, contacts)
    return exclusion(
        r,
        c,
        channel=channel,  # type: ignore[arg-type]
        criterion=criterion,  # type: ignore[arg-type]
        deadline=DEADLINE,
        count_machine_opens=count_machine_opens,
        scanner_window_ms=scanner_window_ms,
    )


SENT = MessageSent(C, K, T0)
DELIVERED = MessageDelivered(C, K, False, T0 + 1000)


def test_delivered_and_silent_is_eligible() -> None:
    assert decide([SENT, DELIVERED]) is None


def test_only_a_sent_fact_makes_a_recipient() -> None:
    r, _ = one([DELIVERED, MessageOpened(C, K, T0 + 5)])
    assert not is_recipient(r)
    assert is_recipient(one([SENT])[0])


@pytest.mark.parametrize(
    ("messages", "contacts", "expected"),
    [
        ([SENT, DELIVERED, MessageClicked(C, K, T0 + 9)], [], Exclusion.CLICKED),
        ([SENT, DELIVERED, MessageOpened(C, K, T0 + 9)], [], Exclusion.OPENED),
        ([SENT, DELIVERED], [ContactDeleted(K, T0 + 9)], Exclusion.DELETED),
        ([SENT, DELIVERED], [ContactBlocked(K, True, T0 + 9)], Exclusion.BLOCKED),
        ([SENT, DELIVERED], [ContactUnsubscribed(K, "EMAIL", T0 + 9)], Exclusion.UNSUBSCRIBED),
        ([SENT, DELIVERED], [ContactUnsubscribed(K, None, T0 + 9)], Exclusion.UNSUBSCRIBED),
        ([SENT, DELIVERED], [ContactUnsubscribed(K, "SMS", T0 + 9)], None),  # another channel only
        ([SENT], [], Exclusion.WAITING),
        ([SENT, MessageDelivered(C, K, True, T0 + 9)], [], Exclusion.ERROR),
    ],
)
def test_each_exclusion_of_r6(
    messages: list[MessageEvent], contacts: list[ContactEvent], expected: Exclusion | None
) -> None:
    assert decide(messages, contacts) == expected


def test_r11_first_reason_in_order_counts() -> None:
    everything: list[ContactEvent] = [
        ContactDeleted(K, T0),
        ContactBlocked(K, True, T0),
        ContactUnsubscribed(K, None, T0),
    ]
    clicked: list[MessageEvent] = [
        SENT,
        MessageDelivered(C, K, True, T0 + 1),
        MessageClicked(C, K, T0 + 2),
        MessageOpened(C, K, T0 + 2),
    ]
    assert decide(clicked, everything) == Exclusion.DELETED
    assert decide(clicked, everything[1:]) == Exclusion.BLOCKED
    assert decide(clicked, everything[2:]) == Exclusion.UNSUBSCRIBED
    assert decide(clicked) == Exclusion.ERROR
    assert decide([SENT, MessageClicked(C, K, T0 + 2)]) == Exclusion.WAITING
    assert decide([SENT, DELIVERED, MessageClicked(C, K, T0 + 2), MessageOpened(C, K, T0 + 2)]) == Exclusion.CLICKED


def test_not_clicked_ignores_opens() -> None:
    opened: list[MessageEvent] = [SENT, DELIVERED, MessageOpened(C, K, T0 + 9)]
    assert decide(opened, criterion="NOT_CLICKED") is None
    assert decide([*opened, MessageClicked(C, K, T0 + 10)], criterion="NOT_CLICKED") == Exclusion.CLICKED


def test_unsubscribe_is_judged_on_the_boosters_channel() -> None:
    unsub_sms = [ContactUnsubscribed(K, "SMS", T0 + 9)]
    assert decide([SENT, DELIVERED], unsub_sms, channel="SMS") == Exclusion.UNSUBSCRIBED
    assert decide([SENT, DELIVERED], unsub_sms, channel="EMAIL") is None


def test_facts_after_the_deadline_do_not_count() -> None:
    late = DEADLINE + 1
    assert decide([SENT, DELIVERED, MessageClicked(C, K, late)]) is None
    assert decide([SENT, DELIVERED], [ContactDeleted(K, late)]) is None
    assert decide([SENT, DELIVERED], [ContactBlocked(K, True, late)]) is None
    assert decide([SENT, DELIVERED, MessageClicked(C, K, DEADLINE)]) == Exclusion.CLICKED  # at the deadline counts
    assert decide([SENT, MessageDelivered(C, K, False, late)]) == Exclusion.WAITING


def test_latest_block_fact_wins_whatever_the_arrival_order() -> None:
    block, unblock = ContactBlocked(K, True, T0 + 1), ContactBlocked(K, False, T0 + 2)
    assert decide([SENT, DELIVERED], [block, unblock]) is None
    assert decide([SENT, DELIVERED], [unblock, block]) is None
    reblock = ContactBlocked(K, True, T0 + 3)
    assert decide([SENT, DELIVERED], [reblock, unblock, block]) == Exclusion.BLOCKED
    # a tie between blocked and unblocked at the same moment counts as blocked
    assert (
        decide([SENT, DELIVERED], [ContactBlocked(K, False, T0 + 5), ContactBlocked(K, True, T0 + 5)])
        == Exclusion.BLOCKED
    )


def test_the_final_delivery_report_is_the_latest() -> None:
    assert decide([SENT, MessageDelivered(C, K, True, T0 + 1), MessageDelivered(C, K, False, T0 + 2)]) is None
    assert (
        decide([SENT, MessageDelivered(C, K, False, T0 + 1), MessageDelivered(C, K, True, T0 + 2)]) == Exclusion.ERROR
    )


def report(error: bool, at: int, message_id: str = "") -> MessageDelivered:
    return MessageDelivered(C, K, error, at, message_id)


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([report(False, T0 + 1), report(True, T0 + 2), report(False, T0 + 3)], None),  # DELIVERED, ERROR, DELIVERED
        ([report(True, T0 + 1), report(False, T0 + 2), report(True, T0 + 3)], Exclusion.ERROR),
        ([report(False, T0 + 1), report(True, T0 + 1)], Exclusion.ERROR),  # a tie is an error
        ([report(True, T0 + 1), report(False, DEADLINE + 1)], Exclusion.ERROR),  # a report after the deadline
    ],
)
def test_each_message_status_is_its_latest_report_at_or_before_the_deadline(
    reports: list[MessageDelivered], expected: Exclusion | None
) -> None:
    for order in itertools.permutations(reports):
        assert decide([SENT, *order]) == expected


SECOND = MessageSent(C, K, T0 + 60_000, "m-2")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # multipart: one part delivered, another failed: the contact received the campaign
        ([SENT, SECOND, report(False, T0 + 1), report(True, T0 + 2, "m-2")], None),
        # a resend after an error, not reported yet: Waiting
        ([SENT, SECOND, report(True, T0 + 1)], Exclusion.WAITING),
        # every message failed: Error
        ([SENT, SECOND, report(True, T0 + 1), report(True, T0 + 2, "m-2")], Exclusion.ERROR),
        # the second message's reports do not overrule the first's
        ([SENT, SECOND, report(False, T0 + 1), report(True, T0 + 5, "m-2")], None),
        (
            [SENT, SECOND, report(True, T0 + 1), report(False, T0 + 2, "m-2"), report(True, T0 + 3, "m-2")],
            Exclusion.ERROR,
        ),
    ],
)
def test_several_messages_of_one_recipient_combine(events: list[MessageEvent], expected: Exclusion | None) -> None:
    for order in itertools.permutations(events):
        assert decide(list(order)) == expected


def test_message_ids_come_from_the_records() -> None:
    sent = message_event_from_record(
        "message.sent", {"campaign_id": C, "contact_id": K, "message_id": "m-9", "channel": "SMS", "sent_at": T0}
    )
    delivered = message_event_from_record(
        "message.delivered",
        {"campaign_id": C, "contact_id": K, "message_id": "m-9", "status": "ERROR", "reported_at": T0 + 1},
    )
    assert sent == MessageSent(C, K, T0, "m-9") and delivered == MessageDelivered(C, K, True, T0 + 1, "m-9")


def test_folding_keeps_the_earliest_fact_and_ignores_duplicates() -> None:
    a = one([SENT, MessageOpened(C, K, T0 + 50), MessageOpened(C, K, T0 + 20), SENT])[0]
    b = one([MessageOpened(C, K, T0 + 20), SENT, MessageOpened(C, K, T0 + 50)])[0]
    assert a == b
    assert a.opened_at == T0 + 20


def test_state_packs_and_unpacks() -> None:
    r, c = one(
        [SENT, DELIVERED, MessageOpened(C, K, T0 + 3), MessageClicked(C, K, T0 + 4), MessageDelivered(C, K, True, T0 + 5)],
        [ContactDeleted(K, T0), ContactUnsubscribed(K, "PUSH", T0 + 1), ContactUnsubscribed(K, None, T0 + 2),
         ContactBlocked(K, True, T0 + 3), ContactBlocked(K, False, T0 + 4)],
    )  # fmt: skip
    assert unpack_recipient(pack_recipient(r)) == r
    assert c is not None and unpack_contact(pack_contact(c)) == c
    assert unpack_recipient(pack_recipient(RecipientState())) == RecipientState()
    assert len(pack_recipient(r)) <= 64  # one message, two reports: the bulk of the state stays small
    several = one([SENT, MessageSent(C, K, T0 + 1, "m-2"), MessageDelivered(C, K, True, T0 + 9, "m-2")])[0]
    assert unpack_recipient(pack_recipient(several)) == several


_TIMES = st.none() | st.integers(0, 2**62)


@st.composite
def recipient_states(draw: st.DrawFn) -> RecipientState:
    """Any row the folds can make: messages and reports of any number (reports may name messages
    without a `sent` fact), and the clicks kept after the first only when there is a first."""
    ids = draw(st.lists(st.text(min_size=1, max_size=12), max_size=4, unique=True))
    messages = tuple(sorted(draw(st.sets(st.sampled_from(ids)))) if ids else ())
    reports = tuple(
        sorted(draw(st.lists(st.tuples(st.sampled_from(ids), st.integers(0, 2**62), st.booleans()), max_size=4)))
        if ids
        else ()
    )
    clicked_at = draw(_TIMES)
    later = tuple(draw(st.lists(st.integers(0, 2**62), max_size=15))) if clicked_at is not None else ()
    return RecipientState(
        draw(_TIMES), draw(_TIMES), clicked_at, messages, reports, draw(_TIMES), draw(_TIMES), later,
        draw(_TIMES) if later else None,
    )  # fmt: skip


@given(recipient_states())
def test_any_recipient_row_reads_back_as_it_was_written(r: RecipientState) -> None:
    assert unpack_recipient(pack_recipient(r)) == r


@given(
    sent_at=_TIMES, opened_at=_TIMES, clicked_at=_TIMES, message=st.text(min_size=1, max_size=40),
    report=st.none() | st.tuples(st.integers(0, 2**62), st.booleans()),
)  # fmt: skip
def test_the_usual_row_reads_back_as_it_was_written(
    sent_at: int | None, opened_at: int | None, clicked_at: int | None, message: str, report: tuple[int, bool] | None
) -> None:
    """One message and at most one report, the rows of nearly every recipient (read without loops)."""
    reports = () if report is None else ((message, *report),)
    r = RecipientState(sent_at, opened_at, clicked_at, (message,), reports)
    assert unpack_recipient(pack_recipient(r)) == r


@given(recipient_states())
def test_the_usual_rows_fast_path_writes_the_general_layouts_bytes(r: RecipientState) -> None:
    assert pack_recipient(r) == pack_recipient_general(r)
    usual = RecipientState(r.sent_at, r.opened_at, r.clicked_at, r.messages[:1], r.reports)
    if usual.messages:
        usual = replace(usual, reports=tuple((usual.messages[0], at, e) for _, at, e in r.reports))
    assert pack_recipient(usual) == pack_recipient_general(usual)


MACHINE_OPEN = MessageOpened(C, K, T0 + 60_000, machine=True)  # Apple Mail Privacy Protection and the like


def test_a_machine_open_is_kept_apart_and_is_not_an_open() -> None:
    r, _ = one([SENT, DELIVERED, MACHINE_OPEN])
    assert (r.opened_at, r.machine_opened_at) == (None, T0 + 60_000)
    assert decide([SENT, DELIVERED, MACHINE_OPEN]) is None  # boosted: the person never opened it
    # the person's own open still excludes, whatever the machine did before or after
    assert decide([SENT, DELIVERED, MACHINE_OPEN, MessageOpened(C, K, T0 + 90_000)]) is Exclusion.OPENED
    assert (
        all_opened([r], DEADLINE, count_machine_opens=False) is False
    )  # R7: a machine open does not make a 100 % open rate
    reason, included, why = explain(
        r, None, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE, count_machine_opens=False
    )
    assert (reason, included) == (None, True) and "machine open" in why


def test_a_link_scanners_click_is_kept_apart_and_never_excludes() -> None:
    scanner = MessageClicked(C, K, T0 + 2000, bot=True)
    r, _ = one([SENT, DELIVERED, scanner])
    assert (r.clicked_at, r.bot_clicked_at) == (None, T0 + 2000)
    assert unpack_recipient(pack_recipient(r)) == r
    assert decide([SENT, DELIVERED, scanner]) is None
    assert decide([SENT, DELIVERED, scanner], criterion="NOT_CLICKED") is None
    # the scanner's click never hides the person's own, earlier or later
    assert decide([SENT, DELIVERED, scanner, MessageClicked(C, K, T0 + 90_000)]) is Exclusion.CLICKED
    assert decide([SENT, DELIVERED, MessageClicked(C, K, T0 + 1000), scanner]) is Exclusion.CLICKED
    _, included, why = explain(
        r, None, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE, count_machine_opens=False
    )
    assert included and "link scanner" in why


WINDOW_MS = 60_000  # the EMAIL default


def clicked(after_delivery_ms: int) -> MessageClicked:
    return MessageClicked(C, K, DELIVERED.reported_at + after_delivery_ms)


def test_a_click_within_the_scanner_window_after_delivery_is_a_scanners() -> None:
    for criterion in ("NOT_OPENED", "NOT_CLICKED"):
        scanned: list[MessageEvent] = [SENT, DELIVERED, clicked(2_000)]
        assert decide(scanned, criterion=criterion, scanner_window_ms=WINDOW_MS) is None
        assert decide(scanned, criterion=criterion, scanner_window_ms=0) is Exclusion.CLICKED  # no window: a click
        at_the_edge: list[MessageEvent] = [SENT, DELIVERED, clicked(WINDOW_MS)]
        assert decide(at_the_edge, criterion=criterion, scanner_window_ms=WINDOW_MS) is None
        just_after: list[MessageEvent] = [SENT, DELIVERED, clicked(WINDOW_MS + 1)]
        assert decide(just_after, criterion=criterion, scanner_window_ms=WINDOW_MS) is Exclusion.CLICKED
    # a click before the delivery report came (reports lag) is within the window too
    early: list[MessageEvent] = [SENT, MessageClicked(C, K, T0 + 500), DELIVERED]
    assert decide(early, scanner_window_ms=WINDOW_MS) is None


def test_a_scanners_click_never_hides_the_persons_later_click() -> None:
    person = clicked(WINDOW_MS + 30_000)
    burst = [clicked(ms) for ms in range(0, 10_000, 125)]  # a gateway clicking 80 links over 10 s
    orders: list[list[MessageEvent]] = [[SENT, DELIVERED, *burst, person], [person, *reversed(burst), DELIVERED, SENT]]
    for events in orders:
        assert decide(events, scanner_window_ms=WINDOW_MS) is Exclusion.CLICKED
        r, _ = one(events)
        assert unpack_recipient(pack_recipient(r)) == r
        _, _, why = explain(
            r, None, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE,
            count_machine_opens=False, scanner_window_ms=WINDOW_MS,
        )  # fmt: skip
        assert "clicked the original message at 2026-01-01T00:01:31.000Z (after a link scanner's)" in why
    # a scanner clicking in more seconds than are kept: the latest click is kept too
    slow_scanner = [clicked(ms) for ms in range(0, MAX_KEPT_CLICKS * 2000, 2000)]
    assert decide([SENT, DELIVERED, *slow_scanner, person], scanner_window_ms=WINDOW_MS) is Exclusion.CLICKED
    r, _ = one([SENT, DELIVERED, person, *slow_scanner])
    assert r.last_click == person.clicked_at and unpack_recipient(pack_recipient(r)) == r
    # the limit: then a person's click is lost if a later one came after the deadline
    after_deadline = MessageClicked(C, K, DEADLINE + 1)
    assert decide([SENT, DELIVERED, *slow_scanner, person, after_deadline], scanner_window_ms=WINDOW_MS) is None
    r, _ = one([SENT, DELIVERED, *burst])
    _, included, why = explain(
        r, None, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE,
        count_machine_opens=False, scanner_window_ms=WINDOW_MS,
    )  # fmt: skip
    assert included and "was a link scanner's, within 60 s of delivery" in why


@settings(max_examples=200, deadline=None)
@given(
    clicks=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=40),
    window_ms=st.sampled_from([0, 1_000, 5_000, 20_000]),
    seed=st.randoms(use_true_random=False),
)
def test_the_kept_clicks_decide_as_every_click_would_in_any_order(
    clicks: list[int], window_ms: int, seed: random.Random
) -> None:
    """The first MAX_KEPT_CLICKS seconds of clicks decide as all of them (at one-second precision)."""
    events: list[MessageEvent] = [SENT, DELIVERED, *(clicked(ms) for ms in clicks), clicked(clicks[0])]
    shuffled = list(events)
    seed.shuffle(shuffled)
    r, _ = one(events)
    assert one(shuffled)[0] == r  # any order, any repeat (G5)
    assert len(r.clicks) <= MAX_KEPT_CLICKS + 1 and r.clicked_at == DELIVERED.reported_at + min(clicks)
    assert unpack_recipient(pack_recipient(r)) == r
    times = [DELIVERED.reported_at + ms for ms in clicks]
    earliest_of_second: dict[int, int] = {}
    for t in sorted(times, reverse=True):
        earliest_of_second[t // 1000] = t
    threshold = DELIVERED.reported_at + window_ms
    person = [t for t in times if window_ms == 0 or t > threshold]
    kept = first_click(r, DELIVERED.reported_at, window_ms)
    if not person:
        assert kept is None
    elif len(earliest_of_second) <= MAX_KEPT_CLICKS:
        first = min(person)
        if earliest_of_second[first // 1000] == first:
            assert kept == first
        else:  # a scanner's click in the same second as the window's end: the next second's counts
            assert kept == min((t for t in earliest_of_second.values() if t > threshold), default=None)
    else:  # more seconds than are kept: the latest click is, and a person's found is one of theirs
        assert r.last_click == max(times)
        assert kept is not None and kept in person


def unreachable(at: int, reachable: bool = False, channel: str = "SMS") -> ContactReachability:
    return ContactReachability(K, channel, reachable, at)  # type: ignore[arg-type]


def decide_sms_after_email(contacts: Sequence[ContactEvent], *, at: int = DEADLINE) -> Exclusion | None:
    r, c = one([SENT, DELIVERED], contacts)
    return exclusion(
        r, c, channel="SMS", criterion="NOT_OPENED", deadline=at, count_machine_opens=False, campaign_channel="EMAIL"
    )


def test_a_booster_on_another_channel_excludes_the_contacts_it_cannot_reach_there() -> None:
    assert decide_sms_after_email([unreachable(T0)]) is Exclusion.UNREACHABLE
    assert decide_sms_after_email([]) is None  # no fact: reachable
    assert decide_sms_after_email([unreachable(T0, channel="PUSH")]) is None  # another channel
    assert decide_sms_after_email([unreachable(T0), unreachable(T0 + 5, True)]) is None  # latest wins
    assert decide_sms_after_email([unreachable(T0 + 5), unreachable(T0, True)]) is Exclusion.UNREACHABLE
    assert decide_sms_after_email([unreachable(T0, True), unreachable(T0)]) is Exclusion.UNREACHABLE  # a tie
    assert decide_sms_after_email([unreachable(DEADLINE + 1)]) is None  # after the deadline (R5)
    # R11's order: after UNSUBSCRIBED, before the message's own facts
    assert decide_sms_after_email([unreachable(T0), ContactUnsubscribed(K, None, T0)]) is Exclusion.UNSUBSCRIBED
    r, c = one([SENT, MessageDelivered(C, K, True, T0 + 9)], [unreachable(T0)])
    assert (
        exclusion(
            r,
            c,
            channel="SMS",
            criterion="NOT_OPENED",
            deadline=DEADLINE,
            count_machine_opens=False,
            campaign_channel="EMAIL",
        )
        is Exclusion.UNREACHABLE
    )


def test_reachability_is_not_asked_on_the_campaigns_own_channel_or_of_older_schedules() -> None:
    r, c = one([SENT, DELIVERED], [unreachable(T0)])
    for campaign_channel in ("SMS", None):
        assert exclusion(
            r, c, channel="SMS", criterion="NOT_OPENED", deadline=DEADLINE, count_machine_opens=False,
            campaign_channel=campaign_channel,
        ) is None  # fmt: skip


def test_reachability_folds_in_any_order_packs_and_explains() -> None:
    facts = [unreachable(T0 + 1), unreachable(T0 + 2, True), unreachable(T0 + 3), unreachable(T0 + 1, channel="PUSH")]
    states = {one([SENT], order)[1] for order in itertools.permutations([*facts, facts[0]])}
    assert len(states) == 1
    c = states.pop()
    assert c is not None and unpack_contact(pack_contact(c)) == c
    assert unpack_contact(pack_contact(ContactState(blocks=((T0, True),)))) == ContactState(blocks=((T0, True),))
    r, _ = one([SENT, DELIVERED])
    reason, included, why = explain(
        r, c, campaign_id=C, channel="SMS", criterion="NOT_OPENED", at=DEADLINE, count_machine_opens=False,
        campaign_channel="EMAIL",
    )  # fmt: skip
    assert (reason, included) == (Exclusion.UNREACHABLE, False)
    assert "cannot be reached on SMS since 2026-01-01T00:00:00.003Z (the campaign went out on EMAIL)" in why


def test_a_contact_with_many_reachability_changes_keeps_the_latest_of_each_channel() -> None:
    flips = [unreachable(T0 + i, reachable=i % 2 == 1) for i in range(300)]
    c = one([SENT], flips)[1]
    assert c is not None and len(c.reachability) == 300
    packed = unpack_contact(pack_contact(c))
    assert len(packed.reachability) <= 255 and packed.reachability[-1] == c.reachability[-1]
    for at in (T0 + 299, T0 + 298, DEADLINE):
        assert is_unreachable(packed, "SMS", at) == is_unreachable(c, "SMS", at)


def test_a_booster_that_counts_machine_opens_excludes_them_as_opens() -> None:
    r, _ = one([SENT, DELIVERED, MACHINE_OPEN])
    assert decide([SENT, DELIVERED, MACHINE_OPEN], count_machine_opens=True) is Exclusion.OPENED
    assert decide([SENT, DELIVERED, MACHINE_OPEN], criterion="NOT_CLICKED", count_machine_opens=True) is None
    assert all_opened([r], DEADLINE, count_machine_opens=True) is True
    assert all_opened([r], MACHINE_OPEN.opened_at - 1, count_machine_opens=True) is False  # after the deadline
    reason, _, why = explain(
        r, None, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE, count_machine_opens=True
    )
    assert reason is Exclusion.OPENED and "a machine open, which this booster counts" in why


def test_a_machine_open_packs_and_other_rows_keep_their_size() -> None:
    r, _ = one([SENT, DELIVERED, MACHINE_OPEN, MessageOpened(C, K, T0 + 5)])
    assert unpack_recipient(pack_recipient(r)) == r
    human_only = one([SENT, DELIVERED, MessageOpened(C, K, T0 + 5)])[0]
    assert len(pack_recipient(r)) == len(pack_recipient(human_only)) + 16  # a machine open and a bot click
    assert pack_recipient(human_only)[0] == 2  # the layout older workers read


def test_rows_of_the_first_layout_still_decide_as_they_did() -> None:
    """40-byte rows (earliest DELIVERED and earliest ERROR, no message ids) stay in older tables and
    changelogs; they read as one message with those reports."""

    def v1(sent: int, delivered: int, error: int) -> bytes:
        return struct.pack("<5q", sent, delivered, error, -1, -1)

    delivered_then_error = unpack_recipient(v1(T0, T0 + 1, T0 + 2))
    assert exclusion(
        delivered_then_error,
        None,
        channel="EMAIL",
        criterion="NOT_OPENED",
        deadline=DEADLINE,
        count_machine_opens=False,
    ) == (Exclusion.ERROR)
    error_then_delivered = unpack_recipient(v1(T0, T0 + 2, T0 + 1))
    assert (
        exclusion(
            error_then_delivered,
            None,
            channel="EMAIL",
            criterion="NOT_OPENED",
            deadline=DEADLINE,
            count_machine_opens=False,
        )
        is None
    )
    waiting = unpack_recipient(v1(T0, -1, -1))
    assert (
        exclusion(waiting, None, channel="EMAIL", criterion="NOT_OPENED", deadline=DEADLINE, count_machine_opens=False)
        == Exclusion.WAITING
    )
    assert pack_recipient(waiting) != v1(T0, -1, -1) and len(pack_recipient(waiting)) != 40


@pytest.mark.parametrize(
    ("messages", "contacts", "words"),
    [
        ([SENT, DELIVERED], [], "eligible"),
        ([SENT, DELIVERED], [ContactDeleted(K, T0 + 9)], "DELETED: deleted at 2026-01-01T00:00:00.009Z"),
        ([SENT, DELIVERED], [ContactBlocked(K, True, T0 + 9)], "BLOCKED: blocked since"),
        ([SENT, DELIVERED], [ContactUnsubscribed(K, None, T0 + 9)], "unsubscribed from every channel"),
        ([SENT, DELIVERED], [ContactUnsubscribed(K, "EMAIL", T0 + 9)], "unsubscribed from EMAIL"),
        ([SENT, MessageDelivered(C, K, True, T0 + 9)], [], "ended in Error"),
        ([SENT], [], "Waiting"),
        ([SENT, DELIVERED, MessageClicked(C, K, T0 + 9)], [], "CLICKED: clicked"),
        ([SENT, DELIVERED, MessageOpened(C, K, T0 + 9)], [], "OPENED: opened"),
        ([DELIVERED], [], "not a recipient"),
    ],
)
def test_explain_says_why(messages: list[MessageEvent], contacts: list[ContactEvent], words: str) -> None:
    r, c = one(messages, contacts)
    reason, included, text = explain(
        r, c, campaign_id=C, channel="EMAIL", criterion="NOT_OPENED", at=DEADLINE, count_machine_opens=False
    )
    assert words in text
    assert included == (words == "eligible")
    assert (reason is None) == (words in ("eligible", "not a recipient"))
