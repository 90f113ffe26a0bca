"""A partition's campaign state folded from control events; summaries folded into one report; the
launch steps; the tally shared by the fan-out and the preview."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booster.processors.audience import (
    NOT_A_RECIPIENT,
    Decision,
    Mark,
    Tally,
    all_opened,
    decide,
    marks_of,
    tally_of,
)
from booster.processors.boosters import (
    Accepted,
    AwaitAccount,
    Duplicate,
    NoBooster,
    ReasonCode,
    Schedule,
    booster_id_of,
    launch_status,
    launch_status_of,
    on_account,
    on_launch,
)
from booster.processors.campaigns import (
    CampaignEvent,
    CampaignPartition,
    ChannelAccess,
    ControlEvent,
    Counted,
    Decided,
    LiveBooster,
    NoBoosterFor,
    Scheduled,
    Tick,
    accepts_events,
    access_changes,
    broadcast_again,
    campaign_of,
    cancelled_by,
    channel_revoked,
    decide_booster,
    evolve_campaign,
    evolve_campaign_fired,
    refuses_cancel,
    stuck,
)
from booster.processors.events import AccountChannels, BoosterCancelled, BoosterSettings, CampaignLaunched
from booster.processors.packing import (
    pack_campaign,
    pack_launch_decision,
    pack_summaries,
    summary_from_dict,
    summary_to_dict,
    unpack_campaign,
    unpack_launch_decision,
    unpack_summaries,
)
from booster.processors.quiet import QuietHours
from booster.processors.recipients import Exclusion, RecipientState
from booster.processors.summaries import PartitionSummary, SummaryState, evolve_summaries, final_report

T0 = 1_767_225_600_000
SCHEDULE = Schedule("cmp", booster_id_of("cmp"), "Booster for X", "acct", "EMAIL", "NOT_OPENED", "t", T0 + 7_200_000)

EVENTS: list[CampaignEvent] = [
    Scheduled(SCHEDULE, T0),
    BoosterCancelled("cmp", T0 + 10),
    BoosterCancelled("cmp", T0 + 5),
    Scheduled(SCHEDULE, T0 + 1),
    Decided("cmp", T0 + 20, T0 + 5),
]


@given(st.permutations(EVENTS))
def test_control_events_fold_the_same_in_any_order(events: list[CampaignEvent]) -> None:
    state = None
    for event in events:
        state = evolve_campaign(state, event)
    assert state == CampaignPartition(schedule=SCHEDULE, cancelled_at=T0 + 5, decision=Decided("cmp", T0 + 20, T0 + 5))


def test_the_first_decision_counts_and_a_cancel_after_it_is_refused() -> None:
    state = evolve_campaign(None, Scheduled(SCHEDULE, T0))
    assert decide_booster(state, "cmp", T0 + 1) == Decided("cmp", T0 + 1, None, schedule=SCHEDULE)
    sent = evolve_campaign(state, Decided("cmp", T0 + 1, None))
    assert evolve_campaign(sent, Decided("cmp", T0 + 2, T0)) == sent  # a retried tick's: ignored
    in_time = BoosterCancelled("cmp", SCHEDULE.deadline - 1)
    assert refuses_cancel(sent, in_time) and cancelled_by(evolve_campaign(sent, in_time)) is None
    called_off = evolve_campaign(state, in_time)
    assert decide_booster(called_off, "cmp", T0 + 1).cancelled_at == in_time.cancelled_at
    # a booster called off already: a later cancel, even a late one, has nothing to refuse
    assert not refuses_cancel(called_off, BoosterCancelled("cmp", SCHEDULE.deadline + 1))


def test_no_booster_and_fired_stop_accepting_events() -> None:
    assert accepts_events(None) and accepts_events(evolve_campaign(None, Scheduled(SCHEDULE, T0)))
    none = evolve_campaign(None, NoBoosterFor("cmp", T0 + 3))
    assert none == CampaignPartition(no_booster=True, first_seen_at=T0 + 3) and not accepts_events(none)
    earlier = evolve_campaign(CampaignPartition(first_seen_at=T0), NoBoosterFor("cmp", T0 + 3))
    assert earlier.first_seen_at == T0  # the rows appeared earlier: they age from then
    fired = evolve_campaign_fired(evolve_campaign(None, Scheduled(SCHEDULE, T0)))
    assert fired.fired and fired.schedule == SCHEDULE and not accepts_events(fired)


def summary(p: int, audience: int, partitions: int = 3) -> PartitionSummary:
    return PartitionSummary("cmp", p, partitions, SCHEDULE, None, Tally(audience, {"OPENED": 1}))


def test_summaries_fold_into_one_report_once() -> None:
    state, report = evolve_summaries(None, summary(0, 2))
    assert report is None and set(state.parts) == {0}
    state, report = evolve_summaries(state, summary(0, 99))  # a replayed summary counts once
    assert report is None and state.parts[0].tally.audience == 2
    state, report = evolve_summaries(state, summary(1, 0))
    state, report = evolve_summaries(state, summary(2, 3))
    assert report is not None and report.status == "SENT" and report.audience == 5 and report.excluded["OPENED"] == 3
    assert state == SummaryState(done=True, deadline=SCHEDULE.deadline)  # dated for its retention
    again, late = evolve_summaries(state, summary(1, 0))
    assert late is None and again == state


def test_summary_state_packs_in_the_shape_kept_so_far() -> None:
    state, _ = evolve_summaries(None, summary(1, 4))
    raw = pack_summaries(state)
    assert raw.startswith(b'{"done":false,"parts":{"1":{"campaign_id":"cmp"')
    assert unpack_summaries(raw) == state
    assert unpack_summaries(pack_summaries(SummaryState(done=True))) == SummaryState(done=True)


def launch(campaign_id: str = "cmp", booster: bool = True) -> CampaignLaunched:
    settings = BoosterSettings(7200, None, None, "t") if booster else None
    return CampaignLaunched(campaign_id, "acct", "X", "EMAIL", 10, T0, settings)


ACCOUNT = AccountChannels("acct", frozenset({"EMAIL"}), T0)


def test_launch_steps() -> None:
    assert on_launch("SCHEDULED", ACCOUNT, launch()) == Duplicate("cmp", "SCHEDULED")
    assert on_launch(None, None, launch()) == AwaitAccount(launch())
    decided = on_launch(None, ACCOUNT, launch())
    assert isinstance(decided, Accepted) and launch_status(decided) == "SCHEDULED"
    assert launch_status(NoBooster("cmp", T0)) == "NONE"
    assert launch_status_of("SCHEDULED") == "SCHEDULED"
    with pytest.raises(ValueError, match="not a launch status"):
        launch_status_of("SENT")
    newer = AccountChannels("acct", frozenset({"SMS"}), T0 + 1)
    account, decisions = on_account(ACCOUNT, newer, [launch("a"), launch("b", booster=False)])
    assert account == newer
    assert [launch_status(d) for d in decisions] == ["REJECTED", "NONE"]  # EMAIL is no longer enabled


def test_the_tally_counts_recipients_only() -> None:
    delivered = RecipientState(sent_at=T0, messages=("m",), reports=(("m", T0 + 1, False),))
    decisions = [
        decide(delivered, None, channel="EMAIL", criterion="NOT_OPENED", at=T0 + 5, count_machine_opens=False),
        decide(
            RecipientState(opened_at=T0),
            None,
            channel="EMAIL",
            criterion="NOT_OPENED",
            at=T0 + 5,
            count_machine_opens=False,
        ),
        decide(
            RecipientState(sent_at=T0, messages=("m",)),
            None,
            channel="EMAIL",
            criterion="NOT_OPENED",
            at=T0 + 5,
            count_machine_opens=False,
        ),
    ]
    assert decisions == [None, NOT_A_RECIPIENT, Exclusion.WAITING]
    tally = tally_of(decisions)
    assert tally == Tally(1, {"WAITING": 1}) and tally.recipients == 2


_DECISIONS = st.sampled_from([None, NOT_A_RECIPIENT, *Exclusion])
_MARKS = st.lists(st.sampled_from(list(Mark)), max_size=3, unique=True).map(tuple)


@given(start=st.lists(st.tuples(_DECISIONS, _MARKS)), rows=st.lists(st.tuples(_DECISIONS, _MARKS)))
def test_counting_a_chunk_in_bulk_is_counting_it_row_by_row(
    start: list[tuple[Decision, tuple[Mark, ...]]], rows: list[tuple[Decision, tuple[Mark, ...]]]
) -> None:
    before = Tally()
    for decision, marks in start:
        before = before.count(decision, marks=marks)
    one_by_one = before
    counts: dict[tuple[Decision, tuple[Mark, ...]], int] = {}
    for decision, marks in rows:
        one_by_one = one_by_one.count(decision, marks=marks)
        counts[(decision, marks)] = counts.get((decision, marks), 0) + 1
    assert before.count_all(counts) == one_by_one


def test_every_control_event_names_its_campaign() -> None:
    events: list[ControlEvent] = [
        Scheduled(SCHEDULE, T0),
        BoosterCancelled("cmp", T0),
        NoBoosterFor("cmp", T0),
        Tick("cmp", T0),
        Decided("cmp", T0, None),
    ]
    assert {campaign_of(e) for e in events} == {"cmp"}


def test_r7_all_opened_counts_recipients_only_and_stops_at_the_first_who_did_not() -> None:
    deadline = T0 + 100
    opened, late, never = (RecipientState(sent_at=T0, opened_at=at) for at in (T0 + 1, deadline + 1, None))
    assert all_opened([], deadline, count_machine_opens=False) is None
    assert (
        all_opened([RecipientState(opened_at=T0)], deadline, count_machine_opens=False) is None
    )  # no `sent` fact: not a recipient
    assert all_opened([opened, opened], deadline, count_machine_opens=False) is True
    assert (
        all_opened([opened, late], deadline, count_machine_opens=False) is False
    )  # opened after the deadline does not count (R5)

    def rows() -> Iterator[RecipientState]:
        yield never
        raise AssertionError("read past the first recipient who did not open")

    assert all_opened(rows(), deadline, count_machine_opens=False) is False


def test_r7_a_full_open_rate_calls_the_booster_off_whatever_the_criterion() -> None:
    state = evolve_campaign(None, Scheduled(replace(SCHEDULE, criterion="NOT_CLICKED"), T0))
    cases: list[tuple[dict[int, bool | None], ReasonCode | None]] = [
        ({0: True, 1: None}, ReasonCode.FULL_OPEN_RATE),
        ({0: True, 1: False}, None),
        ({0: None, 1: None}, None),  # no recipient at all: the audience is empty, not fully opened
    ]
    for counts, reason in cases:
        counted = state
        for p, v in counts.items():
            counted = evolve_campaign(counted, Counted("cmp", T0, p, v))
        assert decide_booster(counted, "cmp", T0 + 9).reason is reason
    # a cancel in time wins over the open rate; the first count of a partition counts
    both = evolve_campaign(evolve_campaign(state, Counted("cmp", T0, 0, True)), BoosterCancelled("cmp", T0))
    assert decide_booster(both, "cmp", T0).reason is ReasonCode.CANCEL_REQUESTED
    assert evolve_campaign(both, Counted("cmp", T0 + 1, 0, False)).counts == {0: True}


def test_a_called_off_booster_reports_its_reason_and_old_summaries_read_as_cancel_requested() -> None:
    def part(p: int, reason: ReasonCode | None, cancelled_at: int | None = None) -> PartitionSummary:
        return PartitionSummary("cmp", p, 2, SCHEDULE, cancelled_at, Tally(), reason)

    full = final_report([part(0, ReasonCode.FULL_OPEN_RATE), part(1, ReasonCode.FULL_OPEN_RATE)])
    assert full is not None and (full.status, full.reason_code) == ("CANCELLED", ReasonCode.FULL_OPEN_RATE)
    assert full.reason is not None and "100% open rate" in full.reason
    old = final_report([part(0, None, T0), part(1, None, T0)])
    assert old is not None and old.reason_code is ReasonCode.CANCEL_REQUESTED
    record = summary_to_dict(part(0, ReasonCode.FULL_OPEN_RATE))
    assert summary_from_dict(record) == part(0, ReasonCode.FULL_OPEN_RATE)
    assert summary_from_dict({k: v for k, v in record.items() if k != "cancel_reason"}).cancel_reason is None


def test_r15_the_channels_access_at_the_deadline_decides_whatever_the_order_of_changes() -> None:
    state = evolve_campaign(None, Scheduled(SCHEDULE, T0))
    d = SCHEDULE.deadline
    changes = [
        ChannelAccess("cmp", d - 10, False),
        ChannelAccess("cmp", d - 5, True),
        ChannelAccess("cmp", d + 1, False),
    ]
    for order in (changes, changes[::-1], [changes[1], changes[0], changes[2], changes[0]]):
        folded = state
        for change in order:
            folded = evolve_campaign(folded, change)
        assert not channel_revoked(folded)  # given back before the deadline; revoked only after it
        assert decide_booster(folded, "cmp", T0).reason is None
    revoked = evolve_campaign(state, ChannelAccess("cmp", d, False))
    assert channel_revoked(revoked) and decide_booster(revoked, "cmp", T0).reason is ReasonCode.CHANNEL_REVOKED
    tie = evolve_campaign(revoked, ChannelAccess("cmp", d, True))
    assert channel_revoked(tie)  # at a tie, revoked
    # a cancel in time comes first
    cancelled = evolve_campaign(revoked, BoosterCancelled("cmp", T0))
    assert decide_booster(cancelled, "cmp", T0).reason is ReasonCode.CANCEL_REQUESTED


def test_g5_only_the_winning_launch_s_account_s_channels_count() -> None:
    """Two accounts launched the same campaign id; the booster is the winner's (SCHEDULE's account). The
    loser's account losing the channel must not cancel it, in any order; its own account's must."""
    d = SCHEDULE.deadline
    winner = SCHEDULE.account_id
    other = ChannelAccess("cmp", d - 10, False, "someone-else")
    mine = ChannelAccess("cmp", d - 5, False, winner)
    orders: list[list[Scheduled | ChannelAccess]] = [[Scheduled(SCHEDULE, T0), other], [other, Scheduled(SCHEDULE, T0)]]
    for events in orders:
        folded = None
        for event in events:
            folded = evolve_campaign(folded, event)
        assert folded is not None and not channel_revoked(folded)
        assert channel_revoked(evolve_campaign(folded, mine))
    # a change from before the account was carried counts, as it always did
    old = evolve_campaign(evolve_campaign(None, Scheduled(SCHEDULE, T0)), ChannelAccess("cmp", d - 1, False))
    assert channel_revoked(old)


def test_a_campaign_state_kept_before_changes_named_their_account_still_reads() -> None:
    state = evolve_campaign(
        evolve_campaign(None, Scheduled(SCHEDULE, T0)), ChannelAccess("cmp", SCHEDULE.deadline - 1, False, "a")
    )
    import json

    assert unpack_campaign(pack_campaign(state), "cmp") == state
    packed = json.loads(pack_campaign(state))
    packed["access"] = [change[:2] for change in packed["access"]]  # as a worker before this change wrote it
    assert unpack_campaign(json.dumps(packed).encode(), "cmp").access == ((SCHEDULE.deadline - 1, False, ""),)


def test_an_accounts_booster_is_outlived_exactly_when_its_campaign_state_is_forgotten() -> None:
    from booster.processors.boosters import MAX_DELAY_MS
    from booster.processors.campaigns import Due, due, outlived

    b = LiveBooster("e", "EMAIL", T0)
    horizon = T0 + MAX_DELAY_MS + 5000
    assert outlived([b], horizon - 1, 5000) == []
    assert outlived([b], horizon, 5000) == [b]
    fired = CampaignPartition(schedule=replace(SCHEDULE, deadline=T0), fired=True)
    assert due(fired, horizon - 1, 5000, deciding=False, partitions=4) is None
    assert due(fired, horizon, 5000, deciding=False, partitions=4) == Due("forget", None)


def test_r15_an_accounts_new_channels_tell_its_scheduled_boosters_what_changed() -> None:
    old = AccountChannels("acct", frozenset({"EMAIL", "SMS"}), T0)
    live = [
        LiveBooster("e", "EMAIL", T0 + 100),
        LiveBooster("s", "SMS", T0 + 100),
        LiveBooster("gone", "EMAIL", T0 + 1),
    ]
    new = AccountChannels("acct", frozenset({"SMS"}), T0 + 50)
    changes, done = access_changes(old, new, live)
    assert changes == [ChannelAccess("e", T0 + 50, False, "acct")]
    assert done == [live[2]]  # its deadline is before the account's latest update: nothing can matter to it
    back = AccountChannels("acct", frozenset({"SMS", "EMAIL"}), T0 + 60)
    assert access_changes(new, back, live[:2])[0] == [ChannelAccess("e", T0 + 60, True, "acct")]
    assert access_changes(old, old, live) == ([], [])  # an older record changed nothing


def test_the_same_launch_seen_again_broadcasts_its_decision_again_while_partitions_remember_it() -> None:
    launched = launch()
    accepted = on_launch(None, ACCOUNT, launched)
    assert isinstance(accepted, Accepted)
    again = broadcast_again(launched, "SCHEDULED", T0)
    assert again == Scheduled(accepted.schedule, launched.launched_at)  # the very same schedule
    horizon = accepted.schedule.deadline + 7 * 86_400_000
    assert broadcast_again(launched, "SCHEDULED", horizon - 1) is not None
    assert broadcast_again(launched, "SCHEDULED", horizon) is None  # the partitions may have forgotten it
    assert broadcast_again(launched, "REJECTED", T0) == NoBoosterFor("cmp", launched.launched_at)


def test_a_schedule_keeps_the_quiet_hours_its_account_had_and_gets_them_again_when_broadcast_again() -> None:
    quiet_account = replace(ACCOUNT, quiet_hours=(("EMAIL", 1260, 480), ("SMS", 1200, 540)), time_zone="Asia/Tokyo")
    launched = launch()
    accepted = on_launch(None, quiet_account, launched)
    assert isinstance(accepted, Accepted)
    assert accepted.schedule.quiet_hours == QuietHours(1260, 480, "Asia/Tokyo")  # the booster's channel's
    row = pack_launch_decision("SCHEDULED", "f", T0, accepted.schedule.quiet_hours)
    kept = unpack_launch_decision(row)[3]
    # the account changed its quiet hours since: the decision's schedule is broadcast again, the same
    assert broadcast_again(launched, "SCHEDULED", T0, kept) == Scheduled(accepted.schedule, launched.launched_at)
    without = on_launch(None, ACCOUNT, launched)
    assert isinstance(without, Accepted) and without.schedule.quiet_hours is None


def test_the_report_counts_the_audience_boosted_despite_a_machine_open_or_a_scanner_click() -> None:
    both = (Mark.MACHINE_OPEN, Mark.SCANNER_CLICK)
    tally = Tally().count(None, marks=both).count(None).count(Exclusion.OPENED, marks=(Mark.MACHINE_OPEN,))
    assert tally == Tally(2, {"OPENED": 1}, {"MACHINE_OPEN": 1, "SCANNER_CLICK": 1})  # only the included count
    parts = [
        PartitionSummary(
            "cmp", p, 2, SCHEDULE, None, Tally(3, {"OPENED": 1}, {"MACHINE_OPEN": p + 1, "SCANNER_CLICK": p})
        )
        for p in (0, 1)
    ]
    _, report = evolve_summaries(evolve_summaries(None, parts[0])[0], parts[1])
    assert report is not None and report.status == "SENT"
    assert (report.audience, report.boosted_despite_machine_open, report.boosted_despite_scanner_click) == (6, 3, 1)


def test_boosted_despite_a_machine_open_only_where_opens_matter() -> None:
    machine = RecipientState(sent_at=T0, machine_opened_at=T0 + 1)
    assert marks_of(machine, None, criterion="NOT_OPENED", at=T0 + 5) == (Mark.MACHINE_OPEN,)
    assert marks_of(machine, None, criterion="NOT_OPENED", at=T0) == ()  # after `at`
    assert marks_of(machine, None, criterion="NOT_CLICKED", at=T0 + 5) == ()
    assert marks_of(machine, Exclusion.OPENED, criterion="NOT_OPENED", at=T0 + 5) == ()


def test_boosted_despite_a_scanner_click_flagged_or_in_the_window() -> None:
    delivered = RecipientState(sent_at=T0, messages=("m",), reports=(("m", T0 + 1_000, False),))
    flagged = replace(delivered, bot_clicked_at=T0 + 2_000)
    assert marks_of(flagged, None, criterion="NOT_CLICKED", at=T0 + 5_000) == (Mark.SCANNER_CLICK,)
    assert marks_of(flagged, None, criterion="NOT_CLICKED", at=T0 + 1_500) == ()  # not yet by `at`
    windowed = replace(delivered, clicked_at=T0 + 3_000)
    assert marks_of(windowed, None, criterion="NOT_CLICKED", at=T0 + 5_000, scanner_window_ms=2_000) == (
        Mark.SCANNER_CLICK,
    )
    assert marks_of(windowed, None, criterion="NOT_CLICKED", at=T0 + 5_000, scanner_window_ms=1_000) == ()
    assert marks_of(windowed, Exclusion.CLICKED, criterion="NOT_CLICKED", at=T0 + 5_000, scanner_window_ms=2_000) == ()


def test_a_worker_is_stuck_only_when_it_owns_overdue_boosters_and_does_no_step_of_any() -> None:
    minute = 60_000
    assert stuck(3, idle_ms=15 * minute, overdue_ms=15 * minute)
    assert not stuck(3, idle_ms=15 * minute - 1, overdue_ms=15 * minute)  # working through a backlog
    assert not stuck(0, idle_ms=60 * minute, overdue_ms=15 * minute)  # idle, and nothing is overdue
