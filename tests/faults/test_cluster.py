"""A three-node cluster (`booster kafka start --nodes 3`): the node that leads the commands' partitions is
killed with -9 during ingestion, started again, and the node leading them then is killed during the
fan-out. With replication factor 3, min.insync.replicas 2 and acks=all, nothing written is lost and
nothing is written twice: the commands are exactly the audience, each once, and the report is right.

Opt-in (three more JVMs, about two minutes): `./scripts/test.sh -m cluster -n 0 -s tests/faults/test_cluster.py`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess, free_ports
from tests.faults.harness import fired, uncommitted_high_watermark
from tests.faults.outage import kill
from tests.helpers import account_record, group_lag, publish_records, scenario_records, wait_for

pytestmark = pytest.mark.cluster
NODES = 3


@pytest.fixture
def cluster(kafka: LocalKafka, tmp_path: Path) -> Iterator[LocalKafka]:
    """Three local nodes on their own ports and log directories (the shared broker's jars, linked)."""
    port = free_ports(2 * NODES)
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(kafka.libs.parent)
    env = {"BOOSTER_HOME": str(home), "BOOSTER_KAFKA_PORT": str(port)}
    nodes = LocalKafka(Settings.from_env(env), nodes=NODES)
    nodes.start(say=lambda _m: None, timeout=180)
    try:
        yield nodes
    finally:
        nodes.stop(say=lambda _m: None)


def test_killing_the_commands_leader_during_ingestion_and_during_the_fan_out(
    cluster: LocalKafka, tmp_path: Path
) -> None:
    from tests.conftest import fresh_settings

    settings = fresh_settings(
        BOOSTER_BROKER=cluster.bootstrap,
        BOOSTER_REPLICATION_FACTOR=str(NODES),
        BOOSTER_FANOUT_CHUNK="50",  # many transactions: the kill lands between and inside them
        BOOSTER_HOME=str(tmp_path / "booster"),
    )
    asyncio.run(admin.create(settings))
    assert asyncio.run(replicas(settings)) == {NODES}
    roles = ["eligible", "eligible", "clicked", "eligible", "deleted"]
    sc = build(
        f"cluster-{uuid.uuid4().hex[:6]}",
        20_000,
        launched_at=launched_for_deadline(int(time.time() * 1000)),
        roles=roles,
    )
    worker = WorkerProcess(settings, tmp_path / "w", name="w").start(timeout=180)
    try:
        worker.wait_recovered(180)
        records = [account_record(sc), *scenario_records(sc, launch=False)]
        first = asyncio.run(commands_leader(settings))
        # the kill lands while the facts are being published and ingested
        publisher = threading.Thread(target=publish_records, args=(settings, records))
        publisher.start()
        wait_for("ingestion to start", lambda: group_lag(settings, list(CONTACT_INPUT_TOPICS)) > 0, 60, 0.05)
        kill(cluster, first)
        publisher.join(180)
        assert not publisher.is_alive(), "publishing did not end with one node down"
        wait_for("ingestion", lambda: group_lag(settings, list(CONTACT_INPUT_TOPICS)) == 0, 180, 0.3)
        cluster.start_node(first)
        wait_for("the node back in every ISR", lambda: asyncio.run(in_sync(settings)) == {NODES}, 120, 0.5)

        second = asyncio.run(commands_leader(settings))
        publish_records(settings, [("campaign.launched", sc.launch_record())])
        wait_for("the fan-out to start", lambda: uncommitted_high_watermark(settings) > 0, 120, 0.05)
        kill(cluster, second)
        written_at_kill = uncommitted_high_watermark(settings)
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 240, 1.0)
        assert worker.alive(), worker.log_text()[-3000:]
    finally:
        worker.stop()
    assert v.ok, v.problems
    assert v.commands == v.distinct_ids == len(sc.expected_audience) > 10_000
    assert written_at_kill < v.commands, "the fan-out had ended before the kill"
    print(
        f"killed node {first} during ingestion and node {second} during the fan-out (after {written_at_kill} "
        f"records of booster.commands): {v.commands} commands"
    )


async def commands_leader(settings: Settings) -> int:
    """The node that leads most of booster.commands' partitions."""
    described = await _describe(settings, "booster.commands")
    leaders = Counter(p["leader"] for p in described)
    leader: int = leaders.most_common(1)[0][0]
    return leader


async def replicas(settings: Settings) -> set[int]:
    return {len(p["replicas"]) for p in await _describe(settings, "booster.commands")}


async def in_sync(settings: Settings) -> set[int]:
    """The ISR sizes of the commands' and the input topics' partitions."""
    sizes: set[int] = set()
    for topic in ("booster.commands", *CONTACT_INPUT_TOPICS):
        sizes |= {len(p["isr"]) for p in await _describe(settings, topic)}
    return sizes


async def _describe(settings: Settings, topic: str) -> list[dict]:  # type: ignore[type-arg]
    client = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await client.start()
    try:
        [found] = await client.describe_topics([settings.topic(topic)])
        return list(found["partitions"])
    finally:
        await client.close()
