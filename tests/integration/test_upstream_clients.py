"""Upstream services written with librdkafka (confluent-kafka: the client of most Go, .NET, Node and
Python services), producing in Kafka transactions, some of them aborted."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import RecordsToDelete
from confluent_kafka import Producer

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import RawRecord, produce_raw
from booster.streams.connect import client_options
from booster.streams.gate import LagGate, only_markers_left, probe_consumer
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import final_report, fired
from tests.helpers import (
    account_record,
    booster,
    encoded,
    publish_records,
    scenario_records,
    scrape_metrics,
    wait_for,
)

TRANSACTION = 200  # records per committed transaction


def transactional_producer(settings: Settings) -> Producer:
    """A librdkafka producer with transactions; murmur2 like the Java client, so the records land in
    the partitions the contract expects."""
    producer = Producer(
        {
            "bootstrap.servers": settings.broker,
            "transactional.id": f"upstream-{uuid.uuid4().hex}",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    return producer


def in_transaction(producer: Producer, settings: Settings, records: list[RawRecord], commit: bool = True) -> None:
    producer.begin_transaction()
    for topic, key, value in records:
        producer.produce(settings.topic(topic), value=value, key=key)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.flush(30)  # written to the log, then aborted: a read-committed consumer must skip them
        producer.abort_transaction(30)


def test_the_gate_tells_markers_and_aborted_records_from_records_not_processed(settings: Settings) -> None:
    topic = "message.clicked"
    tp = TopicPartition(settings.topic(topic), 0)
    producer = transactional_producer(settings)
    producer.begin_transaction()
    producer.produce(tp.topic, value=b"committed-1", key=b"k", partition=0)
    producer.produce(tp.topic, value=b"committed-2", key=b"k", partition=0)
    producer.commit_transaction(30)  # records at 0 and 1, the commit marker at 2
    producer.begin_transaction()
    producer.produce(tp.topic, value=b"aborted", key=b"k", partition=0)
    producer.flush(30)
    producer.abort_transaction(30)  # a record at 3, the abort marker at 4

    async def settled(position: int) -> bool:
        consumer = probe_consumer(client_options(settings))
        await consumer.start()
        try:
            ends = await consumer.end_offsets([tp])
            assert ends[tp] == 5
            return tp in await only_markers_left(consumer, {tp: position}, ends)
        finally:
            await consumer.stop()

    assert asyncio.run(settled(2))  # past the last record: only markers and an aborted record left
    assert not asyncio.run(settled(1))  # the second record is not processed yet
    assert not asyncio.run(settled(0))


def test_a_position_below_the_log_start_is_behind_not_caught_up(settings: Settings) -> None:
    """Retention deleted the oldest records a worker never processed: the probe must not jump to the
    end of the partition (a consumer's default reset) and call it caught up."""
    tp = TopicPartition(settings.topic("message.opened"), 0)

    async def go() -> set[TopicPartition]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker)
        await producer.start()
        try:
            for i in range(6):
                await producer.send_and_wait(tp.topic, b"v%d" % i, key=b"k", partition=0)
        finally:
            await producer.stop()
        client = admin.admin_client(settings)
        await client.start()
        try:
            await client.delete_records({tp: RecordsToDelete(before_offset=3)})
        finally:
            await client.close()
        gate = LagGate(client_options(settings), settings.group_id)
        try:
            ends = await gate.end_offsets([tp])
            assert ends[tp] == 6
            return set(await gate.lagging([tp], ends))
        finally:
            await gate.stop()

    assert asyncio.run(go()) == {tp}  # nothing processed: offsets 3 to 5 are still to do


