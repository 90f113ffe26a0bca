"""Launch decisions through the contract topics (R15): a launch decided too long after its deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.processors.boosters import booster_id_of
from booster.testing.demo import commands_for
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import (
    account_record,
    publish_records,
    reports_by_campaign,
    scenario_records,
    scrape_metrics,
    wait_for,
)

HOUR_MS = 3_600_000


def test_a_launch_seen_after_its_deadline_plus_the_staleness_bound_is_cancelled_as_stale(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings(BOOSTER_LAUNCH_STALENESS_SECONDS="3600")
    asyncio.run(admin.create(settings))
    now = int(time.time() * 1000)
    tag = uuid.uuid4().hex[:6]
    stale = build(f"stale-{tag}", 20, launched_at=launched_for_deadline(now - HOUR_MS - 60_000))
    recent = build(f"recent-{tag}", 20, launched_at=launched_for_deadline(now - HOUR_MS + 60_000))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(settings, [account_record(stale), *scenario_records(stale), *scenario_records(recent)])

        def final(campaign_id: str, status: str) -> dict[str, object] | None:
            reports = [r for r, _ in reports_by_campaign(settings).get(campaign_id, []) if r["status"] == status]
            return reports[0] if reports else None

        cancelled = wait_for("the stale booster's report", lambda: final(stale.campaign_id, "CANCELLED"), 60, 0.5)
        sent = wait_for("the recent booster to fire", lambda: final(recent.campaign_id, "SENT"), 60, 0.5)
    finally:
        worker.stop()
    assert str(cancelled["reason"]).startswith("stale:")
    assert asyncio.run(commands_for(settings, booster_id_of(stale.campaign_id))) == []
    assert sent["audience"] == len(recent.expected_audience) > 0


def test_a_rejected_boosters_rows_and_later_facts_are_dropped_at_once(kafka: LocalKafka, tmp_path: Path) -> None:
    """R12 for refused launches: a booster REJECTED at launch has no use for its campaign's rows."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    sc = build(f"rejected-{tag}", 20, channel="SMS", launched_at=launched_for_deadline(int(time.time() * 1000)))
    emails_only = ("account.channels", {**sc.account_channels(), "channels": ["EMAIL"]})
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(settings, [emails_only, *scenario_records(sc)])
        wait_for("the REJECTED report", lambda: reports_by_campaign(settings).get(sc.campaign_id), 60, 0.5)
        later = [
            (
                "message.opened",
                {"campaign_id": sc.campaign_id, "contact_id": c, "message_id": "x", "opened_at": sc.launched_at + 1},
            )
            for c in sorted(sc.roles)
        ]

        def dropped() -> float | None:
            # the report can be read before every partition has applied NO_BOOSTER: facts published
            # meanwhile are still folded, so publish again until a whole round has been dropped
            publish_records(settings, later)
            n = scrape_metrics(worker.port).get("booster_events_dropped_total", 0)
            return n if n >= len(later) else None

        wait_for("the later facts to be dropped", dropped, 60, 0.5)
    finally:
        worker.stop()
    [(report, _)] = reports_by_campaign(settings)[sc.campaign_id]
    assert report["status"] == "REJECTED"


def test_lag_is_not_lateness_a_launch_on_time_is_sent_however_late_a_worker_reaches_it(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """G1: two launches whose deadline passed 90 minutes ago. One reached Kafka a minute before its
    deadline (its record's timestamp): the worker reaches it only now, as a worker 90 minutes behind
    would, and it is sent with its exact audience. The other reached Kafka now, 90 minutes after its
    deadline: stale (STALE_LAUNCH), whatever the worker."""
    from aiokafka import AIOKafkaProducer

    from booster.schemas import codec
    from tests.faults.harness import fired

    settings = fresh_settings(BOOSTER_LAUNCH_STALENESS_SECONDS="3600")
    asyncio.run(admin.create(settings))
    now = int(time.time() * 1000)
    deadline = now - 90 * 60_000
    tag = uuid.uuid4().hex[:6]
    on_time = build(f"behind-{tag}", 60, launched_at=launched_for_deadline(deadline))
    late = build(f"late-{tag}", 60, launched_at=launched_for_deadline(deadline))
    publish_records(settings, [account_record(on_time), *scenario_records(on_time, launch=False)])
    publish_records(settings, [*scenario_records(late, launch=False), ("campaign.launched", late.launch_record())])

    async def stamped() -> None:  # what an upstream wrote 91 minutes ago, still unread by any worker
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        await producer.start()
        try:
            value = codec().encode("campaign.launched", on_time.launch_record())
            await producer.send_and_wait(
                settings.topic("campaign.launched"),
                value,
                key=on_time.campaign_id.encode(),
                timestamp_ms=deadline - 60_000,
            )
        finally:
            await producer.stop()

    asyncio.run(stamped())
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        v = wait_for("the on-time booster to fire", lambda: fired(settings, on_time), 90, 0.5)

        def cancelled() -> dict[str, object] | None:
            reports = [
                r for r, _ in reports_by_campaign(settings).get(late.campaign_id, []) if r["status"] == "CANCELLED"
            ]
            return reports[0] if reports else None

        stale = wait_for("the late launch's report", cancelled, 60, 0.5)
    finally:
        worker.stop()
    assert v.ok, v.problems
    assert v.commands == len(on_time.expected_audience) > 0
    assert stale["reason_code"] == "STALE_LAUNCH" and str(stale["reason"]).startswith("stale: the launch reached Kafka")
