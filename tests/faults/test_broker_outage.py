"""Broker faults are not bad input (issue 15, point 3): a broker killed for longer than the worker's
client timeouts and retries while the worker ingests, then again while it fans a booster out. Each time
the worker exits 75 without acknowledging what it could not write, a supervisor (here, the test)
restarts it once the broker is back, and the booster is exact, with no duplicate command and nothing in
the dead-letter topic.

It runs its own broker, on other ports and in a temporary home: the shared one cannot be stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.streams.records import EXIT_RETRY_LATER
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.chaos import Watch
from tests.faults.harness import fired, uncommitted_high_watermark
from tests.helpers import account_record, publish_records, read_all, scenario_records, wait_for


def free_port_pair() -> int:
    """A port whose next one is free too (the broker's controller listens there)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture
def own_broker(kafka: LocalKafka, tmp_path: Path) -> Iterator[LocalKafka]:
    """A second local broker (the shared one's jars, linked, not fetched again)."""
    port = free_port_pair()
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(kafka.libs.parent)
    broker = LocalKafka(
        Settings.from_env(
            {"BOOSTER_HOME": str(home), "BOOSTER_KAFKA_PORT": str(port), "BOOSTER_BROKER": f"127.0.0.1:{port}"}
        )
    )
    broker.start(say=lambda _m: None)
    try:
        yield broker
    finally:
        broker.stop(say=lambda _m: None)


def committed(settings: Settings) -> int:
    """Facts of the contact-keyed topics the worker's group has committed (the chaos run's measure)."""

    async def go() -> int:
        async with Watch(settings) as watch:
            return await watch.processed()

    return asyncio.run(go())


def kill(broker: LocalKafka) -> float:
    pid = broker.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # at once, in the middle of whatever the worker writes
    return time.monotonic()


def gives_up(worker: WorkerProcess) -> None:
    wait_for("the worker to give up", lambda: not worker.alive(), 60, 0.2)
    assert worker.proc is not None and worker.proc.returncode == EXIT_RETRY_LATER, worker.log_text()[-3000:]
    assert "exiting with 75 without acknowledging it" in worker.log_text()


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
