"""G2 and G3 through a rebalance: a worker joins during ingestion, another leaves during the fan-out."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired, uncommitted_high_watermark
from tests.helpers import account_record, publish_records, scenario_records, wait_for


def test_rebalance_join_during_ingestion_leave_during_fanout(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings(BOOSTER_FANOUT_CHUNK="100")
    asyncio.run(admin.create(settings))
    roles = ["eligible", "eligible", "clicked", "eligible", "deleted"]
    a = WorkerProcess(settings, tmp_path / "a", name="a").start()
    b = WorkerProcess(settings, tmp_path / "b", name="b")
    # not about timing: the deadline is already due and the launch comes after every fact
    sc = build(
        f"rebal-{uuid.uuid4().hex[:6]}", 12_000, launched_at=launched_for_deadline(int(time.time() * 1000)), roles=roles
    )
    try:
        records = [account_record(sc), *scenario_records(sc, launch=False)]
        half = len(records) // 2
        publish_records(settings, records[:half])
        b.start()  # joins while the first half is being ingested
        publish_records(settings, [*records[half:], ("campaign.launched", sc.launch_record())])
        wait_for("the fan-out to start", lambda: uncommitted_high_watermark(settings) > 0, 180, 0.1)
        a.stop()  # leaves (SIGTERM) during the fan-out; its partitions move to b
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 180, 0.5)
        assert b.alive()
    finally:
        a.stop()
        b.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) >= 7000
