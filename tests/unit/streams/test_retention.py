"""The sweep on the in-memory store: what outlived its retention leaves the tables (with tombstones for
the changelog), what is still of use stays, and an old worker's rows get dated."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from booster.processors.boosters import MAX_DELAY_MS
from booster.processors.campaigns import CampaignPartition, LiveBooster
from booster.processors.frequency import MAX_CAP_WINDOW_MS
from booster.processors.packing import (
    DecidedRow,
    pack_campaign,
    pack_contact,
    pack_launch_decision,
    pack_live_booster,
    pack_measuring,
    pack_recipient,
    pack_summaries,
    unpack_launch_decision,
    unpack_summaries,
)
from booster.processors.recipients import ContactState, RecipientState
from booster.processors.summaries import SummaryState
from booster.processors.uplift import GroupCounts, Measuring, PartitionMeasurement
from booster.schemas.catalog import LAUNCHES_BY_ACCOUNT
from booster.streams import retention
from booster.streams.campaigns import CampaignStates
from booster.streams.history import add_sent, history_of, next_offset, set_marker
from booster.streams.metrics import Metrics
from booster.streams.retention import Retention
from booster.streams.store import MemoryTable, campaign_key, pending_key, recipient_key
from tests.unit.streams.fakes import Flushes
from tests.unit.streams.test_deadlines import schedule

DAY = 86_400_000
T0 = 1_767_225_600_000
LATENESS = 5000
KEEP = 30 * DAY


class World:
    def __init__(self, contact_retention_ms: int = 0) -> None:
        self.decided, self.live = MemoryTable("launch-decisions"), MemoryTable("account-boosters")
        self.summaries, self.contacts = MemoryTable("summaries"), MemoryTable("contacts")
        self.campaign_rows, self.recipients = MemoryTable("campaigns"), MemoryTable("recipients")
        self.sent_history, self.measurements = MemoryTable("sent-history"), MemoryTable("measurements")
        self.partitions = {
            LAUNCHES_BY_ACCOUNT: [0], "booster.summaries": [0, 1], "booster.control": [0, 1],
            "booster.measurements": [0, 1],
        }  # fmt: skip
        self.sink, self.metrics = Flushes(), Metrics()
        self.retention = Retention(
            decided=self.decided, live=self.live, summaries=self.summaries, measurements=self.measurements,
            contacts=self.contacts,
            recipients=self.recipients, sent_history=self.sent_history,
            campaigns=CampaignStates(self.campaign_rows), sink=self.sink,
            metrics=self.metrics, decision_retention_ms=KEEP, contact_retention_ms=contact_retention_ms,
            allowed_lateness_ms=LATENESS, partitions_of=lambda topic: list(self.partitions[topic]),
        )  # fmt: skip

    def sweep_at(self, now: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
        monkeypatch.setattr(retention, "now_ms", lambda: now)
        return asyncio.run(self.retention.sweep())


def keys(table: MemoryTable, partition: int = 0) -> list[bytes]:
    return [k for k, _ in table.partition(partition).items()]


def test_decisions_and_report_markers_go_after_the_retention_and_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    w.decided.partition(0).write(
        {b"old": pack_launch_decision("SCHEDULED", "f1", T0), b"new": pack_launch_decision("NONE", "f2", T0 + DAY)}
    )
    w.summaries.partition(1).write(
        {
            b"old": pack_summaries(SummaryState(done=True, deadline=T0)),
            b"new": pack_summaries(SummaryState(done=True, deadline=T0 + DAY)),
        }
    )
    waiting = Measuring((PartitionMeasurement("c3", 0, 2, "b", "n", "a", T0, DAY, 0, GroupCounts(), T0),))
    w.measurements.partition(1).write(
        {
            b"old": pack_measuring(Measuring(done=True, deadline=T0)),
            b"new": pack_measuring(Measuring(done=True, deadline=T0 + DAY)),
            b"c3": pack_measuring(waiting),  # another partition has not measured yet: kept
        }
    )
    assert w.sweep_at(T0 + KEEP - 1, monkeypatch) == {
        "launch-decisions": 0, "account-boosters": 0, "summaries": 0, "measurements": 0, "contacts": 0,
        "sent-history": 0,
    }  # fmt: skip
    removed = w.sweep_at(T0 + KEEP, monkeypatch)
    assert removed["launch-decisions"] == 1 and removed["summaries"] == 1 and removed["measurements"] == 1
    assert keys(w.decided) == [b"new"] and keys(w.summaries, 1) == [b"new"]
    assert keys(w.measurements, 1) == [b"c3", b"new"]
    assert w.sink.count == 2  # the tombstones are flushed to the changelog at each sweep
    assert 'booster_expired_rows_total{table="summaries"} 1' in w.metrics.render()


def test_rows_of_an_older_worker_are_dated_when_first_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    w.decided.partition(0).write({b"c1": b"SCHEDULED:f1", b"c2": b"REJECTED"})
    w.summaries.partition(0).write({b"c1": b'{"done":true,"parts":{}}'})
    w.sweep_at(T0, monkeypatch)
    assert unpack_launch_decision(w.decided.partition(0).get(b"c1") or b"") == DecidedRow("SCHEDULED", "f1", T0)
    assert unpack_launch_decision(w.decided.partition(0).get(b"c2") or b"") == DecidedRow("REJECTED", None, T0)
    assert unpack_summaries(w.summaries.partition(0).get(b"c1") or b"") == SummaryState(done=True, deadline=T0)
    removed = w.sweep_at(T0 + KEEP, monkeypatch)
    assert removed["launch-decisions"] == 2 and removed["summaries"] == 1


def test_an_accounts_boosters_no_channel_change_can_matter_to_go(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    w.live.partition(0).write(
        {
            pending_key("a1", "c1"): pack_live_booster(LiveBooster("c1", "EMAIL", T0)),
            pending_key("a1", "c2"): pack_live_booster(LiveBooster("c2", "SMS", T0 + DAY)),
        }
    )
    w.sweep_at(T0 + MAX_DELAY_MS + LATENESS, monkeypatch)
    assert keys(w.live) == [pending_key("a1", "c2")]


def test_contacts_go_after_deletion_or_inactivity_unless_a_booster_not_fired_counts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World(contact_retention_ms=400 * DAY)
    for p in (0, 1):
        w.contacts.partition(p).write(
            {
                b"deleted": pack_contact(ContactState(deleted_at=T0)),
                b"unsubscribed": pack_contact(ContactState(unsubscribed=(("ALL", T0),))),
                b"recent": pack_contact(ContactState(unsubscribed=(("ALL", T0 + 300 * DAY),))),
            }
        )
    after_deletion = T0 + MAX_DELAY_MS + LATENESS
    # partition 1 has a booster past its deadline and not fired (its worker is behind), whose
    # recipients include the deleted contact: it must still find it deleted when it fires
    behind = CampaignPartition(schedule=schedule(T0 + DAY, "c9"))
    w.campaign_rows.partition(1).write({campaign_key("c9", 1): pack_campaign(behind)})
    w.recipients.partition(1).write({recipient_key("c9", "deleted"): pack_recipient(RecipientState(sent_at=T0 - 1))})
    w.sweep_at(after_deletion, monkeypatch)
    assert keys(w.contacts, 0) == [b"recent", b"unsubscribed"]
    assert keys(w.contacts, 1) == [b"deleted", b"recent", b"unsubscribed"]
    w.campaign_rows.partition(1).write({campaign_key("c9", 1): pack_campaign(replace(behind, fired=True))})
    w.sweep_at(T0 + 400 * DAY, monkeypatch)
    assert keys(w.contacts, 0) == [b"recent"] and keys(w.contacts, 1) == [b"recent"]


def test_a_partition_revoked_during_its_sweep_is_left_to_its_new_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "SLICE", 3)
    w = World()
    w.decided.partition(0).write({f"c{i:02}".encode(): pack_launch_decision("NONE", "f", T0) for i in range(10)})
    real_sleep = asyncio.sleep

    async def revoke_then_yield(delay: float) -> None:
        w.partitions[LAUNCHES_BY_ACCOUNT] = []  # a rebalance while the sweep let the agents run
        await real_sleep(delay)

    monkeypatch.setattr("booster.streams.retention.asyncio.sleep", revoke_then_yield)
    removed = w.sweep_at(T0 + KEEP, monkeypatch)
    assert removed["launch-decisions"] == 3 and len(keys(w.decided)) == 7


def test_a_partition_is_swept_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "SLICE", 3)
    w = World()
    w.decided.partition(0).write({f"c{i:02}".encode(): pack_launch_decision("NONE", "f", T0 + i) for i in range(10)})
    w.sweep_at(T0 + KEEP + 5, monkeypatch)  # c00..c05 are past
    assert keys(w.decided) == [f"c{i:02}".encode() for i in range(6, 10)]


def test_sends_that_can_no_longer_count_toward_a_cap_leave_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    store = w.sent_history.partition(1)
    add_sent(store, {b"k1": [(T0, "a")], b"k2": [(T0, "a"), (T0 + DAY, "b")]}, T0)
    set_marker(store, 42)
    assert w.sweep_at(T0 + MAX_CAP_WINDOW_MS - 1, monkeypatch)["sent-history"] == 0
    assert w.sweep_at(T0 + MAX_CAP_WINDOW_MS, monkeypatch)["sent-history"] == 1  # k1 had only a's
    assert history_of(store, b"k1") == () and history_of(store, b"k2") == ((T0 + DAY, "b"),)
    assert next_offset(store) == 42  # the marker stays


def test_fired_rows_of_a_partition_this_worker_lost_are_left_to_its_new_owner() -> None:
    recipients, flushes = MemoryTable("recipients"), Flushes()
    ours = [0, 1]
    fired = retention.FiredRows(recipients, flushes, fanning_out=lambda: False, partitions_of=lambda topic: ours)
    row = pack_recipient(RecipientState(sent_at=1))
    for p in (0, 1):
        recipients.partition(p).write({recipient_key("c1", f"k{i}"): row for i in range(3)})
        fired.add("c1", p)
    ours.remove(1)  # revoked before the rows went
    asyncio.run(fired.delete())
    assert list(recipients.partition(0).items()) == [] and len(list(recipients.partition(1).items())) == 3
    assert fired.waiting() == 0 and flushes.count == 1
