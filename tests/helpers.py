"""What the broker tests share: the CLI as a subprocess, polling with deadlines, publishing records in
order, reading topics up to their end, the workers' group lag, metrics and decision lines."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import RawRecord, produce_raw, read_topic
from booster.schemas import codec, spec_for
from booster.schemas.catalog import INPUT_TOPICS
from booster.streams.connect import client_options
from booster.streams.gate import LagGate
from booster.testing.scenario import Scenario
from booster.testing.workers import parse_metrics, worker_env

T = TypeVar("T")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return worker_env(settings, **extra)


def booster(
    settings: Settings, *args: str, input: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "booster", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env_for(settings, **env),
    )


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- publishing --------------------------------------------------------------------------------------

Record = tuple[str, dict[str, Any]]  # contract topic, value


def key_of(topic: str, record: dict[str, Any]) -> bytes:
    return str(record[spec_for(topic).key_field or "contact_id"]).encode()


def scenario_records(sc: Scenario, launch: bool = True) -> list[Record]:
    """Every fact of a scenario, then (by default) its launch: the launch comes last, so a deadline
    that is already due counts every fact (the lag gate's snapshot is taken after the launch)."""
    out = [(topic, r) for topic, records in sc.records.items() for r in records]
    if launch:
        out.append(("campaign.launched", sc.launch_record()))
    return out


def account_record(sc: Scenario) -> Record:
    return ("account.channels", sc.account_channels())


def encoded(records: list[Record]) -> list[RawRecord]:
    return [(topic, key_of(topic, r), codec().encode(topic, r)) for topic, r in records]


async def accept_stamps_ahead(settings: Settings) -> None:
    """The facts are stamped with the worker's fast clock, days ahead of the broker's; Kafka 4 refuses
    a record stamped more than an hour ahead unless the topic says otherwise."""
    setting, ahead = "message.timestamp.after.max.ms", str(2**63 - 1)
    client = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await client.start()
    try:
        await client.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic(t), {setting: ahead}) for t in INPUT_TOPICS]
        )
        # the broker applies a topic's new config a moment later: a record sent before is refused
        give_up_at = time.monotonic() + 30
        while True:
            described = await client.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, settings.topic(t)) for t in INPUT_TOPICS]
            )
            values = [
                entry[1]
                for response in described
                for resource in response.resources
                for entry in resource[4]
                if entry[0] == setting
            ]
            if len(values) == len(INPUT_TOPICS) and all(v == ahead for v in values):
                return
            if time.monotonic() > give_up_at:
                raise AssertionError(f"the broker did not apply {setting} to the input topics in 30 s: {values}")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def publish_stamped(settings: Settings, records: list[RawRecord], stamp_ms: int) -> None:
    """Produce records in this order, each stamped `stamp_ms`: a worker on a test clock dates a
    campaign's rows by their record timestamps (R12), so they must read its time, not the wall's."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(settings.topic(t), key=k, value=v, timestamp_ms=stamp_ms) for t, k, v in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def publish_records(settings: Settings, records: list[Record]) -> int:
    """Produce records in exactly this order (across topics), keyed as the contract says."""
    return asyncio.run(produce_raw(settings, encoded(records)))


# -- reading -----------------------------------------------------------------------------------------


def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, Any], int]]:
    """Every record of a contract topic committed when this is called: (key, decoded value, timestamp)."""

    async def go() -> list[tuple[bytes | None, dict[str, Any], int]]:
        out = []
        async for msg in read_topic(settings, topic, until_end=True):
            out.append((msg.key, codec().decode(topic, msg.value), msg.timestamp))
        return out

    return asyncio.run(go())


def reports_by_campaign(settings: Settings) -> dict[str, list[tuple[dict[str, Any], int]]]:
    out: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for _key, value, ts in read_all(settings, "booster.reports"):
        out.setdefault(value["campaign_id"], []).append((value, ts))
    return out


def group_lag(settings: Settings, topics: list[str]) -> int:
    """Records of these topics the workers' group has not committed yet."""

    async def go() -> int:
        gate = LagGate(client_options(settings), settings.group_id)
        try:
            tps = [TopicPartition(settings.topic(t), p) for t in topics for p in range(settings.partitions)]
            return sum((await gate.lagging(tps)).values())
        finally:
            await gate.stop()

    return asyncio.run(go())


def group_assignment(settings: Settings) -> dict[str, set[int]]:
    """The partitions the workers' group leader assigned, by topic, over every member (Faust puts
    its tables' changelog partitions in the Kafka assignment too)."""

    assigned: dict[str, set[int]] = {}
    for group in describe_group(settings):
        for member in group[5]:  # (member id, client id, host, metadata, assignment)
            raw = member[-1]
            if not raw:
                continue
            for topic, partitions in ConsumerProtocolMemberAssignment.decode(raw).assignment:
                assigned.setdefault(topic, set()).update(partitions)
    return assigned


def describe_group(settings: Settings) -> list[Any]:
    """The broker's description of the workers' group: (error code, group id, state, protocol type,
    protocol, members, ...)."""

    async def go() -> list[Any]:
        client = admin.admin_client(settings)
        await client.start()
        try:
            [response] = await client.describe_consumer_groups([settings.group_id])
        finally:
            await client.close()
        return list(response.groups)

    return asyncio.run(go())


def scrape_metrics(port: int) -> dict[str, float]:
    """A worker's /metrics as {series with labels: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    assert "# TYPE booster_events_total counter" in text
    return parse_metrics(text)


def decisions(log: str) -> list[dict[str, Any]]:
    """The JSON decision lines of a worker's log."""
    return [json.loads(line[line.index("{") :]) for line in log.splitlines() if '"event": ' in line]


def changelog_latest(settings: Settings, table: str) -> dict[bytes, bytes | None]:
    """The latest value of every key of a table's changelog (None: deleted)."""

    async def go() -> dict[bytes, bytes | None]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = f"{settings.group_id}-{table}-changelog"
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, isolation_level="read_committed")
        await consumer.start()
        latest: dict[bytes, bytes | None] = {}
        try:
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    for m in msgs:
                        latest[m.key] = m.value
        finally:
            await consumer.stop()
        return latest

    return asyncio.run(go())
