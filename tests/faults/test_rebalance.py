"""G2 and G3 through a rebalance: a worker joins during ingestion, another leaves during the fan-out;
every table's changelog is in the assignment, so its state follows its partitions."""

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
from tests.helpers import account_record, group_assignment, publish_records, scenario_records, wait_for


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


def test_every_table_changelog_is_assigned_even_when_only_the_contract_topics_exist(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """A changelog the group leader's metadata does not list is left out of the assignment, and the
    worker that takes its partitions over runs without that table's state (a launch then waited for
    an account it had been sent). Faust creates the changelogs while its consumer joins, so the
    worker creates them first."""
    settings = fresh_settings()
    contract = {settings.topic(w.name): w.compacted for w in admin.wanted_topics()}
    asyncio.run(admin.create_named(settings, contract))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        assigned = wait_for("the group's assignment", lambda: group_assignment(settings), 60, 0.2)
    finally:
        worker.stop()
    every_partition = set(range(settings.partitions))
    want = {topic: every_partition for topic in admin.changelog_topics(settings)}
    assert {topic: assigned.get(topic) for topic in want} == want


def test_fetches_queued_on_the_lane_when_a_worker_joins_are_dropped_and_read_again(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """The ingest agent of worker a is held (BOOSTER_TEST_HOLD_INGEST) until several fetches wait on its
    lane; then b joins, and the rebalance revokes the partitions those fetches hold. What they held is
    read again by the partitions' new owners, from the committed offsets, and nothing fetched before
    the revoke is ingested after it: the booster's audience is exact."""
    settings = fresh_settings(BOOSTER_FANOUT_CHUNK="100")
    asyncio.run(admin.create(settings))
    hold = tmp_path / "hold-ingest"
    hold.touch()
    a = WorkerProcess(settings, tmp_path / "a", name="a", BOOSTER_TEST_HOLD_INGEST=str(hold)).start()
    b = WorkerProcess(settings, tmp_path / "b", name="b")
    sc = build(
        f"held-{uuid.uuid4().hex[:6]}", 12_000, launched_at=launched_for_deadline(int(time.time() * 1000)),
        roles=["eligible", "clicked", "eligible", "deleted", "opened", "eligible"],
    )  # fmt: skip
    try:
        publish_records(settings, [account_record(sc), *scenario_records(sc, launch=False)])
        wait_for("fetches to wait on a's lane", lambda: a.metric("booster_lane_queued_fetches") >= 3, 90, 0.2)
        b.start()
        b.wait_recovered()
        hold.unlink()  # a's agent goes on: what its lane still holds of revoked partitions must be dropped
        publish_records(settings, [("campaign.launched", sc.launch_record())])
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 180, 0.5)
        assert a.alive() and b.alive()
    finally:
        hold.unlink(missing_ok=True)
        a.stop()
        b.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience)
