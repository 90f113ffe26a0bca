"""The workers' changelogs are created so that the broker's cleaner really compacts them: a
fresh worker then reads about one record per row, not every version of it."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.streams.connect import client_options
from tests.conftest import fresh_settings
from tests.helpers import wait_for

KEYS = 400
ROUNDS = 3


def test_the_worker_s_changelogs_carry_the_compaction_settings(kafka: LocalKafka) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create_internal(settings))
    configs = asyncio.run(_configs(settings, settings.changelog_topic("recipients")))
    assert {k: configs[k] for k in admin.CHANGELOG_CONFIGS} == admin.CHANGELOG_CONFIGS


def test_a_changelog_with_these_settings_is_compacted_by_the_broker(kafka: LocalKafka) -> None:
    """The same settings but segments rolled after 200 ms instead of an hour (the one change): every
    version of a key but the latest is gone from the rolled segments once the cleaner has run."""
    settings = fresh_settings()
    topic = settings.changelog_topic("recipients")
    asyncio.run(admin.create_named(settings, {topic: {**admin.CHANGELOG_CONFIGS, "segment.ms": "200"}}, partitions=1))
    for round_ in range(ROUNDS):
        asyncio.run(_write(settings, topic, round_))
        time.sleep(0.3)  # the segment's age, not a wait for an outcome: the next round rolls it
    asyncio.run(_write(settings, topic, ROUNDS, keys=1))  # rolls the last full round's segment
    written = ROUNDS * KEYS + 1

    def compacted() -> dict[bytes, bytes] | None:
        rows, count = asyncio.run(_read(settings, topic))
        return rows if count <= KEYS + 1 else None

    rows = wait_for("the broker's cleaner to compact the changelog", compacted, 120, 1.0)
    assert len(rows) == KEYS
    assert rows[b"k0"] == f"v{ROUNDS}".encode()  # the latest version of each key is kept
    assert all(rows[f"k{i}".encode()] == f"v{ROUNDS - 1}".encode() for i in range(1, KEYS))
    print(f"{written} records written, {len(rows)} rows left after compaction")


async def _configs(settings: Settings, topic: str) -> dict[str, str]:
    client = admin.admin_client(settings)
    await client.start()
    try:
        [response] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = response.resources[0][4]
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await client.close()


async def _write(settings: Settings, topic: str, round_: int, keys: int = KEYS) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for i in range(keys):
            await producer.send(topic, key=f"k{i}".encode(), value=f"v{round_}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _read(settings: Settings, topic: str) -> tuple[dict[bytes, bytes], int]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        rows: dict[bytes, bytes] = {}
        count = 0
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                assert record.key is not None and record.value is not None
                rows[record.key] = record.value
                count += 1
        return rows, count
    finally:
        await consumer.stop()
