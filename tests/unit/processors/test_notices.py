"""Notices and reason codes in the core (R14): which outcomes tell the account, with which code, and
ids that are the same for the same thing told."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booster.processors.audience import Tally
from booster.processors.boosters import (
    AwaitAccount,
    NoBooster,
    ReasonCode,
    Refused,
    Report,
    Schedule,
    decide_launch,
    expire_pending,
    on_launch,
    pending_report,
)
from booster.processors.campaigns import (
    CampaignPartition,
    Decided,
    NoBoosterFor,
    Scheduled,
    accepts_events,
    called_off_by_launch,
    decide_booster,
    evolve_campaign,
    refuses_cancel,
)
from booster.processors.events import AccountChannels, BoosterCancelled, BoosterSettings, CampaignLaunched
from booster.processors.frequency import FrequencyCap
from booster.processors.notices import (
    NoticeKind,
    cancel_refused_notice,
    lost_launch_notice,
    report_notice,
)
from booster.processors.packing import DecidedRow, pack_launch_decision, unpack_launch_decision
from booster.processors.quiet import QuietHours
from booster.processors.summaries import PartitionSummary, final_report

T0 = 1_767_225_600_000
HOUR = 3_600_000
LAUNCH = CampaignLaunched("c1", "a1", "Spring", "EMAIL", 10, T0, BoosterSettings(2 * 3600, None, None, "tpl"))
EMAIL = AccountChannels("a1", frozenset({"EMAIL"}), T0 - HOUR)
SCHEDULE = Schedule("c1", "c1:booster", "Booster for Spring", "a1", "EMAIL", "NOT_OPENED", "tpl", T0 + 2 * HOUR)


@pytest.mark.parametrize(
    ("launch", "account", "now", "code"),
    [
        (replace(LAUNCH, booster=BoosterSettings(60, None, None, "t")), EMAIL, None, ReasonCode.DELAY_OUT_OF_RANGE),
        (LAUNCH, AccountChannels("a1", frozenset({"SMS"}), T0), None, ReasonCode.CHANNEL_NOT_ENABLED),
        (replace(LAUNCH, group_size=0), EMAIL, None, ReasonCode.EMPTY_GROUP),
        (LAUNCH, EMAIL, T0 + 4 * HOUR, ReasonCode.STALE_LAUNCH),
        (LAUNCH, EMAIL, T0 + 9 * HOUR, ReasonCode.ENGINE_LATE),
    ],
)
def test_every_refused_launch_has_its_code_and_a_notice(
    launch: CampaignLaunched, account: AccountChannels, now: int | None, code: ReasonCode
) -> None:
    # arrived at `now` for the stale one; on time, reached by workers behind, for the engine's
    arrived = None if now is None or code is ReasonCode.ENGINE_LATE else now
    decision = decide_launch(launch, account, now=now, arrived_at=arrived, staleness_ms=HOUR)
    assert isinstance(decision, Refused) and decision.report.reason_code is code
    notice = report_notice(decision.report, decision.launched_at)
    assert notice is not None and notice.reason_code is code and notice.account_id == "a1"
    expected = NoticeKind.BOOSTER_REJECTED if decision.report.status == "REJECTED" else NoticeKind.BOOSTER_CANCELLED
    assert notice.kind is expected and notice.at == T0


def _summary(p: int, audience: int, cancelled_at: int | None = None) -> PartitionSummary:
    return PartitionSummary("c1", p, 2, SCHEDULE, cancelled_at, Tally(audience, {"OPENED": 1}))


def test_final_reports_carry_their_code_and_only_sent_has_none() -> None:
    cancelled = final_report([_summary(0, 0, T0), _summary(1, 3)])
    empty = final_report([_summary(0, 0), _summary(1, 0)])
    sent = final_report([_summary(0, 2), _summary(1, 3)])
    assert cancelled is not None and cancelled.reason_code is ReasonCode.CANCEL_REQUESTED
    assert empty is not None and empty.reason_code is ReasonCode.EMPTY_AUDIENCE
    assert sent is not None and sent.reason_code is None and report_notice(sent, T0) is None


def test_a_notice_id_is_the_same_for_the_same_thing_and_differs_otherwise() -> None:
    report = Report("c1:booster", "Booster for Spring", "c1", "a1", "CANCELLED", "r", T0, reason_code=ReasonCode.OTHER)
    a, b = report_notice(report, T0), report_notice(replace(report, reason="other words"), T0 + 5)
    rejected = report_notice(replace(report, status="REJECTED"), T0)
    assert a is not None and b is not None and rejected is not None
    assert a.notice_id == b.notice_id != rejected.notice_id
    assert report_notice(replace(report, status="SCHEDULED"), T0) is None
    fired = CampaignPartition(schedule=SCHEDULE, fired=True)
    late1 = cancel_refused_notice(fired, BoosterCancelled("c1", T0 + 3 * HOUR))
    late2 = cancel_refused_notice(fired, BoosterCancelled("c1", T0 + 4 * HOUR))
    assert late1 is not None and late2 is not None
    assert late1.notice_id != late2.notice_id and late1.reason_code is ReasonCode.CANCEL_TOO_LATE


def test_pending_notices_only_for_launches_that_asked_for_a_booster() -> None:
    pending = report_notice(pending_report(LAUNCH), T0)
    assert pending is not None and pending.kind is NoticeKind.LAUNCH_PENDING
    assert pending.reason_code is ReasonCode.ACCOUNT_PENDING and pending.account_id == "a1"
    assert pending.text == (
        "Booster for Spring waits for the channels of account a1, which are not known yet: "
        "it is decided as soon as they are"
    )
    assert isinstance(on_launch(None, None, replace(LAUNCH, booster=None)), NoBooster)  # never waits: no notice


# G5: conflicting launches of one campaign id, as the control partitions see them
EARLY = Scheduled(SCHEDULE, T0)
SAME_TIME = Scheduled(replace(SCHEDULE, account_id="a0", deadline=T0 + 3 * HOUR), T0)  # ranks first at T0
LATE = Scheduled(replace(SCHEDULE, content_ref="other", deadline=T0 + HOUR + 2 * HOUR), T0 + HOUR)
CONFLICTING = [EARLY, SAME_TIME, LATE, LATE]  # LATE sent twice


def fold_at_the_deciding_partition(events: Sequence[Scheduled | NoBoosterFor]) -> tuple[CampaignPartition, list[Any]]:
    """The state and what the deciding partition tells (notices and reports), in arrival order."""
    state: CampaignPartition | None = None
    told: list[Any] = []
    for event in events:
        if isinstance(event, Scheduled):
            told.append(lost_launch_notice(state, event))
        new = evolve_campaign(state, event)
        told.append(called_off_by_launch(state, new))
        state = new
    assert state is not None
    return state, [t for t in told if t is not None]


@given(st.permutations(CONFLICTING))
def test_g5_conflicting_launches_keep_the_same_winner_and_tell_each_loser_once_in_any_order(
    events: list[Scheduled],
) -> None:
    state, told = fold_at_the_deciding_partition(events)
    assert state.schedule == SAME_TIME.schedule and state.scheduled_at == T0
    losers = {(n.account_id, n.notice_id) for n in told}
    assert {account for account, _ in losers} == {"a1"} and len(losers) == 2  # EARLY's and LATE's
    assert all(n.kind is NoticeKind.LAUNCH_DUPLICATE and n.reason_code is ReasonCode.DUPLICATE_LAUNCH for n in told)
    # the decision carries the winner: a partition that saw another schedule fans out with it
    decision = decide_booster(state, "c1", T0 + 4 * HOUR)
    elsewhere = evolve_campaign(evolve_campaign(None, LATE), decision)
    assert elsewhere.schedule == SAME_TIME.schedule and elsewhere.decision == replace(decision, schedule=None)


@given(st.permutations([EARLY, LATE, NoBoosterFor("c1", T0 + 2 * HOUR)]))
def test_g5_a_launch_without_booster_calls_the_booster_off_in_any_order(events: list[Any]) -> None:
    state, told = fold_at_the_deciding_partition(events)
    assert state.no_booster and state.schedule == EARLY.schedule and not accepts_events(state)
    reports = [t for t in told if isinstance(t, Report)]
    assert reports and reports[-1].status == "CANCELLED" and reports[-1].reason_code is ReasonCode.DUPLICATE_LAUNCH
    assert reports[-1].account_id == "a1" and reports[-1].deadline == EARLY.schedule.deadline


def test_g5_a_launch_after_the_decision_changes_nothing_and_is_told() -> None:
    decided = evolve_campaign(evolve_campaign(None, LATE), Decided("c1", T0 + 4 * HOUR, None))
    assert evolve_campaign(decided, EARLY) == decided  # it would have won before the decision
    assert evolve_campaign(decided, NoBoosterFor("c1", T0)) == decided  # one booster, one decision
    notice = lost_launch_notice(decided, EARLY)
    assert notice is not None and "came after the booster was decided" in notice.text


def test_a_cancel_is_refused_after_firing_or_after_the_window() -> None:
    state = CampaignPartition(schedule=SCHEDULE)
    in_time, late = BoosterCancelled("c1", SCHEDULE.deadline), BoosterCancelled("c1", SCHEDULE.deadline + 1)
    assert not refuses_cancel(state, in_time) and refuses_cancel(state, late)
    assert refuses_cancel(replace(state, fired=True), in_time)
    assert not refuses_cancel(None, late) and not refuses_cancel(CampaignPartition(), late)
    assert cancel_refused_notice(state, in_time) is None and cancel_refused_notice(None, late) is None
    notice = cancel_refused_notice(state, late)
    assert notice is not None and notice.kind is NoticeKind.CANCEL_REFUSED and notice.at == late.cancelled_at


def test_a_launch_decision_keeps_its_fingerprint_and_old_rows_still_read() -> None:
    assert unpack_launch_decision(pack_launch_decision("SCHEDULED", "ab12", 17)) == DecidedRow("SCHEDULED", "ab12", 17)
    quiet, cap = QuietHours(1260, 480, "America/New_York"), FrequencyCap(2, 86_400_000)
    for settings in ((quiet, None), (None, cap), (quiet, cap)):
        row = unpack_launch_decision(pack_launch_decision("SCHEDULED", "ab12", 17, *settings))
        assert row == DecidedRow("SCHEDULED", "ab12", 17, *settings)
    assert unpack_launch_decision(b"SCHEDULED:ab12:17") == DecidedRow("SCHEDULED", "ab12", 17)  # before the settings
    assert unpack_launch_decision(b"SCHEDULED:ab12") == DecidedRow("SCHEDULED", "ab12", None)  # before retention
    assert unpack_launch_decision(b"REJECTED") == DecidedRow("REJECTED", None, None)
    with pytest.raises(ValueError, match="not a launch status"):
        unpack_launch_decision(b"SENT:ab")


def test_r15_a_pending_launch_is_reported_and_rejected_after_its_deadline_if_its_account_never_comes() -> None:
    deadline, lateness = T0 + 2 * HOUR, 5000
    pending = pending_report(LAUNCH)
    assert (pending.status, pending.reason_code, pending.deadline) == ("PENDING", ReasonCode.ACCOUNT_PENDING, deadline)
    # channels that come within the allowed lateness still decide it, as any late fact counts
    assert expire_pending(LAUNCH, deadline, lateness) is None
    assert expire_pending(LAUNCH, deadline + lateness - 1, lateness) is None
    rejected = expire_pending(LAUNCH, deadline + lateness, lateness)
    assert rejected is not None and rejected.report.status == "REJECTED"
    assert rejected.report.reason_code is ReasonCode.ACCOUNT_UNKNOWN and rejected.launched_at == T0
    assert expire_pending(replace(LAUNCH, booster=None), deadline + lateness, lateness) is None
    # what needs no account is decided without waiting for it
    assert isinstance(on_launch(None, None, LAUNCH), AwaitAccount)
    assert isinstance(on_launch(None, None, replace(LAUNCH, booster=None)), NoBooster)
    too_soon = on_launch(None, None, replace(LAUNCH, booster=BoosterSettings(60, None, None, "t")))
    assert isinstance(too_soon, Refused) and too_soon.report.reason_code is ReasonCode.DELAY_OUT_OF_RANGE
