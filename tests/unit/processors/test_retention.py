"""Retention: which kept rows have outlived their use."""

from __future__ import annotations

from dataclasses import replace

from booster.processors.boosters import MAX_DELAY_MS, Duplicate, Forgotten, decision_expired, launch_moment, on_launch
from booster.processors.events import AccountChannels, BoosterSettings, CampaignLaunched
from booster.processors.recipients import ContactState
from booster.processors.retention import contact_expired, summaries_expired
from booster.processors.summaries import SummaryState

DAY = 86_400_000
T0 = 1_767_225_600_000
LATENESS = 5000
LAUNCH = CampaignLaunched("c1", "a1", "Spring", "EMAIL", 10, T0, BoosterSettings(7200, None, None, "t"))
ACCOUNT = AccountChannels("a1", frozenset({"EMAIL"}), T0 - 1)


def test_a_decision_is_kept_from_its_deadline_or_its_launch_without_booster() -> None:
    assert launch_moment(LAUNCH) == T0 + 7_200_000
    assert launch_moment(replace(LAUNCH, booster=None)) == T0
    # a refused delay of a year is kept from the longest window, not a year on
    assert launch_moment(replace(LAUNCH, booster=BoosterSettings(365 * 86400, None, None, "t"))) == T0 + MAX_DELAY_MS
    moment = launch_moment(LAUNCH)
    assert not decision_expired(moment, moment + 30 * DAY - 1, 30 * DAY)
    assert decision_expired(moment, moment + 30 * DAY, 30 * DAY)


def test_a_launch_older_than_the_decisions_kept_is_forgotten_not_decided_as_stale() -> None:
    moment = launch_moment(LAUNCH)
    late = on_launch(None, ACCOUNT, LAUNCH, now=moment + 30 * DAY, decision_retention_ms=30 * DAY)
    assert late == Forgotten("c1", moment)
    # a day earlier it is decided (stale: cancelled, as R15 says); a kept decision still wins
    stale = on_launch(None, ACCOUNT, LAUNCH, now=moment + 29 * DAY, decision_retention_ms=30 * DAY)
    assert not isinstance(stale, Forgotten)
    kept = on_launch("SCHEDULED", ACCOUNT, LAUNCH, now=moment + 31 * DAY, decision_retention_ms=30 * DAY)
    assert kept == Duplicate("c1", "SCHEDULED")
    # without a retention (the default), nothing is forgotten
    assert not isinstance(on_launch(None, ACCOUNT, LAUNCH, now=moment + 999 * DAY), Forgotten)


def test_a_final_report_marker_goes_after_the_retention_and_waiting_summaries_stay() -> None:
    done = SummaryState(done=True, deadline=T0)
    assert not summaries_expired(done, T0 + 30 * DAY - 1, 30 * DAY)
    assert summaries_expired(done, T0 + 30 * DAY, 30 * DAY)
    assert not summaries_expired(SummaryState(), T0 + 999 * DAY, 30 * DAY)  # other partitions still to come
    assert not summaries_expired(SummaryState(done=True), T0 + 999 * DAY, 30 * DAY)  # undated: the sweep dates it


def test_a_deleted_contact_goes_after_the_longest_window_and_other_rows_after_their_inactivity() -> None:
    horizon = MAX_DELAY_MS + LATENESS
    deleted = ContactState(deleted_at=T0)
    assert not contact_expired(deleted, T0 + horizon - 1, retention_ms=0, allowed_lateness_ms=LATENESS)
    assert contact_expired(deleted, T0 + horizon, retention_ms=0, allowed_lateness_ms=LATENESS)
    unsubscribed = ContactState(unsubscribed=(("SMS", T0),), blocks=((T0 + 10 * DAY, False),))
    # kept for ever by default: an unsubscribe holds however old
    assert not contact_expired(unsubscribed, T0 + 9999 * DAY, retention_ms=0, allowed_lateness_ms=LATENESS)
    # with a retention, counted from the latest fact about the contact
    assert not contact_expired(unsubscribed, T0 + 409 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
    assert contact_expired(unsubscribed, T0 + 410 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
    # a reachability fact is a fact about the contact: it dates the row too
    reached = ContactState(unsubscribed=(("SMS", T0),), reachability=(("SMS", T0 + 20 * DAY, False),))
    assert not contact_expired(reached, T0 + 410 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
    assert contact_expired(reached, T0 + 420 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
    zoned = ContactState(time_zones=((T0 + 30 * DAY, "Asia/Tokyo"),))  # a row with nothing else
    assert not contact_expired(zoned, T0 + 429 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
    assert contact_expired(zoned, T0 + 430 * DAY, retention_ms=400 * DAY, allowed_lateness_ms=LATENESS)
