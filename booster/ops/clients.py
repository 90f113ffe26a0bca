"""Producing and reading contract topics with plain aiokafka clients: publish, tail, replay."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from booster.config import Settings
from booster.errors import BoosterError, DecodeError, EncodeError
from booster.ops.jsonio import parse_line, record_to_json
from booster.schemas import codec
from booster.schemas.catalog import CATALOG, LAUNCHES_BY_ACCOUNT
from booster.streams import compat
from booster.streams.connect import client_options, connected


class PublishRefused(BoosterError):
    def __init__(self, line_no: int, reason: str, sent: int) -> None:
        self.line_no = line_no
        self.reason = reason
        self.sent = sent
        super().__init__(f"line {line_no}: {reason} ({sent} record(s) before it were published; nothing after it)")


def schema_topic(topic: str) -> str:
    """The contract topic whose schema a topic's values use."""
    if topic == LAUNCHES_BY_ACCOUNT:
        return "campaign.launched"
    if topic not in CATALOG:
        known = ", ".join(sorted([*CATALOG, LAUNCHES_BY_ACCOUNT]))
        raise BoosterError(f"unknown topic {topic!r}; the topics are: {known}")
    return topic


def producer(settings: Settings, **kwargs: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
    options.update(kwargs)
    return AIOKafkaProducer(**client_options(settings), **options)


async def publish_lines(
    settings: Settings,
    topic: str,
    lines: Iterable[str],
    progress: TextIO | None = None,
    every: int = 50_000,
) -> int:
    """Encode and produce one record per non-empty line; stop at the first bad line.

    Every record before a refused line is on the topic when PublishRefused is raised.
    """
    schema_topic(topic)
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    async with connected(settings, producer(settings, max_batch_size=256 * 1024)) as prod:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                if len(line) > settings.max_record_bytes:  # characters: at least as many bytes
                    raise EncodeError(
                        f"the line is {len(line.encode())} bytes, over BOOSTER_MAX_RECORD_BYTES="
                        f"{settings.max_record_bytes}; a record that large is refused by the workers"
                    )
                key, value = parse_line(topic, line)
                if len(value) > settings.max_record_bytes:
                    raise EncodeError(
                        f"the record is {len(value)} bytes encoded, over BOOSTER_MAX_RECORD_BYTES="
                        f"{settings.max_record_bytes}; a record that large is refused by the workers"
                    )
            except EncodeError as exc:
                await _settle(prod, pending)
                raise PublishRefused(line_no, str(exc), sent) from None
            pending.append(await prod.send(settings.topic(topic), value=value, key=key))
            sent += 1
            if len(pending) >= 10_000:
                await _settle(prod, pending)
            if progress is not None and sent % every == 0:
                print(f"published {sent} records to {topic} ...", file=progress, flush=True)
        await _settle(prod, pending)
    return sent


async def _settle(prod: AIOKafkaProducer, pending: list[asyncio.Future[Any]]) -> None:
    await prod.flush()
    for fut in pending:
        await fut  # raises the broker's error, if any
    pending.clear()


RawRecord = tuple[str, bytes | None, bytes | None]  # contract topic, key, value


async def produce_raw(settings: Settings, records: Iterable[RawRecord]) -> int:
    """Produce already-encoded records in this order (across topics), each partitioned by its key as
    any producer would; every one is acknowledged when this returns (replays, tests, the benchmark)."""
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    async with connected(settings, producer(settings)) as prod:
        for topic, key, value in records:
            pending.append(await prod.send(settings.topic(topic), value=value, key=key))
            sent += 1
            if len(pending) >= 10_000:
                await _settle(prod, pending)
        await _settle(prod, pending)
    return sent


@dataclass(frozen=True)
class TailedRecord:
    key: str | None
    value: Any
    partition: int
    offset: int
    timestamp: int
    error: str | None = None

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "key": self.key,
            "value": self.value,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
        }
        if self.error is not None:
            out["error"] = self.error
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def _decode_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode()


