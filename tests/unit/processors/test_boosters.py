"""Launch validation (R1-R3, R7), timing, reports (R7-R9, R11) and command identity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booster.processors.audience import Tally
from booster.processors.boosters import (
    COMMAND_NAMESPACE,
    Accepted,
    NoBooster,
    ReasonCode,
    Refused,
    Schedule,
    booster_id_of,
    command_id_of,
    command_ids,
    decide_launch,
    evolve_account,
    on_account,
    on_launch,
)
from booster.processors.campaigns import (
    CampaignPartition,
    Decided,
    due,
    evolve_campaign_cancel,
    evolve_campaign_schedule,
    is_cancelled,
)
from booster.processors.events import AccountChannels, BoosterCancelled, BoosterSettings, CampaignLaunched
from booster.processors.packing import pack_campaign, unpack_campaign
from booster.processors.recipients import Exclusion
from booster.processors.summaries import PartitionSummary, final_report

T0 = 1_767_225_600_000
ALL = AccountChannels("acct", frozenset({"EMAIL", "SMS", "PUSH"}), T0)


def launch(
    delay: int = 7200,
    *,
    channel: str = "EMAIL",
    booster_channel: str | None = None,
    criterion: str | None = None,
    group_size: int = 10,
    booster: bool = True,
) -> CampaignLaunched:
    settings = BoosterSettings(delay, booster_channel, criterion, "tpl/1") if booster else None  # type: ignore[arg-type]
    return CampaignLaunched("cmp", "acct", "Spring sale", channel, group_size, T0, settings)  # type: ignore[arg-type]


def test_r1_no_settings_no_booster() -> None:
    assert decide_launch(launch(booster=False), ALL) == NoBooster("cmp", T0)


@pytest.mark.parametrize(
    ("delay", "accepted"), [(7199, False), (7200, True), (604800, True), (604801, False), (0, False)]
)
def test_r2_delay_window(delay: int, accepted: bool) -> None:
    decision = decide_launch(launch(delay), ALL)
    if accepted:
        assert isinstance(decision, Accepted)
        assert decision.schedule.deadline == T0 + delay * 1000
        assert decision.report.status == "SCHEDULED"
    else:
        assert isinstance(decision, Refused)
        assert decision.report.status == "REJECTED"
        assert "2 hours to 7 days" in (decision.report.reason or "")


def test_r3_channel_must_be_enabled() -> None:
    email_only = AccountChannels("acct", frozenset({"EMAIL"}), T0)
    decision = decide_launch(launch(booster_channel="SMS"), email_only)
    assert isinstance(decision, Refused)
    assert decision.report.status == "REJECTED"
    assert decision.report.reason is not None and "channel not enabled for this account" in decision.report.reason
    assert isinstance(decide_launch(launch(), email_only), Accepted)


def test_r3_booster_channel_defaults_to_the_campaigns() -> None:
    decision = decide_launch(launch(channel="PUSH"), ALL)
    assert isinstance(decision, Accepted) and decision.schedule.channel == "PUSH"
    decision = decide_launch(launch(channel="EMAIL", booster_channel="SMS"), ALL)
    assert isinstance(decision, Accepted) and decision.schedule.channel == "SMS"


@pytest.mark.parametrize(("channel", "window"), [("EMAIL", 60), ("SMS", 0), ("PUSH", 0)])
def test_the_scanner_window_defaults_to_the_original_campaigns_channel(channel: str, window: int) -> None:
    decision = decide_launch(launch(channel=channel, booster_channel="EMAIL"), ALL)
    assert isinstance(decision, Accepted)
    assert (decision.schedule.scanner_window_seconds, decision.schedule.campaign_channel) == (window, channel)


@pytest.mark.parametrize(("window", "accepted"), [(0, True), (5, True), (1800, True), (1801, False), (-1, False)])
def test_a_scanner_window_out_of_range_is_rejected_without_waiting_for_the_account(window: int, accepted: bool) -> None:
    b = BoosterSettings(7200, None, None, "tpl/1", scanner_window_seconds=window)
    launched = replace(launch(), booster=b)
    decision = decide_launch(launched, ALL)
    assert isinstance(decision, Accepted) == accepted
    if accepted:
        assert isinstance(decision, Accepted) and decision.schedule.scanner_window_seconds == window
    else:
        assert isinstance(decision, Refused) and decision.report.reason_code is ReasonCode.SETTING_OUT_OF_RANGE
        assert "0 to 1800 s" in (decision.report.reason or "")
        assert on_launch(None, None, launched) == decision  # the account's channels would not change it


@pytest.mark.parametrize(
    ("holdout", "hours", "accepted", "says"),
    [
        (0, None, True, ""), (50, 1, True, ""), (10, 720, True, ""),
        (51, None, False, "0 to 50 %"), (-1, None, False, "0 to 50 %"),
        (10, 0, False, "1 to 720 h"), (10, 721, False, "1 to 720 h"),
    ],
)  # fmt: skip
def test_the_measurement_settings_are_carried_or_rejected_without_waiting_for_the_account(
    holdout: int, hours: int | None, accepted: bool, says: str
) -> None:
    b = BoosterSettings(7200, None, None, "tpl/1", holdout_percent=holdout, measurement_hours=hours)
    launched = replace(launch(), booster=b)
    decision = decide_launch(launched, ALL)
    if accepted:
        assert isinstance(decision, Accepted)
        assert decision.schedule.holdout_percent == holdout
        assert decision.schedule.measurement_ms == (72 if hours is None else hours) * 3_600_000
    else:
        assert isinstance(decision, Refused) and decision.report.reason_code is ReasonCode.SETTING_OUT_OF_RANGE
        assert says in (decision.report.reason or "")
        assert on_launch(None, None, launched) == decision


def test_default_criterion_follows_the_original_message() -> None:
    crit = {}
    for ch in ("EMAIL", "PUSH", "SMS"):
        d = decide_launch(launch(channel=ch), ALL)
        assert isinstance(d, Accepted)
        crit[ch] = d.schedule.criterion
    assert crit == {"EMAIL": "NOT_OPENED", "PUSH": "NOT_OPENED", "SMS": "NOT_CLICKED"}
    d = decide_launch(launch(channel="EMAIL", criterion="NOT_CLICKED"), ALL)
    assert isinstance(d, Accepted) and d.schedule.criterion == "NOT_CLICKED"


def test_r15_a_launch_that_reached_kafka_past_its_deadline_plus_the_staleness_bound_is_cancelled_as_stale() -> None:
    deadline = T0 + 7200 * 1000
    hour = 3_600_000
    on_time = decide_launch(launch(), ALL, arrived_at=deadline + hour, now=deadline + hour, staleness_ms=hour)
    assert isinstance(on_time, Accepted)  # at the bound: still fires
    stale = decide_launch(launch(), ALL, arrived_at=deadline + hour + 1, now=deadline + hour + 1, staleness_ms=hour)
    assert isinstance(stale, Refused) and stale.report.status == "CANCELLED"
    assert stale.report.reason_code is ReasonCode.STALE_LAUNCH
    assert (stale.report.reason or "").startswith("stale: the launch reached Kafka 1h")
    assert "1h allowed" in (stale.report.reason or "")
    # configuration errors are still reported as such
    misconfigured = decide_launch(launch(delay=60), ALL, arrived_at=deadline * 2, now=deadline * 2, staleness_ms=hour)
    assert isinstance(misconfigured, Refused) and misconfigured.report.status == "REJECTED"
    # the bound counts from the deadline, whenever the launch was published
    assert isinstance(
        decide_launch(launch(delay=7 * 24 * 3600), ALL, arrived_at=deadline + 2 * hour, staleness_ms=hour), Accepted
    )


def test_lag_is_not_lateness_a_launch_on_time_reached_by_workers_behind_is_still_sent() -> None:
    """G1: a launch that reached Kafka before its deadline, decided 90 minutes after it by workers
    that were behind, is sent; only past the engine's own (longer) bound is it cancelled, as ENGINE_LATE."""
    deadline = T0 + 7200 * 1000
    hour = 3_600_000
    behind = decide_launch(launch(), ALL, arrived_at=deadline - 60_000, now=deadline + 90 * 60_000, staleness_ms=hour)
    assert isinstance(behind, Accepted)
    far_behind = decide_launch(
        launch(), ALL, arrived_at=deadline - 60_000, now=deadline + 6 * hour + 1, staleness_ms=hour
    )
    assert isinstance(far_behind, Refused) and far_behind.report.reason_code is ReasonCode.ENGINE_LATE
    assert "6h allowed" in (far_behind.report.reason or "") and "behind" in (far_behind.report.reason or "")


