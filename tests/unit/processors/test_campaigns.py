"""A partition's campaign state folded from control events; summaries folded into one report; the
launch steps; the tally shared by the fan-out and the preview."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booster.processors.audience import NOT_A_RECIPIENT, Tally, decide, tally_of
from booster.processors.boosters import (
    Accepted,
    AwaitAccount,
    Duplicate,
    NoBooster,
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
    ControlEvent,
    Decided,
    NoBoosterFor,
    Scheduled,
    Tick,
    accepts_events,
    campaign_of,
    cancelled_by,
    decide_booster,
    evolve_campaign,
    evolve_campaign_fired,
    refuses_cancel,
)
from booster.processors.events import AccountChannels, BoosterCancelled, BoosterSettings, CampaignLaunched
from booster.processors.packing import pack_summaries, unpack_summaries
from booster.processors.recipients import Exclusion, RecipientState
from booster.processors.summaries import PartitionSummary, SummaryState, evolve_summaries

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
    assert decide_booster(state, "cmp", T0 + 1) == Decided("cmp", T0 + 1, None)
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
    assert state == SummaryState(done=True)
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
        decide(delivered, None, channel="EMAIL", criterion="NOT_OPENED", at=T0 + 5),
        decide(RecipientState(opened_at=T0), None, channel="EMAIL", criterion="NOT_OPENED", at=T0 + 5),
        decide(RecipientState(sent_at=T0, messages=("m",)), None, channel="EMAIL", criterion="NOT_OPENED", at=T0 + 5),
    ]
    assert decisions == [None, NOT_A_RECIPIENT, Exclusion.WAITING]
    tally = tally_of(decisions)
    assert tally == Tally(1, {"WAITING": 1}) and tally.recipients == 2


def test_every_control_event_names_its_campaign() -> None:
    events: list[ControlEvent] = [
        Scheduled(SCHEDULE, T0),
        BoosterCancelled("cmp", T0),
        NoBoosterFor("cmp", T0),
        Tick("cmp", T0),
        Decided("cmp", T0, None),
    ]
    assert {campaign_of(e) for e in events} == {"cmp"}