def decode_record(topic: str, msg: ConsumerRecord[bytes, bytes], epoch_ms: bool = False) -> TailedRecord:
    st = schema_topic(topic)
    if msg.value is None:  # a tombstone: compaction's delete marker, as on booster.fanout-progress
        return TailedRecord(_decode_key(msg.key), None, msg.partition, msg.offset, msg.timestamp, None)
    try:
        if topic == LAUNCHES_BY_ACCOUNT and codec().schema_of(msg.value).name == "booster.control":
            st = "booster.control"  # the timer's tick for a pending launch past its deadline
        internal = topic == LAUNCHES_BY_ACCOUNT  # copies in the contract's own ids, registry or not
        value = record_to_json(st, codec().decode(st, msg.value, internal), epoch_ms=epoch_ms)
        error = None
    except DecodeError as exc:
        value = None if msg.value is None else "base64:" + base64.b64encode(msg.value).decode()
        error = exc.reason
    return TailedRecord(_decode_key(msg.key), value, msg.partition, msg.offset, msg.timestamp, error)


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
    max_records: int | None = None,
    until_end: bool = False,
    partitions: Iterable[int] | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Committed records of a topic, all partitions (or these), without a consumer group.

    It stops after `max_records`, after `idle_timeout` seconds without a record, or, with `until_end`,
    once it has read everything committed when it started (the end offsets it snapshots first).
    """
    schema_topic(topic)
    real = settings.topic(topic)
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    async with connected(settings, consumer):
        parts = consumer.partitions_for_topic(real)
        if not parts:
            await compat.refresh_metadata(consumer)
            parts = consumer.partitions_for_topic(real)
        if not parts:
            raise BoosterError(f"topic {real} does not exist; run `booster topics create`")
        wanted = parts if partitions is None else set(partitions) & parts
        tps = [TopicPartition(real, p) for p in sorted(wanted)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps) if until_end else None
        seen = 0
        last = time.monotonic()
        while True:
            if ends is not None and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            got = False
            for tp in sorted(batch, key=lambda t: t.partition):
                for msg in batch[tp]:
                    got = True
                    yield msg
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
            now = time.monotonic()
            if got:
                last = now
            elif idle_timeout is not None and now - last >= idle_timeout:
                return


async def tail(
    settings: Settings,
    topic: str,
    out: TextIO = sys.stdout,
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    max_records: int | None = None,
    until_end: bool = False,
    epoch_ms: bool = False,
) -> int:
    count = 0
    async for msg in read_topic(
        settings,
        topic,
        from_beginning=from_beginning,
        idle_timeout=idle_timeout,
        max_records=max_records,
        until_end=until_end,
    ):
        print(decode_record(topic, msg, epoch_ms).to_json(), file=out, flush=True)
        count += 1
    return count


FINAL_STATUSES = frozenset({"SENT", "CANCELLED", "REJECTED"})


async def latest_reports(settings: Settings) -> dict[str, tuple[dict[str, Any], int]]:
    """Every booster's latest report with its record timestamp (the reports topic is its state)."""
    latest: dict[str, tuple[dict[str, Any], int]] = {}
    async for msg in read_topic(settings, "booster.reports", until_end=True):
        report = codec().decode("booster.reports", msg.value)
        latest[report["campaign_id"]] = (report, msg.timestamp)
    return latest


async def final_report(settings: Settings, campaign_id: str) -> tuple[dict[str, Any], int] | None:
    """A booster's final report (SENT, CANCELLED or REJECTED) and its timestamp, if it has one yet."""
    found = (await latest_reports(settings)).get(campaign_id)
    return found if found is not None and found[0]["status"] in FINAL_STATUSES else None


async def booster_results(settings: Settings, campaign_id: str) -> dict[str, Any] | None:
    """A booster's results (its uplift measurement), once its measurement window has ended: booster.results is
    compacted by campaign, the latest record is the booster's."""
    found = None
    async for msg in read_topic(settings, "booster.results", until_end=True):
        if msg.key == campaign_id.encode():
            found = codec().decode("booster.results", msg.value)
    return found