def test_an_open_transaction_keeps_the_records_behind_it_in_the_gates_snapshot(settings: Settings) -> None:
    """A transaction left open holds the last stable offset at its first record: a committed record
    appended after it is on the broker, yet no read-committed consumer can read it. The snapshot is
    the high watermark, so the partition stays behind until the transaction ends and the record is
    processed (a snapshot of last stable offsets passed over it)."""
    tp = TopicPartition(settings.topic("message.opened"), 0)
    hanging = transactional_producer(settings)
    hanging.begin_transaction()
    hanging.produce(tp.topic, value=b"in-an-open-transaction", key=b"k", partition=0)
    assert hanging.flush(30) == 0  # offset 0, its transaction open
    plain = Producer({"bootstrap.servers": settings.broker})
    plain.produce(tp.topic, value=b"committed-after-it", key=b"k", partition=0)
    assert plain.flush(30) == 0  # offset 1, committed, unreadable while offset 0's transaction is open

    async def behind(processed: int, ends: dict[TopicPartition, int] | None = None) -> dict[TopicPartition, int]:
        gate = LagGate(client_options(settings), settings.group_id, processed=lambda _tp, _c: processed)
        try:
            return await gate.lagging([tp], ends)
        finally:
            await gate.stop()

    async def snapshot() -> dict[TopicPartition, int]:
        gate = LagGate(client_options(settings), settings.group_id)
        try:
            return await gate.end_offsets([tp])
        finally:
            await gate.stop()

    ends = asyncio.run(snapshot())
    assert ends == {tp: 2}  # both records, not the last stable offset (0)
    assert asyncio.run(behind(0, ends)) == {tp: 2}  # nothing can be read yet: behind, not caught up
    hanging.abort_transaction(30)  # offset 2: its abort marker
    assert asyncio.run(behind(0, ends)) == {tp: 2}  # the aborted record is skipped; offset 1 is not processed
    assert asyncio.run(behind(1, ends)) == {tp: 1}
    assert asyncio.run(behind(2, ends)) == {}
    assert asyncio.run(behind(2)) == {}  # now: only the abort marker is left


