"""G3: state survives a restart and comes back from the changelogs on a machine with no local state."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import account_record, group_lag, publish_records, scenario_records, wait_for

LEAD_MS = 20_000  # from the launch to the deadline: the first worker ingests and stops within it


def test_g3_restart_between_ingestion_and_deadline_and_recovery_on_a_new_machine(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    first = WorkerProcess(settings, tmp_path / "first", name="first").start()
    sc = build(f"restart-{uuid.uuid4().hex[:6]}", 800, launched_at=int(time.time() * 1000) - 2 * HOUR_MS + LEAD_MS)
    publish_records(settings, [account_record(sc), *scenario_records(sc)])
    wait_for("ingestion", lambda: group_lag(settings, [*CONTACT_INPUT_TOPICS, "booster.control"]) == 0, 90, 0.2)
    first.stop()  # a clean stop (SIGTERM) before the deadline
    assert time.time() * 1000 < sc.deadline, "the first worker was still running at the deadline; raise LEAD_MS"
    started = time.monotonic()
    # a fresh data directory: the state can only come back from the changelog topics
    second = WorkerProcess(settings, tmp_path / "second", name="second").start()
    recovery = time.monotonic() - started
    try:
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
    finally:
        second.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) > 0
    print(f"recovery of a fresh worker from changelogs: {recovery:.1f} s")
