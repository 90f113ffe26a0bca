"""G1 (lag), G3 (restart, recovery from changelogs), rebalance, G5 (duplicates and disorder), and the
short kill -9 chaos run (G2), against the real broker and real worker processes."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.ops.clients import produce_raw
from booster.schemas import codec
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.streams.gate import LagGate
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.chaos import chaos
from tests.faults.harness import (
    account_record,
    fired,
    group_lag,
    publish_records,
    scenario_records,
    uncommitted_high_watermark,
)
from tests.helpers import wait_for


def final_or_scheduled(settings: Any, campaign_id: str) -> bool:
    from tests.helpers import reports_by_campaign

    return bool(reports_by_campaign(settings).get(campaign_id))


def decisions(log: str) -> list[dict[str, Any]]:
    return [json.loads(line[line.index("{") :]) for line in log.splitlines() if '"event": ' in line]


def test_g1_lag_never_changes_the_audience(kafka: LocalKafka, tmp_path: Path) -> None:
    """The worker knows the booster, is stopped, 50,000+ events are published before the deadline, and
    the worker comes back after the deadline: it must not fire until it has caught up."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    now = int(time.time() * 1000)
    launched_at = now - 2 * HOUR_MS + 45_000  # the deadline is 45 s away
    roles = ["eligible", "clicked", "eligible", "opened", "clicked", "eligible"]
    sc = build(f"lag-{uuid.uuid4().hex[:6]}", 6000, launched_at=launched_at, roles=roles)
    clicks = [r for t, r in scenario_records(sc, launch=False) if t == "message.clicked"]
    others = [(t, r) for t, r in scenario_records(sc, launch=False) if t != "message.clicked"]
    # another campaign's clicks on the same contacts sit in front of this campaign's clicks
    contacts = sorted(sc.roles)
    decoys = [
        ("message.clicked", {"campaign_id": "decoy", "contact_id": contacts[i % len(contacts)], "message_id": f"d{i}",
                             "clicked_at": launched_at + 1000, "url": "u"})
        for i in range(34_000)
    ]  # fmt: skip
    records = [*others, *decoys, *[("message.clicked", r) for r in clicks]]
    assert len(records) >= 50_000
    assert all(r["clicked_at"] < sc.deadline for r in clicks)

    worker = WorkerProcess(settings, tmp_path / "w").start()
    asyncio.run(publish_records(settings, [account_record(sc), ("campaign.launched", sc.launch_record())]))
    wait_for("the booster to be scheduled", lambda: final_or_scheduled(settings, sc.campaign_id), 60, 0.5)
    worker.stop()
    asyncio.run(publish_records(settings, records))
    assert time.time() * 1000 < sc.deadline, "publishing took longer than the lead; raise it"
    lateness = settings.allowed_lateness_ms
    wait_for("the deadline to pass", lambda: time.time() * 1000 > sc.deadline + lateness, 60, 0.2)
    worker.start()  # late, with 50,000+ events to catch up on and a deadline already due
    try:
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 240, 2.0)
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
    asyncio.run(produce_raw(settings, "contact.deleted", [(f"k{i}".encode(), value) for i in range(30)]))

    async def scenario() -> None:
        group = settings.group_id
        gate = LagGate(settings.broker, group)
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
            assert await gate.lagging(tps) == {}
            # records published after the snapshot do not hold the gate
            await produce_raw(settings, "contact.deleted", [(f"k{i}".encode(), value) for i in range(10)])
            assert await gate.lagging(tps, snapshot) == {}
            assert sum((await gate.lagging(tps)).values()) == 10
            # this worker's own progress counts as well as the group's commits
            gate.record(topic, 0, 10_000)
            gate.record(topic, 1, 10_000)
            assert await gate.lagging(tps) == {}
        finally:
            await gate.stop()

    asyncio.run(scenario())


