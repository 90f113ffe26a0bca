"""G1: lag never changes the audience. The lag gate against the real broker, and a worker that comes
back after its booster's deadline with 150,000 events to catch up on."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.ops.clients import produce_raw
from booster.schemas import codec
from booster.streams.connect import client_options
from booster.streams.gate import LagGate
from booster.streams.offsets import OffsetLedger
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import (
    account_record,
    decisions,
    group_lag,
    publish_records,
    reports_by_campaign,
    scenario_records,
    wait_for,
)

LEAD_MS = (
    40_000  # from the launch to the deadline: the worker schedules the booster, stops, and the backlog is published
)


def test_g1_lag_never_changes_the_audience(kafka: LocalKafka, tmp_path: Path) -> None:
    """The worker knows the booster, is stopped, 150,000+ events are published before the deadline, and
    the worker comes back after the deadline: it must not fire until it has caught up. (The batch lane
    catches up on 50,000 within the gate's first look: the backlog is larger so that the gate holds.)"""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    launched_at = int(time.time() * 1000) - 2 * HOUR_MS + LEAD_MS
    roles = ["eligible", "clicked", "eligible", "opened", "clicked", "eligible"]
    sc = build(f"lag-{uuid.uuid4().hex[:6]}", 6000, launched_at=launched_at, roles=roles)
    clicks = [r for t, r in scenario_records(sc, launch=False) if t == "message.clicked"]
    others = [(t, r) for t, r in scenario_records(sc, launch=False) if t != "message.clicked"]
    # another campaign's clicks on the same contacts sit in front of this campaign's clicks
    contacts = sorted(sc.roles)
    decoys = [
        ("message.clicked", {"campaign_id": "decoy", "contact_id": contacts[i % len(contacts)], "message_id": f"d{i}",
                             "clicked_at": launched_at + 1000, "url": "u"})
        for i in range(134_000)
    ]  # fmt: skip
    records = [*others, *decoys, *[("message.clicked", r) for r in clicks]]
    assert len(records) >= 150_000
    assert clicks and all(r["clicked_at"] < sc.deadline for r in clicks)

    publish_records(settings, [account_record(sc), ("campaign.launched", sc.launch_record())])
    wait_for("the booster to be scheduled", lambda: reports_by_campaign(settings).get(sc.campaign_id), 60, 0.2)
    # every partition has folded the schedule: the deciding one finds it due as soon as it is back
    wait_for("the schedule in every partition", lambda: group_lag(settings, ["booster.control"]) == 0, 60, 0.2)
    worker.stop()
    assert time.time() * 1000 < sc.deadline, "the worker was still running at the deadline; raise LEAD_MS"
    publish_records(settings, records)  # the worker is down: it will find all of these behind when it returns
    lateness = settings.allowed_lateness_ms
    wait_for("the deadline to pass", lambda: time.time() * 1000 > sc.deadline + lateness, 60, 0.2)
    worker.start()  # late, with 150,000+ events to catch up on and a deadline already due
    try:
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 240, 1.0)
        log = worker.log_text()
    finally:
        worker.stop()
    clickers = {c for c, role in sc.roles.items() if role == "clicked"}
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience)
    assert not (clickers & (sc.expected_audience | v.unexpected))
    assert v.report is not None and v.report["excluded"]["CLICKED"] == len(clickers)
    # the gate held the due deadline back while the worker was behind
    assert any(d["event"] == "waiting-for-lag" and d["campaign_id"] == sc.campaign_id for d in decisions(log))


def test_lag_gate_counts_what_the_group_has_not_processed(kafka: LocalKafka) -> None:
    settings = fresh_settings(partitions=2)
    asyncio.run(admin.create(settings))
    topic = settings.topic("contact.deleted")
    value = codec().encode("contact.deleted", {"contact_id": "k", "account_id": "a", "deleted_at": 1767225600000})
    asyncio.run(produce_raw(settings, [("contact.deleted", f"k{i}".encode(), value) for i in range(30)]))

    ledger = OffsetLedger()  # what a worker's consumer knows it processed beyond the group's commits

    async def scenario() -> None:
        group = settings.group_id
        gate = LagGate(client_options(settings), group, processed=ledger.processed)
        tps = [TopicPartition(topic, p) for p in range(2)]
        try:
            snapshot = await gate.end_offsets(tps)
            lag = await gate.lagging(tps, snapshot)
            assert sum(lag.values()) == 30
            consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                seen = 0
                while seen < 30:
                    seen += sum(len(v) for v in (await consumer.getmany(timeout_ms=500)).values())
                await consumer.commit()
            finally:
                await consumer.stop()
            # the timer may take the committed offsets asked a moment ago: older, so never too far
            assert sum((await gate.lagging(tps, snapshot, committed_age=3600)).values()) == 30
            assert await gate.lagging(tps) == {}
            # records published after the snapshot do not hold the gate
            await produce_raw(settings, [("contact.deleted", f"k{i}".encode(), value) for i in range(10)])
            assert await gate.lagging(tps, snapshot) == {}
            assert sum((await gate.lagging(tps)).values()) == 10
            # this worker's own progress counts as well as the group's commits, up to its first hole
            ends = await gate.end_offsets(tps)
            for tp in tps:
                ledger.seeked(tp, snapshot[tp])
                ledger.fetched(tp, range(snapshot[tp], ends[tp]))
                ledger.hold_all(tp, range(snapshot[tp], ends[tp]))
                ledger.release_all(tp, range(snapshot[tp] + 1, ends[tp]))  # all but the first
            assert await gate.lagging(tps) == {tp: ends[tp] - snapshot[tp] for tp in tps if ends[tp] > snapshot[tp]}
            for tp in tps:
                ledger.release(tp, snapshot[tp])
            assert await gate.lagging(tps) == {}
        finally:
            await gate.stop()

    asyncio.run(scenario())