def test_facts_behind_an_upstream_transaction_left_open_count_once_it_ends(kafka: LocalKafka, tmp_path: Path) -> None:
    """An upstream producer died in a transaction on every partition of message.opened; the opens of a
    booster's recipients are published after it, by another producer, before the deadline. The booster
    waits for the transaction to end (here, aborted by the upstream's new producer) and excludes them."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    sc = build(f"open-txn-{uuid.uuid4().hex[:6]}", 200, launched_at=launched_for_deadline(int(time.time() * 1000)))
    facts = scenario_records(sc, launch=False)
    opens = [(t, r) for t, r in facts if t == "message.opened"]
    assert opens
    hanging = transactional_producer(settings)
    hanging.begin_transaction()
    for partition in range(settings.partitions):
        hanging.produce(settings.topic("message.opened"), value=b"never decided", key=b"k", partition=partition)
    assert hanging.flush(30) == 0
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(settings, [account_record(sc), *facts, ("campaign.launched", sc.launch_record())])

        def waiting_or_fired() -> str | None:
            if final_report(settings, sc.campaign_id) is not None:
                return "fired"
            lines = worker.log_text().splitlines()
            return "waiting" if any("waiting-for-lag" in s and ".message.opened[" in s for s in lines) else None

        state = wait_for("the deadline to wait for message.opened, or to fire", waiting_or_fired, 60, 0.5)
        assert state == "waiting", "the booster fired while the opens behind the open transaction were unreadable"
        assert final_report(settings, sc.campaign_id) is None
        hanging.abort_transaction(30)
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 60, 0.5)
    finally:
        worker.stop()
    assert v.ok, v.problems


def test_transactional_upstreams_with_aborted_transactions_fire_on_time_with_the_exact_audience(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """Every input topic is written in transactions, aborted ones among them, plus an unrelated cancel:
    a commit marker after each partition's last record once held every booster for ever."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    sc = build(f"txn-{tag}", 800, launched_at=launched_for_deadline(int(time.time() * 1000)))
    facts = encoded([account_record(sc), *scenario_records(sc, launch=False)])
    # aborted: a click and an unsubscribe for every eligible recipient, which would empty the audience
    aborted: list[dict[str, Any]] = []
    for contact in sorted(sc.expected_audience):
        aborted.append(
            {
                "campaign_id": sc.campaign_id,
                "contact_id": contact,
                "message_id": "x",
                "clicked_at": sc.launched_at,
                "url": "https://example.com/aborted",
            }
        )
    cancel = {"campaign_id": f"other-{tag}", "cancelled_at": sc.launched_at}
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        producer = transactional_producer(settings)
        for start in range(0, len(facts), TRANSACTION):
            in_transaction(producer, settings, facts[start : start + TRANSACTION])
            in_transaction(producer, settings, encoded([("message.clicked", a) for a in aborted]), commit=False)
        unsubscribes = [
            (
                "contact.unsubscribed",
                {"contact_id": c, "account_id": sc.account_id, "channel": None, "unsubscribed_at": 1},
            )
            for c in sc.expected_audience
        ]
        in_transaction(producer, settings, encoded(unsubscribes), commit=False)
        in_transaction(producer, settings, encoded([("campaign.booster-cancelled", cancel)]))
        in_transaction(producer, settings, encoded([("campaign.launched", sc.launch_record())]))
        # the deadline is already due: the booster fires within a few ticks, or never (the old gate)
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 60, 0.5)
        assert v.ok, v.problems
        assert v.commands == len(sc.expected_audience) > 0

        def caught_up() -> dict[str, Any] | None:
            report = json.loads(booster(settings, "lag", "--json").stdout)
            return report if report["total_lag"] == 0 else None

        # transaction markers (upstream's, and the fan-out's on booster.summaries) are not lag
        wait_for("`booster lag` to show nothing behind", caught_up, 30, 0.5)

        # a producer whose clock runs an hour ahead: shown by a gauge and a warning, nothing refused
        stranger = {"campaign_id": f"late-{tag}", "contact_id": "z", "message_id": "z", "status": "DELIVERED"}
        [(topic, key, value)] = encoded([("message.delivered", {**stranger, "reported_at": sc.launched_at})])
        ahead = Producer({"bootstrap.servers": settings.broker, "partitioner": "murmur2_random"})
        ahead.produce(settings.topic(topic), value=value, key=key, timestamp=int(time.time() * 1000) + 3_600_000)
        ahead.flush(30)
        series = 'booster_record_clock_ahead_seconds{topic="message.delivered"}'
        wait_for("the skew gauge", lambda: scrape_metrics(worker.port).get(series, 0) > 3500, 30, 0.5)
        assert "ahead of this worker's clock" in worker.log_path.read_text()
    finally:
        worker.stop()


def test_facts_partitioned_by_librdkafkas_default_partitioner_count_for_their_contacts(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """librdkafka partitions by CRC32 unless told otherwise; the contract and the Java client by
    murmur2. Half of every contact-keyed topic comes one way and half the other, for the same contacts:
    a click in the wrong partition once left its clicker in the audience."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    sc = build(f"crc-{uuid.uuid4().hex[:6]}", 600, launched_at=launched_for_deadline(int(time.time() * 1000)))
    facts = encoded(scenario_records(sc, launch=False))
    librdkafka = Producer({"bootstrap.servers": settings.broker})  # its defaults: consistent_random
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        asyncio.run(produce_raw(settings, encoded([account_record(sc)]) + facts[1::2]))  # murmur2
        for topic, key, value in facts[::2]:
            librdkafka.produce(settings.topic(topic), value=value, key=key)
        librdkafka.flush(30)
        asyncio.run(produce_raw(settings, encoded([("campaign.launched", sc.launch_record())])))
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 90, 0.5)
        metrics = scrape_metrics(worker.port)
    finally:
        worker.stop()
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) > 0
    contact_topics = {topic for topic, _, _ in facts[::2]}
    misrouted = {t: metrics.get(f'booster_misrouted_records_total{{topic="{t}"}}', 0) for t in contact_topics}
    assert all(n > 0 for n in misrouted.values()), misrouted
