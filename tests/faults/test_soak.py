"""Months of uptime in minutes: 300 boosters one after another on a worker whose clock runs
an hour per second (BOOSTER_TEST_CLOCK), small audiences with deleted and unsubscribed contacts. Fire
latency must not grow with the boosters run, every table must come back to its baseline once the
retentions have passed, and the worker's memory must stay flat.

Opt-in (about 9 minutes): `./scripts/test.sh -m soak -n 0 -s tests/faults/test_soak.py`. The figures are
printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import RawRecord
from booster.schemas import codec
from booster.schemas.catalog import STATE_TABLES
from booster.streams.records import WorkerClock
from booster.testing.scenario import build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import accept_stamps_ahead, account_record, encoded, scenario_records, wait_for

pytestmark = pytest.mark.soak

SPEED = 3600.0  # an hour of the worker's clock per second
BOOSTERS = int(os.environ.get("SOAK_BOOSTERS", "300"))  # fewer for a quick try
EVERY_S = 1.0  # a launch per second of wall clock: an hour apart on the worker's clock
DELAY_S = 2 * 3600
ROLES = ["eligible", "eligible", "opened", "clicked", "deleted", "unsub_all"]
RECIPIENTS = 12
DAY_MS = 86_400_000


@dataclass
class Soak:
    settings: Settings
    clock: WorkerClock
    deadlines_wall: dict[str, float] = field(default_factory=dict)  # campaign -> wall time of its deadline
    reported_wall: dict[str, float] = field(default_factory=dict)  # campaign -> when its SENT report was read

    def wall_of(self, event_ms: int) -> float:
        return (self.clock.anchor_ms + (event_ms - self.clock.anchor_ms) / self.clock.speed) / 1000


async def follow_reports(soak: Soak, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        soak.settings.topic("booster.reports"),
        bootstrap_servers=soak.settings.broker,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    report = codec().decode("booster.reports", r.value)
                    if report["status"] == "SENT":
                        soak.reported_wall.setdefault(report["campaign_id"], time.time())
                    elif report["status"] not in ("SCHEDULED", "PENDING"):
                        raise AssertionError(f"a booster of the soak was not sent: {report}")
    finally:
        await consumer.stop()


async def publish(soak: Soak, producer: AIOKafkaProducer, records: list[RawRecord]) -> None:
    # stamped with the worker's clock: a campaign's rows are dated by the record timestamps (R12)
    stamp = soak.clock.now()
    futures = [await producer.send(soak.settings.topic(t), key=k, value=v, timestamp_ms=stamp) for t, k, v in records]
    await asyncio.gather(*futures)


async def run_boosters(soak: Soak, worker: WorkerProcess) -> list[int]:
    """Launch the boosters at a steady pace while their reports are read; RSS after each hundred."""
    stop = asyncio.Event()
    reader = asyncio.create_task(follow_reports(soak, stop))
    producer = AIOKafkaProducer(bootstrap_servers=soak.settings.broker, acks="all", enable_idempotence=True)
    await producer.start()
    rss = []
    try:
        started = time.monotonic()
        for i in range(BOOSTERS):
            await asyncio.sleep(max(0.0, started + i * EVERY_S - time.monotonic()))
            sc = build(
                f"soak-{i:03d}-{uuid.uuid4().hex[:4]}",
                RECIPIENTS,
                launched_at=soak.clock.now(),
                delay_seconds=DELAY_S,
                roles=ROLES,
                account_id="acct-soak",
            )
            await publish(soak, producer, encoded(scenario_records(sc)))
            soak.deadlines_wall[sc.campaign_id] = soak.wall_of(sc.deadline)
            if (i + 1) % 100 == 0:
                rss.append(worker.rss_bytes())
        deadline = time.monotonic() + 120
        while len(soak.reported_wall) < BOOSTERS and time.monotonic() < deadline and not reader.done():
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await producer.stop()
        await reader  # raises what the reader found wrong
    return rss


async def live_keys(settings: Settings) -> dict[str, int]:
    """Keys with a value (the latest record per key and partition) in each table's changelog and in
    booster.fanout-progress, read to their ends."""
    topics = {table: settings.changelog_topic(table) for table in STATE_TABLES}
    topics["booster.fanout-progress"] = settings.topic("booster.fanout-progress")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    counts: dict[str, int] = {}
    try:
        for name, topic in topics.items():
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            latest: dict[tuple[int, bytes | None], bool] = {}
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=50)).values():
                    for r in records:
                        latest[(r.partition, r.key)] = r.value is not None
            counts[name] = sum(latest.values())
    finally:
        await consumer.stop()
    return counts


def _with_account(counts: dict[str, int]) -> dict[str, int] | None:
    return counts if counts["accounts"] == 1 else None


async def publish_one_account(soak: Soak, record: tuple[str, dict[str, object]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=soak.settings.broker, acks="all")
    await producer.start()
    try:
        await publish(soak, producer, encoded([record]))
    finally:
        await producer.stop()


def test_300_boosters_over_months_keep_latency_state_and_memory_flat(kafka: LocalKafka, tmp_path: Path) -> None:
    clock = WorkerClock(SPEED, int(time.time() * 1000))
    settings = fresh_settings(
        BOOSTER_TICK_INTERVAL_SECONDS="0.2",
        BOOSTER_LAUNCH_STALENESS_SECONDS=str(3 * 86400),
    )
    asyncio.run(admin.create(settings))
    asyncio.run(accept_stamps_ahead(settings))
    worker = WorkerProcess(
        settings,
        tmp_path / "w",
        BOOSTER_TEST_CLOCK=f"{SPEED}@{clock.anchor_ms}",
        BOOSTER_SWEEP_INTERVAL_SECONDS="2",
        BOOSTER_DECISION_RETENTION_DAYS="8",
        BOOSTER_CONTACT_RETENTION_DAYS="9",
    ).start()
    soak = Soak(settings, clock)
    try:
        sc = build("soak-account", 1, launched_at=clock.now(), account_id="acct-soak")
        asyncio.run(publish_one_account(soak, account_record(sc)))
        baseline = wait_for("the account's row", lambda: _with_account(asyncio.run(live_keys(settings))), 60, 0.5)
        rss = asyncio.run(run_boosters(soak, worker))
        assert len(soak.reported_wall) == BOOSTERS, f"{BOOSTERS - len(soak.reported_wall)} boosters never reported"
        peak = asyncio.run(live_keys(settings))
        # every retention passes: the contacts' (9 days after their latest fact) is the longest
        wait_until = soak.wall_of(clock.now() + 9 * DAY_MS) + 30
        after = peak
        while time.time() < wait_until + 60:
            after = asyncio.run(live_keys(settings))
            if after == baseline:
                break
            time.sleep(5)
        rss.append(worker.rss_bytes())
        log = worker.log_text()
    finally:
        worker.stop()
    latencies = [soak.reported_wall[c] - soak.deadlines_wall[c] for c in soak.deadlines_wall]
    first, last = statistics.median(latencies[:30]), statistics.median(latencies[-30:])
    figures = {
        "boosters": BOOSTERS,
        "deadline_to_final_report_s_median_first_30": round(first, 3),
        "deadline_to_final_report_s_median_last_30": round(last, 3),
        "keys_baseline": baseline,
        "keys_at_peak": peak,
        "keys_after_retention": after,
        "rss_mib_after_each_100_and_at_end": [round(r / 2**20, 1) for r in rss],
        "sweeps_that_removed_rows": log.count("removed state past its retention"),
    }
    print(json.dumps(figures, indent=2))
    assert last <= 1.5 * max(first, 0.5), figures  # below half a second, noise is not growth
    assert after == baseline, figures
    assert sum(peak.values()) > sum(baseline.values())  # there was state to remove
    assert rss[-1] <= 1.25 * rss[0], figures