def test_r15_a_launch_that_waited_for_its_account_is_cancelled_only_when_the_workers_are_too_late() -> None:
    waited = launch()
    deadline = T0 + 7200 * 1000
    _, [decision] = on_account(None, ALL, [waited], now=deadline + 2 * 3_600_000)
    assert isinstance(decision, Accepted)  # it was seen before its deadline (or it would have expired)
    _, [late] = on_account(None, ALL, [waited], now=deadline + 7 * 3_600_000)
    assert isinstance(late, Refused) and late.report.reason_code is ReasonCode.ENGINE_LATE


def test_r7_empty_group_is_cancelled_and_r8_name() -> None:
    d = decide_launch(launch(group_size=0), ALL)
    assert isinstance(d, Refused) and d.report.status == "CANCELLED" and "0 contacts" in (d.report.reason or "")
    assert d.report.booster_name == "Booster for Spring sale"


def test_account_channels_latest_wins() -> None:
    old = AccountChannels("acct", frozenset({"EMAIL"}), T0)
    new = AccountChannels("acct", frozenset({"SMS"}), T0 + 1)
    assert evolve_account(evolve_account(None, new), old) == new
    assert evolve_account(evolve_account(None, old), new) == new


SCHEDULE = Schedule(
    "cmp", booster_id_of("cmp"), "Booster for X", "acct", "EMAIL", "NOT_OPENED", "tpl/1", T0 + 7_200_000
)


