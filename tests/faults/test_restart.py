"""G3: state survives a restart and comes back from the changelogs on a machine with no local state."""

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
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import account_record, describe_group, group_lag, publish_records, scenario_records, wait_for

LEAD_MS = 20_000  # from the launch to the deadline: the first worker ingests and stops within it


@pytest.mark.parametrize("bulk", ["on", "off"], ids=["bulk-restore", "faust-recovery"])
def test_g3_restart_between_ingestion_and_deadline_and_recovery_on_a_new_machine(
    kafka: LocalKafka, tmp_path: Path, bulk: str
) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    first = WorkerProcess(settings, tmp_path / "first", name="first").start()
    sc = build(f"restart-{uuid.uuid4().hex[:6]}", 800, launched_at=int(time.time() * 1000) - 2 * HOUR_MS + LEAD_MS)
    publish_records(settings, [account_record(sc), *scenario_records(sc)])
    wait_for("ingestion", lambda: group_lag(settings, [*CONTACT_INPUT_TOPICS, "booster.control"]) == 0, 90, 0.2)
    first.stop()  # a clean stop (SIGTERM) before the deadline
    assert time.time() * 1000 < sc.deadline, "the first worker was still running at the deadline; raise LEAD_MS"
    # a fresh data directory: the state can only come back from the changelog topics
    second = WorkerProcess(settings, tmp_path / "second", name="second", BOOSTER_BULK_RESTORE=bulk).start()
    recovery = second.wait_recovered()
    assert second.get("/ready")[0] == 200 and second.get("/live") == (200, "live\n")
    try:
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
    finally:
        second.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) > 0
    restored = re.findall(r"bulk restore: (\d+) records of", second.log_text())
    if bulk == "on":  # every changelog record was written by the bulk restore, none left to Faust
        assert restored and int(restored[0]) > 2 * len(sc.expected_audience), second.log_text()[-3000:]
        assert "Restoring state from changelog topics" not in second.log_text()
    else:
        assert not restored
        assert "Restoring state from changelog topics" in second.log_text()
    print(f"recovery of a fresh worker from changelogs ({bulk}): {recovery:.1f} s")


ASSIGNED = "Executing _on_partitions_assigned"  # Faust's line at every assignment the worker gets


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_a_static_member_back_within_the_session_timeout_moves_no_partition(
    kafka: LocalKafka, tmp_path: Path, static: bool
) -> None:
    """BOOSTER_GROUP_INSTANCE_ID: a worker killed and started again within the session timeout takes
    its place back without a rebalance (the other worker is not interrupted); without it, the same
    restart rebalances the group (the control: what the static case watches for does happen)."""
    settings = fresh_settings(BOOSTER_SESSION_TIMEOUT_SECONDS="45")
    asyncio.run(admin.create(settings))
    ids = ({"BOOSTER_GROUP_INSTANCE_ID": "w-a"}, {"BOOSTER_GROUP_INSTANCE_ID": "w-b"}) if static else ({}, {})
    a = WorkerProcess(settings, tmp_path / "a", name="a", **ids[0]).start()
    b = WorkerProcess(settings, tmp_path / "b", name="b", **ids[1]).start()
    try:
        wait_for("both workers assigned", lambda: _members(settings) == 2, 90, 0.5)
        wait_for("b's assignment after a's join", lambda: b.log_text().count(ASSIGNED) >= 1, 90, 0.5)
        settled = b.log_text().count(ASSIGNED)
        a.kill()
        a.start()  # the same state directory (and instance id), well within the 45 s session timeout
        if not static:
            wait_for("the rebalance b takes part in", lambda: b.log_text().count(ASSIGNED) > settled, 90, 0.5)
            return
        # b would be told to rejoin within a heartbeat (3 s) of a rebalance: watch five heartbeats
        watch_until = time.monotonic() + 15
        while time.monotonic() < watch_until:
            assert b.log_text().count(ASSIGNED) == settled, "b took part in a rebalance"
            time.sleep(0.5)
        assert _members(settings) == 2 and a.alive() and b.alive()
    finally:
        a.stop()
        b.stop()


def _members(settings: Settings) -> int:
    """Members of the workers' group that hold an assignment, once the group is stable (0 before)."""
    stable = [group for group in describe_group(settings) if group[2] == "Stable"]
    return sum(1 for group in stable for member in group[5] if member[-1])
