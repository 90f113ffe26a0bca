"""G5: any permutation and duplication of a scenario's events gives the same commands and report."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import account_record, publish_records, scenario_records, wait_for


def test_g5_duplicates_and_disorder_give_the_same_commands(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    launched_at = launched_for_deadline(int(time.time() * 1000) - 60_000)  # not about timing: already due
    tag = uuid.uuid4().hex[:6]
    straight = build(f"straight-{tag}", 400, launched_at=launched_at)
    shuffled = build(f"shuffled-{tag}", 400, launched_at=launched_at)
    twice = [account_record(shuffled), *scenario_records(shuffled, launch=False)] * 2
    random.Random(7).shuffle(twice)
    launches = [("campaign.launched", shuffled.launch_record())] * 2  # a duplicated launch, after the facts
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(settings, [account_record(straight), *scenario_records(straight)])
        publish_records(settings, [*twice, *launches])
        v1 = wait_for("the straight booster", lambda: fired(settings, straight), 120, 0.5)
        v2 = wait_for("the shuffled booster", lambda: fired(settings, shuffled), 120, 0.5)
    finally:
        worker.stop()
    assert v1.ok, v1.problems
    assert v2.ok, v2.problems
    assert v1.report is not None and v2.report is not None
    assert (v1.report["audience"], v1.report["excluded"]) == (v2.report["audience"], v2.report["excluded"])
    # the same roles at the same positions got commands
    got_straight = {c.rsplit("-c", 1)[1] for c in straight.expected_audience}
    got_shuffled = {c.rsplit("-c", 1)[1] for c in shuffled.expected_audience}
    assert got_straight and got_straight == got_shuffled