def test_g3_restart_between_ingestion_and_deadline_and_recovery_on_a_new_machine(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    sc = build(f"restart-{uuid.uuid4().hex[:6]}", 800, launched_at=int(time.time() * 1000) - 2 * HOUR_MS + 45_000)
    first = WorkerProcess(settings, tmp_path / "first", name="first").start()
    asyncio.run(publish_records(settings, [account_record(sc), *scenario_records(sc)]))
    wait_for("ingestion", lambda: group_lag(settings, [*CONTACT_INPUT_TOPICS, "booster.control"]) == 0, 90, 1.0)
    first.stop()  # a clean stop (SIGTERM) before the deadline
    started = time.monotonic()
    # a fresh data directory: the state can only come back from the changelog topics
    second = WorkerProcess(settings, tmp_path / "second", name="second").start()
    recovery = time.monotonic() - started
    try:
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 1.0)
    finally:
        second.stop()
    assert v.ok, v.problems
    print(f"recovery of a fresh worker from changelogs: {recovery:.1f} s")


def test_rebalance_join_during_ingestion_leave_during_fanout(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings(BOOSTER_FANOUT_CHUNK="100")
    asyncio.run(admin.create(settings))
    roles = ["eligible", "eligible", "clicked", "eligible", "deleted"]
    sc = build(
        f"rebal-{uuid.uuid4().hex[:6]}", 12_000, launched_at=int(time.time() * 1000) - 2 * HOUR_MS + 20_000, roles=roles
    )
    a = WorkerProcess(settings, tmp_path / "a", name="a").start()
    b = WorkerProcess(settings, tmp_path / "b", name="b")
    try:
        records = [account_record(sc), *scenario_records(sc)]
        half = len(records) // 2
        asyncio.run(publish_records(settings, records[:half]))
        b.start()  # joins while the first half is being ingested
        asyncio.run(publish_records(settings, records[half:]))
        wait_for("the fan-out to start", lambda: uncommitted_high_watermark(settings) > 0, 180, 0.1)
        a.stop()  # leaves (SIGTERM) during the fan-out; its partitions move to b
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 180, 1.0)
        assert b.alive()
    finally:
        a.stop()
        b.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) >= 7000


def test_g5_duplicates_and_disorder_give_the_same_commands(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    launched_at = int(time.time() * 1000) - 2 * HOUR_MS + 25_000
    tag = uuid.uuid4().hex[:6]
    straight = build(f"straight-{tag}", 400, launched_at=launched_at)
    shuffled = build(f"shuffled-{tag}", 400, launched_at=launched_at)
    twice = [account_record(shuffled), *scenario_records(shuffled)] * 2
    random.Random(7).shuffle(twice)
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        asyncio.run(publish_records(settings, [account_record(straight), *scenario_records(straight)]))
        asyncio.run(publish_records(settings, twice))
        v1 = wait_for("the straight booster", lambda: fired(settings, straight), 120, 1.0)
        v2 = wait_for("the shuffled booster", lambda: fired(settings, shuffled), 120, 1.0)
    finally:
        worker.stop()
    assert v1.ok, v1.problems
    assert v2.ok, v2.problems
    assert v1.report is not None and v2.report is not None
    assert (v1.report["audience"], v1.report["excluded"]) == (v2.report["audience"], v2.report["excluded"])
    # the same roles at the same positions got commands
    got_straight = {c.rsplit("-c", 1)[1] for c in straight.expected_audience}
    got_shuffled = {c.rsplit("-c", 1)[1] for c in shuffled.expected_audience}
    assert got_straight == got_shuffled


def test_g2_kill9_during_ingestion_and_fanout(kafka: LocalKafka, tmp_path: Path) -> None:
    # small chunks make the fan-out last long enough to be killed in three times
    settings = fresh_settings(BOOSTER_FANOUT_CHUNK="100")
    result = asyncio.run(chaos(settings, tmp_path, recipients=31_000, ingest_kills=2, fanout_kills=3))
    print(json.dumps(result.__dict__, indent=2))
    assert not result.problems, result.problems
    assert result.expected_commands >= 20_000
    assert result.commands_verified == result.expected_commands
    assert result.duplicate_command_ids == 0
    assert result.kills_during_ingestion == 2
    assert result.kills_during_fanout >= 1
    assert result.kills >= 5, f"only {result.kills} kills landed; the fan-out finished too fast"
