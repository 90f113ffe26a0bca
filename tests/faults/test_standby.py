"""Standby replicas (BOOSTER_STANDBY_REPLICAS): a worker killed with -9 hands its partitions to one that
kept a copy of their tables, which takes them over without reading their changelogs again. Without a
standby (the control), the same takeover reads the dead worker's half of the changelogs."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import (
    account_record,
    describe_group,
    group_lag,
    publish_records,
    scenario_records,
    wait_for,
)

BEHIND = re.compile(r"recovery: (\d+) changelog records behind")


@pytest.mark.parametrize("standbys", [0, 1], ids=["no-standby", "standby"])
def test_a_killed_worker_s_partitions_move_to_its_standby_without_a_restore(
    kafka: LocalKafka, tmp_path: Path, standbys: int
) -> None:
    settings = fresh_settings(BOOSTER_STANDBY_REPLICAS=str(standbys))
    asyncio.run(admin.create(settings))
    a = WorkerProcess(settings, tmp_path / "a", name="a").start()
    b = WorkerProcess(settings, tmp_path / "b", name="b").start()
    sc = build(f"standby-{uuid.uuid4().hex[:6]}", 2_000, launched_at=launched_for_deadline(int(time.time() * 1000)))
    try:
        wait_for("both workers in the group", lambda: _stable_members(settings) == 2, 90, 0.3)
        b.wait_recovered()
        publish_records(settings, [account_record(sc), *scenario_records(sc, launch=False)])
        wait_for("ingestion", lambda: group_lag(settings, list(CONTACT_INPUT_TOPICS)) == 0, 120, 0.2)
        total = asyncio.run(admin.changelog_records(settings))
        seen = len(b.log_text())
        a.kill()
        # b takes every partition over after the session timeout: its recovery says how far behind it was
        takeover = wait_for("b's takeover", lambda: BEHIND.findall(b.log_text()[seen:]), 90, 0.3)
        b.wait_recovered()
        publish_records(settings, [("campaign.launched", sc.launch_record())])
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
    finally:
        a.kill()
        b.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) > 0
    behind = int(takeover[-1])
    print(f"standbys={standbys}: {behind} of {total} changelog records read at the takeover")
    if standbys:
        assert behind <= total // 50, f"with a standby, the takeover read {behind} of {total} records"
    else:  # the control: a's half of the state came back from the changelogs
        assert behind >= total // 4, f"without a standby, the takeover read only {behind} of {total} records"


def _stable_members(settings: Settings) -> int:
    """Members of the workers' group once it is Stable (0 while it rebalances)."""
    groups = describe_group(settings)
    return len(groups[0][5]) if groups and groups[0][2] == "Stable" else 0