def test_due_decides_then_fires_only_after_deadline_plus_lateness() -> None:
    state = evolve_campaign_schedule(None, SCHEDULE)
    assert due(state, SCHEDULE.deadline + 4999, 5000, deciding=True, partitions=1) is None
    for deciding in (True, False):  # every partition counts first (R7)
        count = due(state, SCHEDULE.deadline + 5000, 5000, deciding=deciding, partitions=2)
        assert count is not None and count.kind == "count" and count.gate_at == SCHEDULE.deadline + 5000
    one_missing = replace(state, counts={0: True})
    still = due(one_missing, SCHEDULE.deadline + 5000, 5000, deciding=True, partitions=2)
    assert still is not None and still.kind == "count"  # counts again (the caller spaces the ticks out)
    counted = replace(one_missing, counts={0: True, 1: None})
    decide = due(counted, SCHEDULE.deadline + 5000, 5000, deciding=True, partitions=2)
    assert decide is not None and decide.kind == "decide"
    # until the decision arrives, another partition keeps counting: a lost count or decision is sent again
    again = due(counted, SCHEDULE.deadline + 5000, 5000, deciding=False, partitions=2)
    assert again is not None and again.kind == "count"
    decided = replace(state, decision=Decided("cmp", SCHEDULE.deadline + 6000, None))
    for deciding in (True, False):
        fire = due(decided, SCHEDULE.deadline + 5000, 5000, deciding=deciding, partitions=1)
        assert fire is not None and fire.kind == "fire" and fire.gate_at == SCHEDULE.deadline + 5000
    fired = CampaignPartition(schedule=SCHEDULE, fired=True)
    assert due(fired, SCHEDULE.deadline + 5000, 5000, deciding=True, partitions=1) is None
    forget = due(fired, SCHEDULE.deadline + 7 * 86_400_000 + 5000, 5000, deciding=True, partitions=1)
    assert forget is not None and forget.kind == "forget"


def test_r12_rows_of_campaigns_without_booster_expire_after_the_longest_window() -> None:
    seen = CampaignPartition(first_seen_at=T0)
    assert due(seen, T0 + 7 * 86_400_000, 5000, deciding=True, partitions=1) is None
    expire = due(seen, T0 + 7 * 86_400_000 + 5000, 5000, deciding=True, partitions=1)
    assert expire is not None and expire.kind == "expire"


def test_the_state_a_cancel_of_an_unknown_campaign_leaves_is_forgotten_after_the_longest_window() -> None:
    only_cancelled = evolve_campaign_cancel(None, BoosterCancelled("ghost", T0))
    assert due(only_cancelled, T0 + 7 * 86_400_000 + 4999, 5000, deciding=True, partitions=1) is None
    forget = due(only_cancelled, T0 + 7 * 86_400_000 + 5000, 5000, deciding=True, partitions=1)
    assert forget is not None and forget.kind == "forget"
    # a cancel that came before its launch's schedule still waits for the booster's own deadline
    scheduled = evolve_campaign_schedule(only_cancelled, SCHEDULE)
    assert due(scheduled, T0 + 7 * 86_400_000 + 5000, 5000, deciding=True, partitions=1) == due(
        evolve_campaign_schedule(None, SCHEDULE), T0 + 7 * 86_400_000 + 5000, 5000, deciding=True, partitions=1
    )


