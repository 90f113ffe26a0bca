"""The local broker for real: the java process, Avro through Kafka, publish and tail, transactions."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from booster.broker.local import LocalKafka, kafka_version
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import produce_raw, read_topic
from booster.schemas import codec
from booster.schemas.catalog import INPUT_TOPICS
from tests.conftest import fresh_settings
from tests.helpers import booster, wait_for
from tests.samples import SAMPLES


def test_a_real_java_kafka_broker_is_running(kafka: LocalKafka) -> None:
    pid = kafka.pid()
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "java"
    assert b"kafka.Kafka" in cmdline
    assert any(f"kafka_2.13-{kafka_version()}.jar".encode() in p or b"libs" in p for p in cmdline)
    assert kafka_version().startswith("4.")


def test_starting_again_says_so_and_succeeds(kafka: LocalKafka, settings: Settings) -> None:
    result = booster(settings, "kafka", "start")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    status = booster(settings, "kafka", "status")
    assert status.returncode == 0 and "answering" in status.stdout


def test_a_port_taken_by_something_else_is_a_clear_error(kafka: LocalKafka, settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = booster(settings, "kafka", "start", BOOSTER_HOME=str(tmp_path), BOOSTER_KAFKA_PORT=str(port))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "taken by another process" in result.stderr


def test_avro_round_trip_through_kafka(settings: Settings) -> None:
    value = codec().encode("message.clicked", SAMPLES["message.clicked"])
    asyncio.run(produce_raw(settings, [("message.clicked", b"k", value)]))

    async def everything() -> list[Any]:
        return [msg async for msg in read_topic(settings, "message.clicked", until_end=True)]

    [msg] = asyncio.run(everything())
    assert msg.key == b"k"
    assert msg.value == value  # the exact bytes
    assert codec().decode("message.clicked", msg.value) == SAMPLES["message.clicked"]


def test_publish_then_tail_every_input_topic(settings: Settings) -> None:
    for topic in INPUT_TOPICS:
        records = [SAMPLES[topic], {"key": "explicit-key", "value": SAMPLES[topic]}]
        lines = "\n".join(json.dumps(r) for r in records) + "\n"
        result = booster(settings, "publish", topic, input=lines)
        assert result.returncode == 0, result.stderr
        assert "published 2 record(s)" in result.stderr
        tail = booster(settings, "tail", topic, "--from-beginning", "--until-end", "--epoch-ms")
        assert tail.returncode == 0, tail.stderr
        out = [json.loads(line) for line in tail.stdout.splitlines()]
        assert [o["value"] for o in out] == [SAMPLES[topic], SAMPLES[topic]], topic
        key_field = {"campaign": "campaign_id", "account": "account_id"}.get(topic.split(".")[0], "contact_id")
        assert sorted(o["key"] for o in out) == sorted([SAMPLES[topic][key_field], "explicit-key"])
        for o in out:
            assert set(o) == {"key", "value", "partition", "offset", "timestamp"}
            assert 0 <= o["partition"] < settings.partitions


def test_tail_shows_iso_timestamps_by_default(settings: Settings) -> None:
    booster(settings, "publish", "contact.deleted", input=json.dumps(SAMPLES["contact.deleted"]))
    tail = booster(settings, "tail", "contact.deleted", "--from-beginning", "--until-end")
    assert json.loads(tail.stdout.splitlines()[0])["value"]["deleted_at"] == "2026-01-01T00:00:05.000Z"


def test_publish_refuses_a_bad_line_naming_it_and_keeps_what_came_before(settings: Settings) -> None:
    good = SAMPLES["message.sent"]
    lines = [
        json.dumps({**good, "contact_id": "a"}),
        json.dumps({**good, "contact_id": "b"}),
        json.dumps({**good, "channel": "PIGEON"}),
        json.dumps({**good, "contact_id": "d"}),
    ]
    result = booster(settings, "publish", "message.sent", input="\n".join(lines))
    assert result.returncode == 1
    assert "line 3" in result.stderr and "PIGEON" in result.stderr
    assert "2 record(s) before it were published" in result.stderr
    tail = booster(settings, "tail", "message.sent", "--from-beginning", "--until-end")
    assert sorted(json.loads(line)["key"] for line in tail.stdout.splitlines()) == ["a", "b"]


def test_unknown_topic_is_refused(settings: Settings) -> None:
    result = booster(settings, "publish", "message.bounced", input="{}")
    assert result.returncode == 1 and "unknown topic" in result.stderr


def test_transactional_records_are_seen_only_after_commit(settings: Settings) -> None:
    topic = settings.topic("booster.commands")
    value = codec().encode("booster.commands", SAMPLES["booster.commands"])

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, transactional_id=f"{topic}-test")
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, isolation_level="read_committed")
        await producer.start()
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await producer.begin_transaction()
            await (await producer.send(topic, value, key=b"k", partition=0))
            # the last stable offset does not move past an open transaction
            assert (await consumer.end_offsets([tp]))[tp] == 0
            assert (await consumer.getmany(tp, timeout_ms=1500)).get(tp, []) == []
            await producer.commit_transaction()
            seen: list[Any] = []
            for _ in range(40):
                seen += (await consumer.getmany(tp, timeout_ms=250)).get(tp, [])
                if seen:
                    break
            assert [m.value for m in seen] == [value]
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(scenario())


def test_topics_create_is_idempotent_and_describe_is_clean(settings: Settings) -> None:
    again = booster(settings, "topics", "create")
    assert again.returncode == 0, again.stderr
    assert "0 topic(s) created" in again.stderr
    described = booster(settings, "topics", "describe", "--json")
    assert described.returncode == 0
    states = json.loads(described.stdout)
    assert len(states) == len(admin.wanted_topics())
    assert all(s["exists"] and s["partitions"] == settings.partitions and not s["problems"] for s in states)
    policies = {s["topic"].removeprefix(settings.topic_prefix): s["cleanup_policy"] for s in states}
    assert policies["booster.reports"] == "compact" and policies["account.channels"] == "compact"
    assert policies["message.sent"] == "delete"


def test_a_mismatched_partition_count_is_flagged_and_the_worker_refuses(kafka: LocalKafka) -> None:
    s = fresh_settings()

    async def make_bad_topic() -> None:
        client = admin.admin_client(s)
        await client.start()
        try:
            await client.create_topics([NewTopic(s.topic("message.opened"), 2, 1)])
        finally:
            await client.close()
        await admin.create(s)

    asyncio.run(make_bad_topic())
    described = booster(s, "topics", "describe")
    assert described.returncode == 1
    assert "not co-partitioned" in described.stderr
    worker = booster(s, "worker", "--web-port", "6199", timeout=60)
    assert worker.returncode == 1
    assert "not co-partitioned" in worker.stderr


def test_tail_waits_for_records_until_idle(settings: Settings) -> None:
    booster(settings, "publish", "message.opened", input=json.dumps(SAMPLES["message.opened"]))
    result = booster(settings, "tail", "message.opened", "--idle-timeout", "1")  # from the end: nothing new
    assert result.returncode == 0 and result.stdout == ""
    wait_for(
        "tail --max 1", lambda: booster(settings, "tail", "message.opened", "--from-beginning", "--max", "1").stdout
    )


def test_lag_and_tail_without_the_topics_say_to_create_them(kafka: LocalKafka) -> None:
    settings = fresh_settings()  # a prefix nobody created topics for
    lag = booster(settings, "lag", timeout=60)
    assert lag.returncode == 1 and "topics missing" in lag.stderr and "booster topics create" in lag.stderr
    assert "Traceback" not in lag.stderr
    tail = booster(settings, "tail", "booster.reports", "--until-end", timeout=60)
    assert tail.returncode == 1 and "booster topics create" in tail.stderr
