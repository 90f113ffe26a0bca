"""Broker faults are not bad input: a broker killed for longer than the worker's
client timeouts and retries while the worker ingests, then again while it fans a booster out. Each time
the worker exits 75 without acknowledging what it could not write, a supervisor (here, the test)
restarts it once the broker is back, and the booster is exact, with no duplicate command and nothing in
the dead-letter topic.

It runs its own broker (`own_broker`, tests/faults/conftest.py): the shared one cannot be stopped."""

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
from tests.faults.outage import committed, gives_up, kill
from tests.helpers import account_record, publish_records, read_all, scenario_records, wait_for


def test_a_broker_down_longer_than_the_retries_ends_the_worker_and_a_restart_is_exact(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings(
        BOOSTER_BROKER=own_broker.bootstrap,
        BOOSTER_REQUEST_TIMEOUT_SECONDS="2",
        BOOSTER_RETRY_SECONDS="3",
        BOOSTER_SESSION_TIMEOUT_SECONDS="6",
        BOOSTER_FANOUT_CHUNK="100",  # a fan-out of many transactions, to be cut in the middle
    )
    asyncio.run(admin.create(settings))
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    sc = build(f"outage-{uuid.uuid4().hex[:6]}", 20_000, launched_at=due)  # some seconds of ingestion
    facts = scenario_records(sc, launch=False)
    publish_records(settings, [account_record(sc), *facts])
    worker = WorkerProcess(settings, tmp_path / "w").start()
    down_for = []
    try:
        # 1. while it ingests: its changelog flush waits for the broker, then it exits
        wait_for("ingestion under way", lambda: committed(settings) > len(facts) // 10, 60, 0.05)
        killed_at = kill(own_broker)
        gives_up(worker)
        down_for.append(time.monotonic() - killed_at)
        own_broker.start(say=lambda _m: None)
        worker.start()  # what the supervisor does
        # 2. while it fans out (the lag gate holds the due booster until every fact is processed): its
        # transactions wait for the broker, then it exits
        publish_records(settings, [("campaign.launched", sc.launch_record())])
        wait_for("the fan-out under way", lambda: uncommitted_high_watermark(settings) > 0, 300, 0.05)
        killed_at = kill(own_broker)
        gives_up(worker)
        down_for.append(time.monotonic() - killed_at)
        own_broker.start(say=lambda _m: None)
        worker.start()
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 300, 1.0)
    finally:
        worker.stop()
    assert min(down_for) > settings.request_timeout  # the clients gave up for real
    assert v.ok, v.problems  # exact audience, no duplicate command_id, the report right
    assert v.commands == len(sc.expected_audience) > 0
    assert read_all(settings, "booster.dead-letter") == []


def test_a_worker_started_while_the_broker_is_away_waits_for_it_and_starts_when_it_answers(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    """A supervisor restarts a worker during an outage: it must not exit 1 at once (a crash loop whose
    back-off delays the recovery), but wait, and be up moments after the broker is."""
    settings = fresh_settings(BOOSTER_BROKER=own_broker.bootstrap, BOOSTER_RETRY_SECONDS="120")
    asyncio.run(admin.create(settings))
    own_broker.stop(say=lambda _m: None)
    worker = WorkerProcess(settings, tmp_path / "w")
    try:
        worker.start(wait_ready=False)
        wait_for("the worker to say it waits", lambda: "waiting for the broker" in worker.log_text(), 60, 0.2)
        assert worker.alive()
        own_broker.start(say=lambda _m: None)
        worker.wait_ready(120)
        assert own_broker.bootstrap in worker.log_text()  # each try says where it looks
    finally:
        worker.stop()