def test_r9_cancel_counts_until_the_window_expires() -> None:
    state = evolve_campaign_schedule(None, SCHEDULE)
    assert is_cancelled(evolve_campaign_cancel(state, BoosterCancelled("cmp", SCHEDULE.deadline)))
    assert not is_cancelled(evolve_campaign_cancel(state, BoosterCancelled("cmp", SCHEDULE.deadline + 1)))
    # the cancellation may arrive before the schedule
    early = evolve_campaign_cancel(None, BoosterCancelled("cmp", T0))
    assert is_cancelled(evolve_campaign_schedule(early, SCHEDULE))


def test_campaign_state_packs() -> None:
    state = CampaignPartition(schedule=SCHEDULE, cancelled_at=T0, fired=True, first_seen_at=T0 - 5)
    assert unpack_campaign(pack_campaign(state), "cmp") == state
    decided = replace(state, decision=Decided("cmp", T0 + 9, T0))
    assert unpack_campaign(pack_campaign(decided), "cmp") == decided
    # a row written before decisions were kept
    old = b'{"schedule":null,"cancelled_at":null,"no_booster":true,"fired":false,"first_seen_at":5}'
    assert unpack_campaign(old, "cmp") == CampaignPartition(no_booster=True, first_seen_at=5)


def summary(p: int, audience: int, excluded: dict[str, int], cancelled_at: int | None = None) -> PartitionSummary:
    return PartitionSummary("cmp", p, 3, SCHEDULE, cancelled_at, Tally(audience, excluded))


def test_final_report_needs_every_partition_and_counts_duplicates_once() -> None:
    parts = [summary(0, 5, {"OPENED": 2}), summary(1, 0, {"DELETED": 1}), summary(0, 5, {"OPENED": 2})]
    assert final_report(parts) is None
    report = final_report([*parts, summary(2, 1, {"OPENED": 1, "WAITING": 4})])
    assert report is not None
    assert report.status == "SENT" and report.audience == 6 and report.billable == 6
    assert report.excluded == {
        "DELETED": 1, "BLOCKED": 0, "UNSUBSCRIBED": 0, "UNREACHABLE": 0, "ERROR": 0, "WAITING": 4, "CLICKED": 0, "OPENED": 3, "FREQUENCY_CAP": 0,
        "HOLDOUT": 0,
    }  # fmt: skip


def test_r7_empty_audience_is_cancelled_and_r9_cancelled() -> None:
    empty = final_report([summary(p, 0, {"OPENED": 3}) for p in range(3)])
    assert empty is not None and empty.status == "CANCELLED" and empty.audience == 0 and empty.billable == 0
    assert empty.excluded["OPENED"] == 9
    cancelled = final_report([summary(p, 0, {}, cancelled_at=T0) for p in range(3)])
    assert cancelled is not None and cancelled.status == "CANCELLED" and "cancelled" in (cancelled.reason or "")


def test_tally_adds_in_r11_names() -> None:
    t = Tally().add(None).add(Exclusion.OPENED).add(Exclusion.OPENED).add(None)
    assert t == Tally(2, {"OPENED": 2})


@given(st.text(max_size=30), st.text(max_size=30))
def test_command_id_is_the_standard_uuid5(booster: str, contact: str) -> None:
    import uuid

    expected = str(uuid.uuid5(COMMAND_NAMESPACE, f"{booster}/{contact}"))
    assert command_id_of(booster, contact) == expected
    of_booster = command_ids(booster)  # a fan-out's: one booster, many contacts
    others = [contact, f"{contact}x", contact]
    assert [of_booster(c) for c in others] == [str(uuid.uuid5(COMMAND_NAMESPACE, f"{booster}/{c}")) for c in others]


def test_command_ids_are_deterministic_and_distinct() -> None:
    a = command_id_of(booster_id_of("cmp"), "k1")
    assert a == command_id_of(booster_id_of("cmp"), "k1")
    assert a != command_id_of(booster_id_of("cmp"), "k2")
    assert a != command_id_of(booster_id_of("cmp2"), "k1")
