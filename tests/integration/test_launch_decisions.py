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
from tests.helpers import account_record, publish_records, reports_by_campaign, scenario_records, wait_for

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
